"""Accepting and declining: identity checks, tokens, memberships, links, bulk accept."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import pytest

from app.config import Settings
from app.models import (
    Invitation,
    InvitationUse,
    Membership,
    MessageKind,
    OutboxMessage,
    User,
)
from app.services.tokens import make_token
from tests.conftest import GQL
from tests.lifecycle_helpers import (
    ACCEPT,
    ACCEPT_IDS,
    CREATE_LINK,
    DECLINE,
    MEMBERS,
    OPEN,
    PREVIEW,
    current_token,
    invite_one,
    only_error,
    overdue,
    stored,
    token_of,
)

MakeGroup = Callable[..., Awaitable[dict[str, Any]]]


async def _link(gql: GQL, auth: str, **fields: Any) -> dict[str, Any]:
    data = await gql(
        CREATE_LINK, {"input": {"groupType": "org", "groupId": "acme", **fields}}, auth=auth
    )
    assert data["createInviteLink"]["errors"] == [], data
    link: dict[str, Any] = data["createInviteLink"]["invitation"]
    return link


async def test_accept_creates_the_membership_and_notifies_the_inviter(
    gql: GQL, make_group: MakeGroup
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    invitation = await invite_one(
        gql, owner, "Ben@Example.COM", role="admin", permissions=["billing"]
    )
    # The address matches whatever its case in the JWT.
    ben = gql.token("ben", "BEN@example.com")

    payload = (await gql(ACCEPT, {"token": token_of(invitation["inviteUrl"])}, auth=ben))[
        "acceptInvitation"
    ]

    assert payload["errors"] == []
    [accepted] = payload["invitations"]
    assert accepted["status"] == "ACCEPTED"
    assert accepted["acceptedBy"] == {"externalId": "ben"}
    assert accepted["events"][-1]["type"] == "ACCEPTED"
    assert payload["memberships"] == [
        {
            "role": "admin",
            "permissions": ["billing"],
            "user": {"externalId": "ben"},
            "group": {"externalId": "acme"},
        }
    ]
    notices = await OutboxMessage.filter(
        invitation_id=UUID(invitation["id"]), kind=MessageKind.ACCEPTED_NOTICE
    ).count()
    assert notices == 1
    row = await stored(invitation["id"])
    assert row.open_key is None
    membership = await Membership.get(user__external_id="ben")
    assert membership.invitation_id == row.id


async def test_no_notice_when_an_api_key_invited(
    gql: GQL, api_key: str, make_group: MakeGroup
) -> None:
    await make_group(api_key)
    invitation = await invite_one(gql, api_key, "ben@example.com")
    ben = gql.token("ben", "ben@example.com")
    payload = (await gql(ACCEPT, {"token": token_of(invitation["inviteUrl"])}, auth=ben))[
        "acceptInvitation"
    ]
    assert payload["errors"] == []
    messages = await OutboxMessage.filter(invitation_id=UUID(invitation["id"]))
    assert [m.kind for m in messages] == [MessageKind.INVITATION]


async def test_unverified_and_mismatched_emails_are_refused(
    gql: GQL, make_group: MakeGroup
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    invitation = await invite_one(gql, owner, "ben@example.com")
    token = token_of(invitation["inviteUrl"])

    unverified = gql.token("ben", "ben@example.com", verified=False)
    payload = (await gql(ACCEPT, {"token": token}, auth=unverified))["acceptInvitation"]
    assert only_error(payload)["code"] == "EMAIL_NOT_VERIFIED"
    assert only_error(payload)["field"] == ["token"]

    other = gql.token("carol", "carol@example.com")
    payload = (await gql(ACCEPT, {"token": token}, auth=other))["acceptInvitation"]
    assert only_error(payload)["code"] == "EMAIL_MISMATCH"

    payload = (await gql(DECLINE, {"id": invitation["id"]}, auth=other))["declineInvitation"]
    assert only_error(payload)["code"] == "EMAIL_MISMATCH"
    payload = (await gql(DECLINE, {"id": invitation["id"]}, auth=unverified))["declineInvitation"]
    assert only_error(payload)["code"] == "EMAIL_NOT_VERIFIED"

    assert (await stored(invitation["id"])).status == "pending"
    assert await Membership.filter(user__external_id__in=["ben", "carol"]).count() == 0


async def test_every_token_that_does_not_verify_gets_the_same_answer(
    gql: GQL, make_group: MakeGroup, settings: Settings
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    invitation = await invite_one(gql, owner, "ben@example.com")
    genuine = token_of(invitation["inviteUrl"])
    row = await stored(invitation["id"])
    ben = gql.token("ben", "ben@example.com")
    bad_tokens = {
        "garbage": "nonsense",
        "unknown": make_token(settings.secret_keys[0], UUID(int=7), 1),
        "forged": make_token("not-our-secret", row.id, 1),
        "tampered": genuine[:-2] + ("AA" if not genuine.endswith("AA") else "BB"),
        "future version": make_token(settings.secret_keys[0], row.id, 2),
    }
    answers = []
    for token in bad_tokens.values():
        payload = (await gql(ACCEPT, {"token": token}, auth=ben))["acceptInvitation"]
        answers.append(payload)
        assert (await gql(PREVIEW, {"token": token}))["invitationByToken"] is None
    expected = {
        "invitations": [],
        "memberships": [],
        "errors": [{"code": "NOT_FOUND", "field": ["token"], "message": "No such invitation."}],
    }
    assert answers == [expected] * len(bad_tokens)
    # The rotated-away token answers the same once a resend replaced it.
    await Invitation.filter(id=row.id).update(token_version=2)
    payload = (await gql(ACCEPT, {"token": genuine}, auth=ben))["acceptInvitation"]
    assert payload == expected
    assert (await stored(invitation["id"])).status == "pending"


async def test_expired_by_the_clock_cannot_be_accepted_but_says_so(
    gql: GQL, make_group: MakeGroup
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    invitation = await invite_one(gql, owner, "ben@example.com")
    token = token_of(invitation["inviteUrl"])
    await overdue(invitation["id"])  # no sweep has run: stored status is still PENDING
    ben = gql.token("ben", "ben@example.com")
    payload = (await gql(ACCEPT, {"token": token}, auth=ben))["acceptInvitation"]
    assert only_error(payload)["code"] == "EXPIRED"
    assert (await gql(PREVIEW, {"token": token}))["invitationByToken"]["status"] == "EXPIRED"
    assert await Membership.filter(user__external_id="ben").count() == 0


@pytest.mark.parametrize(
    ("existing", "invited", "kept"),
    [("member", "admin", "admin"), ("admin", "member", "admin"), ("owner", "admin", "owner")],
)
async def test_existing_member_keeps_the_higher_role(
    gql: GQL, api_key: str, make_group: MakeGroup, existing: str, invited: str, kept: str
) -> None:
    await make_group(api_key)
    invitation = await invite_one(gql, api_key, "ben@example.com", role=invited)
    ben = gql.token("ben", "ben@example.com")
    # Ben gets in another way before accepting (here: a link with the other role).
    link = await _link(gql, api_key, role=existing, permissions=["reports"])
    assert (await gql(ACCEPT, {"token": token_of(link["inviteUrl"])}, auth=ben))[
        "acceptInvitation"
    ]["errors"] == []

    payload = (await gql(ACCEPT, {"token": token_of(invitation["inviteUrl"])}, auth=ben))[
        "acceptInvitation"
    ]

    assert payload["errors"] == []
    assert payload["invitations"][0]["status"] == "ACCEPTED"
    assert payload["memberships"][0]["role"] == kept
    assert payload["memberships"][0]["permissions"] == ["reports"]
    assert await Membership.filter(user__external_id="ben").count() == 1


async def test_api_keys_cannot_accept_or_decline(
    gql: GQL, api_key: str, make_group: MakeGroup
) -> None:
    await make_group(api_key)
    invitation = await invite_one(gql, api_key, "ben@example.com")
    payload = (await gql(ACCEPT, {"token": token_of(invitation["inviteUrl"])}, auth=api_key))[
        "acceptInvitation"
    ]
    assert only_error(payload)["code"] == "FORBIDDEN"
    payload = (await gql(DECLINE, {"id": invitation["id"]}, auth=api_key))["declineInvitation"]
    assert only_error(payload)["code"] == "FORBIDDEN"
    body = await gql.raw(ACCEPT, {"token": token_of(invitation["inviteUrl"])})
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


# --- acceptInvitations(ids) --------------------------------------------------------------


async def test_accept_by_ids_reports_per_item(
    gql: GQL, api_key: str, make_group: MakeGroup
) -> None:
    await make_group(api_key, "acme", "Acme")
    await make_group(api_key, "globex", "Globex")
    await make_group(api_key, "initech", "Initech")
    acme = await invite_one(gql, api_key, "ben@example.com")
    globex_data = await gql(
        """mutation($input: InviteInput!) { invite(input: $input) { invitations { id } } }""",
        {
            "input": {
                "groupType": "org",
                "groupId": "globex",
                "invitees": [{"email": "ben@example.com"}],
            }
        },
        auth=api_key,
    )
    globex = globex_data["invite"]["invitations"][0]
    initech_data = await gql(
        """mutation($input: InviteInput!) { invite(input: $input) { invitations { id } } }""",
        {
            "input": {
                "groupType": "org",
                "groupId": "initech",
                "invitees": [{"email": "ben@example.com"}],
            }
        },
        auth=api_key,
    )
    expired = initech_data["invite"]["invitations"][0]
    await overdue(expired["id"])
    carols = await invite_one(gql, api_key, "carol@example.com")
    ben = gql.token("ben", "ben@example.com")

    ids = [
        acme["id"],
        carols["id"],
        "00000000-0000-0000-0000-000000000000",
        expired["id"],
        globex["id"],
        acme["id"],
    ]
    payload = (await gql(ACCEPT_IDS, {"ids": ids}, auth=ben))["acceptInvitations"]

    assert [i["id"] for i in payload["invitations"]] == [acme["id"], globex["id"]]
    assert sorted(m["group"]["externalId"] for m in payload["memberships"]) == ["acme", "globex"]
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [
        ("EMAIL_MISMATCH", ["ids", "1"]),
        ("NOT_FOUND", ["ids", "2"]),
        ("EXPIRED", ["ids", "3"]),
        ("INVALID_STATUS", ["ids", "5"]),
    ]
    assert (await stored(carols["id"])).status == "pending"


async def test_accept_by_ids_needs_a_verified_email(
    gql: GQL, api_key: str, make_group: MakeGroup
) -> None:
    await make_group(api_key)
    invitation = await invite_one(gql, api_key, "ben@example.com")
    ben = gql.token("ben", "ben@example.com", verified=False)
    payload = (await gql(ACCEPT_IDS, {"ids": [invitation["id"]]}, auth=ben))["acceptInvitations"]
    assert only_error(payload)["code"] == "EMAIL_NOT_VERIFIED"
    assert payload["invitations"] == []
    empty = (await gql(ACCEPT_IDS, {"ids": []}, auth=gql.token("ben", "ben@example.com")))[
        "acceptInvitations"
    ]
    assert only_error(empty) == {
        "code": "INVALID_INPUT",
        "field": ["ids"],
        "message": "Give between 1 and 100 ids.",
    }


async def test_decline_frees_the_address_and_hides_it_from_open_invitations(
    gql: GQL, api_key: str, make_group: MakeGroup
) -> None:
    await make_group(api_key)
    invitation = await invite_one(gql, api_key, "ben@example.com")
    ben = gql.token("ben", "ben@example.com")
    assert (
        len((await gql(OPEN, {"email": "ben@example.com"}, auth=ben))["invitations"]["invitations"])
        == 1
    )
    payload = (await gql(DECLINE, {"id": invitation["id"]}, auth=ben))["declineInvitation"]
    assert payload["errors"] == []
    assert payload["invitation"]["status"] == "DECLINED"
    assert (await gql(OPEN, {"email": "ben@example.com"}, auth=ben))["invitations"][
        "invitations"
    ] == []
    assert await Membership.filter(user__external_id="ben").count() == 0
    again = await invite_one(gql, api_key, "ben@example.com")
    assert again["status"] == "PENDING"


# --- links -------------------------------------------------------------------------------


async def test_link_counts_one_use_per_user_and_closes_when_used_up(
    gql: GQL, make_group: MakeGroup
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    link = await _link(gql, owner, maxUses=2, role="member", returnTo="/welcome")
    assert link["targetType"] == "LINK"
    assert link["email"] is None
    assert (link["status"], link["maxUses"], link["useCount"]) == ("PENDING", 2, 0)
    assert link["deliveryStatus"] == "DISABLED"
    token = token_of(link["inviteUrl"])

    # A link needs no verified email: whoever holds it may join.
    first = gql.token("u1", "u1@example.com", verified=False)
    payload = (await gql(ACCEPT, {"token": token}, auth=first))["acceptInvitation"]
    assert payload["errors"] == []
    assert (payload["invitations"][0]["status"], payload["invitations"][0]["useCount"]) == (
        "PENDING",
        1,
    )
    again = (await gql(ACCEPT, {"token": token}, auth=first))["acceptInvitation"]
    assert only_error(again)["code"] == "ALREADY_MEMBER"

    second = gql.token("u2", "u2@example.com")
    payload = (await gql(ACCEPT, {"token": token}, auth=second))["acceptInvitation"]
    assert payload["errors"] == []
    assert (payload["invitations"][0]["status"], payload["invitations"][0]["useCount"]) == (
        "ACCEPTED",
        2,
    )

    third = gql.token("u3", "u3@example.com")
    payload = (await gql(ACCEPT, {"token": token}, auth=third))["acceptInvitation"]
    assert only_error(payload) == {
        "code": "INVALID_STATUS",
        "field": ["token"],
        "message": "This link has been used up.",
    }
    assert await InvitationUse.filter(invitation_id=UUID(link["id"])).count() == 2
    members = (await gql(MEMBERS, auth=owner))["group"]["members"]
    assert members["totalCount"] == 3
    notices = await OutboxMessage.filter(
        invitation_id=UUID(link["id"]), kind=MessageKind.ACCEPTED_NOTICE
    ).count()
    assert notices == 2


async def test_link_use_is_counted_once_even_after_leaving(gql: GQL, make_group: MakeGroup) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    link = await _link(gql, owner)
    token = token_of(link["inviteUrl"])
    user = gql.token("u1", "u1@example.com")
    assert (await gql(ACCEPT, {"token": token}, auth=user))["acceptInvitation"]["errors"] == []
    await Membership.filter(user__external_id="u1").delete()  # left the group
    payload = (await gql(ACCEPT, {"token": token}, auth=user))["acceptInvitation"]
    assert only_error(payload)["code"] == "INVALID_STATUS"
    assert (await stored(link["id"])).use_count == 1


async def test_link_without_limit_stays_open(gql: GQL, make_group: MakeGroup) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    link = await _link(gql, owner)
    token = token_of(link["inviteUrl"])
    for n in range(5):
        user = gql.token(f"u{n}", f"u{n}@example.com")
        assert (await gql(ACCEPT, {"token": token}, auth=user))["acceptInvitation"]["errors"] == []
    row = await stored(link["id"])
    assert (row.status, row.use_count) == ("pending", 5)


async def test_links_are_accepted_by_token_only(gql: GQL, make_group: MakeGroup) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    link = await _link(gql, owner)
    user = gql.token("u1", "u1@example.com")
    payload = (await gql(ACCEPT_IDS, {"ids": [link["id"]]}, auth=user))["acceptInvitations"]
    assert only_error(payload)["code"] == "NOT_FOUND"
    payload = (await gql(DECLINE, {"id": link["id"]}, auth=user))["declineInvitation"]
    assert only_error(payload)["code"] == "NOT_FOUND"


async def test_expired_link_cannot_be_used(gql: GQL, make_group: MakeGroup) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    link = await _link(gql, owner)
    await overdue(link["id"])
    user = gql.token("u1", "u1@example.com")
    payload = (await gql(ACCEPT, {"token": token_of(link["inviteUrl"])}, auth=user))[
        "acceptInvitation"
    ]
    assert only_error(payload)["code"] == "EXPIRED"
    assert await InvitationUse.all().count() == 0
    assert not await User.filter(external_id="u1", memberships__id__isnull=False).exists()


@pytest.mark.parametrize(
    ("fields", "code", "field"),
    [
        ({"maxUses": 0}, "INVALID_INPUT", ["maxUses"]),
        ({"maxUses": 10_001}, "INVALID_INPUT", ["maxUses"]),
        ({"expiresInDays": 91}, "INVALID_INPUT", ["expiresInDays"]),
        ({"role": "emperor"}, "INVALID_INPUT", ["role"]),
        ({"metadata": {"x": "y" * 20_000}}, "INVALID_INPUT", ["metadata"]),
    ],
)
async def test_create_link_validates(
    gql: GQL, make_group: MakeGroup, fields: dict[str, Any], code: str, field: list[str]
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    data = await gql(
        CREATE_LINK, {"input": {"groupType": "org", "groupId": "acme", **fields}}, auth=owner
    )
    payload = data["createInviteLink"]
    assert payload["invitation"] is None
    assert only_error(payload)["code"] == code
    assert only_error(payload)["field"] == field


async def test_resent_token_is_the_one_that_works(
    gql: GQL, make_group: MakeGroup, settings: Settings
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    invitation = await invite_one(gql, owner, "ben@example.com")
    await Invitation.filter(id=UUID(invitation["id"])).update(token_version=3)
    token = await current_token(settings, invitation["id"])
    ben = gql.token("ben", "ben@example.com")
    assert (await gql(ACCEPT, {"token": token}, auth=ben))["acceptInvitation"]["errors"] == []

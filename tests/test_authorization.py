"""DESIGN.md's "Who may do what", row by row, for every kind of caller."""

from __future__ import annotations

from typing import Any

import pytest

from app.models import Membership
from tests import factories
from tests.conftest import GQL, INVITE
from tests.lifecycle_helpers import (
    ACCEPT,
    ACCEPT_IDS,
    CREATE_LINK,
    DECLINE,
    OPEN,
    PREVIEW,
    RENEW,
    RESEND,
    REVOKE,
    SEND,
    SET_AUTOJOIN,
    UPDATE,
    age,
    invite_one,
    stored,
    token_of,
)

Cast = dict[str, str | None]

CALLERS = [
    "api_key",
    "owner",
    "admin",
    "inviter",  # invited while an admin, since demoted to member: no longer manages
    "member",
    "invitee",  # verified email matches
    "unverified_invitee",
    "stranger",  # signed in, not in the group
    "other_admin",  # admin of another group
]


@pytest.fixture
async def cast(gql: GQL, api_key: str) -> Cast:
    """Acme, owned by Olivia, with an admin, a member and a (demoted) inviter."""
    acme, globex = await factories.group(), await factories.group("globex", "Globex")
    await factories.member(acme, "olivia", "olivia@acme.com", "owner")
    await factories.member(globex, "gina", "gina@globex.com", "owner")
    people = {"admin": ("adam", "admin"), "inviter": ("ian", "admin"), "member": ("mia", "member")}
    tokens: Cast = {}
    for who, (sub, role) in people.items():
        await factories.member(acme, sub, f"{sub}@acme.com", role)
        tokens[who] = gql.token(sub, f"{sub}@acme.com")
    owner = gql.token("olivia", "olivia@acme.com")
    return {
        "api_key": api_key,
        "owner": owner,
        **tokens,
        "invitee": gql.token("ben", "ben@example.com"),
        "unverified_invitee": gql.token("ben", "ben@example.com", verified=False),
        "stranger": gql.token("sam", "sam@example.com"),
        "other_admin": gql.token("gina", "gina@globex.com"),
        "anonymous": None,
    }


async def _ians_invitation(
    gql: GQL, cast: Cast, email: str = "ben@example.com", **overrides: Any
) -> dict[str, Any]:
    """An invitation made by Ian while he was an admin; then Ian is demoted."""
    ian = cast["inviter"]
    assert ian is not None
    await Membership.filter(user__external_id="ian").update(role="admin")
    invitation = await invite_one(gql, ian, email, **overrides)
    await Membership.filter(user__external_id="ian").update(role="member")
    await age(invitation["id"])
    return invitation


def _outcome(payload: dict[str, Any]) -> str:
    return payload["errors"][0]["code"] if payload["errors"] else "ok"


# --- revoke, resend, renew, update, send draft: API key, admins, own invitations ----------
# An inviter manages their invitations only while their role still lets them invite.

MANAGE_EXPECTED = {
    "api_key": "ok",
    "owner": "ok",
    "admin": "ok",
    "inviter": "FORBIDDEN",
    "member": "FORBIDDEN",
    "invitee": "FORBIDDEN",
    "unverified_invitee": "NOT_FOUND",
    "stranger": "NOT_FOUND",
    "other_admin": "NOT_FOUND",
}
MANAGE_OPERATIONS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "revoke": (REVOKE, "revokeInvitation", {}),
    "resend": (RESEND, "resendInvitation", {}),
    "renew": (RENEW, "renewInvitation", {"days": 14}),
    "update": (UPDATE, "updateInvitation", {"input": {"message": "Welcome"}}),
    "send": (SEND, "sendInvitation", {}),
}


@pytest.mark.parametrize("operation", MANAGE_OPERATIONS)
@pytest.mark.parametrize("caller", CALLERS)
async def test_managing_an_invitation(gql: GQL, cast: Cast, caller: str, operation: str) -> None:
    query, name, extra = MANAGE_OPERATIONS[operation]
    invitation = await _ians_invitation(gql, cast, draft=operation == "send")
    before = await stored(invitation["id"])

    payload = (await gql(query, {"id": invitation["id"], **extra}, auth=cast[caller]))[name]

    assert _outcome(payload) == MANAGE_EXPECTED[caller], payload
    after = await stored(invitation["id"])
    if MANAGE_EXPECTED[caller] != "ok":
        assert payload["invitation"] is None
        assert (after.status, after.token_version, after.expires_at, after.message) == (
            before.status,
            before.token_version,
            before.expires_at,
            before.message,
        )


async def test_the_inviter_manages_only_their_own(gql: GQL, cast: Cast) -> None:
    # Adam (admin) invites Carol; Ian, now a plain member, may not touch it.
    adams = await invite_one(gql, cast["admin"] or "", "carol@example.com")
    await Membership.filter(user__external_id="ian").update(role="member")
    payload = (await gql(REVOKE, {"id": adams["id"]}, auth=cast["inviter"]))["revokeInvitation"]
    assert _outcome(payload) == "FORBIDDEN"


@pytest.mark.parametrize("operation", MANAGE_OPERATIONS)
async def test_anonymous_callers_get_a_top_level_error(
    gql: GQL, cast: Cast, operation: str
) -> None:
    query, _, extra = MANAGE_OPERATIONS[operation]
    invitation = await _ians_invitation(gql, cast)
    body = await gql.raw(query, {"id": invitation["id"], **extra})
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


# --- invite, create link, set autojoin domains: API key and admins -----------------------

GROUP_EXPECTED = {
    "api_key": "ok",
    "owner": "ok",
    "admin": "ok",
    "inviter": "FORBIDDEN",
    "member": "FORBIDDEN",
    "invitee": "NOT_FOUND",
    "unverified_invitee": "NOT_FOUND",
    "stranger": "NOT_FOUND",
    "other_admin": "NOT_FOUND",
}


@pytest.mark.parametrize("caller", CALLERS)
async def test_group_level_actions(gql: GQL, cast: Cast, caller: str) -> None:
    await Membership.filter(user__external_id="ian").update(role="member")
    auth = cast[caller]
    invite = await gql(
        INVITE,
        {"input": {"groupType": "org", "groupId": "acme", "invitees": [{"email": "x@corp.com"}]}},
        auth=auth,
    )
    link = await gql(CREATE_LINK, {"input": {"groupType": "org", "groupId": "acme"}}, auth=auth)
    autojoin = await gql(SET_AUTOJOIN, {"domains": ["acme.com"]}, auth=auth)
    expected = GROUP_EXPECTED[caller]
    assert _outcome(invite["invite"]) == expected
    assert _outcome(link["createInviteLink"]) == expected
    assert _outcome(autojoin["setAutojoinDomains"]) == expected
    listing = await gql.raw(
        '{ invitationsByGroup(groupType: "org", groupId: "acme") { totalCount } }', auth=auth
    )
    if expected == "ok":
        assert "errors" not in listing
    else:
        assert listing["errors"][0]["extensions"]["code"] == expected


async def test_an_admin_needs_a_verified_email_to_invite(gql: GQL, cast: Cast) -> None:
    owner = cast["owner"]
    assert owner is not None
    await invite_one(gql, owner, "ann@example.com")
    adam = gql.token("adam", "adam@acme.com", verified=False)
    invite = await gql(
        INVITE,
        {"input": {"groupType": "org", "groupId": "acme", "invitees": [{"email": "x@corp.com"}]}},
        auth=adam,
    )
    link = await gql(CREATE_LINK, {"input": {"groupType": "org", "groupId": "acme"}}, auth=adam)
    autojoin = await gql(SET_AUTOJOIN, {"domains": ["acme.com"]}, auth=adam)
    assert [
        _outcome(invite["invite"]),
        _outcome(link["createInviteLink"]),
        _outcome(autojoin["setAutojoinDomains"]),
    ] == ["EMAIL_NOT_VERIFIED"] * 3
    # Reading what the group has sent needs no more than the role.
    listing = await gql(
        '{ invitationsByGroup(groupType: "org", groupId: "acme") { totalCount } }', auth=adam
    )
    assert listing["invitationsByGroup"]["totalCount"] == 1  # Olivia's


@pytest.mark.parametrize(
    ("caller", "code"), [("api_key", "ok"), ("owner", "ok"), ("admin", "ROLE_NOT_ALLOWED")]
)
async def test_nobody_grants_a_role_above_their_own(
    gql: GQL, cast: Cast, caller: str, code: str
) -> None:
    auth = cast[caller]
    invite = await gql(
        INVITE,
        {
            "input": {
                "groupType": "org",
                "groupId": "acme",
                "invitees": [{"email": "x@corp.com"}],
                "role": "owner",
            }
        },
        auth=auth,
    )
    link = await gql(
        CREATE_LINK,
        {"input": {"groupType": "org", "groupId": "acme", "role": "owner"}},
        auth=auth,
    )
    autojoin = await gql(SET_AUTOJOIN, {"domains": ["acme.com"], "role": "owner"}, auth=auth)
    mine = await invite_one(gql, auth or "", "y@corp.com")
    update = await gql(UPDATE, {"id": mine["id"], "input": {"role": "owner"}}, auth=auth)
    outcomes = [
        _outcome(invite["invite"]),
        _outcome(link["createInviteLink"]),
        _outcome(autojoin["setAutojoinDomains"]),
        _outcome(update["updateInvitation"]),
    ]
    assert outcomes == [code] * 4
    if code != "ok":
        assert update["updateInvitation"]["errors"][0]["field"] == ["role"]
        assert (await stored(mine["id"])).role == "member"


# --- accept, decline: only the invitee ---------------------------------------------------

INVITEE_EXPECTED = {
    "api_key": "FORBIDDEN",
    "owner": "EMAIL_MISMATCH",
    "admin": "EMAIL_MISMATCH",
    "inviter": "EMAIL_MISMATCH",
    "member": "EMAIL_MISMATCH",
    "invitee": "ok",
    "unverified_invitee": "EMAIL_NOT_VERIFIED",
    "stranger": "EMAIL_MISMATCH",
    "other_admin": "EMAIL_MISMATCH",
}


@pytest.mark.parametrize("operation", ["accept", "accept_ids", "decline"])
@pytest.mark.parametrize("caller", CALLERS)
async def test_only_the_invitee_accepts_or_declines(
    gql: GQL, cast: Cast, caller: str, operation: str
) -> None:
    invitation = await _ians_invitation(gql, cast)
    auth = cast[caller]
    if operation == "accept":
        token = token_of(invitation["inviteUrl"])
        payload = (await gql(ACCEPT, {"token": token}, auth=auth))["acceptInvitation"]
    elif operation == "accept_ids":
        payload = (await gql(ACCEPT_IDS, {"ids": [invitation["id"]]}, auth=auth))[
            "acceptInvitations"
        ]
    else:
        payload = (await gql(DECLINE, {"id": invitation["id"]}, auth=auth))["declineInvitation"]
    assert _outcome(payload) == INVITEE_EXPECTED[caller], payload
    status = (await stored(invitation["id"])).status
    if INVITEE_EXPECTED[caller] != "ok":
        assert status == "pending"
        assert not await Membership.exists(user__external_id="ben")
    else:
        assert status == ("declined" if operation == "decline" else "accepted")


# --- list open invitations for an email: API key, or the owner of the address ------------


@pytest.mark.parametrize(
    ("caller", "allowed"),
    [
        ("api_key", True),
        ("invitee", True),
        ("unverified_invitee", False),
        ("owner", False),
        ("stranger", False),
    ],
)
async def test_listing_open_invitations_for_an_email(
    gql: GQL, cast: Cast, caller: str, allowed: bool
) -> None:
    await _ians_invitation(gql, cast)
    body = await gql.raw(OPEN, {"email": "Ben@Example.com"}, auth=cast[caller])
    if allowed:
        assert len(body["data"]["invitations"]["invitations"]) == 1
    else:
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


# --- preview by token: anyone ------------------------------------------------------------


@pytest.mark.parametrize("caller", [*CALLERS, "anonymous"])
async def test_anyone_may_preview_by_token(gql: GQL, cast: Cast, caller: str) -> None:
    invitation = await _ians_invitation(gql, cast)
    data = await gql(PREVIEW, {"token": token_of(invitation["inviteUrl"])}, auth=cast[caller])
    assert data["invitationByToken"] == {"status": "PENDING", "groupName": "Acme"}


async def test_an_inviter_who_may_no_longer_invite_manages_nothing(gql: GQL, cast: Cast) -> None:
    invitation = await _ians_invitation(gql, cast, role="admin")
    draft = await _ians_invitation(gql, cast, "carol@example.com", role="admin", draft=True)
    ian = cast["inviter"]
    operations = [
        (RESEND, "resendInvitation", {"id": invitation["id"]}),
        (RENEW, "renewInvitation", {"id": invitation["id"]}),
        (SEND, "sendInvitation", {"id": draft["id"]}),
        (REVOKE, "revokeInvitation", {"id": invitation["id"]}),
    ]
    for query, name, variables in operations:
        payload = (await gql(query, variables, auth=ian))[name]
        assert _outcome(payload) == "FORBIDDEN", name
    # Removed from the group altogether, Ian is told the invitation does not exist.
    await Membership.filter(user__external_id="ian").delete()
    for query, name, variables in operations:
        payload = (await gql(query, variables, auth=ian))[name]
        assert _outcome(payload) == "NOT_FOUND", name
    got = await gql(
        "query($id: ID!) { invitation(id: $id) { id } }", {"id": invitation["id"]}, auth=ian
    )
    assert got["invitation"] is None
    stored_invitation = await stored(invitation["id"])
    assert (stored_invitation.status, stored_invitation.token_version) == ("pending", 1)

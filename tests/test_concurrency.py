"""Races, fired at once through the app: the conditional updates and unique keys decide.

These run on whichever database the suite uses (SQLite by default, PostgreSQL with
TEST_DATABASE_URL); CI runs both.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from app.config import Settings
from app.models import (
    Invitation,
    InvitationEvent,
    InvitationUse,
    Membership,
    MessageKind,
    OutboxMessage,
)
from tests.conftest import GQL, INVITE
from tests.lifecycle_helpers import (
    ACCEPT,
    CREATE_LINK,
    DECLINE,
    RENEW,
    RESEND,
    REVOKE,
    SET_AUTOJOIN,
    age,
    invite_one,
    overdue,
    stored,
    token_of,
)

MakeGroup = Callable[..., Awaitable[dict[str, Any]]]
N = 30
ROUNDS = 16


async def _later(delay: float, operation: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    await asyncio.sleep(delay)
    return await operation


def _codes(payloads: list[dict[str, Any]]) -> Counter[str]:
    """How many succeeded ("ok") and how many failed with each code."""
    return Counter(p["errors"][0]["code"] if p["errors"] else "ok" for p in payloads)


async def test_concurrent_accepts_of_one_invitation_give_one_membership(
    gql: GQL, make_group: MakeGroup
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    invitation = await invite_one(gql, owner, "ben@example.com")
    token = token_of(invitation["inviteUrl"])
    ben = gql.token("ben", "ben@example.com")

    results = await asyncio.gather(*(gql(ACCEPT, {"token": token}, auth=ben) for _ in range(N)))

    assert _codes([r["acceptInvitation"] for r in results]) == {"ok": 1, "INVALID_STATUS": N - 1}
    iid = UUID(invitation["id"])
    assert await Membership.filter(user__external_id="ben").count() == 1
    assert await InvitationEvent.filter(invitation_id=iid, type="accepted").count() == 1
    notices = OutboxMessage.filter(invitation_id=iid, kind=MessageKind.ACCEPTED_NOTICE)
    assert await notices.count() == 1


async def test_concurrent_accepts_of_a_limited_link_stop_at_the_limit(
    gql: GQL, make_group: MakeGroup
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    data = await gql(
        CREATE_LINK, {"input": {"groupType": "org", "groupId": "acme", "maxUses": 5}}, auth=owner
    )
    link = data["createInviteLink"]["invitation"]
    token = token_of(link["inviteUrl"])
    users = [gql.token(f"u{n}", f"u{n}@example.com") for n in range(N)]

    results = await asyncio.gather(*(gql(ACCEPT, {"token": token}, auth=u) for u in users))

    assert _codes([r["acceptInvitation"] for r in results]) == {"ok": 5, "INVALID_STATUS": N - 5}
    row = await stored(link["id"])
    assert (row.status, row.use_count) == ("accepted", 5)
    assert await InvitationUse.filter(invitation_id=row.id).count() == 5
    assert await Membership.filter(user__external_id__startswith="u").count() == 5


async def test_concurrent_identical_invites_give_one_invitation(
    gql: GQL, make_group: MakeGroup
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    variables = {
        "input": {"groupType": "org", "groupId": "acme", "invitees": [{"email": "ben@example.com"}]}
    }

    results = await asyncio.gather(*(gql(INVITE, variables, auth=owner) for _ in range(N)))

    assert _codes([r["invite"] for r in results]) == {"ok": 1, "ALREADY_INVITED": N - 1}
    assert await Invitation.filter(email_key="ben@example.com").count() == 1
    assert await OutboxMessage.all().count() == 1


async def test_accept_racing_revoke_never_gives_both(gql: GQL, make_group: MakeGroup) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    outcomes: Counter[str] = Counter()
    for n in range(ROUNDS):
        email = f"ben{n}@example.com"
        invitation = await invite_one(gql, owner, email)
        invitee = gql.token(f"ben{n}", email)
        # Stagger one side a little differently each round, so each gets to go first.
        accept, revoke = await asyncio.gather(
            _later(
                (n % 2) * n / 1000,
                gql(ACCEPT, {"token": token_of(invitation["inviteUrl"])}, auth=invitee),
            ),
            _later((1 - n % 2) * n / 1000, gql(REVOKE, {"id": invitation["id"]}, auth=owner)),
        )
        accepted = accept["acceptInvitation"]["errors"] == []
        revoked = revoke["revokeInvitation"]["errors"] == []
        assert accepted != revoked, (accept, revoke)
        row = await stored(invitation["id"])
        member = await Membership.exists(user__external_id=f"ben{n}")
        if accepted:
            assert (row.status, member) == ("accepted", True)
            assert revoke["revokeInvitation"]["errors"][0]["code"] == "INVALID_STATUS"
        else:
            assert (row.status, member) == ("revoked", False)
            assert accept["acceptInvitation"]["errors"][0]["code"] == "INVALID_STATUS"
        outcomes["accepted" if accepted else "revoked"] += 1
    assert sum(outcomes.values()) == ROUNDS


async def test_accept_racing_decline_never_gives_both(gql: GQL, make_group: MakeGroup) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    invitation = await invite_one(gql, owner, "ben@example.com")
    ben = gql.token("ben", "ben@example.com")
    results = await asyncio.gather(
        *(
            gql(ACCEPT, {"token": token_of(invitation["inviteUrl"])}, auth=ben)
            if n % 2
            else gql(DECLINE, {"id": invitation["id"]}, auth=ben)
            for n in range(N)
        )
    )
    payloads = [r.get("acceptInvitation") or r["declineInvitation"] for r in results]
    assert _codes(payloads)["ok"] == 1
    row = await stored(invitation["id"])
    assert (row.status == "accepted") == await Membership.exists(user__external_id="ben")


async def test_concurrent_resends_rotate_once(gql: GQL, make_group: MakeGroup) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    invitation = await invite_one(gql, owner, "ben@example.com")
    await age(invitation["id"])

    results = await asyncio.gather(
        *(gql(RESEND, {"id": invitation["id"]}, auth=owner) for _ in range(N))
    )

    assert _codes([r["resendInvitation"] for r in results]) == {"ok": 1, "RATE_LIMITED": N - 1}
    row = await stored(invitation["id"])
    assert row.token_version == 2
    assert await OutboxMessage.filter(invitation_id=row.id, kind=MessageKind.RESEND).count() == 1


async def test_concurrent_resends_without_cool_down_stop_at_the_daily_cap(
    gql: GQL, make_group: MakeGroup, settings: Settings
) -> None:
    settings.resend_cooldown_seconds = 0
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    invitation = await invite_one(gql, owner, "ben@example.com")

    results = await asyncio.gather(
        *(gql(RESEND, {"id": invitation["id"]}, auth=owner) for _ in range(N))
    )

    cap = settings.resend_daily_cap
    assert _codes([r["resendInvitation"] for r in results]) == {"ok": cap, "RATE_LIMITED": N - cap}
    row = await stored(invitation["id"])
    assert row.token_version == 1 + cap
    resent = InvitationEvent.filter(invitation_id=row.id, type="resent")
    assert await resent.count() == cap
    assert await OutboxMessage.filter(invitation_id=row.id, kind=MessageKind.RESEND).count() == cap


async def test_renew_racing_a_new_invitation_leaves_one_open(
    gql: GQL, make_group: MakeGroup
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    variables = {
        "input": {"groupType": "org", "groupId": "acme", "invitees": [{"email": "ben@example.com"}]}
    }
    for _ in range(5):
        old = await invite_one(gql, owner, "ben@example.com")
        await overdue(old["id"], flip=True)
        renew, invite = await asyncio.gather(
            gql(RENEW, {"id": old["id"]}, auth=owner), gql(INVITE, variables, auth=owner)
        )
        codes = {
            renew["renewInvitation"]["errors"][0]["code"]
            if renew["renewInvitation"]["errors"]
            else "ok",
            invite["invite"]["errors"][0]["code"] if invite["invite"]["errors"] else "ok",
        }
        assert codes == {"ok", "ALREADY_INVITED"}
        open_rows = await Invitation.filter(
            email_key="ben@example.com", status="pending"
        ).values_list("id", flat=True)
        assert len(open_rows) == 1
        await gql(REVOKE, {"id": str(open_rows[0])}, auth=owner)


async def test_concurrent_autojoin_settings_do_not_collide(gql: GQL, make_group: MakeGroup) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    lists = [["acme.com", "acme.io"], ["acme.io", "acme.dev"], ["acme.com"]] * 10
    results = await asyncio.gather(
        *(gql(SET_AUTOJOIN, {"domains": domains}, auth=owner) for domains in lists)
    )
    assert all(r["setAutojoinDomains"]["errors"] == [] for r in results)
    group = await gql(
        '{ group(groupType: "org", groupId: "acme") { domains { domain } } }', auth=owner
    )
    listed = sorted(d["domain"] for d in group["group"]["domains"])  # verified or not
    assert listed in [sorted(d) for d in lists]


async def test_concurrent_grants_keep_every_permission(settings: Settings) -> None:
    from app.models import Group, JoinMethod, User
    from app.services import events
    from app.services.accept import grant_membership

    user = await User.create(external_id="ben", email="ben@example.com")
    group = await Group.create(type="org", external_id="acme", name="Acme")
    await Membership.create(user=user, group=group, role="member", joined_via=JoinMethod.AUTOJOIN)

    async def grant(permission: str) -> None:
        async with events.transaction():
            await grant_membership(
                settings,
                user=user,
                group=group,
                role="member",
                permissions=[permission],
                via=JoinMethod.INVITATION,
            )

    wanted = [f"profile-{n}" for n in range(N)]
    await asyncio.gather(*(grant(p) for p in wanted))
    membership = await Membership.get(user=user, group=group)
    assert sorted(membership.permissions) == sorted(wanted)

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tortoise import connections
from tortoise.transactions import in_transaction

from app.models import (
    Event,
    Group,
    Invitation,
    InvitationEvent,
    JoinMethod,
    Membership,
    OutboxMessage,
    User,
    WebhookEndpoint,
)
from app.services import sql
from tests.conftest import GQL, INVITE, QueryLog


def invite_input(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "groupType": "org",
        "groupId": "acme",
        "invitees": [{"email": "Ben@Example.COM", "firstName": "Ben"}],
    }
    base.update(overrides)
    return base


async def invite(gql: GQL, auth: str, **overrides: Any) -> dict[str, Any]:
    data = await gql(INVITE, {"input": invite_input(**overrides)}, auth=auth)
    payload: dict[str, Any] = data["invite"]
    return payload


async def test_owner_invites_by_email(gql: GQL, make_group) -> None:
    olivia = gql.token("olivia", "olivia@acme.com", name="Olivia")
    await make_group(olivia)
    payload = await invite(
        gql,
        olivia,
        message="Welcome!",
        permissions=["billing"],
        metadata={"plan": "pro", "seats": 3},
        returnTo="/projects/42",
    )
    assert payload["errors"] == []
    [inv] = payload["invitations"]
    assert inv["email"] == "Ben@example.com"
    assert inv["status"] == "PENDING"
    assert inv["role"] == "member"
    assert inv["targetType"] == "EMAIL"
    assert inv["deliveryStatus"] == "QUEUED"
    assert inv["permissions"] == ["billing"]
    assert inv["metadata"] == {"plan": "pro", "seats": 3}
    assert inv["returnTo"] == "/projects/42"
    assert inv["message"] == "Welcome!"
    assert inv["inviteUrl"].startswith("https://app.example.com/signup?invitation=inv_")
    expires = datetime.fromisoformat(inv["expiresAt"])
    assert timedelta(days=6, hours=23) < expires - datetime.now(UTC) <= timedelta(days=7)

    # One outbox row and one `created` event, written with the invitation.
    row = await Invitation.get(id=inv["id"])
    assert await OutboxMessage.filter(invitation_id=row.id).count() == 1
    assert [e.type for e in await InvitationEvent.filter(invitation_id=row.id)] == ["created"]
    # No user was made for the invitee: invitations are records, not users.
    members = await gql(
        '{ group(groupType: "org", groupId: "acme") { members { totalCount } } }', auth=olivia
    )
    assert members["group"]["members"]["totalCount"] == 1


async def test_draft_and_no_email_are_honoured(gql: GQL, api_key: str, make_group) -> None:
    await make_group(api_key)
    draft = await invite(gql, api_key, draft=True)
    assert draft["invitations"][0]["status"] == "DRAFT"
    assert draft["invitations"][0]["deliveryStatus"] == "NOT_SENT"
    quiet = await invite(gql, api_key, invitees=[{"email": "c@example.com"}], sendEmail=False)
    assert quiet["invitations"][0]["status"] == "PENDING"
    assert quiet["invitations"][0]["deliveryStatus"] == "DISABLED"
    assert await OutboxMessage.all().count() == 0


async def test_bulk_reports_per_item_and_keeps_the_valid(
    gql: GQL, api_key: str, make_group
) -> None:
    await make_group(api_key)
    await invite(gql, api_key, invitees=[{"email": "taken@example.com"}])
    payload = await invite(
        gql,
        api_key,
        invitees=[
            {"email": "a@example.com"},
            {"email": "not-an-email"},
            {"email": "TAKEN@example.com"},
            {"email": "b@example.com", "role": "superuser"},
            {"email": "A@example.com"},
            {"email": "c@example.com", "role": "admin"},
        ],
    )
    assert [i["email"] for i in payload["invitations"]] == ["a@example.com", "c@example.com"]
    assert payload["invitations"][1]["role"] == "admin"
    errors = {tuple(e["field"]): e["code"] for e in payload["errors"]}
    assert errors == {
        ("invitees", "1", "email"): "INVALID_EMAIL",
        ("invitees", "2", "email"): "ALREADY_INVITED",
        ("invitees", "3", "role"): "INVALID_INPUT",
        ("invitees", "4", "email"): "ALREADY_INVITED",
    }
    assert await Invitation.all().count() == 3


async def test_whole_request_errors_write_nothing(gql: GQL, api_key: str, make_group) -> None:
    await make_group(api_key)
    in_past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    too_far = (datetime.now(UTC) + timedelta(days=91)).isoformat()
    cases: list[tuple[dict[str, Any], str, list[str]]] = [
        ({"invitees": []}, "INVALID_INPUT", ["invitees"]),
        (
            {"invitees": [{"email": f"p{i}@example.com"} for i in range(101)]},
            "INVALID_INPUT",
            ["invitees"],
        ),
        ({"expiresInDays": 0}, "INVALID_INPUT", ["expiresInDays"]),
        ({"expiresInDays": 91}, "INVALID_INPUT", ["expiresInDays"]),
        ({"expiresAt": in_past}, "INVALID_INPUT", ["expiresAt"]),
        ({"expiresAt": too_far}, "INVALID_INPUT", ["expiresAt"]),
        ({"role": "emperor"}, "INVALID_INPUT", ["role"]),
        ({"groupId": "nope"}, "NOT_FOUND", ["groupId"]),
        ({"message": "x" * 2001}, "INVALID_INPUT", ["message"]),
    ]
    for overrides, code, field in cases:
        payload = await invite(gql, api_key, **overrides)
        assert payload["invitations"] == [], overrides
        assert [(e["code"], e["field"]) for e in payload["errors"]] == [(code, field)], overrides
    assert await Invitation.all().count() == 0


async def test_expiry_choices(gql: GQL, api_key: str, make_group) -> None:
    await make_group(api_key)
    at = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    payload = await invite(gql, api_key, expiresAt=at.isoformat())
    assert datetime.fromisoformat(payload["invitations"][0]["expiresAt"]) == at
    payload = await invite(gql, api_key, invitees=[{"email": "x@example.com"}], expiresInDays=90)
    left = datetime.fromisoformat(payload["invitations"][0]["expiresAt"]) - datetime.now(UTC)
    assert timedelta(days=89, hours=23) < left <= timedelta(days=90)


async def test_roles_who_may_invite_and_what(gql: GQL, make_group) -> None:
    owner = gql.token("owner")
    await make_group(owner)
    admin, member = gql.token("admin"), gql.token("member")
    # Make an admin and a member through stored memberships.
    from app.models import Group, JoinMethod, Membership, User

    group = await Group.get(external_id="acme")
    for sub, role in (("admin", "admin"), ("member", "member")):
        user = await User.create(external_id=sub, email=f"{sub}@example.com")
        await Membership.create(user=user, group=group, role=role, joined_via=JoinMethod.INVITATION)

    denied = await invite(gql, member)
    assert [e["code"] for e in denied["errors"]] == ["FORBIDDEN"]
    outsider = await invite(gql, gql.token("stranger"))
    assert [e["code"] for e in outsider["errors"]] == ["NOT_FOUND"]
    too_high = await invite(gql, admin, role="owner")
    assert [(e["code"], e["field"]) for e in too_high["errors"]] == [("ROLE_NOT_ALLOWED", ["role"])]
    ok = await invite(gql, admin, role="admin")
    assert ok["errors"] == [] and ok["invitations"][0]["role"] == "admin"
    already = await invite(gql, owner, invitees=[{"email": "MEMBER@example.com"}])
    assert [(e["code"], e["field"]) for e in already["errors"]] == [
        ("ALREADY_MEMBER", ["invitees", "0", "email"])
    ]


async def test_an_expired_invitation_no_longer_blocks_a_new_one(
    gql: GQL, api_key: str, make_group
) -> None:
    await make_group(api_key)
    first = await invite(gql, api_key)
    # The clock passes its expiry; no job has run.
    await Invitation.filter(id=first["invitations"][0]["id"]).update(
        expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    second = await invite(gql, api_key)
    assert second["errors"] == []
    old = await Invitation.get(id=first["invitations"][0]["id"])
    assert old.status == "expired" and old.open_key is None


async def test_database_enforces_one_open_invitation_per_address(
    api_key: str, gql: GQL, make_group
) -> None:
    import pytest
    from tortoise.exceptions import IntegrityError

    await make_group(api_key)
    payload = await invite(gql, api_key)
    row = await Invitation.get(id=payload["invitations"][0]["id"])
    with pytest.raises(IntegrityError):
        await Invitation.create(
            group_id=row.group_id,  # type: ignore[attr-defined]
            target_type=row.target_type,
            email=row.email,
            email_key=row.email_key,
            open_key=row.open_key,
            role="member",
            status="pending",
            expires_at=row.expires_at,
            delivery_status="not_sent",
        )


async def test_invite_costs_as_many_statements_for_100_as_for_10(
    gql: GQL, make_group, settings, queries: QueryLog
) -> None:
    settings.quota_invites_per_inviter_hour = 1000
    olivia = gql.token("olivia", "olivia@acme.com", name="Olivia")
    await make_group(olivia)
    await WebhookEndpoint.create(url="https://hooks.example/usher", secret="s", events=[])
    counts = []
    for size in (10, 100):
        queries.statements.clear()
        payload = await invite(
            gql, olivia, invitees=[{"email": f"p{n}-of-{size}@example.com"} for n in range(size)]
        )
        assert payload["errors"] == [] and len(payload["invitations"]) == size
        counts.append(len(queries.statements))
    assert counts[0] == counts[1], queries.statements
    # The caller, the group and the role; the members; then one transaction: the group held,
    # overdue invitations expired, open ones read and counted, two quotas, and one insert
    # per table (invitations, audit, feed events, webhook deliveries, emails).
    assert counts[1] <= 24, queries.statements
    assert await InvitationEvent.filter(type="created").count() == 110
    assert await Event.filter(type="invitation.created").count() == 110
    assert await OutboxMessage.filter(kind="webhook").count() == 110
    assert await OutboxMessage.filter(kind="invitation").count() == 110


async def test_a_mixed_batch_answers_each_invitee(gql: GQL, api_key: str, make_group) -> None:
    olivia = gql.token("olivia", "olivia@acme.com")
    await make_group(olivia)
    group = await Group.get(external_id="acme")
    member = await User.create(external_id="m", email="Member.One@Example.com", email_verified=True)
    await Membership.create(
        user=member, group=group, role="member", joined_via=JoinMethod.INVITATION
    )
    first = await invite(
        gql, api_key, invitees=[{"email": "open@example.com"}, {"email": "stale@example.com"}]
    )
    stale = first["invitations"][1]["id"]
    await Invitation.filter(id=stale).update(expires_at=datetime.now(UTC) - timedelta(minutes=1))

    payload = await invite(
        gql,
        api_key,
        invitees=[
            {"email": "new@example.com", "firstName": "New"},
            {"email": "member.one@EXAMPLE.com"},
            {"email": "OPEN@example.com"},
            {"email": "Stale@Example.com"},
            {"email": "new@EXAMPLE.com"},
            {"email": "bad address"},
            {"email": "other@example.com", "role": "owner"},
        ],
    )
    assert [(i["email"], i["role"]) for i in payload["invitations"]] == [
        ("new@example.com", "member"),
        ("Stale@example.com", "member"),
        ("other@example.com", "owner"),
    ]
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [
        ("ALREADY_MEMBER", ["invitees", "1", "email"]),
        ("ALREADY_INVITED", ["invitees", "2", "email"]),
        ("ALREADY_INVITED", ["invitees", "4", "email"]),
        ("INVALID_EMAIL", ["invitees", "5", "email"]),
    ]
    # The overdue invitation to the same address was expired, with its event, first.
    old = await Invitation.get(id=stale)
    assert old.status == "expired" and old.open_key is None
    assert await Event.filter(invitation_id=old.id, type="invitation.expired").count() == 1
    for created in payload["invitations"]:
        assert [e.type for e in await InvitationEvent.filter(invitation_id=created["id"])] == [
            "created"
        ]
        assert await OutboxMessage.filter(invitation_id=created["id"]).count() == 1


async def test_an_invitation_opened_meanwhile_is_already_invited(
    gql: GQL, api_key: str, make_group
) -> None:
    # Invites into one group wait for each other; anything else that opens an invitation to
    # an address of the batch while it runs makes the batch's insert fail on the unique
    # index. The batch then goes one by one: that address is ALREADY_INVITED, the rest go in.
    if not sql.is_postgres(Invitation):
        pytest.skip("SQLite has one writer at a time: nothing can open it meanwhile")
    await make_group(api_key)
    first = await invite(gql, api_key, invitees=[{"email": "seed@example.com"}])
    template = await Invitation.get(id=first["invitations"][0]["id"])
    inserted, release = asyncio.Event(), asyncio.Event()

    async def open_elsewhere() -> None:
        async with in_transaction():
            await Invitation.create(
                group_id=template.group_id,  # type: ignore[attr-defined]
                target_type="email",
                email="ben@example.com",
                email_key="ben@example.com",
                open_key="ben@example.com",
                role="member",
                status="pending",
                expires_at=template.expires_at,
                delivery_status="not_sent",
            )
            inserted.set()
            await release.wait()

    other = asyncio.create_task(open_elsewhere())
    await inserted.wait()
    batch = asyncio.create_task(
        invite(
            gql,
            api_key,
            invitees=[
                {"email": "a@example.com"},
                {"email": "ben@example.com"},
                {"email": "c@example.com"},
            ],
        )
    )
    await _until_blocked()
    release.set()
    await other
    payload = await batch
    assert [i["email"] for i in payload["invitations"]] == ["a@example.com", "c@example.com"]
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [
        ("ALREADY_INVITED", ["invitees", "1", "email"])
    ]
    assert await Invitation.filter(email_key="ben@example.com").count() == 1
    assert await InvitationEvent.filter(type="created").count() == 3


async def _until_blocked() -> None:
    """Wait until some statement of this database waits for another transaction's lock."""
    conn = connections.get("default")
    async with asyncio.timeout(30):
        while True:
            rows = await conn.execute_query_dict(
                "SELECT count(*) AS n FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if rows[0]["n"]:
                return
            await asyncio.sleep(0.01)


async def test_an_unverified_claim_does_not_keep_its_owner_from_being_invited(
    gql: GQL, api_key: str, make_group
) -> None:
    # A poser joins through a link with a JWT that claims the CEO's address unverified.
    await make_group(gql.token("olivia", "olivia@acme.com"))
    group = await Group.get(external_id="acme")
    poser = await User.create(external_id="poser", email="ceo@acme.com", email_verified=False)
    await Membership.create(
        user=poser, group=group, role="member", joined_via=JoinMethod.INVITATION
    )
    target = {"groupType": "org", "groupId": "acme", "invitees": [{"email": "ceo@acme.com"}]}
    data = await gql(INVITE, {"input": target}, auth=api_key)
    assert data["invite"]["errors"] == []
    # A verified member's address does count.
    await User.filter(id=poser.id).update(email_verified=True)
    again = {**target, "invitees": [{"email": "CEO@acme.com"}]}
    await Invitation.all().update(status="revoked", open_key=None)
    data = await gql(INVITE, {"input": again}, auth=api_key)
    assert [e["code"] for e in data["invite"]["errors"]] == ["ALREADY_MEMBER"]

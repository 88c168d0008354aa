"""The expiry sweep at scale: one statement per batch on PostgreSQL, events whose data is
built in SQL exactly as `events.invitation_data` builds it in Python, webhook deliveries
for the endpoints that want them, and rows other transactions hold skipped, not waited on."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from tortoise.transactions import in_transaction

from app.config import Settings
from app.jobs.expiry import sweep_expired
from app.models import (
    DeliveryStatus,
    Event,
    EventType,
    Invitation,
    InvitationEvent,
    InvitationStatus,
    MessageKind,
    OutboxMessage,
    WebhookEndpoint,
)
from app.services import changes, sql
from app.services.common import utcnow
from app.services.invitations import expire_overdue
from tests.conftest import GQL, INVITE, QueryLog
from tests.lifecycle_helpers import CREATE_LINK
from tests.redis_helpers import job_ctx, job_settings


async def _invite(gql: GQL, auth: str, invitees: list[dict[str, Any]], **terms: Any) -> list[str]:
    data = await gql(
        INVITE,
        {"input": {"groupType": "org", "groupId": "acme", "invitees": invitees, **terms}},
        auth=auth,
    )
    assert data["invite"]["errors"] == []
    return [i["id"] for i in data["invite"]["invitations"]]


async def _make_overdue(ids: list[str], at: datetime | None = None) -> None:
    past = at or utcnow() - timedelta(minutes=5)
    await Invitation.filter(id__in=[UUID(i) for i in ids]).update(expires_at=past)


async def test_expired_events_say_what_the_python_snapshot_says(
    gql: GQL, api_key: str, make_group
) -> None:
    olivia = gql.token("olivia", "olivia@acme.com", name="Olivia")
    await make_group(olivia)
    ids = await _invite(
        gql,
        olivia,
        [{"email": "Ben@Example.com", "firstName": "Ben", "lastName": "Ó'Brien"}],
        permissions=["billing", "admin-ish"],
        message='Say "hi" <b>',
        metadata={"plan": "pro", "seats": 3, "nested": {"a": [1, 2.5, None, True]}},
        returnTo="/welcome",
    )
    ids += await _invite(gql, api_key, [{"email": "carol@example.com"}], metadata="just text")
    ids += await _invite(gql, api_key, [{"email": "dan@example.com"}], sendEmail=False)
    link = await gql(
        CREATE_LINK, {"input": {"groupType": "org", "groupId": "acme", "maxUses": 3}}, auth=olivia
    )
    ids.append(link["createInviteLink"]["invitation"]["id"])
    await _make_overdue(ids[:2])
    # A whole second (no fraction: Python then writes none), and sent once.
    await _make_overdue(ids[2:], datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    await Invitation.filter(id=UUID(ids[1])).update(
        send_count=1, last_sent_at=utcnow() - timedelta(days=1), delivery_status="sent"
    )

    assert await expire_overdue(now=utcnow()) == 4

    for invitation_id in ids:
        row = await changes.load(UUID(invitation_id))
        assert row.status == InvitationStatus.EXPIRED
        [event] = await Event.filter(invitation_id=row.id, type="invitation.expired")
        assert event.data == changes.event_data(row), invitation_id
        [entry] = await InvitationEvent.filter(invitation_id=row.id, type=EventType.EXPIRED)
        assert entry.actor_user_id is None and entry.detail is None  # type: ignore[attr-defined]


async def test_expired_events_reach_the_endpoints_that_want_them(
    gql: GQL, api_key: str, make_group
) -> None:
    await make_group(api_key)
    everything = await WebhookEndpoint.create(url="https://a.example/h", secret="s", events=[])
    expiries = await WebhookEndpoint.create(
        url="https://b.example/h", secret="s", events=["invitation.expired"]
    )
    await WebhookEndpoint.create(
        url="https://c.example/h", secret="s", events=["invitation.accepted"]
    )
    await WebhookEndpoint.create(url="https://d.example/h", secret="s", events=[], enabled=False)
    ids = await _invite(gql, api_key, [{"email": f"p{n}@example.com"} for n in range(3)])
    await _make_overdue(ids)

    assert await expire_overdue(now=utcnow()) == 3

    expired = await Event.filter(type="invitation.expired").values_list("id", flat=True)
    rows = await OutboxMessage.filter(event_id__in=list(expired)).values_list(
        "endpoint_id", "kind", "sent_at"
    )
    assert sorted((str(e), k, s) for e, k, s in rows) == sorted(
        (str(endpoint.id), MessageKind.WEBHOOK, None)
        for endpoint in (everything, expiries)
        for _ in range(3)
    )


async def test_a_renewed_or_future_invitation_is_left_alone(
    gql: GQL, api_key: str, make_group
) -> None:
    await make_group(api_key)
    due, later, draft = await _invite(
        gql, api_key, [{"email": f"p{n}@example.com"} for n in range(3)]
    )
    await Invitation.filter(id=UUID(draft)).update(status=InvitationStatus.DRAFT)
    await _make_overdue([due, draft])
    assert await expire_overdue(now=utcnow()) == 1
    statuses = dict(await Invitation.all().values_list("id", "status"))
    assert {str(k): v for k, v in statuses.items()} == {
        due: InvitationStatus.EXPIRED,
        later: InvitationStatus.PENDING,
        draft: InvitationStatus.DRAFT,
    }
    expired = await Invitation.get(id=UUID(due))
    assert expired.open_key is None and expired.delivery_status == DeliveryStatus.QUEUED


async def test_each_batch_of_the_sweep_is_one_statement_on_postgresql(
    gql: GQL, api_key: str, make_group, queries: QueryLog
) -> None:
    await make_group(api_key)
    ids = await _invite(gql, api_key, [{"email": f"p{n}@example.com"} for n in range(7)])
    await _make_overdue(ids)
    settings = job_settings(Settings(database_url="sqlite://:memory:", redis_url=None))
    queries.statements.clear()

    assert await sweep_expired(job_ctx(settings)) == 7  # batches of 2: 2, 2, 2, 1

    flips = [s for s in queries.statements if 'UPDATE "invitations"' in s]
    assert len(flips) == 4
    if sql.is_postgres(Invitation):
        # The UPDATE and all its inserts are one statement; then the old quota counters go.
        assert len(queries.statements) == 4 + 1
    assert await InvitationEvent.filter(type=EventType.EXPIRED).count() == 7
    assert await Event.filter(type="invitation.expired").count() == 7


async def test_the_sweep_skips_rows_another_transaction_holds(
    gql: GQL, api_key: str, make_group
) -> None:
    if not sql.is_postgres(Invitation):
        pytest.skip("SQLite locks the whole database, not rows")
    await make_group(api_key)
    held, free = await _invite(gql, api_key, [{"email": f"p{n}@example.com"} for n in range(2)])
    await _make_overdue([held, free])
    locked, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with in_transaction():
            await Invitation.filter(id=UUID(held)).select_for_update().first()
            locked.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    try:
        await locked.wait()
        async with asyncio.timeout(10):  # it must not wait for the holder
            assert await expire_overdue(now=utcnow()) == 1
        assert (await Invitation.get(id=UUID(free))).status == InvitationStatus.EXPIRED
        assert (await Invitation.get(id=UUID(held))).status == InvitationStatus.PENDING
    finally:
        release.set()
        await holder
    assert await expire_overdue(now=utcnow()) == 1  # the next sweep gets it
    assert (await Invitation.get(id=UUID(held))).status == InvitationStatus.EXPIRED

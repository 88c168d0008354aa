"""Webhooks end to end: a change in the API reaches a real receiver once, signed, through
the in-process runner and through the worker, with Redis stopped in the middle."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.config import Settings
from app.jobs.inline import InlineRunner
from app.jobs.outbox import QueueRelay, relay_outbox
from app.mail.transports import FolderTransport
from app.models import Event, OutboxMessage
from tests.conftest import GQL
from tests.lifecycle_helpers import ACCEPT, DECLINE, REVOKE, invite_one, token_of
from tests.receiver import Receiver
from tests.redis_helpers import PrivateRedis, connect, job_ctx, private_redis, run_worker

__all__ = ["private_redis"]

CREATE_ENDPOINT = """mutation($input: WebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) { endpoint { id } secret errors { code field message } } }"""


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A receiver that verifies signatures (its secret is set once the endpoint exists)."""
    server = await Receiver().start()
    try:
        yield server
    finally:
        await server.stop()


async def _endpoint(gql: GQL, api_key: str, receiver: Receiver) -> None:
    data = await gql(CREATE_ENDPOINT, {"input": {"url": receiver.url}}, auth=api_key)
    payload = data["createWebhookEndpoint"]
    assert payload["errors"] == []
    receiver.secret = payload["secret"]


async def _until(condition: Any) -> None:
    """Wait for `condition()` to hold; the deadline is only a safety net."""
    async with asyncio.timeout(30):
        while not await condition():  # noqa: ASYNC110 (a database condition, polled)
            await asyncio.sleep(0.02)


async def _all_delivered() -> bool:
    """True once no outbox row (email or webhook) waits."""
    pending = OutboxMessage.filter(sent_at__isnull=True, failed_at__isnull=True)
    return not await pending.exists()


def _received(receiver: Receiver) -> list[dict[str, Any]]:
    assert all(r.verified for r in receiver.requests), "every request carries a valid signature"
    for request in receiver.accepted:
        assert request.payload is not None
        assert request.headers["webhook-id"] == request.payload["id"]
    return [r.payload for r in receiver.accepted if r.payload is not None]


async def test_each_change_reaches_the_receiver_once(
    gql: GQL, api_key: str, make_group, settings: Settings, receiver: Receiver, tmp_path
) -> None:
    await _endpoint(gql, api_key, receiver)
    async with InlineRunner(settings, interval=60, transport=FolderTransport(str(tmp_path))):
        olivia = gql.token("olivia", "olivia@acme.com", name="Olivia")
        await make_group(olivia)
        ben = await invite_one(gql, olivia, "ben@example.com")
        carol = await invite_one(gql, olivia, "carol@example.com")
        dan = await invite_one(gql, olivia, "dan@example.com")
        # The three emails (and the webhooks so far) go out before anything else changes.
        await _until(_all_delivered)
        await gql(REVOKE, {"id": carol["id"]}, auth=olivia)
        await gql(DECLINE, {"id": dan["id"]}, auth=gql.token("dan", "dan@example.com"))
        accepted = await gql(
            ACCEPT,
            {"token": token_of(ben["inviteUrl"])},
            auth=gql.token("ben", "ben@example.com"),
        )
        assert accepted["acceptInvitation"]["errors"] == []
        await _until(_all_delivered)

    received = _received(receiver)
    stored = {str(e.id): e.type for e in await Event.all()}
    # Every event arrived, and exactly once.
    assert sorted(p["id"] for p in received) == sorted(stored)
    assert {p["id"]: p["type"] for p in received} == stored
    types = sorted(stored.values())
    assert types.count("invitation.created") == 3
    assert types.count("membership.created") == 2  # Olivia's group, then Ben
    assert {"invitation.revoked", "invitation.declined", "invitation.accepted"} <= set(types)
    # The emails went out too, each an `invitation.sent` event delivered like the rest:
    # three invitations and Olivia's notice that Ben accepted.
    assert types.count("invitation.sent") == 4
    # In order per invitation: Ben's events arrived in the order they happened.
    bens = [
        p["type"] for p in received if (p["data"].get("invitation") or {}).get("id") == ben["id"]
    ]
    assert bens == [
        "invitation.created",
        "invitation.sent",
        "invitation.accepted",
        "invitation.sent",  # the notice to Olivia
    ]


async def test_redis_stopped_mid_way_loses_no_webhook(
    gql: GQL,
    api_key: str,
    make_group,
    settings: Settings,
    receiver: Receiver,
    private_redis: PrivateRedis,
) -> None:
    await private_redis.start()
    # Rows handed to the Redis that is about to lose them are handed over again this soon.
    settings = settings.model_copy(
        update={"redis_url": private_redis.url, "relay_stale_seconds": 0.2}
    )
    await _endpoint(gql, api_key, receiver)
    olivia = gql.token("olivia", "olivia@acme.com", name="Olivia")
    async with QueueRelay(settings) as relay:
        await make_group(olivia)
        await relay.relay_once()
        private_redis.stop()
        # Written while Redis is down: the API answers, the rows wait.
        await invite_one(gql, olivia, "ben@example.com", sendEmail=False)
        assert await relay.relay_once() == 0
    waiting = await OutboxMessage.filter(kind="webhook", sent_at__isnull=True).count()
    assert waiting >= 1

    # Redis comes back empty: the job handed over before the outage is gone with it.
    await private_redis.start()
    pool = await connect(private_redis.url)
    try:
        async with asyncio.timeout(30):
            while not await _all_delivered():
                await relay_outbox(job_ctx(settings, pool))
                await run_worker(settings, private_redis.url)
    finally:
        await pool.aclose()
    received = _received(receiver)
    assert sorted(p["type"] for p in received) == ["invitation.created", "membership.created"]
    assert len({p["id"] for p in received}) == len(received) == await Event.all().count()

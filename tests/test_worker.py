"""The arq side, against real Redis and a real SMTP server: relay, delivery, expiry."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from arq import ArqRedis
from arq.connections import RedisSettings

from app.config import Settings
from app.jobs.expiry import expiry_job_id, schedule_expiries, schedule_expiry
from app.jobs.outbox import QueueRelay, relay_outbox
from app.jobs.worker import UsherWorker, functions
from app.models import (
    DeliveryStatus,
    EventType,
    Invitation,
    InvitationEvent,
    InvitationStatus,
    OutboxMessage,
)
from app.services.common import utcnow
from tests.conftest import GQL, INVITE
from tests.mailserver import (
    BY_TOKEN,
    INVITATION_FIELDS,
    MailServer,
    body,
    link_token,
    mail_server,
    mail_server_session,
)
from tests.redis_helpers import (
    REDIS_URL,
    PrivateRedis,
    connect,
    forget_jobs,
    job_ctx,
    job_settings,
    private_redis,
    redis,
)

__all__ = ["mail_server", "mail_server_session", "private_redis", "redis"]

MakeGroup = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def settings(mail_server: MailServer, tmp_path: Path, redis: ArqRedis) -> Settings:
    """Settings with Redis, the test's SMTP server and own queue, and short back-offs."""
    return job_settings(
        Settings(
            database_url="sqlite://:memory:",
            redis_url=REDIS_URL,
            accept_url="https://app.example.com/signup?invitation={token}",
            smtp_url=mail_server.url,
            smtp_timeout_seconds=5,
            mail_dir=str(tmp_path / "mail"),
        ),
        redis.default_queue_name,
    )


async def run_worker(settings: Settings, redis_url: str = REDIS_URL) -> UsherWorker:
    """Run a burst worker until the test's queue is empty (deferred retries included)."""
    worker = UsherWorker(
        functions=functions(settings),
        queue_name=settings.queue_name,
        redis_settings=RedisSettings.from_dsn(redis_url),
        burst=True,
        poll_delay=0,
        handle_signals=False,
        ctx=job_ctx(settings),
    )
    try:
        await asyncio.wait_for(worker.async_run(), timeout=20)
    finally:
        await worker.close()
    return worker


async def invite(gql: GQL, make_group: MakeGroup, *emails: str) -> tuple[str, list[str]]:
    """Olivia invites `emails` (ben@example.com by default); returns her JWT and the ids."""
    olivia = gql.token("olivia", "olivia@acme.test", name="Olivia")
    await make_group(olivia)
    invitees = [{"email": e} for e in emails or ("ben@example.com",)]
    data = await gql(
        INVITE,
        {"input": {"groupType": "org", "groupId": "acme", "invitees": invitees}},
        auth=olivia,
    )
    assert data["invite"]["errors"] == []
    return olivia, [i["id"] for i in data["invite"]["invitations"]]


async def wait_handed_over(count: int) -> None:
    for _ in range(500):
        if await OutboxMessage.filter(enqueued_at__isnull=False).count() >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the relay did not hand the rows over")


async def test_invitation_reaches_smtp_through_the_queue(
    gql: GQL,
    make_group: MakeGroup,
    settings: Settings,
    mail_server: MailServer,
) -> None:
    async with QueueRelay(settings):
        olivia, [inv_id] = await invite(gql, make_group)
        await wait_handed_over(1)  # the API's relay reacted to the commit
    worker = await run_worker(settings)
    assert worker.jobs_complete == 1

    [mail] = await mail_server.handler.wait_for(1)
    assert mail["To"] == "ben@example.com"
    token = link_token(body(mail, "plain"))
    preview = (await gql(BY_TOKEN, {"token": token}))["invitationByToken"]
    assert preview["status"] == "PENDING" and preview["groupName"] == "Acme"
    inv = (await gql(INVITATION_FIELDS, {"id": inv_id}, auth=olivia))["invitation"]
    assert (inv["deliveryStatus"], inv["sendCount"]) == ("SENT", 1)


async def test_retry_on_4xx_then_success(
    gql: GQL,
    make_group: MakeGroup,
    settings: Settings,
    redis: ArqRedis,
    mail_server: MailServer,
) -> None:
    _, [inv_id] = await invite(gql, make_group)
    mail_server.handler.fail_next("421 4.7.0 Too many connections, slow down", times=2)
    assert await relay_outbox(job_ctx(settings, redis)) == 1
    started = asyncio.get_running_loop().time()
    worker = await run_worker(settings)
    elapsed = asyncio.get_running_loop().time() - started

    assert (worker.jobs_retried, worker.jobs_complete) == (2, 1)
    assert elapsed >= 0.05 + 0.1  # the two back-offs
    assert len(await mail_server.handler.wait_for(1)) == 1
    row = await OutboxMessage.get(invitation_id=inv_id)
    assert row.attempts == 3 and row.sent_at is not None
    assert (await Invitation.get(id=inv_id)).delivery_status == DeliveryStatus.SENT


async def test_5xx_marks_failed(
    gql: GQL,
    make_group: MakeGroup,
    settings: Settings,
    redis: ArqRedis,
    mail_server: MailServer,
) -> None:
    olivia, [inv_id] = await invite(gql, make_group)
    mail_server.handler.fail_next("554 5.7.1 Message rejected as spam")
    assert await relay_outbox(job_ctx(settings, redis)) == 1
    worker = await run_worker(settings)

    assert (worker.jobs_retried, worker.jobs_complete) == (0, 1)
    inv = (await gql(INVITATION_FIELDS, {"id": inv_id}, auth=olivia))["invitation"]
    assert inv["deliveryStatus"] == "FAILED"
    assert inv["deliveryError"] == "554 5.7.1 Message rejected as spam"
    assert "DELIVERY_FAILED" in [e["type"] for e in inv["events"]]
    # Given up for good: the relay does not pick it up again.
    assert await relay_outbox(job_ctx(settings, redis)) == 0


async def test_redis_down_during_invite_then_delivery_once_it_is_back(
    gql: GQL,
    make_group: MakeGroup,
    settings: Settings,
    private_redis: PrivateRedis,
    mail_server: MailServer,
) -> None:
    await private_redis.start()
    settings = settings.model_copy(update={"redis_url": private_redis.url})
    async with QueueRelay(settings) as relay:
        await relay.relay_once()  # connected while Redis was up
        private_redis.stop()

        olivia, [inv_id] = await invite(gql, make_group)  # the mutation does not notice
        assert await relay.relay_once() == 0
        row = await OutboxMessage.get(invitation_id=inv_id)
        assert row.enqueued_at is None and row.sent_at is None  # released, still due
        inv = (await gql(INVITATION_FIELDS, {"id": inv_id}, auth=olivia))["invitation"]
        assert (inv["status"], inv["deliveryStatus"]) == ("PENDING", "QUEUED")

        await private_redis.start()
        pool = await connect(private_redis.url)
        try:
            # The worker's relay (a cron job) hands the row over once Redis is back…
            assert await relay_outbox(job_ctx(settings, pool)) == 1
        finally:
            await pool.aclose()
        # …and the API's own relay recovers: the next invitation is handed over at once.
        more = {"groupType": "org", "groupId": "acme", "invitees": [{"email": "cy@example.com"}]}
        assert (await gql(INVITE, {"input": more}, auth=olivia))["invite"]["errors"] == []
        await wait_handed_over(2)
    await run_worker(settings, private_redis.url)
    messages = await mail_server.handler.wait_for(2)
    assert sorted(m["To"] for m in messages) == ["ben@example.com", "cy@example.com"]
    assert (await Invitation.get(id=inv_id)).delivery_status == DeliveryStatus.SENT


async def test_a_lost_job_is_handed_over_again(
    gql: GQL,
    make_group: MakeGroup,
    settings: Settings,
    redis: ArqRedis,
    mail_server: MailServer,
) -> None:
    _, [inv_id] = await invite(gql, make_group)
    ctx = job_ctx(settings, redis)
    assert await relay_outbox(ctx) == 1
    await forget_jobs(redis, settings.queue_name)  # Redis lost the job
    assert await relay_outbox(ctx) == 0  # handed over recently: not yet taken for lost

    stale = utcnow() - timedelta(seconds=settings.relay_stale_seconds + 1)
    await OutboxMessage.filter(invitation_id=inv_id).update(enqueued_at=stale)
    assert await relay_outbox(ctx) == 1
    await run_worker(settings)
    assert len(await mail_server.handler.wait_for(1)) == 1


async def test_relay_hands_each_row_over_once(
    gql: GQL,
    make_group: MakeGroup,
    settings: Settings,
    redis: ArqRedis,
    mail_server: MailServer,
) -> None:
    emails = [f"person{i}@example.com" for i in range(5)]
    await invite(gql, make_group, *emails)
    ctx = job_ctx(settings, redis)
    # Two relays at once (batches of 2): every row goes to exactly one of them.
    counts = await asyncio.gather(relay_outbox(ctx), relay_outbox(ctx))
    assert sum(counts) == 5
    assert await relay_outbox(ctx) == 0
    worker = await run_worker(settings)
    assert worker.jobs_complete == 5
    messages = await mail_server.handler.wait_for(5)
    assert sorted(m["To"] for m in messages) == emails


async def test_the_same_job_enqueued_twice_runs_once(
    gql: GQL,
    make_group: MakeGroup,
    settings: Settings,
    redis: ArqRedis,
    mail_server: MailServer,
) -> None:
    _, [inv_id] = await invite(gql, make_group)
    row = await OutboxMessage.get(invitation_id=inv_id)
    first = await redis.enqueue_job(
        "deliver", outbox_id=str(row.id), _job_id=str(row.id), _queue_name=settings.queue_name
    )
    again = await redis.enqueue_job(
        "deliver", outbox_id=str(row.id), _job_id=str(row.id), _queue_name=settings.queue_name
    )
    assert first is not None and again is None
    await run_worker(settings)
    # Even once arq forgot the result, a new job for the row does not send again.
    await redis.delete(f"arq:result:{row.id}")
    await redis.enqueue_job(
        "deliver", outbox_id=str(row.id), _job_id=str(row.id), _queue_name=settings.queue_name
    )
    worker = await run_worker(settings)
    assert worker.jobs_complete == 1
    assert len(mail_server.handler.messages) == 1


async def test_expiry_job_flips_the_invitation(
    gql: GQL, make_group: MakeGroup, settings: Settings, redis: ArqRedis
) -> None:
    _, [inv_id] = await invite(gql, make_group)
    due = utcnow() - timedelta(seconds=1)
    await Invitation.filter(id=inv_id).update(expires_at=due)
    assert await schedule_expiry(redis, settings, inv_id, due)
    assert not await schedule_expiry(redis, settings, inv_id, due)  # same job id
    await run_worker(settings)

    inv = await Invitation.get(id=inv_id)
    assert inv.status == InvitationStatus.EXPIRED and inv.open_key is None
    assert await InvitationEvent.filter(invitation_id=inv_id, type=EventType.EXPIRED).count() == 1


RENEW = """
mutation($id: ID!, $expiresAt: DateTime) {
  renewInvitation(id: $id, expiresAt: $expiresAt) {
    invitation { status expiresAt } errors { code message }
  }
}"""


async def test_renew_supersedes_the_expiry_job(
    gql: GQL, make_group: MakeGroup, settings: Settings, redis: ArqRedis
) -> None:
    olivia, [inv_id] = await invite(gql, make_group)
    old = utcnow() - timedelta(seconds=1)
    await Invitation.filter(id=inv_id).update(expires_at=old)  # time has run out
    await schedule_expiry(redis, settings, inv_id, old)  # its job, not run yet
    soon = (utcnow() + timedelta(minutes=10)).replace(microsecond=0)
    renewed = await gql(RENEW, {"id": inv_id, "expiresAt": soon.isoformat()}, auth=olivia)
    assert renewed["renewInvitation"]["errors"] == []
    assert renewed["renewInvitation"]["invitation"]["status"] == "PENDING"

    await run_worker(settings)
    results = await redis.all_job_results()
    [result] = [r for r in results if r.job_id == expiry_job_id(inv_id, old)]
    assert result.result == "superseded"
    inv = await Invitation.get(id=inv_id)
    assert inv.status == InvitationStatus.PENDING and inv.expires_at == soon
    assert not await InvitationEvent.filter(invitation_id=inv_id, type=EventType.EXPIRED)
    # The new expiry gets a job of its own.
    assert await schedule_expiries(job_ctx(settings, redis)) == 1
    score = await redis.zscore(settings.queue_name, expiry_job_id(inv_id, soon))
    assert score == int(soon.timestamp() * 1000)


async def test_expiry_scheduler_queues_jobs_for_the_coming_expiries(
    gql: GQL, make_group: MakeGroup, settings: Settings, redis: ArqRedis
) -> None:
    _, [soon, later] = await invite(gql, make_group, "a@example.com", "b@example.com")
    at = (utcnow() + timedelta(minutes=10)).replace(microsecond=123000)
    await Invitation.filter(id=soon).update(expires_at=at)
    ctx = job_ctx(settings, redis)
    assert await schedule_expiries(ctx) == 1
    assert await schedule_expiries(ctx) == 0  # already queued
    score = await redis.zscore(settings.queue_name, expiry_job_id(soon, at))
    assert score == int(at.timestamp() * 1000)
    assert await redis.zscore(settings.queue_name, expiry_job_id(later, at)) is None

"""The outbox relay: unsent outbox rows become delivery jobs.

A row is due when it is neither sent nor given up and nobody holds it: never handed
over, or handed over so long ago (`USHER_RELAY_STALE_SECONDS`) that the job must have
been lost. The relay claims due rows with one conditional UPDATE (so two relays never
take the same row), commits, and only then talks to Redis; rows it could not hand over
are released for the next round. With arq the job id is the row id, so a row handed over
twice still makes one job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any
from uuid import UUID, uuid4

from arq import ArqRedis, create_pool
from arq.connections import RedisSettings
from tortoise.expressions import Q

from app.config import Settings
from app.jobs.email import deliver
from app.jobs.webhooks import deliver_webhook
from app.models import MessageKind, OutboxMessage
from app.services import outbox
from app.services.common import utcnow

log = logging.getLogger("usher.jobs")

Job = Callable[..., Awaitable[str]]

# The job that sends each kind of outbox message, called with `outbox_id`: the worker's
# relay enqueues it by name, the in-process runner calls it.
JOBS: dict[MessageKind, Job] = {
    MessageKind.INVITATION: deliver,
    MessageKind.RESEND: deliver,
    MessageKind.ACCEPTED_NOTICE: deliver,
    MessageKind.REMINDER: deliver,
    MessageKind.WEBHOOK: deliver_webhook,
}


def job_for(kind: MessageKind) -> Job:
    """The job that sends an outbox message of this kind."""
    return JOBS[kind]


@dataclass(frozen=True)
class Claimed:
    """An outbox row this relay now holds."""

    id: UUID
    kind: MessageKind
    invitation_id: UUID


def _due(now: datetime, settings: Settings) -> Q:
    stale = now - timedelta(seconds=settings.relay_stale_seconds)
    return Q(sent_at__isnull=True, failed_at__isnull=True) & (
        Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=stale)
    )


async def claim_due(settings: Settings, *, limit: int | None = None) -> list[Claimed]:
    """Claim up to `limit` due rows, oldest first (one UPDATE); returns them."""
    now = utcnow()
    rows = await (
        OutboxMessage.filter(_due(now, settings))
        .order_by("created_at")
        .limit(limit or settings.batch_size)
        .values("id", "kind", "invitation_id")
    )
    if not rows:
        return []
    ids = [row["id"] for row in rows]
    # Rows another relay claimed since the SELECT no longer match the condition.
    await OutboxMessage.filter(_due(now, settings), id__in=ids).update(enqueued_at=now)
    mine = set(await OutboxMessage.filter(id__in=ids, enqueued_at=now).values_list("id", flat=True))
    return [
        Claimed(id=row["id"], kind=MessageKind(row["kind"]), invitation_id=row["invitation_id"])
        for row in rows
        if row["id"] in mine
    ]


async def release(ids: list[UUID]) -> None:
    """Give claimed rows back, for the next round of the relay."""
    if ids:
        await OutboxMessage.filter(id__in=ids, sent_at__isnull=True).update(enqueued_at=None)


async def hand_over(redis: ArqRedis, settings: Settings, rows: list[Claimed]) -> int:
    """Enqueue a delivery job per claimed row; rows not handed over are released. Returns
    how many were handed over.

    Each hand-over is a job of its own (the row's id and a fresh suffix): a job id arq
    still holds (a job cut off by a Redis outage or a killed worker keeps its key for a
    day) would otherwise refuse the row's next hand-over, and the row would never be sent.
    Two jobs for one row are safe: the delivery claims the row, so one of them sends.
    """
    done = 0
    try:
        for row in rows:
            await redis.enqueue_job(
                job_for(row.kind).__name__,
                outbox_id=str(row.id),
                _job_id=f"{row.id}:{uuid4().hex[:12]}",
                _queue_name=settings.queue_name,
            )
            done += 1
    except Exception as exc:
        log.warning("could not hand %d outbox rows to the queue: %r", len(rows) - done, exc)
        await release([row.id for row in rows[done:]])
    return done


async def relay_outbox(ctx: dict[str, Any]) -> int:
    """The worker's relay: hand every due outbox row to the queue; returns how many."""
    settings: Settings = ctx["settings"]
    total = 0
    while rows := await claim_due(settings):
        handed = await hand_over(ctx["redis"], settings, rows)
        total += handed
        if handed < len(rows) or len(rows) < settings.batch_size:
            break
    if total:
        log.info("relayed %d outbox rows", total)
    return total


class QueueRelay:
    """In the API process with Redis: hands new outbox rows to the queue right after commit.

    It listens to `services.outbox.notify`. Redis being down never fails a request: the
    rows stay due, and the worker's relay hands them over once Redis is back.
    """

    def __init__(self, settings: Settings) -> None:
        if not settings.redis_url:
            raise ValueError("QueueRelay needs REDIS_URL")
        self.redis_settings = RedisSettings.from_dsn(settings.redis_url)
        self.redis_settings.conn_retries = 0
        self.settings = settings
        self._redis: ArqRedis | None = None
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Any = None

    async def _pool(self) -> ArqRedis:
        if self._redis is None:
            self._redis = await create_pool(
                self.redis_settings, default_queue_name=self.settings.queue_name
            )
        return self._redis

    async def relay_once(self) -> int:
        """Hand over every due row now; returns how many (0 when Redis is unreachable)."""
        async with self._lock:
            return await self._relay()

    async def _relay(self) -> int:
        total = 0
        try:
            redis = await self._pool()
        except Exception as exc:
            log.warning("Redis unreachable, outbox rows wait for the worker's relay: %r", exc)
            return 0
        while rows := await claim_due(self.settings):
            handed = await hand_over(redis, self.settings, rows)
            total += handed
            if handed < len(rows):
                # Start from a fresh pool next time rather than from connections the
                # outage left half-open.
                self._redis = None
                await redis.aclose(close_connection_pool=True)
                break
            if len(rows) < self.settings.batch_size:
                break
        return total

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.relay_once()
            except Exception:
                log.exception("outbox relay failed; the worker's relay will catch up")

    async def __aenter__(self) -> QueueRelay:
        self._unsubscribe = outbox.subscribe(self._wake.set)
        self._task = asyncio.create_task(self._loop(), name="usher-outbox-relay")
        self._wake.set()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        async with self._lock:
            # Holding the lock, a hand-over in progress has finished: cancelling it midway
            # would leave rows claimed but never enqueued until they go stale.
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            if self._redis is not None:
                await self._redis.aclose(close_connection_pool=True)
                self._redis = None

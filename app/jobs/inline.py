"""Jobs in the server's own process, for a single-command service without Redis.

The same job functions as the arq worker: the outbox relay and delivery, the expiry
sweep, reminders. A new outbox row wakes the runner at once (`services.outbox.notify`);
otherwise it sweeps every `USHER_INLINE_INTERVAL_SECONDS`. Retries wait in memory; if
the process stops meanwhile, the relay picks the row up again once it is stale. On
shutdown a send in progress is allowed to finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType
from typing import Any

from arq import Retry

from app.config import Settings
from app.jobs.email import MailBatches
from app.jobs.expiry import sweep_expired
from app.jobs.outbox import Claimed, Job, claim_due, job_for, release
from app.jobs.reminders import queue_reminders
from app.mail.transports import Transport, transport_for
from app.services import outbox

log = logging.getLogger("usher.jobs")

CONCURRENT_SENDS = 10


class InlineRunner:
    """Runs the background jobs on the server's event loop while the app lives."""

    def __init__(
        self,
        settings: Settings,
        *,
        interval: float | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.settings = settings
        self.interval = settings.inline_interval_seconds if interval is None else interval
        # A transport of its own is closed when the runner stops; one given is the caller's.
        self._own_transport = transport is None
        self.ctx: dict[str, Any] = {
            "settings": settings,
            "transport": transport or transport_for(settings),
            "mail_batches": MailBatches(),
        }
        self._wake = asyncio.Event()
        # Sends in flight at once: remote SMTP servers are slow, but not to be flooded.
        self._slots = asyncio.Semaphore(CONCURRENT_SENDS)
        self._stopping = False
        # Rounds ended so far: a caller can wait for the first one to have looked.
        self.rounds = 0
        self._task: asyncio.Task[None] | None = None
        self._retries: set[asyncio.Task[None]] = set()
        self._waiting: set[asyncio.Task[None]] = set()
        self._unsubscribe: Any = None

    async def relay(self) -> int:
        """Send every due outbox row now; returns how many rows were taken."""
        total = 0
        while not self._stopping and (rows := await claim_due(self.settings)):
            total += len(rows)
            await asyncio.gather(*(self._deliver_claimed(row) for row in rows))
            if len(rows) < self.settings.batch_size:
                break
        return total

    async def tick(self) -> None:
        """One round of every job."""
        await self.relay()
        await sweep_expired(self.ctx)
        if await queue_reminders(self.ctx):
            await self.relay()

    async def _deliver_claimed(self, row: Claimed) -> None:
        async with self._slots:
            if self._stopping:
                # Claimed but not sent: give it back for the next start.
                await release([row.id])
            else:
                await self._deliver(job_for(row.kind), str(row.id))

    async def _deliver(self, job: Job, outbox_id: str) -> None:
        try:
            await job(self.ctx, outbox_id=outbox_id)
        except Retry as retry:
            delay = (retry.defer_score or 0) / 1000
            task = asyncio.create_task(self._later(job, outbox_id, delay))
            self._retries.add(task)
            task.add_done_callback(self._retries.discard)
        except Exception:
            # The row stays claimed; the relay takes it again once it is stale.
            log.exception("delivering outbox %s failed", outbox_id)

    async def _later(self, job: Job, outbox_id: str, delay: float) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._waiting.add(task)
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            # Stopping: the row stays claimed and is taken again once stale.
            return
        finally:
            self._waiting.discard(task)
        await self._deliver(job, outbox_id)

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                await self.tick()
            except Exception:
                log.exception("in-process jobs failed; trying again in %ss", self.interval)
            self.rounds += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)
            self._wake.clear()

    async def __aenter__(self) -> InlineRunner:
        self._unsubscribe = outbox.subscribe(self._wake.set)
        self._task = asyncio.create_task(self._loop(), name="usher-inline-jobs")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        # Let a send in progress finish and be recorded (a message cut off between the
        # SMTP server's "250" and the UPDATE would go out twice); cancel what only waits.
        self._stopping = True
        self._wake.set()
        for task in list(self._waiting):
            task.cancel()
        tasks = [t for t in (self._task, *self._retries) if t is not None]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self.settings.smtp_timeout_seconds + 5)
            for task in late:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._own_transport:
            await self.ctx["transport"].aclose()

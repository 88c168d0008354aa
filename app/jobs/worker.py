"""`usher worker`: the arq worker on `REDIS_URL`.

Jobs: one per kind of outbox message (`outbox.JOBS`: `deliver` for emails, …), and
`expire_invitation` (one invitation at its expiry).
Cron: the outbox relay (catches rows the API could not hand over, e.g. while Redis was
down, and rows whose job was lost), the expiry sweep and scheduler, reminders.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any, cast

from arq import cron, func
from arq.connections import RedisSettings
from arq.worker import Worker
from tortoise import Tortoise

from app.config import Settings, get_settings, tortoise_config
from app.jobs.email import MailBatches
from app.jobs.expiry import expire_invitation, schedule_expiries, sweep_expired
from app.jobs.outbox import JOBS, relay_outbox
from app.jobs.reminders import queue_reminders
from app.mail.transports import Transport, transport_for

log = logging.getLogger("usher.jobs")

EVERY_10S = set(range(0, 60, 10))
EVERY_5MIN = set(range(0, 60, 5))


def functions(settings: Settings) -> list[Any]:
    """The worker's jobs: one per kind of outbox message, and expiry.

    Each job decides itself when to give up (and marks the row failed), so arq's own
    retry cap only stops a job that keeps crashing.
    """
    senders = [
        func(cast(Any, job), name=job.__name__, max_tries=100)
        for job in dict.fromkeys(JOBS.values())
    ]
    return [*senders, func(expire_invitation, name="expire_invitation", max_tries=100)]


def cron_jobs(settings: Settings) -> list[Any]:
    """The worker's periodic jobs. arq runs each once per tick across all workers of a
    queue; the names carry the queue so installations sharing a Redis do not collide."""
    q = settings.queue_name
    return [
        cron(relay_outbox, name=f"{q}:relay_outbox", second=EVERY_10S, run_at_startup=True),
        cron(sweep_expired, name=f"{q}:sweep_expired", second={5}, run_at_startup=True),
        cron(schedule_expiries, name=f"{q}:schedule_expiries", minute=EVERY_5MIN, second={15}),
        cron(queue_reminders, name=f"{q}:queue_reminders", minute=EVERY_5MIN, second={25}),
    ]


def job_context(settings: Settings) -> dict[str, Any]:
    """What every job finds in `ctx` besides arq's own `redis`."""
    return {
        "settings": settings,
        "transport": transport_for(settings),
        "mail_batches": MailBatches(),
    }


async def startup(ctx: dict[str, Any]) -> None:
    """Open the database for the worker's lifetime (and fill `ctx` when arq's CLI runs us)."""
    settings: Settings = ctx.setdefault("settings", get_settings())
    ctx.setdefault("transport", transport_for(settings))
    ctx.setdefault("mail_batches", MailBatches())
    await Tortoise.init(config=tortoise_config(settings.database_url), _enable_global_fallback=True)
    log.info("worker started on queue %r", settings.queue_name)


async def shutdown(ctx: dict[str, Any]) -> None:
    """Close the SMTP sessions and the database."""
    transport: Transport | None = ctx.get("transport")
    if transport is not None:
        await transport.aclose()
    await Tortoise.close_connections()


class UsherWorker(Worker):
    """arq's Worker, closing its Redis pool with `aclose()` (redis-py deprecated `close()`)."""

    async def close(self) -> None:
        """What `Worker.close` does, minus the deprecated call."""
        if not self._handle_signals:
            self.handle_sig(signal.SIGUSR1)
        if not self._pool:
            return
        await asyncio.gather(*self.tasks.values())
        await self.pool.delete(self.health_check_key)
        if self.on_shutdown:
            await self.on_shutdown(self.ctx)
        await self.pool.aclose(close_connection_pool=True)
        self._pool = None


def build_worker(settings: Settings, **kwargs: Any) -> UsherWorker:
    """An arq Worker for Usher's jobs (kwargs go to `Worker`, e.g. `burst=True`)."""
    if not settings.redis_url:
        raise ValueError("REDIS_URL is not set")
    params: dict[str, Any] = {
        "functions": functions(settings),
        "cron_jobs": cron_jobs(settings),
        "queue_name": settings.queue_name,
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "on_startup": startup,
        "on_shutdown": shutdown,
        "ctx": job_context(settings),
        "max_jobs": 20,
        # A queued email waits at most this long; one cheap Redis call per idle poll.
        "poll_delay": 0.1,
        "job_timeout": max(settings.smtp_timeout_seconds * 3, 60),
        # On SIGTERM, let a send in progress finish and be recorded rather than cancel it
        # between the server's "250" and the UPDATE (which would send it twice).
        "job_completion_wait": int(settings.smtp_timeout_seconds) + 5,
    }
    params.update(kwargs)
    return UsherWorker(**params)


class WorkerSettings:
    """For `arq app.jobs.worker.WorkerSettings`; `usher worker` is the same thing."""

    functions = functions(get_settings())
    cron_jobs = cron_jobs(get_settings())
    on_startup = startup
    on_shutdown = shutdown
    queue_name = get_settings().queue_name
    max_jobs = 20
    poll_delay = 0.1
    job_completion_wait = int(get_settings().smtp_timeout_seconds) + 5

    redis_settings = RedisSettings.from_dsn(get_settings().redis_url or "redis://localhost:6379")

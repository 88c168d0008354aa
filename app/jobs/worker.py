"""`usher worker`: the arq worker on `REDIS_URL`.

Jobs: one per kind of outbox message (`outbox.JOBS`: `deliver` for emails, …), and
`expire_invitation` (one invitation at its expiry).
Cron: the outbox relay (catches rows the API could not hand over, e.g. while Redis was
down, and rows whose job was lost), the expiry sweep and scheduler, reminders.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, cast

from arq import cron, func
from arq.connections import RedisSettings
from arq.worker import Worker
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, RedisError, TimeoutError
from tortoise import Tortoise

from app.config import Settings, get_settings, tortoise_config
from app.jobs.email import MailBatches
from app.jobs.expiry import expire_invitation, schedule_expiries, sweep_expired
from app.jobs.outbox import JOBS, relay_outbox
from app.jobs.reminders import queue_reminders
from app.mail.transports import Transport, transport_for

log = logging.getLogger("usher.jobs")

# arq's `Worker.close` calls redis-py's deprecated `close()`; nothing to act on here.
warnings.filterwarnings("ignore", r"Call to deprecated close\.", DeprecationWarning)

EVERY_5MIN = set(range(0, 60, 5))


def functions(settings: Settings) -> list[Any]:
    """The worker's jobs: one per kind of outbox message, and expiry.

    Each job decides itself when to give up (and marks the row failed), so arq's own
    retry cap only stops a job that keeps crashing. A sender's result is not kept: a row
    whose job crashed is handed over again after `relay_stale_seconds`, which a kept
    result (same job id) would refuse for an hour.
    """
    senders = [
        func(cast(Any, job), name=job.__name__, max_tries=100, keep_result=0)
        for job in dict.fromkeys(JOBS.values())
    ]
    return [*senders, func(expire_invitation, name="expire_invitation", max_tries=100)]


def cron_jobs(settings: Settings) -> list[Any]:
    """The worker's periodic jobs. arq runs each once per tick across all workers of a
    queue; the names carry the queue so installations sharing a Redis do not collide."""
    q = settings.queue_name
    return [
        cron(
            relay_outbox,
            name=f"{q}:relay_outbox",
            second=set(range(0, 60, settings.relay_interval_seconds)),
            run_at_startup=True,
        ),
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
    if not Tortoise.is_inited():  # still open when Redis went away before `shutdown` ran
        await Tortoise.init(
            config=tortoise_config(settings.database_url), _enable_global_fallback=True
        )
    log.info("worker started on queue %r", settings.queue_name)


async def shutdown(ctx: dict[str, Any]) -> None:
    """Close the SMTP sessions and the database."""
    transport: Transport | None = ctx.get("transport")
    if transport is not None:
        await transport.aclose()
    await Tortoise.close_connections()


def worker_options(settings: Settings) -> dict[str, Any]:
    """arq `Worker` arguments for Usher's jobs: what `usher worker` runs and what
    `WorkerSettings` holds for `arq app.jobs.worker.WorkerSettings`."""
    if not settings.redis_url:
        raise ValueError("REDIS_URL is not set")
    return {
        "functions": functions(settings),
        "cron_jobs": cron_jobs(settings),
        "queue_name": settings.queue_name,
        "redis_settings": redis_settings(settings.redis_url),
        "on_startup": startup,
        "on_shutdown": shutdown,
        "ctx": job_context(settings),
        "max_jobs": 20,
        # A queued email waits at most this long; one cheap Redis call per idle poll.
        "poll_delay": 0.1,
        "job_timeout": settings.job_timeout_seconds,
        # On SIGTERM, let a send in progress finish and be recorded rather than cancel it
        # between the server's "250" and the UPDATE (which would send it twice).
        "job_completion_wait": int(settings.smtp_timeout_seconds) + 5,
    }


def redis_settings(url: str) -> RedisSettings:
    """The worker's Redis: every command waits out an outage (a restart, a failover)
    and carries on once Redis answers again, rather than stopping the worker."""
    settings = RedisSettings.from_dsn(url)
    settings.retry = Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=-1)
    settings.retry_on_error = [ConnectionError, TimeoutError]
    return settings


def build_worker(settings: Settings, **kwargs: Any) -> Worker:
    """An arq Worker for Usher's jobs (kwargs go to `Worker`, e.g. `burst=True`)."""
    return Worker(**{**worker_options(settings), **kwargs})


def run(settings: Settings) -> None:
    """`usher worker`: run until a signal stops it. A Redis error the retries could not
    ride out (one in the middle of a transaction) starts a new worker, not the end."""
    while True:
        worker = build_worker(settings)
        try:
            worker.run()
        except RedisError as exc:
            log.warning("worker lost Redis (%r); starting again", exc)
            continue
        return


def arq_settings() -> Settings:
    """The settings `WorkerSettings` holds: the environment's, and arq's default Redis
    when `REDIS_URL` is not set."""
    settings = get_settings()
    if not settings.redis_url:
        settings = settings.model_copy(update={"redis_url": "redis://localhost:6379"})
    return settings


# For `arq app.jobs.worker.WorkerSettings`: the same arguments as `usher worker`.
WorkerSettings = type("WorkerSettings", (), worker_options(arq_settings()))

"""Knobs of the background jobs, read from the environment like the rest of the settings."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class JobOptions(BaseSettings):
    """Queue name, delivery retries and sweep cadence (`USHER_…` variables)."""

    model_config = SettingsConfigDict(env_prefix="USHER_", extra="ignore")

    # arq's queue; several Usher installations can share one Redis with distinct names.
    queue_name: str = "usher:queue"
    # Delivery tries before an email is marked FAILED, and the back-off between them:
    # the first retry waits `mail_retry_seconds`, each next one twice as long, up to the cap.
    mail_max_attempts: int = 8
    mail_retry_seconds: float = 30.0
    mail_retry_max_seconds: float = 3600.0
    # An outbox row handed to the queue this long ago and still unsent is taken for lost
    # and handed over again. A deferred retry counts from when it is due, so this only
    # needs to outlast a send; it is longer than arq keeps a finished job's id (an hour),
    # so a job that crashed on a bug is not refused as a duplicate when handed over again.
    relay_stale_seconds: float = 5400.0
    # Rows and invitations handled per batch by the relay and the sweeps.
    batch_size: int = 500
    # How often the in-process runner sweeps when nothing wakes it.
    inline_interval_seconds: float = 30.0

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return float(
            min(self.mail_retry_seconds * 2 ** max(attempt - 1, 0), self.mail_retry_max_seconds)
        )

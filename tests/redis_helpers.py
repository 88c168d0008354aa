"""Real Redis for tests: the shared server (a queue of its own per test) and private
`redis-server` processes for fault tests. With CI=true an unreachable Redis fails."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any, NoReturn

import pytest
from arq import ArqRedis, create_pool
from arq.connections import RedisSettings
from arq.worker import Worker

from app.config import Settings
from app.jobs.email import MailBatches
from app.jobs.worker import functions
from app.mail.transports import Transport, transport_for
from app.models import Invitation, OutboxMessage
from tests.mailserver import free_port

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI") == "true"


def unavailable(message: str) -> NoReturn:
    """Fail in CI, skip elsewhere."""
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def private_queue() -> str:
    """A queue name of the test's own."""
    return f"usher-test:{uuid.uuid4().hex}"


def job_settings(settings: Settings, queue_name: str | None = None) -> Settings:
    """`settings` with a private queue and job back-offs and batches small enough for tests."""
    return settings.model_copy(
        update={
            "queue_name": queue_name or private_queue(),
            "mail_max_attempts": 3,
            "mail_retry_seconds": 0.05,
            "mail_retry_max_seconds": 0.2,
            "relay_stale_seconds": 60,
            "batch_size": 2,
            "inline_interval_seconds": 60,
        }
    )


async def connect(url: str) -> ArqRedis:
    """An arq pool on `url` (one try)."""
    settings = RedisSettings.from_dsn(url)
    settings.conn_retries = 0
    return await create_pool(settings)


async def forget_jobs(redis: ArqRedis, queue_name: str) -> None:
    """Delete the test's queue and every arq key of its outbox rows and invitations."""
    ids = {str(i) for i in await OutboxMessage.all().values_list("id", flat=True)}
    ids |= {str(i) for i in await Invitation.all().values_list("id", flat=True)}
    doomed = [queue_name, f"{queue_name}:health-check"]
    async for key in redis.scan_iter(match="arq:*", count=1000):
        name = key.decode() if isinstance(key, bytes) else str(key)
        if any(i in name for i in ids):
            doomed.append(name)
    await redis.delete(*doomed)


@pytest.fixture
async def redis() -> AsyncIterator[ArqRedis]:
    """The shared Redis (127.0.0.1:6379 unless TEST_REDIS_URL), cleaned after the test."""
    try:
        pool = await connect(REDIS_URL)
    except Exception as exc:
        unavailable(f"Redis at {REDIS_URL} is unreachable: {exc!r}")
    queue_name = private_queue()
    pool.default_queue_name = queue_name
    try:
        yield pool
    finally:
        await forget_jobs(pool, queue_name)
        await pool.aclose()


class PrivateRedis:
    """A `redis-server` of the test's own, which the test may stop and start again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def _spawn(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server is not installed")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def start(self) -> None:
        """Start the server and wait until it answers."""
        self._spawn()
        for _ in range(200):
            try:
                pool = await connect(self.url)
            except Exception:
                await asyncio.sleep(0.02)
            else:
                await pool.aclose()
                return
        raise AssertionError("private redis-server did not start")

    def stop(self) -> None:
        """Stop the server (only the process this object started)."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A private Redis server, stopped after the test."""
    server = PrivateRedis()
    try:
        yield server
    finally:
        server.stop()


# Transports made by `job_ctx`, closed after each test by conftest's `close_transports`.
opened_transports: list[Transport] = []


def job_ctx(settings: Settings, redis: ArqRedis | None = None) -> dict[str, Any]:
    """The `ctx` a job gets from the worker, built by hand for calling jobs directly."""
    transport = transport_for(settings)
    opened_transports.append(transport)
    ctx: dict[str, Any] = {
        "settings": settings,
        "transport": transport,
        "mail_batches": MailBatches(),
    }
    if redis is not None:
        ctx["redis"] = redis
    return ctx


async def run_worker(settings: Settings, redis_url: str = REDIS_URL) -> Worker:
    """Run a burst worker until the test's queue is empty (deferred retries included)."""
    worker = Worker(
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

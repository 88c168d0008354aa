"""One fault mid-burst, against real processes: `usher serve` and `usher worker`, a private
`redis-server`, an aiosmtpd sink, and a database of the module's own (PostgreSQL when the
suite runs on it, else a SQLite file).

Each test sends a burst of invitations, injects its fault while they are being delivered,
undoes it (as a supervisor would: a killed process is started again), and checks that
every invitation is emailed, that no email went out more than README's bound allows, and
that no outbox row is left unsent. The outbox visibility time is two seconds here, so a
lost hand-over is handed over again within seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx
import pytest

from app.config import Settings
from app.services.auth import make_dev_jwt
from tests.conftest import CREATE_GROUP, DATABASE_URL, INVITE, _postgres_admin
from tests.mailserver import CountingController, MailHandler, free_port
from tests.redis_helpers import PrivateRedis

REPO = Path(__file__).resolve().parents[1]
JWT_SECRET = "faults-jwt-secret-for-tests-only"
POSTGRES = DATABASE_URL.startswith("postgres")
BURST = 40
# Requests the burst keeps in flight at once.
CONCURRENCY = 8
# README ("Faults"): an email goes out twice only when a fault lands between the SMTP
# server's acceptance and the record of it, so at most the jobs a worker runs at once.
DUPLICATE_BOUND = 20
# A safety net for the waits, far above what recovery takes (printed by each test).
DEADLINE = 60.0


class Stack:
    """The processes under test and the services they use, each of which can fail."""

    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.database_url = database_url
        self.port = free_port()
        self.redis = PrivateRedis()
        self.mail = MailHandler()
        self.smtp = CountingController(self.mail, hostname="127.0.0.1", port=free_port())
        self.log_path = tmp_path / "usher.log"
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.env = {k: v for k, v in os.environ.items() if not k.endswith("REDIS_URL")}
        self.env.update(
            DATABASE_URL=database_url,
            REDIS_URL=self.redis.url,
            USHER_ENV="development",
            USHER_JWT_SECRET=JWT_SECRET,
            USHER_SMTP_URL=f"smtp://127.0.0.1:{self.smtp.port}",
            USHER_SMTP_TIMEOUT_SECONDS="2",
            USHER_ACCEPT_URL="https://app.example.com/signup?invitation={token}",
            USHER_LOG_FORMAT="text",
            USHER_RELAY_STALE_SECONDS="2",
            USHER_RELAY_INTERVAL_SECONDS="1",
            USHER_JOB_TIMEOUT_SECONDS="5",
            USHER_MAIL_RETRY_SECONDS="0.2",
            USHER_MAIL_RETRY_MAX_SECONDS="1",
            USHER_MAIL_MAX_ATTEMPTS="100",
            PYTHONUNBUFFERED="1",
        )

    async def start(self, name: str) -> None:
        """Start `usher serve` or `usher worker` (as `name`) and wait until it is up."""
        args = ("serve", "--port", str(self.port)) if name == "serve" else ("worker",)
        started = self.log().count("worker started")
        with self.log_path.open("ab") as log:
            self.processes[name] = await self._spawn(log, args)
        if name == "serve":
            await self.serving()
        else:
            await wait_until(
                lambda: self.log().count("worker started") > started, "the worker", self
            )

    async def _spawn(self, log: IO[bytes], args: tuple[str, ...]) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app.cli", *args, cwd=REPO, env=self.env, stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    async def serving(self) -> None:
        async def answers() -> bool:
            async with httpx.AsyncClient() as http:
                try:
                    return (await http.get(f"http://127.0.0.1:{self.port}/health")).is_success
                except httpx.TransportError:
                    return False

        await wait_until(answers, "usher serve to answer", self)

    async def kill(self, name: str) -> None:
        """kill -9 the process, then start it again."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        await process.wait()
        await self.start(name)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def stop(self) -> None:
        for process in self.processes.values():
            if process.returncode is None:
                process.terminate()
        for process in self.processes.values():
            try:
                await asyncio.wait_for(process.wait(), timeout=15)
            except TimeoutError:
                process.kill()
                await process.wait()
        self.redis.stop()
        self.smtp.stop()

    async def rows(self, sql: str) -> int:
        """The count a `SELECT count(*)` finds in the stack's database."""
        if POSTGRES:
            conn = await asyncpg.connect(self.database_url)
            try:
                return int(await conn.fetchval(sql))
            finally:
                await conn.close()
        path = self.database_url.removeprefix("sqlite://")
        with contextlib.closing(sqlite3.connect(path, timeout=10)) as db:
            [(count,)] = db.execute(sql)
        return int(count)


async def wait_until(
    check: Callable[[], bool | Awaitable[bool]], what: str, stack: Stack, within: float = DEADLINE
) -> float:
    """Poll `check` until true; returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise AssertionError(f"waited {within:.0f}s for {what}:\n{stack.log()[-6000:]}")


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """Serve, worker, Redis and SMTP on a database of the module's own, for its tests."""
    tmp_path = tmp_path_factory.mktemp("faults")
    if POSTGRES:
        url = f"{DATABASE_URL}_faults_{os.getpid()}"
        name = url.rsplit("/", 1)[1]
        await _postgres_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await _postgres_admin(url, f'CREATE DATABASE "{name}"')
    else:
        url = f"sqlite://{tmp_path / 'usher.db'}"
    running = Stack(tmp_path, url)
    running.smtp.start()
    await running.redis.start()
    try:
        await running.start("serve")
        await running.start("worker")
        yield running
    finally:
        await running.stop()
        if POSTGRES:
            await _postgres_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


Fault = Callable[[Stack, "Burst"], Awaitable[None]]


class Burst:
    """BURST invitations from one inviter into a group of the test's own."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.tag = uuid.uuid4().hex[:8]
        self.auth = make_dev_jwt(
            Settings(jwt_secret=JWT_SECRET),
            sub=f"inviter-{self.tag}",
            email=f"inviter-{self.tag}@acme.test",
            name="Olivia",
        )
        self.addresses = [f"guest{n}-{self.tag}@example.com" for n in range(BURST)]
        self.statuses: Counter[int] = Counter()
        self.masked = 0
        # Requests answered and emails received when the fault was injected.
        self.at_fault = (0, 0)

    def under_way(self) -> bool:
        """A quarter of the burst answered and some of it mailed: time for the fault."""
        return self.answered() > BURST // 4 and len(self.mailed()) > 0

    def answered(self) -> int:
        """Requests the server answered so far."""
        return sum(self.statuses.values())

    def mailed(self) -> Counter[str]:
        """Emails received per address of this burst."""
        return Counter(
            str(m["To"]) for m in list(self.stack.mail.messages) if self.tag in str(m["To"])
        )

    async def post(self, http: httpx.AsyncClient, query: str, variables: dict[str, Any]) -> Any:
        """POST until the server answers: a request cut off by the fault is sent again, as
        a client would. Returns the JSON of the answer."""
        while True:
            try:
                response = await http.post(
                    f"http://127.0.0.1:{self.stack.port}/graphql",
                    json={"query": query, "variables": variables},
                    headers={"Authorization": f"Bearer {self.auth}"},
                )
            except httpx.TransportError:
                await self.stack.serving()
                continue
            self.statuses[response.status_code] += 1
            body = response.json() if response.status_code == 200 else None
            if body is not None and body.get("errors"):
                self.masked += 1  # masked in production; shown in development
                continue
            return body

    async def run(self, fault: Fault) -> None:
        """The burst, with `fault` injected once it is under way."""
        limits = httpx.Limits(max_connections=CONCURRENCY)
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            group = {"type": "org", "externalId": self.tag, "name": "Acme"}
            created = await self.post(http, CREATE_GROUP, {"input": group})
            assert created["data"]["createGroup"]["errors"] == []
            sending = [asyncio.create_task(self.invite(http, a)) for a in self.addresses]
            try:
                await wait_until(self.under_way, "the burst under way", self.stack)
                self.at_fault = (self.answered(), len(self.mailed()))
                await fault(self.stack, self)
                await asyncio.gather(*sending)
            finally:
                for task in sending:
                    task.cancel()
                await asyncio.gather(*sending, return_exceptions=True)

    async def invite(self, http: httpx.AsyncClient, address: str) -> None:
        invitees = [{"email": address}]
        variables = {"input": {"groupType": "org", "groupId": self.tag, "invitees": invitees}}
        answer = await self.post(http, INVITE, variables)
        # Sent again after a cut-off request that had been committed: already invited.
        assert [e["code"] for e in answer["data"]["invite"]["errors"]] in ([], ["ALREADY_INVITED"])


async def kill_worker(stack: Stack, burst: Burst) -> None:
    await stack.kill("worker")


async def kill_server(stack: Stack, burst: Burst) -> None:
    await stack.kill("serve")


async def stop_smtp(stack: Stack, burst: Burst) -> None:
    stack.smtp.stop()
    await wait_until(lambda: delivery_failed(stack), "a delivery to fail", stack)
    # A new server on the same port: aiosmtpd's Controller does not start twice.
    stack.smtp = CountingController(stack.mail, hostname="127.0.0.1", port=stack.smtp.port)
    stack.smtp.start()


async def delivery_failed(stack: Stack) -> bool:
    unsent = "SELECT count(*) FROM outbox WHERE last_error IS NOT NULL AND sent_at IS NULL"
    return await stack.rows(unsent) > 0


async def stop_redis(stack: Stack, burst: Burst) -> None:
    answered = burst.answered()
    stack.redis.stop()
    # Invitations need Redis for their quotas: while it is down they are refused (a
    # masked error), and the client tries again.
    await wait_until(
        lambda: burst.answered() >= min(answered + 3, BURST + 1),
        "answers while Redis is down",
        stack,
    )
    await stack.redis.start()


async def terminate_connections(stack: Stack, burst: Burst) -> None:
    name = stack.database_url.rsplit("/", 1)[1]
    await _postgres_admin(
        stack.database_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{name}' AND pid <> pg_backend_pid()",
    )
    # A caller seen for the first time: looking them up is the request's first statement.
    response = await ask_as_newcomer(stack)
    burst.statuses[response.status_code] += 1


async def ask_as_newcomer(stack: Stack) -> httpx.Response:
    """Who am I, as a user never seen before: looking them up is the request's first
    statement, before GraphQL runs."""
    tag = uuid.uuid4().hex[:8]
    newcomer = make_dev_jwt(Settings(jwt_secret=JWT_SECRET), sub=tag, email=f"{tag}@a.test")
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(
            f"http://127.0.0.1:{stack.port}/graphql",
            json={"query": "{ viewer { user { id } } }"},
            headers={"Authorization": f"Bearer {newcomer}"},
        )


async def invitations(stack: Stack, burst: Burst) -> int:
    return await stack.rows(f"SELECT count(*) FROM invitations WHERE email LIKE '%{burst.tag}%'")


FAULTS: dict[str, Fault] = {
    "worker kill -9": kill_worker,
    "SMTP stop/start": stop_smtp,
    "Redis stop/start": stop_redis,
    "server kill -9": kill_server,
}
if POSTGRES:
    FAULTS["pg_terminate_backend"] = terminate_connections


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_every_invitation_is_mailed_after_the_fault(stack: Stack, fault: str) -> None:
    burst = Burst(stack)
    logged = len(stack.log())
    await burst.run(FAULTS[fault])
    undone = time.monotonic()
    recovery = await wait_until(
        lambda: set(burst.mailed()) == set(burst.addresses), "every invitation mailed", stack
    )
    await wait_until(
        lambda: has_no_unsent(stack), "every outbox row recorded sent", stack, within=DEADLINE
    )
    mailed = burst.mailed()
    duplicates = sum(mailed.values()) - len(mailed)
    print(
        f"\n{fault} (at {burst.at_fault[0]} answered, {burst.at_fault[1]} mailed): "
        f"{BURST - len(mailed)} missing, 0 stuck, {duplicates} duplicates, "
        f"all mailed {recovery:.1f}s after the fault was undone, "
        f"{time.monotonic() - undone:.1f}s to recorded; {burst.masked} masked errors, "
        f"HTTP {dict(burst.statuses)}"
    )
    assert duplicates <= DUPLICATE_BOUND
    assert await invitations(stack, burst) == BURST
    # A dropped connection is answered inside GraphQL, never as a bare 500.
    assert set(burst.statuses) == {200}
    # No job fails: a database or Redis error is retried, and so is recording a send (a
    # job cut off by the short time limit here is run again, within the bound).
    failures = [line for line in stack.log()[logged:].splitlines() if ":deliver failed" in line]
    assert [line for line in failures if "TimeoutError" not in line] == []
    if fault == "pg_terminate_backend":
        # A dropped connection costs at most the requests in flight on it.
        assert burst.masked <= CONCURRENCY


async def has_no_unsent(stack: Stack) -> bool:
    return await stack.rows("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0

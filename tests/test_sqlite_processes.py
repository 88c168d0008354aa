"""Several processes on one SQLite file: `usher serve` twice, `--workers 2`, and serve beside
`usher worker`, each taking 48 invitations at once with no "database is locked"."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from arq import ArqRedis

from app.config import Settings
from tests.conftest import CREATE_GROUP, GQL, INVITE
from tests.mailserver import MailServer, free_port, mail_server, mail_server_session
from tests.redis_helpers import REDIS_URL, redis

__all__ = ["mail_server", "mail_server_session", "redis"]

REPO = Path(__file__).resolve().parents[1]
JWT_SECRET = "sqlite-processes-jwt-secret-for-tests"
INVITES = 48


class Processes:
    """`usher` processes on one SQLite file, and what they print."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.env = env
        self.database = tmp_path / "usher.db"
        self.log_path = tmp_path / "usher.log"
        self.running: list[asyncio.subprocess.Process] = []

    async def start(self, *args: str) -> None:
        """Run `usher ARGS` in the background."""
        with self.log_path.open("ab") as log:
            self.running.append(await self._spawn(log, args))

    async def _spawn(self, log: IO[bytes], args: tuple[str, ...]) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app.cli", *args, cwd=REPO, env=self.env, stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def wait_for_log(self, text: str, count: int = 1) -> None:
        """Until `text` appears `count` times in what the processes print."""
        for _ in range(600):
            if self.log().count(text) >= count:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{text!r} not printed {count} times:\n{self.log()}")

    async def serving(self, port: int) -> None:
        """Until the server on `port` answers."""
        async with httpx.AsyncClient() as http:
            for _ in range(600):
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/health")).is_success:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(f"nothing answers on port {port}:\n{self.log()}")

    async def stop(self) -> None:
        """Stop the processes this test started (SIGTERM, then SIGKILL)."""
        for process in self.running:
            if process.returncode is None:
                process.terminate()
        for process in self.running:
            try:
                await asyncio.wait_for(process.wait(), timeout=15)
            except TimeoutError:
                process.kill()
                await process.wait()


@pytest.fixture
async def processes(mail_server: MailServer, tmp_path: Path) -> AsyncIterator[Processes]:
    """Processes sharing one SQLite file and the test's SMTP server; stopped after the test."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "USHER_REDIS_URL")}
    env.update(
        DATABASE_URL=f"sqlite://{tmp_path / 'usher.db'}",
        USHER_ENV="development",
        USHER_JWT_SECRET=JWT_SECRET,
        USHER_SMTP_URL=mail_server.url,
        USHER_ACCEPT_URL="https://app.example.com/signup?invitation={token}",
        USHER_MAIL_DIR=str(tmp_path / "mail"),
        USHER_LOG_FORMAT="text",
        PYTHONUNBUFFERED="1",
    )
    running = Processes(tmp_path, env)
    try:
        yield running
    finally:
        await running.stop()


async def invite_at_once(ports: list[int]) -> None:
    """A group, then 48 invitations sent all at once, spread over the servers on `ports`."""
    settings = Settings(jwt_secret=JWT_SECRET)
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=100)) as http:
        olivia = GQL(http, settings).token("olivia", "olivia@acme.test", name="Olivia")
        group = {"type": "org", "externalId": "acme", "name": "Acme"}
        created = await post(http, ports[0], CREATE_GROUP, {"input": group}, olivia)
        assert created["data"]["createGroup"]["errors"] == []

        async def invite(n: int) -> dict[str, Any]:
            invitees = [{"email": f"guest{n}@example.com"}]
            variables = {"input": {"groupType": "org", "groupId": "acme", "invitees": invitees}}
            return await post(http, ports[n % len(ports)], INVITE, variables, olivia)

        answers = await asyncio.gather(*(invite(n) for n in range(INVITES)))
    failures = [a for a in answers if "errors" in a or a["data"]["invite"]["errors"]]
    assert failures == []


async def post(
    http: httpx.AsyncClient, port: int, query: str, variables: dict[str, Any], auth: str
) -> dict[str, Any]:
    response = await http.post(
        f"http://127.0.0.1:{port}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {auth}"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def each_mailed_once(mail_server: MailServer, processes: Processes) -> None:
    try:
        messages = await mail_server.handler.wait_for(INVITES, within=90)
    except AssertionError:
        raise AssertionError("not every invitation was mailed:\n" + processes.log()) from None
    expected = sorted(f"guest{n}@example.com" for n in range(INVITES))
    assert sorted(str(m["To"]) for m in messages) == expected
    # Each is recorded sent a moment after the server took it.
    await mail_server.handler.wait_until(
        lambda: unsent(processes.database) == 0, "every outbox row recorded sent", within=30
    )
    assert len(mail_server.handler.messages) == INVITES
    assert "database is locked" not in processes.log()


def unsent(database: Path) -> int:
    with contextlib.closing(sqlite3.connect(database)) as db:
        [(count,)] = db.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
    return int(count)


async def test_two_servers_on_one_sqlite_file(
    processes: Processes, mail_server: MailServer
) -> None:
    ports = [free_port(), free_port()]
    # Started together: they migrate the new file one after the other.
    for port in ports:
        await processes.start("serve", "--port", str(port))
    for port in ports:
        await processes.serving(port)
    await invite_at_once(ports)
    await each_mailed_once(mail_server, processes)


async def test_serve_with_two_workers_beside_usher_worker(
    processes: Processes, mail_server: MailServer, redis: ArqRedis
) -> None:
    queue = f"usher-sqlite:{uuid.uuid4().hex}"
    processes.env.update(REDIS_URL=REDIS_URL, USHER_QUEUE_NAME=queue)
    port = free_port()
    try:
        await processes.start("serve", "--port", str(port), "--workers", "2")
        await processes.serving(port)
        await processes.start("worker")
        await processes.wait_for_log("worker started on queue")
        await invite_at_once([port])
        await each_mailed_once(mail_server, processes)
    finally:
        await processes.stop()
        with contextlib.closing(sqlite3.connect(processes.database)) as db:
            ids = [str(row[0]) for row in db.execute("SELECT id FROM outbox")]
        doomed: list[Any] = []
        async for key in redis.scan_iter(match="*", count=1000):
            name = key.decode() if isinstance(key, bytes) else str(key)
            if queue in name or any(i in name for i in ids):
                doomed.append(key)
        if doomed:
            await redis.delete(*doomed)


async def test_migrations_started_together_are_applied_once(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": f"sqlite://{tmp_path / 'usher.db'}"}
    runs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "app.cli",
            "migrate",
            cwd=REPO,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(3)
    ]
    outputs = [(await run.communicate())[0].decode() for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], "\n".join(outputs)

"""The whole service as it runs: `usher serve` (and `usher worker`) as processes, a real SMTP
server, GraphQL over HTTP. An invitation must reach the mailbox with a link that opens it."""

from __future__ import annotations

import asyncio
import os
import sqlite3
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
from tests.mailserver import (
    BY_TOKEN,
    MailServer,
    body,
    free_port,
    link_token,
    mail_server,
    mail_server_session,
)
from tests.redis_helpers import REDIS_URL, redis

__all__ = ["mail_server", "mail_server_session", "redis"]

REPO = Path(__file__).resolve().parents[1]
JWT_SECRET = "e2e-jwt-secret-for-the-usher-tests"

ACCEPT = """
mutation($token: String!) {
  acceptInvitation(token: $token) { invitations { status } errors { code message } }
}"""


def _log_file(path: Path) -> IO[bytes]:
    return path.open("ab")


class Service:
    """Usher processes started by one test, and what they print."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.env = env
        self.port = free_port()
        self.log_path = tmp_path / "usher.log"
        self.processes: list[asyncio.subprocess.Process] = []

    async def start(self, *args: str) -> None:
        """Run `usher ARGS` (as `python -m app.cli`) in the background."""
        with _log_file(self.log_path) as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "app.cli", *args, cwd=REPO, env=self.env, stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
        self.processes.append(process)

    async def serve(self) -> None:
        """Start `usher serve` and wait until it answers."""
        await self.start("serve", "--port", str(self.port))
        async with httpx.AsyncClient() as http:
            for _ in range(300):
                try:
                    if (await http.get(f"http://127.0.0.1:{self.port}/health")).is_success:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError("usher serve did not start:\n" + self.log())

    def log(self) -> str:
        """What the processes printed."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def stop(self) -> None:
        """Stop the processes this test started (SIGTERM, then SIGKILL)."""
        for process in self.processes:
            if process.returncode is None:
                process.terminate()
        for process in self.processes:
            try:
                await asyncio.wait_for(process.wait(), timeout=15)
            except TimeoutError:
                process.kill()
                await process.wait()


@pytest.fixture
def env(mail_server: MailServer, tmp_path: Path) -> dict[str, str]:
    """The environment of the service under test: its own SQLite file, the test's SMTP."""
    values = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "USHER_REDIS_URL")}
    values.update(
        DATABASE_URL=f"sqlite://{tmp_path / 'usher.db'}",
        USHER_ENV="development",
        USHER_JWT_SECRET=JWT_SECRET,
        USHER_SMTP_URL=mail_server.url,
        USHER_ACCEPT_URL="https://app.example.com/signup?invitation={token}",
        USHER_MAIL_DIR=str(tmp_path / "mail"),
        PYTHONUNBUFFERED="1",
    )
    return values


@pytest.fixture
async def service(tmp_path: Path, env: dict[str, str]) -> AsyncIterator[Service]:
    """Processes to start; stopped after the test."""
    running = Service(tmp_path, env)
    try:
        yield running
    finally:
        await running.stop()


async def invite_and_follow_the_link(service: Service, mail_server: MailServer) -> float:
    """Invite through GraphQL, wait for the mail, open its link (and accept it when the API
    can). Returns the seconds from the invite response to the mail's arrival."""
    settings = Settings(jwt_secret=JWT_SECRET)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}") as http:
        gql = GQL(http, settings)
        olivia = gql.token("olivia", "olivia@acme.test", name="Olivia")
        group = {"type": "org", "externalId": "acme", "name": "Acme"}
        assert (await gql(CREATE_GROUP, {"input": group}, auth=olivia))["createGroup"][
            "errors"
        ] == []
        data = await gql(
            INVITE,
            {
                "input": {
                    "groupType": "org",
                    "groupId": "acme",
                    "invitees": [{"email": "ben@example.com"}],
                }
            },
            auth=olivia,
        )
        assert data["invite"]["errors"] == []
        loop = asyncio.get_running_loop()
        sent = loop.time()
        try:
            [mail] = await mail_server.handler.wait_for(1, within=15)
        except AssertionError:
            raise AssertionError("no mail arrived:\n" + service.log()) from None
        latency = loop.time() - sent
        print(f"invite response to mail in the mailbox: {latency * 1000:.0f} ms")

        assert mail["To"] == "ben@example.com"
        token = link_token(body(mail, "plain"))
        preview = (await gql(BY_TOKEN, {"token": token}))["invitationByToken"]
        assert preview["status"] == "PENDING" and preview["groupName"] == "Acme"

        mutations = await gql('{ __type(name: "Mutation") { fields { name } } }')
        if "acceptInvitation" in [f["name"] for f in mutations["__type"]["fields"]]:
            ben = gql.token("ben", "ben@example.com", name="Ben")
            accepted = (await gql(ACCEPT, {"token": token}, auth=ben))["acceptInvitation"]
            assert accepted["errors"] == []
            assert accepted["invitations"][0]["status"] == "ACCEPTED"
            # …and Olivia hears of it.
            notice = (await mail_server.handler.wait_for(2, within=15))[1]
            assert notice["To"] == "olivia@acme.test"
            assert notice["Subject"] == "Your invitation to Acme was accepted"
    return latency


async def test_serve_alone_delivers_invitations(service: Service, mail_server: MailServer) -> None:
    service.env["USHER_INLINE_INTERVAL_SECONDS"] = "60"  # only the commit's wake-up is fast
    await service.serve()
    latency = await invite_and_follow_the_link(service, mail_server)
    assert latency < 5


def _outbox_ids(database: Path) -> list[str]:
    with sqlite3.connect(database) as db:
        return [str(row[0]) for row in db.execute("SELECT id FROM outbox")]


async def test_serve_and_worker_deliver_invitations_through_redis(
    service: Service, mail_server: MailServer, redis: ArqRedis, tmp_path: Path
) -> None:
    queue = f"usher-e2e:{uuid.uuid4().hex}"
    service.env.update(REDIS_URL=REDIS_URL, USHER_QUEUE_NAME=queue)
    try:
        await service.serve()
        await service.start("worker")
        for _ in range(300):
            if "worker started on queue" in service.log():
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("usher worker did not start:\n" + service.log())
        latency = await invite_and_follow_the_link(service, mail_server)
        assert latency < 5
    finally:
        await service.stop()
        ids = [*_outbox_ids(tmp_path / "usher.db"), queue]
        doomed: list[Any] = []
        async for key in redis.scan_iter(match="*", count=1000):
            name = key.decode() if isinstance(key, bytes) else str(key)
            if any(i in name for i in ids):
                doomed.append(key)
        if doomed:
            await redis.delete(*doomed)

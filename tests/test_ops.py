"""What operators probe: `/healthz`, `/readyz` and `/metrics`."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import GQL, INVITE, _postgres_admin
from tests.mailserver import free_port
from tests.redis_helpers import PrivateRedis, private_redis
from tests.test_worker_e2e import JWT_SECRET, Service

__all__ = ["private_redis"]

POSTGRES = ("127.0.0.1", 5432)


async def test_probes_answer(client: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/health"):
        response = await client.get(path)
        assert (response.status_code, response.json()) == (200, {"status": "ok"})
    ready = await client.get("/readyz")
    assert (ready.status_code, ready.json()) == (
        200,
        {"status": "ok", "checks": {"database": "ok"}},
    )


async def test_metrics_count_operations_events_and_the_outbox(
    client: httpx.AsyncClient, gql: GQL, make_group, api_key: str
) -> None:
    await make_group(gql.token("olivia", "olivia@acme.com"))
    invite = INVITE.replace("mutation(", "mutation InviteForMetrics(", 1)
    target = {"groupType": "org", "groupId": "acme"}
    for n in range(2):
        variables = {"input": {**target, "invitees": [{"email": f"p{n}@x.com"}]}}
        data = await gql(invite, variables, auth=api_key)
        assert data["invite"]["errors"] == []
    await gql.raw("query { nonsense }")  # refused: an error, and anonymous

    text = (await client.get("/metrics")).text
    lines = set(text.splitlines())
    assert 'usher_graphql_requests_total{operation="InviteForMetrics",outcome="ok"} 2.0' in lines
    assert any(
        line.startswith('usher_graphql_requests_total{operation="anonymous",outcome="error"}')
        for line in lines
    )
    assert any(
        line.startswith('usher_graphql_request_seconds_count{operation="InviteForMetrics"}')
        for line in lines
    )
    created = [
        line for line in lines if line.startswith('usher_events_total{type="invitation.created"}')
    ]
    assert created and float(created[0].split()[-1]) >= 2
    # The two invitation emails wait in the outbox (no jobs run in this app).
    assert 'usher_outbox_backlog{kind="invitation"} 2.0' in lines
    [age] = [line for line in lines if line.startswith("usher_outbox_oldest_age_seconds ")]
    assert float(age.split()[-1]) >= 0


async def test_operation_names_cannot_grow_the_metrics_without_bound(
    client: httpx.AsyncClient, gql: GQL, api_key: str
) -> None:
    for n in range(250):
        await gql.raw(f"query Spam{n} {{ viewer {{ user {{ id }} }} }}", auth=api_key)
    text = (await client.get("/metrics")).text
    names = {
        line.split('operation="', 1)[1].split('"', 1)[0]
        for line in text.splitlines()
        if line.startswith("usher_graphql_requests_total{")
    }
    assert len(names - {"anonymous", "other"}) <= 200 and "other" in names


class Proxy:
    """A TCP proxy to PostgreSQL that the test can cut and restore: the database as the
    service sees it goes away and comes back, without touching the machine's server."""

    def __init__(self) -> None:
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for writer in list(self.writers):
                writer.close()
            await self.server.wait_closed()
            self.server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*POSTGRES)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.writers -= {writer, up_writer}


@pytest.fixture
async def proxied_database() -> AsyncIterator[tuple[Proxy, str]]:
    """A database of the test's own on the machine's PostgreSQL, reached through a Proxy."""
    proxy = Proxy()
    await proxy.start()
    name = f"usher_ops_{os.getpid()}"
    admin = f"postgres://postgres@{POSTGRES[0]}:{POSTGRES[1]}/{name}"
    await _postgres_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await _postgres_admin(admin, f'CREATE DATABASE "{name}"')
    try:
        yield proxy, f"postgres://postgres@127.0.0.1:{proxy.port}/{name}"
    finally:
        await proxy.stop()
        await _postgres_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _ready(port: int, expected: int) -> dict[str, object]:
    """Poll /readyz until it answers `expected`; its body."""
    async with httpx.AsyncClient(timeout=10) as http:
        async with asyncio.timeout(60):
            while True:
                response = await http.get(f"http://127.0.0.1:{port}/readyz")
                if response.status_code == expected:
                    body: dict[str, object] = response.json()
                    return body
                await asyncio.sleep(0.1)


async def test_readyz_follows_the_database_and_redis(
    tmp_path: Path, proxied_database: tuple[Proxy, str], private_redis: PrivateRedis
) -> None:
    proxy, database_url = proxied_database
    await private_redis.start()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "USHER_REDIS_URL")}
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=private_redis.url,
        USHER_ENV="development",
        USHER_JWT_SECRET=JWT_SECRET,
        USHER_MAIL_DIR=str(tmp_path / "mail"),
        PYTHONUNBUFFERED="1",
    )
    service = Service(tmp_path, env)
    try:
        await service.serve()
        assert (await _ready(service.port, 200))["checks"] == {"database": "ok", "redis": "ok"}
        # Liveness does not depend on either.
        await proxy.stop()
        down = await _ready(service.port, 503)
        checks = down["checks"]
        assert isinstance(checks, dict)
        assert checks["redis"] == "ok" and checks["database"] != "ok"
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"http://127.0.0.1:{service.port}/healthz")).status_code == 200
        await proxy.start()
        await _ready(service.port, 200)
        private_redis.stop()
        down = await _ready(service.port, 503)
        checks = down["checks"]
        assert isinstance(checks, dict)
        assert checks["database"] == "ok" and checks["redis"] != "ok"
        await private_redis.start()
        await _ready(service.port, 200)
    except BaseException:
        print(service.log())
        raise
    finally:
        await service.stop()


async def test_each_request_has_an_id_returned_and_on_its_log_records(
    client: httpx.AsyncClient,
) -> None:
    import io
    import json
    import logging

    from app.log import JsonFormatter, redacting

    stream = io.StringIO()
    handler = redacting(logging.StreamHandler(stream))
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)  # as Usher's own setup: a client's mistake is logged at INFO
    try:
        given = await client.post(
            "/graphql", json={"query": "{ nonsense }"}, headers={"X-Request-ID": "req-42.a:b"}
        )
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert given.headers["x-request-id"] == "req-42.a:b"
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    # The test's own HTTP client (httpx) logs outside any request of the app's.
    lines = [line for line in lines if not line["logger"].startswith("httpx")]
    assert lines and all(line["request_id"] == "req-42.a:b" for line in lines)
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    # An id that is not a plain token (a line break, or too long) is replaced by a new one.
    for bad in ("x\ny", "a" * 129, "a b"):
        made = await client.get("/healthz", headers={"X-Request-ID": bad})
        assert made.headers["x-request-id"] != bad
        assert len(made.headers["x-request-id"]) == 32
    assert (await client.get("/healthz")).headers["x-request-id"] != (
        await client.get("/healthz")
    ).headers["x-request-id"]


async def test_json_logs_are_one_object_a_line(tmp_path: Path) -> None:
    import json

    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "USHER_REDIS_URL")}
    env.update(
        DATABASE_URL=f"sqlite://{tmp_path / 'usher.db'}",
        USHER_ENV="development",
        USHER_LOG_FORMAT="json",
        USHER_JWT_SECRET=JWT_SECRET,
        USHER_MAIL_DIR=str(tmp_path / "mail"),
        PYTHONUNBUFFERED="1",
    )
    service = Service(tmp_path, env)
    try:
        await service.serve()
        async with httpx.AsyncClient() as http:
            url = f"http://127.0.0.1:{service.port}/graphql"
            await http.post(url, json={"query": "{ nonsense }"}, headers={"X-Request-ID": "r-1"})
    finally:
        await service.stop()
    lines = [line for line in service.log().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any(r.get("request_id") == "r-1" for r in records)
    assert any(r["logger"].startswith("uvicorn") for r in records)

"""Test harness: a real database (SQLite, or PostgreSQL with TEST_DATABASE_URL), clean per test,
and GraphQL over HTTP through the ASGI app."""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tortoise import Tortoise, connections

from app.cli import migrate_database
from app.config import Settings, tortoise_config
from app.main import create_app
from app.services.auth import create_api_key, make_dev_jwt

IN_CI = os.environ.get("CI") == "true"
DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")


async def _postgres_admin(url: str, statement: str) -> None:
    """Run `statement` on the server of `url`, connected to the `test` database."""
    import asyncpg
    from tortoise.backends.base.config_generator import expand_db_url

    creds = expand_db_url(url)["credentials"]
    try:
        conn = await asyncpg.connect(
            host=creds["host"], port=creds["port"], user=creds["user"], database="test"
        )
    except (OSError, asyncpg.PostgresError) as exc:
        message = f"PostgreSQL at {creds['host']}:{creds['port']} is unreachable: {exc}"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def database() -> AsyncIterator[str]:
    """A migrated database for the whole session; yields its URL."""
    with tempfile.TemporaryDirectory() as tmp:
        url = DATABASE_URL or f"sqlite://{Path(tmp) / 'usher-test.db'}"
        postgres = url.startswith("postgres")
        if postgres:
            # A database of this run's own, so parallel runs never meet.
            url = f"{url}_{os.getpid()}"
            name = url.rsplit("/", 1)[1]
            await _postgres_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await _postgres_admin(url, f'CREATE DATABASE "{name}"')
        await migrate_database(url)
        await Tortoise.init(config=tortoise_config(url), _enable_global_fallback=True)
        try:
            yield url
        finally:
            await Tortoise.close_connections()
            if postgres:
                await _postgres_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


TABLES = (
    "quota_counters",
    "email_templates",
    "webhook_deliveries",
    "outbox",
    "events",
    "webhook_endpoints",
    "invitation_events",
    "invitation_uses",
    "memberships",
    "invitations",
    "invitation_counts",
    "autojoin_domains",
    "groups",
    "api_keys",
    "users",
)


@pytest.fixture(autouse=True)
async def clean_database(database: str) -> AsyncIterator[None]:
    """Each test starts from empty tables."""
    yield
    conn = connections.get("default")
    if database.startswith("postgres"):
        await conn.execute_script(f"TRUNCATE {', '.join(TABLES)} CASCADE")
    else:
        await conn.execute_script("".join(f"DELETE FROM {t};" for t in TABLES))


@pytest.fixture(autouse=True)
async def close_transports() -> AsyncIterator[None]:
    """Transports a test built with `job_ctx` close their pooled SMTP sessions after it."""
    from tests.redis_helpers import opened_transports

    yield
    while opened_transports:
        await opened_transports.pop().aclose()


@pytest.fixture
def settings() -> Settings:
    """Settings for tests (no Redis, no SMTP)."""
    return Settings(
        database_url="sqlite://:memory:",
        redis_url=None,
        accept_url="https://app.example.com/signup?invitation={token}",
        resend_cooldown_seconds=60,
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the app (the session fixture owns the database)."""
    app = create_app(settings, run_jobs=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://usher.test") as http:
        yield http


class GQL:
    """Posts GraphQL operations as a given caller."""

    def __init__(self, http: httpx.AsyncClient, settings: Settings) -> None:
        self.http = http
        self.settings = settings

    async def raw(
        self, query: str, variables: dict[str, Any] | None = None, *, auth: str | None = None
    ) -> dict[str, Any]:
        """The whole response body."""
        headers = {"Authorization": f"Bearer {auth}"} if auth else {}
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        body: dict[str, Any] = response.json()
        return body

    async def __call__(
        self, query: str, variables: dict[str, Any] | None = None, *, auth: str | None = None
    ) -> dict[str, Any]:
        """The `data` of a response that must have no top-level errors."""
        body = await self.raw(query, variables, auth=auth)
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    def token(
        self,
        sub: str | None = None,
        email: str | None = None,
        *,
        name: str | None = None,
        verified: bool = True,
    ) -> str:
        """A JWT for a user (a fresh one by default)."""
        sub = sub or f"user-{uuid.uuid4().hex[:8]}"
        return make_dev_jwt(
            self.settings,
            sub=sub,
            email=email or f"{sub}@example.com",
            name=name,
            verified=verified,
        )


@pytest.fixture
def gql(client: httpx.AsyncClient, settings: Settings) -> GQL:
    """GraphQL over HTTP."""
    return GQL(client, settings)


@pytest.fixture
async def api_key() -> str:
    """A fresh API key."""
    _, key = await create_api_key("tests")
    return key


CREATE_GROUP = """
mutation($input: CreateGroupInput!) {
  createGroup(input: $input) { group { id type externalId name viewerRole } errors { code field message } }
}"""

INVITE = """
mutation($input: InviteInput!) {
  invite(input: $input) {
    invitations { id email role status deliveryStatus expiresAt inviteUrl permissions metadata returnTo
                  firstName lastName message sendCount targetType }
    errors { code field message }
  }
}"""


@pytest.fixture
def make_group(gql: GQL) -> Callable[..., Awaitable[dict[str, Any]]]:
    """Create a group as `auth`; returns the group."""

    async def make(auth: str, external_id: str = "acme", name: str = "Acme") -> dict[str, Any]:
        data = await gql(
            CREATE_GROUP,
            {"input": {"type": "org", "externalId": external_id, "name": name}},
            auth=auth,
        )
        assert data["createGroup"]["errors"] == []
        group: dict[str, Any] = data["createGroup"]["group"]
        return group

    return make


class QueryLog(logging.Handler):
    """Counts the SQL statements Tortoise sends."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.statements: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.statements.append(record.getMessage())


@pytest.fixture
def queries() -> Iterator[QueryLog]:
    handler = QueryLog()
    logger = logging.getLogger("tortoise.db_client")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)

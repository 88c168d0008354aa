"""On PostgreSQL the server's pool takes a connection back without asyncpg's reset statement
(Tortoise takes one from the pool for every statement), and still rolls back a
transaction left open."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from tortoise.backends.base.config_generator import expand_db_url

from app.config import tortoise_config
from app.main import database_config, keep_session


def _postgres(database: str) -> dict[str, Any]:
    if not database.startswith("postgres"):
        pytest.skip("asyncpg's pool serves PostgreSQL only")
    credentials: dict[str, Any] = expand_db_url(database)["credentials"]
    return credentials


@asynccontextmanager
async def _pool(credentials: dict[str, Any], **options: Any) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(
        host=credentials["host"],
        port=credentials["port"],
        user=credentials["user"],
        database=credentials["database"],
        min_size=1,
        max_size=1,
        **options,
    )
    try:
        yield pool
    finally:
        await pool.close()


async def _sent_around_one_statement(pool: asyncpg.Pool) -> list[str]:
    """The statements a connection sends for one SELECT and its returns to the pool."""
    sent: list[str] = []
    async with pool.acquire() as connection:
        connection.add_query_logger(lambda record: sent.append(record.query))
        await connection.fetchval("SELECT 1")
    async with pool.acquire():  # the same connection, once released
        pass
    return sent


def test_the_server_configures_its_pool(database: str) -> None:
    _postgres(database)
    [connection] = database_config(database)["connections"].values()
    assert connection["credentials"]["reset"] is keep_session
    # SQLite's connection is Tortoise's configuration as it is (no pool to reset).
    sqlite = "sqlite://:memory:"
    assert database_config(sqlite)["connections"] == tortoise_config(sqlite)["connections"]


async def test_a_connection_returns_to_the_pool_without_a_statement(database: str) -> None:
    credentials = _postgres(database)
    async with _pool(credentials) as default:
        first, *resets = await _sent_around_one_statement(default)
        assert first == "SELECT 1" and resets and all("RESET ALL" in s for s in resets)
    async with _pool(credentials, reset=keep_session) as kept:
        assert await _sent_around_one_statement(kept) == ["SELECT 1"]


async def test_a_transaction_left_open_is_still_rolled_back(database: str) -> None:
    credentials = _postgres(database)
    async with _pool(credentials, reset=keep_session) as pool:
        async with pool.acquire() as connection:
            await connection.execute("BEGIN")
            assert connection.is_in_transaction()
        async with pool.acquire() as connection:
            assert not connection.is_in_transaction()

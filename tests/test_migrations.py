"""Migrations build the schema the models declare, indexes included, and upgrade a
database that already holds rows. Each database here is built in a child process, so
the session's own connections are never touched."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import DATABASE_URL, _postgres_admin

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = sorted(p.stem for p in (ROOT / "migrations").glob("0*.py"))

BUILD = """
import asyncio, sys
from tortoise import Tortoise
from tortoise.migrations.api.migrate import migrate
from app.config import tortoise_config

async def main(url, how, target):
    config = tortoise_config(url)
    if how == "generate":
        await Tortoise.init(config=config, _enable_global_fallback=True)
        await Tortoise.generate_schemas()
    else:
        await migrate(config=config, target=target or None)
    await Tortoise.close_connections()

asyncio.run(main(*sys.argv[1:]))
"""


def _build(url: str, how: str, target: str = "") -> None:
    subprocess.run(
        [sys.executable, "-c", BUILD, url, how, target], cwd=ROOT, check=True, timeout=120
    )


Index = tuple[str, tuple[str, ...], bool]  # table, columns, unique


def _sqlite_indexes(path: str) -> set[Index]:
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        found: set[Index] = set()
        for table in tables:
            if table.startswith("sqlite_") or table.startswith("tortoise_"):
                continue
            for _, name, unique, *_ in db.execute(f'PRAGMA index_list("{table}")'):
                columns = tuple(r[2] for r in db.execute(f'PRAGMA index_info("{name}")'))
                found.add((table, columns, bool(unique)))
    return found


async def _postgres_indexes(url: str) -> set[Index]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            """SELECT t.relname AS table, i.indisunique AS unique,
                      array_agg(a.attname ORDER BY k.n) AS columns
               FROM pg_index i
               JOIN pg_class t ON t.oid = i.indrelid
               JOIN pg_namespace s ON s.oid = t.relnamespace AND s.nspname = 'public'
               CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
               JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
               WHERE t.relname NOT LIKE 'tortoise%'
               GROUP BY t.relname, i.indexrelid, i.indisunique"""
        )
    finally:
        await conn.close()
    return {(r["table"], tuple(r["columns"]), r["unique"]) for r in rows}


@pytest.fixture
async def fresh_urls(tmp_path: Path) -> AsyncIterator[list[str]]:
    """Two empty databases of the kind under test."""
    if not DATABASE_URL.startswith("postgres"):
        yield [f"sqlite://{tmp_path / 'a.db'}", f"sqlite://{tmp_path / 'b.db'}"]
        return
    urls = [f"{DATABASE_URL}_{os.getpid()}_{n}" for n in ("a", "b")]
    for url in urls:
        name = url.rsplit("/", 1)[1]
        await _postgres_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await _postgres_admin(url, f'CREATE DATABASE "{name}"')
    yield urls
    for url in urls:
        name = url.rsplit("/", 1)[1]
        await _postgres_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _indexes(url: str) -> set[Index]:
    if url.startswith("postgres"):
        return await _postgres_indexes(url)
    return _sqlite_indexes(url.removeprefix("sqlite://"))


async def test_migrations_build_every_index_the_models_declare(fresh_urls: list[str]) -> None:
    migrated, generated = fresh_urls
    _build(migrated, "migrate")
    _build(generated, "generate")
    declared = await _indexes(generated)
    built = await _indexes(migrated)
    # Index names differ between the two paths; tables, columns and uniqueness must not.
    assert built == declared
    assert ("invitations", ("group_id", "open_key"), True) in built


async def test_the_last_migration_upgrades_a_database_with_rows(fresh_urls: list[str]) -> None:
    url = fresh_urls[0]
    _build(url, "migrate", f"models.{MIGRATIONS[-2]}")
    insert = (
        "INSERT INTO users (id, external_id, email, name, created_at) VALUES "
        "('00000000-0000-0000-0000-000000000001', 'old', 'a@example.com', 'Old', "
        "'2026-01-01T00:00:00+00:00')"
    )
    if url.startswith("postgres"):
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            await conn.execute(insert.replace("'2026", "TIMESTAMPTZ '2026"))
        finally:
            await conn.close()
    else:
        with sqlite3.connect(url.removeprefix("sqlite://")) as db:
            db.execute(insert)
    _build(url, "migrate")
    if url.startswith("postgres"):
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            count = await conn.fetchval("SELECT count(*) FROM users")
        finally:
            await conn.close()
    else:
        with sqlite3.connect(url.removeprefix("sqlite://")) as db:
            count = db.execute("SELECT count(*) FROM users").fetchone()[0]
    assert count == 1

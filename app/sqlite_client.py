"""Tortoise's SQLite client, made safe for several processes on one database file.

Tortoise keeps one connection per process and starts transactions with a plain `BEGIN`,
which takes no lock until the first write. Two processes then both read inside their
transactions, both try to write, and the one whose snapshot is no longer the latest gets
"database is locked" at once: SQLite cannot make it wait, since waiting would not make its
snapshot current. `BEGIN IMMEDIATE` takes the write lock when the transaction starts, so a
second writer waits for the first (up to the busy timeout) and then reads what the first
wrote. The journal is in WAL mode (Tortoise's default), so readers outside a transaction
never wait. `config()` makes Tortoise use this client for `sqlite://` URLs.

`migration_lock()` lets one process at a time migrate the file: two `usher serve` started
together would otherwise both read the list of applied migrations, both apply the next
one, and the second would fail on "table already exists".

`execute_query` counts the rows a statement changed itself, as PostgreSQL does: Tortoise
counts `total_changes`, which includes what triggers change (`invitation_counts`), so a
conditional UPDATE of one invitation would report three rows.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from tortoise.backends.base.client import TransactionContext
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.backends.sqlite.client import (
    SqliteClient,
    SqliteTransactionContext,
    SqliteTransactionWrapper,
    translate_exceptions,
)
from tortoise.exceptions import TransactionManagementError

# How long a write waits for another process's transaction to end, unless the URL says
# (`sqlite://usher.db?busy_timeout=…`, in milliseconds).
BUSY_TIMEOUT_MS = 30_000


class DirectChanges(SqliteClient):
    """Row counts without the rows triggers changed."""

    @translate_exceptions
    async def execute_query(
        self, query: str, values: list[Any] | None = None
    ) -> tuple[int, Sequence[dict[str, Any]]]:
        """Run `query`; the rows it changed (`changes()`), else the rows it returned."""
        query = query.replace("\x00", "'||CHAR(0)||'")
        async with self.acquire_connection() as connection:
            self.log.debug("%s: %s", query, values)
            start = connection.total_changes
            rows = await connection.execute_fetchall(query, values)
            if connection.total_changes == start:
                return len(rows), rows
            [(changed,)] = await connection.execute_fetchall("SELECT changes()")
            return changed, rows


class ImmediateTransactionWrapper(DirectChanges, SqliteTransactionWrapper):
    """A transaction that holds the write lock from its start."""

    async def begin(self) -> None:
        """`BEGIN IMMEDIATE`: wait for another writer here, not fail at the first write."""
        try:
            await self._connection.commit()
            await self._connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise TransactionManagementError(exc) from exc


class ImmediateSqliteClient(DirectChanges):
    """Tortoise's SQLite client whose transactions begin with `BEGIN IMMEDIATE`.

    Tortoise has no setting for it; `_in_transaction` and `begin` are the methods each of
    its backends implements, and an engine module with `client_class` is how Tortoise
    takes a backend of one's own. tests/test_sqlite_processes.py fails if this breaks.
    """

    def _in_transaction(self) -> TransactionContext:
        return SqliteTransactionContext(ImmediateTransactionWrapper(self), self._lock)


client_class = ImmediateSqliteClient


def config(url: str) -> dict[str, Any]:
    """Tortoise's connection settings for a `sqlite://` URL: this client, with a busy
    timeout (the URL's other parameters stay PRAGMAs, as Tortoise reads them)."""
    settings = expand_db_url(url)
    settings["engine"] = __name__
    settings["credentials"].setdefault("busy_timeout", BUSY_TIMEOUT_MS)
    return settings


@asynccontextmanager
async def migration_lock(url: str) -> AsyncIterator[None]:
    """Hold an exclusive lock on `<database file>-migrate.lock` (a file of its own: SQLite
    drops its own locks on the database when any descriptor of it is closed)."""
    path = expand_db_url(url)["credentials"]["file_path"]
    if path == ":memory:" or os.name != "posix":
        yield
        return
    import fcntl

    descriptor = os.open(f"{path}-migrate.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        await asyncio.to_thread(fcntl.flock, descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # and with it the lock

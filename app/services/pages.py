"""Keyset pagination over (timestamp, id), newest first, for many parents in one query.

A connection nested under a list (each group's members, each group's invitations) asks
for one page per parent. `pages_by_parent` answers all of them with one statement: the
rows of every parent, ranked within their parent by `ROW_NUMBER()`, cut at the page size;
a single parent's page is a plain `ORDER BY … LIMIT`.
Both SQLite (3.25+) and PostgreSQL have window functions. Counts are a separate, grouped
statement, run only when a client asks for `totalCount` (invitations read kept counts
instead: see `app.services.invitations.invitation_counts`).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from tortoise.models import Model

from app.services.errors import DomainError, ErrorCode

M = TypeVar("M", bound=Model)
MAX_PAGE = 100
DEFAULT_PAGE = 50
# Usher's cursors are about 100 characters (base64 of an ISO time and a UUID).
MAX_CURSOR_LENGTH = 200


@dataclass(frozen=True)
class Window:
    """Which page: the `first` rows after the cursor position `after` (None: the start)."""

    first: int
    after: tuple[datetime, UUID] | None = None

    @classmethod
    def of(cls, first: int | None, after: str | None) -> Window:
        """The window for GraphQL's `first` (null: the default) and `after`, or INVALID_INPUT."""
        if first is None:
            first = DEFAULT_PAGE
        if not 1 <= first <= MAX_PAGE:
            raise DomainError(
                ErrorCode.INVALID_INPUT, f"first must be between 1 and {MAX_PAGE}.", ["first"]
            )
        return cls(first=first, after=_read_cursor(after) if after else None)


@dataclass(frozen=True)
class Where:
    """An extra SQL condition on the rows, with `?` placeholders, and its parameters."""

    sql: str = ""
    params: tuple[Any, ...] = ()


@dataclass
class Page(Generic[M]):
    """One page of rows, each with its cursor."""

    rows: list[tuple[str, M]] = field(default_factory=list)
    has_next_page: bool = False
    # Paging forward, a page asked for after a cursor has that cursor's row before it.
    has_previous_page: bool = False

    @property
    def end_cursor(self) -> str | None:
        """The cursor of the last row, to pass as `after` for the next page."""
        return self.rows[-1][0] if self.rows else None


def cursor_of(stamp: datetime, pk: Any) -> str:
    """The opaque cursor of a row at (stamp, pk)."""
    return base64.urlsafe_b64encode(json.dumps([stamp.isoformat(), str(pk)]).encode()).decode()


def _read_cursor(cursor: str) -> tuple[datetime, UUID]:
    """The position a cursor names, or INVALID_INPUT on `after`.

    A cursor comes back from the client, so it is read as hostile input: bounded in
    length before it is decoded, and checked for its exact shape, two strings.
    """
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise _malformed()
    try:
        position = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not (isinstance(position, list) and len(position) == 2):
            raise ValueError("not a position")
        stamp, pk = position
        if not (isinstance(stamp, str) and isinstance(pk, str)):
            raise ValueError("not two strings")
        moment = datetime.fromisoformat(stamp)
        if moment.tzinfo is None:
            raise ValueError("naive")
        # In UTC now, so a time at the edge of the calendar fails here, not in the query.
        return moment.astimezone(UTC), UUID(pk)
    except (ValueError, TypeError, OverflowError, RecursionError, binascii.Error) as exc:
        raise _malformed() from exc


def _malformed() -> DomainError:
    return DomainError(ErrorCode.INVALID_INPUT, "Malformed cursor.", ["after"])


def db_value(model: type[Model], name: str, value: Any) -> Any:
    """A parameter as the model's field stores it (UUIDs as text on SQLite, and so on)."""
    return model._meta.fields_map[name].to_db_value(value, model)


def _numbered(model: type[Model], sql: str) -> str:
    """`?` placeholders as the model's database wants them ($1, $2… on PostgreSQL)."""
    if model._meta.db.capabilities.dialect != "postgres":
        return sql
    parts = sql.split("?")
    return "".join(p + (f"${i}" if i < len(parts) else "") for i, p in enumerate(parts, 1))


def _in_parents(model: type[Model], parent: str, ids: Sequence[UUID]) -> tuple[str, list[Any]]:
    marks = ", ".join("?" * len(ids))
    return f'"{parent}" IN ({marks})', [db_value(model, parent, i) for i in ids]


async def pages_by_parent(
    model: type[M],
    *,
    parent: str,
    parent_ids: Sequence[UUID],
    stamp: str,
    window: Window,
    where: Where = Where(),
) -> dict[UUID, Page[M]]:
    """A page of `model` rows per parent (newest first by `stamp`, then id), in one query."""
    if not parent_ids:
        return {}
    condition, params = _in_parents(model, parent, parent_ids)
    if where.sql:
        condition += f" AND ({where.sql})"
        params += list(where.params)
    if window.after is not None:
        # A row value: both databases read it as a range on the (parent, stamp, id)
        # index, so a deep page starts at its cursor instead of scanning up to it.
        moment, pk = window.after
        condition += f' AND ("{stamp}", "id") < (?, ?)'
        params += [db_value(model, stamp, moment), db_value(model, "id", pk)]
    table = model._meta.db_table
    order = f'"{stamp}" DESC, "id" DESC'
    if len(parent_ids) == 1:
        # One parent (a top-level list): a plain LIMIT walks the index and stops.
        sql = f'SELECT * FROM "{table}" WHERE {condition} ORDER BY {order} LIMIT ?'
    else:
        sql = (
            f'SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY "{parent}" '
            f'ORDER BY {order}) AS usher_rank FROM "{table}" WHERE {condition}) '
            f'AS ranked WHERE usher_rank <= ? ORDER BY "{parent}", {order}'
        )
    params.append(window.first + 1)
    db = model._meta.db
    rows: list[M] = await db.executor_class(model=model, db=db).execute_select(
        _numbered(model, sql), params
    )
    grouped: dict[UUID, list[M]] = defaultdict(list)
    for row in rows:
        grouped[getattr(row, parent)].append(row)
    return {
        pid: Page(
            rows=[(cursor_of(getattr(r, stamp), r.pk), r) for r in grouped[pid][: window.first]],
            has_next_page=len(grouped[pid]) > window.first,
            has_previous_page=window.after is not None,
        )
        for pid in parent_ids
    }


async def counts_by_parent(
    model: type[Model], *, parent: str, parent_ids: Sequence[UUID], where: Where = Where()
) -> dict[UUID, int]:
    """How many `model` rows each parent has (matching `where`), in one grouped query."""
    if not parent_ids:
        return {}
    condition, params = _in_parents(model, parent, parent_ids)
    if where.sql:
        condition += f" AND ({where.sql})"
        params += list(where.params)
    sql = (
        f'SELECT "{parent}" AS parent, COUNT(*) AS n FROM "{model._meta.db_table}" '
        f'WHERE {condition} GROUP BY "{parent}"'
    )
    rows = await model._meta.db.execute_query_dict(_numbered(model, sql), params)
    found = {str(row["parent"]): int(row["n"]) for row in rows}
    return {pid: found.get(str(pid), 0) for pid in parent_ids}


@dataclass(frozen=True)
class CountKey:
    """Which rows to count: a parent's, narrowed by a model-specific filter."""

    parent_id: UUID
    filter: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PageKey:
    """One parent's page: what a per-request DataLoader batches by."""

    parent_id: UUID
    window: Window
    filter: frozenset[str] = frozenset()

    @property
    def count_key(self) -> CountKey:
        """The rows this page is taken from, for `totalCount`."""
        return CountKey(self.parent_id, self.filter)


WhereOf = Callable[[frozenset[str]], Where]


async def load_pages(
    model: type[M], *, parent: str, stamp: str, keys: Sequence[PageKey], where: WhereOf
) -> list[Page[M]]:
    """The pages `keys` ask for: one query per distinct window and filter (usually one)."""
    shapes: dict[tuple[Window, frozenset[str]], list[UUID]] = defaultdict(list)
    for key in keys:
        shapes[key.window, key.filter].append(key.parent_id)
    found: dict[PageKey, Page[M]] = {}
    for (window, wanted), ids in shapes.items():
        pages = await pages_by_parent(
            model,
            parent=parent,
            parent_ids=list(dict.fromkeys(ids)),
            stamp=stamp,
            window=window,
            where=where(wanted),
        )
        found.update({PageKey(pid, window, wanted): page for pid, page in pages.items()})
    return [found[key] for key in keys]


async def load_counts(
    model: type[Model], *, parent: str, keys: Sequence[CountKey], where: WhereOf
) -> list[int]:
    """The counts `keys` ask for: one grouped query per distinct filter."""
    shapes: dict[frozenset[str], list[UUID]] = defaultdict(list)
    for key in keys:
        shapes[key.filter].append(key.parent_id)
    found: dict[CountKey, int] = {}
    for wanted, ids in shapes.items():
        counts = await counts_by_parent(
            model, parent=parent, parent_ids=list(dict.fromkeys(ids)), where=where(wanted)
        )
        found.update({CountKey(pid, wanted): n for pid, n in counts.items()})
    return [found[key] for key in keys]


def no_filter(_: frozenset[str]) -> Where:
    """For models whose pages take no filter."""
    return Where()


PageLoader = Callable[[PageKey], Awaitable[Page[M]]]

"""Keyset pagination over (timestamp, id), newest first, with opaque cursors."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from tortoise.expressions import Q
from tortoise.models import Model
from tortoise.queryset import QuerySet

from app.services.errors import DomainError, ErrorCode

M = TypeVar("M", bound=Model)
MAX_PAGE = 100


@dataclass
class Page(Generic[M]):
    """One page of rows, each with its cursor."""

    rows: list[tuple[str, M]]
    has_next_page: bool
    total_count: int

    @property
    def end_cursor(self) -> str | None:
        """The cursor of the last row, to pass as `after` for the next page."""
        return self.rows[-1][0] if self.rows else None


def _cursor(stamp: datetime, pk: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps([stamp.isoformat(), str(pk)]).encode()).decode()


def _read_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        stamp, pk = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(stamp), UUID(pk)
    except (ValueError, TypeError) as exc:
        raise DomainError(ErrorCode.INVALID_INPUT, "Malformed cursor.", ["after"]) from exc


async def paginate(
    query: QuerySet[M], *, stamp_field: str, first: int, after: str | None
) -> Page[M]:
    """Rows of `query` newest first by `stamp_field`, then id, after the cursor `after`."""
    if not 1 <= first <= MAX_PAGE:
        raise DomainError(
            ErrorCode.INVALID_INPUT, f"first must be between 1 and {MAX_PAGE}.", ["first"]
        )
    total = await query.count()
    if after:
        stamp, pk = _read_cursor(after)
        before: dict[str, Any] = {f"{stamp_field}__lt": stamp}
        same_stamp: dict[str, Any] = {stamp_field: stamp, "id__lt": pk}
        query = query.filter(Q(**before) | Q(**same_stamp))
    rows = await query.order_by(f"-{stamp_field}", "-id").limit(first + 1)
    return Page(
        rows=[(_cursor(getattr(row, stamp_field), row.pk), row) for row in rows[:first]],
        has_next_page=len(rows) > first,
        total_count=total,
    )

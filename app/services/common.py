"""What every service module needs: the clock and reading ids."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from app.services.errors import DomainError, ErrorCode


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def parse_id(value: str, field: list[str], what: str = "invitation") -> UUID:
    """An id, or NOT_FOUND (a malformed id names nothing)."""
    try:
        return UUID(value)
    except ValueError:
        raise DomainError(ErrorCode.NOT_FOUND, f"No such {what}.", field) from None


def shown_name(name: str | None, email: str | None) -> str | None:
    """How Usher names a person to others, in emails and previews: their name, else their
    address, else nothing."""
    return name or email or None

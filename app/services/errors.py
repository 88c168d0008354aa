"""Domain errors: what a user can act on, with a code and the input it concerns."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum


class ErrorCode(StrEnum):
    """The codes a client can branch on; binding names from DESIGN.md."""

    INVALID_INPUT = "INVALID_INPUT"
    INVALID_EMAIL = "INVALID_EMAIL"
    NOT_FOUND = "NOT_FOUND"
    FORBIDDEN = "FORBIDDEN"
    ALREADY_INVITED = "ALREADY_INVITED"
    ALREADY_MEMBER = "ALREADY_MEMBER"
    INVALID_STATUS = "INVALID_STATUS"
    EXPIRED = "EXPIRED"
    EMAIL_MISMATCH = "EMAIL_MISMATCH"
    EMAIL_NOT_VERIFIED = "EMAIL_NOT_VERIFIED"
    ROLE_NOT_ALLOWED = "ROLE_NOT_ALLOWED"
    WEBMAIL_DOMAIN = "WEBMAIL_DOMAIN"
    RATE_LIMITED = "RATE_LIMITED"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"


class DomainError(Exception):
    """A rule said no. `field` is the path of the input it concerns, if any."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        field: Sequence[str] | None = None,
        *,
        retry_after: datetime | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = list(field) if field else None
        self.retry_after = retry_after

    @property
    def errors(self) -> list[DomainError]:
        """The errors this one stands for, each with its own field (itself, by default)."""
        return [self]

    def at(self, *prefix: str) -> DomainError:
        """The same error with `prefix` put before its field path (for bulk items)."""
        return DomainError(
            self.code, self.message, [*prefix, *(self.field or [])], retry_after=self.retry_after
        )


class RateLimited(DomainError):
    """RATE_LIMITED, with the moment the change may be tried again."""

    def __init__(
        self, message: str, retry_after: datetime, field: Sequence[str] | None = ("id",)
    ) -> None:
        when = retry_after.isoformat(timespec="seconds")
        super().__init__(
            ErrorCode.RATE_LIMITED,
            f"{message}; try again after {when}.",
            field,
            retry_after=retry_after,
        )

"""How domain errors reach clients: `UserError`s in payloads, or top-level errors."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import FieldExtension
from strawberry.types.field import StrawberryField

from app.graphql.scalars import described_enum
from app.services.errors import DomainError, ErrorCode

log = logging.getLogger("usher.graphql")

ErrorCodeType = described_enum(
    ErrorCode,
    "What went wrong.",
    {
        ErrorCode.INVALID_INPUT: "An input is malformed or out of range; `field` says which.",
        ErrorCode.INVALID_EMAIL: "An email address is not valid.",
        ErrorCode.NOT_FOUND: "No such thing, or the caller may not see it.",
        ErrorCode.FORBIDDEN: "The caller may see this but not do that.",
        ErrorCode.ALREADY_INVITED: "The address already has an open invitation to the group.",
        ErrorCode.ALREADY_MEMBER: "The person is already a member of the group.",
        ErrorCode.INVALID_STATUS: "The invitation's status does not allow this.",
        ErrorCode.EXPIRED: "The invitation expired.",
        ErrorCode.EMAIL_MISMATCH: "The invitation is for another email address.",
        ErrorCode.EMAIL_NOT_VERIFIED: "The caller's email address is not verified.",
        ErrorCode.ROLE_NOT_ALLOWED: "The caller's role may not grant this role.",
        ErrorCode.WEBMAIL_DOMAIN: "A webmail or disposable domain cannot autojoin.",
        ErrorCode.RATE_LIMITED: "Too many, too soon: try again after `retryAfter`.",
        ErrorCode.LIMIT_EXCEEDED: "A fixed maximum is reached, e.g. of webhook endpoints.",
    },
    name="ErrorCode",
)


@strawberry.type(description="A problem the user can act on, and the input it concerns.")
class UserError:
    code: ErrorCode = strawberry.field(description="A stable code to branch on.")
    message: str = strawberry.field(description="A sentence for people.")
    field: list[str] | None = strawberry.field(
        description='Path of the input at fault, e.g. ["invitees", "3", "email"].'
    )
    retry_after: datetime | None = strawberry.field(
        default=None, description="With RATE_LIMITED: when the change may be tried again."
    )

    @classmethod
    def from_error(cls, error: DomainError) -> UserError:
        """The GraphQL form of a domain error."""
        return cls(
            code=error.code, message=error.message, field=error.field, retry_after=error.retry_after
        )


class PublicError(GraphQLError):
    """A top-level error whose message is safe to show in production."""

    def __init__(self, message: str, code: str, **extensions: Any) -> None:
        super().__init__(message, extensions={"code": code, **extensions})


def query_error(error: DomainError) -> PublicError:
    """A domain error raised by a query (queries have no payload to carry it)."""
    return PublicError(error.message, error.code.value, field=error.field)


def unauthenticated(reason: str = "Authentication required.") -> PublicError:
    """The error for a missing or invalid credential."""
    return PublicError(reason, "UNAUTHENTICATED")


class DomainErrors(FieldExtension):
    """The one place a `DomainError` reaches the client.

    On a field whose type is a payload (it has `errors`), the error becomes the payload's
    `errors`, the rest left empty; on any other field, a top-level error with the code.
    """

    payload: Any = None

    def apply(self, field: StrawberryField) -> None:
        definition = getattr(field.type, "__strawberry_definition__", None)
        if definition is not None and any(f.name == "errors" for f in definition.fields):
            self.payload = field.type

    async def resolve_async(
        self, next_: Callable[..., Awaitable[Any]], source: Any, info: Any, **kwargs: Any
    ) -> Any:
        try:
            return await next_(source, info, **kwargs)
        except DomainError as error:
            if self.payload is None:
                raise query_error(error) from None  # logged with the response's errors
            # An outcome the client is told of, not a fault: codes and fields only, since
            # messages may quote what was sent (addresses).
            log.info(
                "%s answered %s",
                info.field_name,
                ", ".join(
                    f"{e.code.value} on {'.'.join(e.field)}" if e.field else e.code.value
                    for e in error.errors
                ),
            )
            return self.payload(errors=[UserError.from_error(e) for e in error.errors])

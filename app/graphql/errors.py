"""How domain errors reach clients: `UserError`s in payloads, or top-level errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import FieldExtension
from strawberry.types.field import StrawberryField

from app.services.errors import DomainError, ErrorCode

ErrorCodeType = strawberry.enum(ErrorCode, name="ErrorCode", description="What went wrong.")


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
                raise query_error(error) from None
            return self.payload(errors=[UserError.from_error(e) for e in error.errors])

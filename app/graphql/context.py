"""The per-request context: settings, the caller, and DataLoaders."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request
from strawberry.types import Info as StrawberryInfo

from app.config import Settings
from app.graphql.errors import unauthenticated
from app.graphql.loaders import Loaders
from app.services.auth import InvalidCredential, KnownUsers, Principal, authenticate, sync_user


@dataclass
class Context:
    """What every resolver can reach."""

    settings: Settings
    principal: Principal
    auth_error: str | None = None
    # Why the caller could not be looked up (the database failed): raised by the first
    # field that asks, so the request is answered as a masked GraphQL error.
    failure: Exception | None = None
    loaders: Loaders = field(default_factory=Loaders)

    def require_auth(self) -> Principal:
        """The caller, or a top-level UNAUTHENTICATED error."""
        if self.failure is not None:
            raise self.failure
        if self.auth_error:
            raise unauthenticated(self.auth_error)
        if not self.principal.is_authenticated:
            raise unauthenticated()
        return self.principal

    def public(self) -> Principal:
        """The caller for fields anyone may read; a bad credential is still an error."""
        if self.failure is not None:
            raise self.failure
        if self.auth_error:
            raise unauthenticated(self.auth_error)
        return self.principal

    def forget_roles(self) -> None:
        """Read the caller's roles afresh: before each root field of a mutation, since
        the one before may have changed them (an accept, a new group)."""
        self.principal.forget_roles()
        self.loaders.viewer_role.clear_all()


Info = StrawberryInfo[Context, None]


async def build_context(
    settings: Settings, request: Request, users: KnownUsers | None = None
) -> Context:
    """Authenticate the request and make its loaders; `users` remembers synced users."""
    try:
        principal = await authenticate(settings, request.headers.get("authorization"))
        if principal.claims is not None:
            principal.user = await sync_user(principal.claims, users)
    except InvalidCredential as exc:
        return Context(settings=settings, principal=Principal(), auth_error=str(exc))
    except Exception as exc:
        return Context(settings=settings, principal=Principal(), failure=exc)
    return Context(settings=settings, principal=principal, loaders=Loaders(principal=principal))

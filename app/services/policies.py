"""Who may do what (DESIGN.md, "Who may do what"), always against the stored group."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from uuid import UUID

from app.config import Settings
from app.models import Group, Invitation, Membership
from app.services.auth import Principal
from app.services.errors import DomainError, ErrorCode

RoleLookup = Callable[[UUID], Awaitable[str | None]]


async def viewer_role(principal: Principal, group_id: object) -> str | None:
    """The calling user's role in the group, or None."""
    if principal.user is None:
        return None
    membership = await Membership.get_or_none(user_id=principal.user.id, group_id=group_id)
    return membership.role if membership else None


def rank(settings: Settings, role: str) -> int:
    """Position in the role order: 0 is the highest role."""
    return settings.role_order.index(role)


async def require_group_manager(settings: Settings, principal: Principal, group: Group) -> None:
    """Raise unless the caller may manage `group`; non-members are told it does not exist."""
    if principal.is_api_key:
        return
    role = await viewer_role(principal, group.id)
    if role is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such group.", ["groupId"])
    if role not in settings.roles_that_invite:
        raise DomainError(
            ErrorCode.FORBIDDEN, f"The role {role!r} may not manage invitations.", ["groupId"]
        )


async def can_manage_invitation(
    settings: Settings,
    principal: Principal,
    invitation: Invitation,
    *,
    role_in: RoleLookup | None = None,
) -> bool:
    """API keys, the group's admins and the invitation's own inviter.

    `role_in(group_id)` gives the caller's role in a group; by default one query, while
    GraphQL passes its per-request DataLoader.
    """
    if principal.is_api_key:
        return True
    if principal.user is None:
        return False
    if invitation.inviter_id is not None and invitation.inviter_id == principal.user.id:  # type: ignore[attr-defined]
        return True
    lookup = role_in or partial(viewer_role, principal)
    role = await lookup(invitation.group_id)  # type: ignore[attr-defined]
    return role is not None and role in settings.roles_that_invite


async def check_grant(
    settings: Settings, principal: Principal, group_id: UUID, role: str, field: list[str]
) -> None:
    """Raise unless `role` exists and the caller may give it (never above their own)."""
    if role not in settings.role_order:
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            f"Unknown role {role!r}; roles are {', '.join(settings.role_order)}.",
            field,
        )
    if principal.is_api_key:
        return
    own = await viewer_role(principal, group_id)
    if own is None or rank(settings, role) < rank(settings, own):
        raise DomainError(
            ErrorCode.ROLE_NOT_ALLOWED, f"You may not grant a role above your own ({own}).", field
        )

"""Who may do what (DESIGN.md, "Who may do what"), always against the stored group."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from uuid import UUID

from app.config import Settings
from app.models import Group, Invitation, Membership
from app.services.auth import Principal
from app.services.errors import DomainError, ErrorCode

RoleLookup = Callable[[UUID], Awaitable[str | None]]


async def viewer_role(principal: Principal, group_id: UUID) -> str | None:
    """The calling user's role in the group, or None; read once per request.

    Kept on the principal (`Principal.roles`), so that finding the group, checking the
    grant and showing `inviteUrl` on every invitation of a page read one membership.
    """
    if principal.user is None:
        return None
    if group_id not in principal.roles:
        membership = await Membership.get_or_none(user_id=principal.user.id, group_id=group_id)
        principal.roles[group_id] = membership.role if membership else None
    return principal.roles[group_id]


async def roles_in(principal: Principal, group_ids: Sequence[UUID]) -> list[str | None]:
    """The calling user's role in each of the groups (None where not a member): the
    ones not yet known to this request in one query (for a DataLoader)."""
    if principal.user is None:
        return [None] * len(group_ids)
    unknown = [i for i in dict.fromkeys(group_ids) if i not in principal.roles]
    if unknown:
        rows = await Membership.filter(user_id=principal.user.id, group_id__in=unknown)
        found = {m.group_id: m.role for m in rows}  # type: ignore[attr-defined]
        principal.roles.update({i: found.get(i) for i in unknown})
    return [principal.roles[i] for i in group_ids]


def _lookup(principal: Principal, role_in: RoleLookup | None) -> RoleLookup:
    return role_in or partial(viewer_role, principal)


def rank(settings: Settings, role: str) -> int:
    """Position in the role order: 0 is the highest role."""
    return settings.role_order.index(role)


async def is_member(
    principal: Principal, group_id: UUID, *, role_in: RoleLookup | None = None
) -> bool:
    """Members and API keys may see a group's members and its autojoin settings."""
    if principal.is_api_key:
        return True
    return await _lookup(principal, role_in)(group_id) is not None


async def is_manager(
    settings: Settings, principal: Principal, group_id: UUID, *, role_in: RoleLookup | None = None
) -> bool:
    """API keys and members whose role may invite manage a group's invitations."""
    if principal.is_api_key:
        return True
    return await _lookup(principal, role_in)(group_id) in settings.roles_that_invite


def require_verified_sender(principal: Principal) -> None:
    """Raise EMAIL_NOT_VERIFIED unless the caller is an API key or a user whose JWT says
    their email is verified.

    Creating groups and inviting make Usher send mail to addresses a stranger typed in:
    a user must at least have shown they own a mailbox themselves.
    """
    if principal.is_api_key or principal.verified_email is not None:
        return
    raise DomainError(
        ErrorCode.EMAIL_NOT_VERIFIED,
        "Verify your email address before creating groups or inviting people.",
    )


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
    """API keys and those who may invite in the invitation's group now.

    An inviter manages their own invitations only while their role still lets them
    invite: one whose membership was removed or lowered keeps no hold on what they sent.
    `role_in(group_id)` gives the caller's role in a group; by default one query, while
    GraphQL passes its per-request DataLoader.
    """
    group_id: UUID = invitation.group_id  # type: ignore[attr-defined]
    return await is_manager(settings, principal, group_id, role_in=role_in)


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

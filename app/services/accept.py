"""The invitee's side: accepting (by token or by id), declining, and the membership it gives.

Accepting is one conditional UPDATE (PENDING, not expired, and for a token its current
version) in the same transaction as the membership, the event and the notice to the
inviter; the row count decides who wins a race.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q
from tortoise.transactions import in_transaction

from app.config import Settings
from app.models import (
    EventType,
    Group,
    Invitation,
    InvitationStatus,
    InvitationUse,
    JoinMethod,
    Membership,
    MessageKind,
    TargetType,
    User,
)
from app.services import changes as core
from app.services import events
from app.services.auth import Principal
from app.services.common import parse_id, utcnow
from app.services.errors import DomainError, ErrorCode
from app.services.invitations import normalize_email
from app.services.lifecycle import refusal
from app.services.tokens import read_token

MAX_IDS = 100


@dataclass
class Accepted:
    """An accepted invitation and the membership it gave."""

    invitation: Invitation
    membership: Membership


class _NotCounted(Exception):
    """A link use that the conditional update refused; rolls its use row back."""


def signed_in_user(principal: Principal, field: list[str] | None) -> User:
    """The signed-in user; API keys may not accept, decline or join on anyone's behalf."""
    if principal.user is None:
        raise DomainError(
            ErrorCode.FORBIDDEN, "Only a signed-in user can do this, for themselves.", field
        )
    return principal.user


def verified_key(principal: Principal, field: list[str] | None) -> str:
    """The caller's email, normalised like invitation addresses, if the JWT says verified."""
    claims = principal.claims
    if claims is None or not claims.email or not claims.email_verified:
        raise DomainError(
            ErrorCode.EMAIL_NOT_VERIFIED, "Your email address is not verified.", field
        )
    try:
        return normalize_email(claims.email)[1]
    except DomainError:
        raise DomainError(
            ErrorCode.EMAIL_NOT_VERIFIED, "Your email address is not usable.", field
        ) from None


def _check_invitee(principal: Principal, invitation: Invitation, field: list[str]) -> None:
    if verified_key(principal, field) != invitation.email_key:
        raise DomainError(
            ErrorCode.EMAIL_MISMATCH,
            "This invitation is for another email address.",
            field,
        )


def _lower_roles(settings: Settings, role: str) -> list[str]:
    order = settings.role_order
    return order[order.index(role) + 1 :] if role in order else []


async def grant_membership(
    settings: Settings,
    *,
    user: User,
    group: Group,
    role: str,
    permissions: Sequence[str],
    via: JoinMethod,
    invitation_id: UUID | None = None,
    metadata: Any = None,
) -> tuple[Membership, bool]:
    """The user's membership, created or raised to `role` (never lowered); (row, created).

    A new membership carries `metadata` (the accepted invitation's); an existing one keeps
    its own.

    Publishes `membership.created`, or `membership.updated` when the role or permissions
    of an existing membership grew.
    """
    try:
        # A savepoint: on PostgreSQL a failed insert would otherwise abort the caller's
        # transaction.
        async with in_transaction():
            membership = Membership(
                user_id=user.id,
                group_id=group.id,
                role=role,
                permissions=list(permissions),
                joined_via=via,
                invitation_id=invitation_id,
            )
            # Set after construction, where Tortoise does not take a string for encoded JSON.
            membership.metadata = metadata
            await membership.save()
    except IntegrityError:
        pass
    else:
        await core.membership_event("membership.created", membership, group=group, member=user)
        return membership, True
    lower = _lower_roles(settings, role)
    raised = False
    if lower:
        lower_rows = Membership.filter(user_id=user.id, group_id=group.id, role__in=lower)
        raised = await lower_rows.update(role=role) > 0
    membership, merged = await _merge_permissions(user.id, group.id, permissions)
    if raised or merged:
        await core.membership_event("membership.updated", membership, group=group, member=user)
    return membership, False


async def _merge_permissions(
    user_id: UUID, group_id: UUID, permissions: Sequence[str]
) -> tuple[Membership, bool]:
    """Add `permissions` to a membership; (membership, whether any were new).

    Each try is one conditional UPDATE that writes the union only if the list is still
    the one it read, so two accepts at once never lose each other's permissions.
    """
    while True:
        membership = await Membership.get(user_id=user_id, group_id=group_id)
        merged = sorted({*membership.permissions, *permissions})
        if merged == sorted(membership.permissions):
            return membership, False
        if await Membership.filter(id=membership.id, permissions=membership.permissions).update(
            permissions=merged
        ):
            membership.permissions = merged
            return membership, True


async def _admit(
    settings: Settings,
    principal: Principal,
    invitation: Invitation,
    user: User,
    detail: dict[str, Any],
) -> Membership:
    """Inside an accept's transaction: the membership, the event and the inviter's notice.

    `invitation` is as the accept left it, loaded with `changes.load`.
    """
    membership, created = await grant_membership(
        settings,
        user=user,
        group=invitation.group,
        role=invitation.role,
        permissions=invitation.permissions,
        via=JoinMethod.INVITATION,
        invitation_id=invitation.id,
        metadata=invitation.metadata,
    )
    detail = {"role": membership.role, "newMember": created, **detail}
    await core.record(
        invitation,
        EventType.ACCEPTED,
        actor=principal,
        detail=detail,
        mail=MessageKind.ACCEPTED_NOTICE if invitation.inviter is not None else None,
        membership=membership,
        member=user,
    )
    return membership


async def _accept_email(
    settings: Settings,
    principal: Principal,
    invitation: Invitation,
    field: list[str],
    *,
    token_version: int | None,
) -> Accepted:
    user = signed_in_user(principal, field)
    now = utcnow()
    extra = Q(token_version=token_version) if token_version is not None else None
    async with events.transaction():
        accepted = await core.transition(
            invitation.id,
            from_statuses=[InvitationStatus.PENDING],
            unexpired=True,
            now=now,
            extra=extra,
            status=InvitationStatus.ACCEPTED,
            open_key=None,
            accepted_by_id=user.id,
            accepted_at=now,
        )
        if accepted:
            invitation = await core.load(invitation.id)
            membership = await _admit(settings, principal, invitation, user, {})
    if not accepted:
        raise await refusal(invitation.id, "accepted", field, token_version=token_version)
    return Accepted(invitation, membership)


async def _accept_link(
    settings: Settings, principal: Principal, invitation: Invitation, field: list[str]
) -> Accepted:
    user = signed_in_user(principal, field)
    group_id = invitation.group_id  # type: ignore[attr-defined]
    if await Membership.exists(user_id=user.id, group_id=group_id):
        raise DomainError(ErrorCode.ALREADY_MEMBER, "You are already a member.", field)
    now = utcnow()
    try:
        async with events.transaction():
            try:
                async with in_transaction():
                    await InvitationUse.create(invitation_id=invitation.id, user_id=user.id)
            except IntegrityError:
                raise DomainError(
                    ErrorCode.INVALID_STATUS, "You have already used this link.", field
                ) from None
            counted = await core.transition(
                invitation.id,
                from_statuses=[InvitationStatus.PENDING],
                unexpired=True,
                now=now,
                extra=Q(token_version=invitation.token_version)
                & (Q(max_uses__isnull=True) | Q(use_count__lt=F("max_uses"))),
                use_count=F("use_count") + 1,
                accepted_by_id=user.id,
                accepted_at=now,
            )
            if not counted:
                raise _NotCounted
            # The last use closes the link.
            await core.transition(
                invitation.id,
                from_statuses=[InvitationStatus.PENDING],
                extra=Q(max_uses__isnull=False, use_count__gte=F("max_uses")),
                status=InvitationStatus.ACCEPTED,
            )
            invitation = await core.load(invitation.id)
            membership = await _admit(settings, principal, invitation, user, {"link": True})
    except _NotCounted:
        raise await refusal(
            invitation.id, "accepted", field, token_version=invitation.token_version
        ) from None
    return Accepted(invitation, membership)


async def accept_by_token(settings: Settings, principal: Principal, *, token: str) -> Accepted:
    """Accept the invitation a genuine, current token opens (NOT_FOUND for any other)."""
    field = ["token"]
    signed_in_user(principal, field)
    read = read_token(settings.secret_keys, token)
    invitation = None
    if read is not None:
        invitation = await Invitation.get_or_none(id=read[0], token_version=read[1])
    if invitation is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such invitation.", field)
    if invitation.target_type == TargetType.LINK:
        return await _accept_link(settings, principal, invitation, field)
    _check_invitee(principal, invitation, field)
    return await _accept_email(
        settings, principal, invitation, field, token_version=invitation.token_version
    )


async def _invitation_for_invitee(
    principal: Principal, invitation_id: str, field: list[str]
) -> Invitation:
    invitation = await Invitation.get_or_none(id=parse_id(invitation_id, field))
    # Links are opened by their token only, never by id.
    if invitation is None or invitation.target_type == TargetType.LINK:
        raise DomainError(ErrorCode.NOT_FOUND, "No such invitation.", field)
    _check_invitee(principal, invitation, field)
    return invitation


async def accept_by_ids(
    settings: Settings, principal: Principal, *, ids: Sequence[str]
) -> tuple[list[Accepted], list[DomainError]]:
    """Accept the caller's own invitations by id; each item succeeds or fails alone."""
    signed_in_user(principal, None)
    verified_key(principal, None)
    if not 1 <= len(ids) <= MAX_IDS:
        raise DomainError(ErrorCode.INVALID_INPUT, f"Give between 1 and {MAX_IDS} ids.", ["ids"])
    done: list[Accepted] = []
    errors: list[DomainError] = []
    for index, raw in enumerate(ids):
        try:
            invitation = await _invitation_for_invitee(principal, raw, [])
            done.append(
                await _accept_email(settings, principal, invitation, [], token_version=None)
            )
        except DomainError as error:
            errors.append(error.at("ids", str(index)))
    return done, errors


async def decline_invitation(
    settings: Settings, principal: Principal, *, invitation_id: str
) -> Invitation:
    """PENDING → DECLINED, by the invitee (verified email matching the invitation's)."""
    field = ["id"]
    signed_in_user(principal, field)
    invitation = await _invitation_for_invitee(principal, invitation_id, field)
    declined = await core.change(
        invitation.id,
        event=EventType.DECLINED,
        from_statuses=[InvitationStatus.PENDING],
        actor=principal,
        unexpired=True,
        status=InvitationStatus.DECLINED,
        open_key=None,
    )
    if declined is None:
        raise await refusal(invitation.id, "declined", field)
    return declined

"""The managers' side of an invitation's life: links, drafts, updates, revoke, resend, renew.

Every change is one conditional UPDATE (`changes.change`) whose row count decides;
when it changes nothing, the row is read again only to say why.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q

from app.config import Settings
from app.models import (
    DeliveryStatus,
    EventType,
    Invitation,
    InvitationStatus,
    MessageKind,
    TargetType,
)
from app.services import changes as core
from app.services import events, quotas
from app.services.auth import Principal
from app.services.common import parse_id, utcnow
from app.services.errors import DomainError, ErrorCode, RateLimited
from app.services.invitations import (
    MAX_DAYS,
    MIN_DAYS,
    check_names,
    check_payload,
    create_invitation,
    effective_status,
    expire_overdue,
    manageable_group,
    members_among,
    normalize_email,
    resolve_expiry,
)
from app.services.policies import can_manage_invitation, check_grant, is_member

MAX_LINK_USES = 10_000

# Fields `updateInvitation` may change, by model field name.
UPDATABLE = frozenset(
    {"role", "first_name", "last_name", "message", "permissions", "metadata", "return_to", "email"}
)
_INPUT_NAMES = {
    "first_name": "firstName",
    "last_name": "lastName",
    "return_to": "returnTo",
}


async def managed_invitation(
    settings: Settings, principal: Principal, invitation_id: str, field: list[str]
) -> Invitation:
    """The invitation if the caller may manage it (API keys, the roles that may invite).

    Callers who cannot even see it are told it does not exist.
    """
    invitation = await Invitation.get_or_none(id=parse_id(invitation_id, field))
    if invitation is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such invitation.", field)
    if await can_manage_invitation(settings, principal, invitation):
        return invitation
    if await is_member(principal, invitation.group_id) or (  # type: ignore[attr-defined]
        principal.verified_email is not None and principal.verified_email == invitation.email_key
    ):
        raise DomainError(
            ErrorCode.FORBIDDEN,
            "Only those who may invite in this group may manage its invitations.",
            field,
        )
    raise DomainError(ErrorCode.NOT_FOUND, "No such invitation.", field)


async def reissuable_invitation(
    settings: Settings, principal: Principal, invitation_id: str, field: list[str]
) -> Invitation:
    """A managed invitation the caller may send out again (send, resend, renew).

    Sending it again grants its role anew, so an inviter since demoted (or gone) may not
    reissue an invitation above their current role; revoking it is always allowed.
    """
    invitation = await managed_invitation(settings, principal, invitation_id, field)
    await check_grant(
        settings,
        principal,
        invitation.group_id,  # type: ignore[attr-defined]
        invitation.role,
        field,
    )
    return invitation


async def refusal(
    invitation_id: UUID, action: str, field: list[str], *, token_version: int | None = None
) -> DomainError:
    """Why a conditional update on this invitation changed nothing, as an error."""
    row = await Invitation.get_or_none(id=invitation_id)
    if row is None or (token_version is not None and row.token_version != token_version):
        return DomainError(ErrorCode.NOT_FOUND, "No such invitation.", field)
    status = effective_status(row)
    if status == InvitationStatus.EXPIRED:
        return DomainError(
            ErrorCode.EXPIRED, f"The invitation has expired and cannot be {action}.", field
        )
    if (
        status == InvitationStatus.ACCEPTED
        and row.target_type == TargetType.LINK
        and row.max_uses is not None
    ):
        return DomainError(ErrorCode.INVALID_STATUS, "This link has been used up.", field)
    return DomainError(
        ErrorCode.INVALID_STATUS,
        f"The invitation is {status.value} and cannot be {action}.",
        field,
    )


# --- links -------------------------------------------------------------------------------


async def create_invite_link(
    settings: Settings,
    principal: Principal,
    *,
    group_type: str,
    group_id: str,
    role: str | None = None,
    permissions: list[str] | None = None,
    message: str | None = None,
    max_uses: int | None = None,
    expires_in_days: int | None = None,
    expires_at: datetime | None = None,
    metadata: Any = None,
    return_to: str | None = None,
) -> Invitation:
    """A LINK invitation: whoever holds its token may accept, up to `max_uses` people."""
    now = utcnow()
    group = await manageable_group(settings, principal, group_type, group_id)
    if max_uses is not None and not 1 <= max_uses <= MAX_LINK_USES:
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            f"maxUses must be between 1 and {MAX_LINK_USES}.",
            ["maxUses"],
        )
    expiry = resolve_expiry(now, expires_in_days, expires_at)
    check_payload(settings, message, metadata, permissions, return_to)
    role = role or settings.role_order[-1]
    await check_grant(settings, principal, group.id, role, ["role"])
    async with events.transaction():
        await quotas.take_open_slot(settings, group.id)
        await quotas.take_invitation(settings, principal, group.id)
        invitation = await create_invitation(
            group=group,
            target_type=TargetType.LINK,
            role=role,
            permissions=list(permissions or []),
            message=message,
            metadata=metadata,
            return_to=return_to,
            status=InvitationStatus.PENDING,
            expires_at=expiry,
            inviter=principal.user,
            inviter_api_key=principal.api_key,
            send_email=False,
            delivery_status=DeliveryStatus.DISABLED,
            max_uses=max_uses,
        )
        detail = {"maxUses": max_uses}
        await core.record(invitation, EventType.CREATED, actor=principal, detail=detail)
    return invitation


# --- drafts and updates ------------------------------------------------------------------


def _validity_on_send(invitation: Invitation, now: datetime) -> datetime:
    # A draft may wait for days: it gets the validity it was created with, from now.
    asked = invitation.expires_at - invitation.created_at
    days = timedelta(days=MIN_DAYS), timedelta(days=MAX_DAYS)
    return now + min(max(asked, days[0]), days[1])


async def send_invitation(
    settings: Settings, principal: Principal, *, invitation_id: str
) -> Invitation:
    """DRAFT → PENDING: queue the email (unless it was made with `sendEmail: false`)."""
    field = ["id"]
    invitation = await reissuable_invitation(settings, principal, invitation_id, field)
    now = utcnow()
    queued = invitation.send_email
    sent = await core.change(
        invitation.id,
        event=EventType.SENT,
        from_statuses=[InvitationStatus.DRAFT],
        actor=principal,
        detail={"from": "draft"},
        mail=MessageKind.INVITATION if queued else None,
        status=InvitationStatus.PENDING,
        expires_at=_validity_on_send(invitation, now),
        delivery_status=DeliveryStatus.QUEUED if queued else DeliveryStatus.DISABLED,
        last_sent_at=now if queued else None,
    )
    if sent is None:
        raise await refusal(invitation.id, "sent", field)
    return sent


async def update_invitation(
    settings: Settings, principal: Principal, *, invitation_id: str, changes: dict[str, Any]
) -> Invitation:
    """Change what a DRAFT or PENDING invitation carries (role, names, message, metadata…)."""
    field = ["id"]
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    invitation = await managed_invitation(settings, principal, invitation_id, field)
    if "role" in changes:
        if not changes["role"]:
            raise DomainError(ErrorCode.INVALID_INPUT, "role cannot be empty.", ["role"])
        await check_grant(
            settings,
            principal,
            invitation.group_id,  # type: ignore[attr-defined]
            changes["role"],
            ["role"],
        )
    check_names(changes.get("first_name"), changes.get("last_name"))
    if "permissions" in changes and changes["permissions"] is None:
        changes["permissions"] = []
    check_payload(
        settings,
        changes.get("message"),
        changes.get("metadata"),
        changes.get("permissions"),
        changes.get("return_to"),
    )
    if not changes:
        raise DomainError(ErrorCode.INVALID_INPUT, "Give at least one field to change.")
    now = utcnow()
    names = sorted(_INPUT_NAMES.get(n, n) for n in changes)
    condition = Q(status=InvitationStatus.DRAFT) | Q(expires_at__gt=now)
    mail = None
    if "email" in changes:
        readdress, mail = await _readdress(invitation, changes.pop("email"), now)
        changes.update(readdress)
        condition = Q(status=InvitationStatus.DRAFT) | Q(
            expires_at__gt=now, delivery_status=DeliveryStatus.FAILED
        )
    try:
        async with events.transaction():
            if "email_key" in changes:
                await expire_overdue(
                    now=now,
                    group_id=invitation.group_id,  # type: ignore[attr-defined]
                    open_keys=[changes["email_key"]],
                )
            updated = await core.change(
                invitation.id,
                event=EventType.UPDATED,
                from_statuses=[InvitationStatus.DRAFT, InvitationStatus.PENDING],
                actor=principal,
                detail={"fields": names},
                mail=mail,
                extra=condition,
                **changes,
            )
    except IntegrityError:
        raise DomainError(
            ErrorCode.ALREADY_INVITED,
            f"{changes['email']} already has an open invitation.",
            ["email"],
        ) from None
    if updated is None:
        if (
            "email_key" in changes
            and await Invitation.filter(id=invitation.id, status=InvitationStatus.PENDING).exists()
        ):
            raise DomainError(
                ErrorCode.INVALID_STATUS,
                "The address of a PENDING invitation can change only after its email "
                "failed (deliveryStatus FAILED).",
                ["email"],
            )
        raise await refusal(invitation.id, "updated", field)
    return updated


async def _readdress(
    invitation: Invitation, value: str | None, now: datetime
) -> tuple[dict[str, Any], MessageKind | None]:
    """The changes that move an invitation to another address, and the email they send.

    The token rotates, so a link that went to the wrong address stops working; a PENDING
    invitation (whose email failed) is emailed again at once.
    """
    if invitation.target_type == TargetType.LINK:
        raise DomainError(ErrorCode.INVALID_INPUT, "A link has no email address.", ["email"])
    if not value:
        raise DomainError(ErrorCode.INVALID_EMAIL, "email cannot be empty.", ["email"])
    email, key = normalize_email(value)
    if await members_among(invitation.group_id, [key]):  # type: ignore[attr-defined]
        raise DomainError(ErrorCode.ALREADY_MEMBER, f"{email} is already a member.", ["email"])
    changes: dict[str, Any] = {
        "email": email,
        "email_key": key,
        "open_key": key,
        "token_version": F("token_version") + 1,
    }
    if invitation.status == InvitationStatus.DRAFT or not invitation.send_email:
        return changes, None
    changes.update(last_sent_at=now, delivery_status=DeliveryStatus.QUEUED, delivery_error=None)
    return changes, MessageKind.INVITATION


# --- revoke ------------------------------------------------------------------------------


async def revoke_invitation(
    settings: Settings, principal: Principal, *, invitation_id: str
) -> Invitation:
    """DRAFT, PENDING or EXPIRED → REVOKED, for good (kept for the audit trail)."""
    field = ["id"]
    invitation = await managed_invitation(settings, principal, invitation_id, field)
    revoked = await core.change(
        invitation.id,
        event=EventType.REVOKED,
        from_statuses=[
            InvitationStatus.DRAFT,
            InvitationStatus.PENDING,
            InvitationStatus.EXPIRED,
        ],
        actor=principal,
        status=InvitationStatus.REVOKED,
        open_key=None,
    )
    if revoked is None:
        raise await refusal(invitation.id, "revoked", field)
    return revoked


# --- resend and renew --------------------------------------------------------------------


def _cooled_down(settings: Settings, now: datetime) -> Q | None:
    """Rows whose last send (or creation, if never sent) is a cool-down ago; None: no cool-down.

    With no cool-down there is no condition at all: a send recorded a moment after `now`
    was read must not refuse the resend.
    """
    if settings.resend_cooldown_seconds <= 0:
        return None
    since = now - timedelta(seconds=settings.resend_cooldown_seconds)
    return Q(last_sent_at__lte=since) | Q(last_sent_at__isnull=True, created_at__lte=since)


async def _rate_limited(
    settings: Settings, invitation_id: UUID, *statuses: InvitationStatus
) -> DomainError | None:
    """RATE_LIMITED with the time to retry, if the cool-down is what stopped a resend."""
    row = await Invitation.get_or_none(id=invitation_id)
    if row is None or effective_status(row) not in statuses:
        return None
    retry = (row.last_sent_at or row.created_at) + timedelta(
        seconds=settings.resend_cooldown_seconds
    )
    if retry <= utcnow():
        return None
    return RateLimited("This invitation was sent moments ago", retry)


def _resend_changes(invitation: Invitation, now: datetime) -> dict[str, Any]:
    # Bumping the version rotates the token: links carrying the old one stop working.
    queued = invitation.send_email
    return {
        "token_version": F("token_version") + 1,
        "last_sent_at": now,
        "delivery_status": DeliveryStatus.QUEUED if queued else DeliveryStatus.DISABLED,
        "delivery_error": None,
    }


def _first_email_changes(now: datetime) -> dict[str, Any]:
    # The token is kept: whoever already holds the link can still use it.
    return {
        "send_email": True,
        "last_sent_at": now,
        "delivery_status": DeliveryStatus.QUEUED,
        "delivery_error": None,
    }


async def resend_invitation(
    settings: Settings, principal: Principal, *, invitation_id: str
) -> Invitation:
    """PENDING: rotate the token and queue the email again, within the cool-down and cap.

    An invitation made with `sendEmail: false` is emailed for the first time instead, with
    its token kept: the link the host shared by other means stays valid.
    """
    field = ["id"]
    invitation = await reissuable_invitation(settings, principal, invitation_id, field)
    if invitation.target_type == TargetType.LINK:
        raise DomainError(ErrorCode.INVALID_INPUT, "A link has no email to resend.", field)
    now = utcnow()
    first_email = not invitation.send_email
    if first_email:
        # Once only (the row must still be unmailed), so no cool-down is needed.
        mail, fields = MessageKind.INVITATION, _first_email_changes(now)
        condition: Q | None = Q(send_email=False)
    else:
        mail, fields = MessageKind.RESEND, _resend_changes(invitation, now)
        cooled = _cooled_down(settings, now)
        condition = Q(send_email=True) & cooled if cooled is not None else Q(send_email=True)
    async with events.transaction():
        resent = await core.change(
            invitation.id,
            event=EventType.RESENT,
            from_statuses=[InvitationStatus.PENDING],
            actor=principal,
            mail=mail,
            unexpired=True,
            now=now,
            detail={"firstEmail": True} if first_email else None,
            extra=condition,
            **fields,
        )
        if resent is not None:
            # Over the cap, the change rolls back with the refusal.
            await quotas.take_resend(settings, invitation.id)
    if resent is None:
        raise await _rate_limited(
            settings, invitation.id, InvitationStatus.PENDING
        ) or await refusal(invitation.id, "resent", field)
    return resent


async def renew_invitation(
    settings: Settings,
    principal: Principal,
    *,
    invitation_id: str,
    expires_in_days: int | None = None,
    expires_at: datetime | None = None,
    resend: bool = False,
) -> Invitation:
    """PENDING or EXPIRED → PENDING with a new expiry, same id; optionally resend it."""
    field = ["id"]
    invitation = await reissuable_invitation(settings, principal, invitation_id, field)
    now = utcnow()
    expiry = resolve_expiry(now, expires_in_days, expires_at)
    if resend and invitation.target_type == TargetType.LINK:
        raise DomainError(ErrorCode.INVALID_INPUT, "A link has no email to resend.", ["resend"])
    fields: dict[str, Any] = {
        "status": InvitationStatus.PENDING,
        "expires_at": expiry,
        # Reopening takes the address's open slot back; the unique index refuses it
        # if another invitation to the address has been opened since.
        "open_key": invitation.email_key,
    }
    extra = None
    if resend:
        extra = _cooled_down(settings, now)
        fields.update(_resend_changes(invitation, now))
    was = effective_status(invitation, now)
    if resend:
        # A new email (within the resend cap): one more reminder before the new expiry.
        # A renew without one keeps the reminder spent, so renewing in a loop (or letting
        # a short expiry lapse and reopening, again and again) does not mail the invitee.
        fields["reminder_sent_at"] = None
    detail = {"expiresAt": expiry.isoformat(), "from": was.value}
    try:
        async with events.transaction():
            if was == InvitationStatus.EXPIRED:
                if invitation.status == InvitationStatus.EXPIRED and invitation.email_key:
                    # Stored EXPIRED, it gave up the address: another invitation to it that
                    # is past its expiry (the sweep has not stored that yet) holds it no more.
                    await expire_overdue(
                        now=now,
                        group_id=invitation.group_id,  # type: ignore[attr-defined]
                        open_keys=[invitation.email_key],
                    )
                await quotas.take_open_slot(settings, invitation.group_id)  # type: ignore[attr-defined]
            renewed = await core.change(
                invitation.id,
                event=EventType.RENEWED,
                from_statuses=[InvitationStatus.PENDING, InvitationStatus.EXPIRED],
                actor=principal,
                detail=detail,
                extra=extra,
                **fields,
            )
            if renewed is not None and resend:
                await quotas.take_resend(settings, invitation.id)
                mail = MessageKind.RESEND if renewed.send_email else None
                await core.record(renewed, EventType.RESENT, actor=principal, mail=mail)
    except IntegrityError:
        raise DomainError(
            ErrorCode.ALREADY_INVITED,
            f"{invitation.email} has another open invitation to this group.",
            field,
        ) from None
    if renewed is None:
        limited = (
            await _rate_limited(
                settings, invitation.id, InvitationStatus.PENDING, InvitationStatus.EXPIRED
            )
            if resend
            else None
        )
        raise limited or await refusal(invitation.id, "renewed", field)
    return renewed

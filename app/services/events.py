"""Events for the host app, and the unit of work every change runs in.

An event is written in the same transaction as the change it reports, with one WEBHOOK
outbox row per endpoint that wants it; `transaction()` wakes whatever relays the outbox
once that transaction has committed, so no operation has to remember to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any
from uuid import UUID

from tortoise.transactions import in_transaction

from app.models import (
    Event,
    Group,
    Invitation,
    InvitationStatus,
    Membership,
    MessageKind,
    OutboxMessage,
    User,
    WebhookEndpoint,
)
from app.services import outbox
from app.services.common import utcnow

# Set inside `transaction()`: becomes True when the transaction writes outbox rows.
_wrote_outbox: ContextVar[list[bool] | None] = ContextVar("usher_wrote_outbox", default=None)


@asynccontextmanager
async def transaction() -> AsyncIterator[None]:
    """A database transaction that wakes the outbox relay after it commits, if it must.

    Nested uses are savepoints of the outermost one, which alone wakes the relay.
    """
    if _wrote_outbox.get() is not None:
        async with in_transaction():
            yield
        return
    wrote = [False]
    token = _wrote_outbox.set(wrote)
    try:
        async with in_transaction():
            yield
    finally:
        _wrote_outbox.reset(token)
    if wrote[0]:
        outbox.notify()


def queued() -> None:
    """Say that outbox rows were written: woken after the commit, or now outside one."""
    wrote = _wrote_outbox.get()
    if wrote is None:
        outbox.notify()
    else:
        wrote[0] = True


async def queue_mail(kind: MessageKind, invitation: Invitation) -> None:
    """An email about `invitation`, for its current token."""
    await OutboxMessage.create(
        kind=kind, invitation_id=invitation.id, token_version=invitation.token_version
    )
    queued()


def wants(endpoint_types: Sequence[str], event_type: str) -> bool:
    """True if an endpoint subscribed to `endpoint_types` (empty: all) wants this type."""
    return not endpoint_types or event_type in endpoint_types


async def publish(
    type: str,
    *,
    group_id: UUID,
    data: dict[str, Any],
    invitation_id: UUID | None = None,
) -> Event:
    """Record an event and a webhook delivery per enabled endpoint that wants it."""
    event = await Event.create(type=type, group_id=group_id, invitation_id=invitation_id, data=data)
    endpoints = await WebhookEndpoint.filter(enabled=True).values_list("id", "events")
    rows = [
        OutboxMessage(kind=MessageKind.WEBHOOK, event_id=event.id, endpoint_id=endpoint_id)
        for endpoint_id, types in endpoints
        if wants(types, type)
    ]
    if rows:
        await OutboxMessage.bulk_create(rows)
        queued()
    return event


def payload(event: Event) -> dict[str, Any]:
    """The body a webhook posts and the feed shows: `{id, type, timestamp, data}`."""
    return {
        "id": str(event.id),
        "type": event.type,
        "timestamp": _iso(event.created_at),
        "data": event.data,
    }


# --- snapshots: what the data of an event shows, named as the GraphQL types name them ---


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def user_data(user: User | None) -> dict[str, Any] | None:
    """A user as GraphQL's `User` shows it."""
    if user is None:
        return None
    return {
        "id": str(user.id),
        "externalId": user.external_id,
        "email": user.email,
        "name": user.name,
    }


def group_data(group: Group) -> dict[str, Any]:
    """A group as GraphQL's `Group` shows its own fields."""
    return {
        "id": str(group.id),
        "type": group.type,
        "externalId": group.external_id,
        "name": group.name,
    }


def membership_data(membership: Membership, user: User | None = None) -> dict[str, Any]:
    """A membership as GraphQL's `Membership` shows it."""
    return {
        "id": str(membership.id),
        "role": membership.role,
        "permissions": list(membership.permissions or []),
        "joinedAt": _iso(membership.joined_at),
        "user": user_data(user),
    }


def invitation_data(invitation: Invitation, inviter: User | None = None) -> dict[str, Any]:
    """An invitation as GraphQL's `Invitation` shows it, without its link."""
    status = InvitationStatus(invitation.status)
    if status == InvitationStatus.PENDING and invitation.expires_at <= utcnow():
        status = InvitationStatus.EXPIRED
    return {
        "id": str(invitation.id),
        "targetType": invitation.target_type.name,
        "email": invitation.email,
        "firstName": invitation.first_name,
        "lastName": invitation.last_name,
        "role": invitation.role,
        "permissions": list(invitation.permissions or []),
        "message": invitation.message,
        "metadata": invitation.metadata,
        "returnTo": invitation.return_to,
        "status": status.name,
        "expiresAt": _iso(invitation.expires_at),
        "createdAt": _iso(invitation.created_at),
        "acceptedAt": _iso(invitation.accepted_at),
        "deliveryStatus": invitation.delivery_status.name,
        "sendCount": invitation.send_count,
        "lastSentAt": _iso(invitation.last_sent_at),
        "maxUses": invitation.max_uses,
        "useCount": invitation.use_count,
        "inviter": user_data(inviter),
    }

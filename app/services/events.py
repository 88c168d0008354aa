"""Events for the host app, and the unit of work every change runs in.

An event is written in the same transaction as the change it reports, with one WEBHOOK
outbox row per endpoint that wants it; `transaction()` wakes whatever relays the outbox
once that transaction has committed, so no operation has to remember to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from tortoise.expressions import Q
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from app import metrics
from app.config import Settings
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
from app.services.auth import Principal
from app.services.common import utcnow
from app.services.errors import DomainError, ErrorCode
from app.services.pages import Page, Window, cursor_of


@dataclass
class _Unit:
    """What one transaction has to do before and after it commits."""

    drafts: list[Event] = field(default_factory=list)
    wrote_outbox: bool = False


_unit: ContextVar[_Unit | None] = ContextVar("usher_unit_of_work", default=None)


@asynccontextmanager
async def transaction() -> AsyncIterator[None]:
    """A database transaction whose events are written together just before it commits,
    and which wakes the outbox relay after it commits if it wrote outbox rows.

    Nested uses are savepoints of the outermost one; a savepoint that rolls back takes
    its events with it.
    """
    unit = _unit.get()
    if unit is not None:
        mark = len(unit.drafts)
        try:
            async with in_transaction():
                yield
        except BaseException:
            del unit.drafts[mark:]
            raise
        return
    unit = _Unit()
    token = _unit.set(unit)
    try:
        async with in_transaction():
            yield
            await _write(unit.drafts)
    finally:
        _unit.reset(token)
    if unit.wrote_outbox:
        outbox.notify()


def queued() -> None:
    """Say that outbox rows were written: woken after the commit, or now outside one."""
    unit = _unit.get()
    if unit is None:
        outbox.notify()
    else:
        unit.wrote_outbox = True


async def queue_mail(kind: MessageKind, invitation: Invitation) -> None:
    """An email about `invitation`, for its current token."""
    await queue_mails(kind, [invitation])


async def queue_mails(kind: MessageKind, invitations: Sequence[Invitation]) -> None:
    """An email about each of `invitations`, for its current token: one insert."""
    await OutboxMessage.bulk_create(
        [
            OutboxMessage(kind=kind, invitation_id=i.id, token_version=i.token_version)
            for i in invitations
        ]
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
    """Record an event, and a webhook delivery per enabled endpoint that wants it.

    Inside `transaction()` the event is written with the transaction's others just before
    the commit (one insert for all of them); outside, at once.
    """
    event = Event(type=type, group_id=group_id, invitation_id=invitation_id, data=data)
    unit = _unit.get()
    if unit is None:
        await _write([event])
    else:
        unit.drafts.append(event)
    return event


async def _write(written: Sequence[Event]) -> None:
    """Events and their webhook deliveries: two inserts and a read, whatever the count."""
    if not written:
        return
    await Event.bulk_create(written)
    metrics.count_events(event.type for event in written)
    endpoints = await WebhookEndpoint.filter(enabled=True).values_list("id", "events")
    rows = [
        OutboxMessage(kind=MessageKind.WEBHOOK, event_id=event.id, endpoint_id=endpoint_id)
        for event in written
        for endpoint_id, types in endpoints
        if wants(types, event.type)
    ]
    if rows:
        await OutboxMessage.bulk_create(rows)
        queued()


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


def _iso_sql(column: str) -> str:
    """SQL for `_iso()` of a timestamp column: UTC, microseconds only when not zero."""
    return (
        f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN "
        f"EXTRACT(MICROSECONDS FROM {column})::bigint % 1000000 = 0 THEN '' ELSE "
        f"to_char({column} AT TIME ZONE 'UTC', '.US') END || '+00:00'"
    )


def _name_sql(column: str) -> str:
    """SQL for an enum's `.name` from its stored value ('not_sent' → 'NOT_SENT')."""
    return f"upper({column})"


# What `invitation_data(f, u)` and `group_data(g)` build, as `{"invitation", "group"}`, in
# PostgreSQL, over an invitation `f`, its group `g` and its inviter `u` (LEFT JOINed): the
# data of events written by SQL alone (the expiry sweep). Key for key the same as the
# Python; tests/test_expiry_sweep.py compares the two.
EXPIRED_EVENT_DATA_SQL = f"""jsonb_build_object(
    'invitation', jsonb_build_object(
        'id', f."id"::text,
        'targetType', {_name_sql('f."target_type"')},
        'email', f."email",
        'firstName', f."first_name",
        'lastName', f."last_name",
        'role', f."role",
        'permissions', COALESCE(NULLIF(f."permissions", 'null'::jsonb), '[]'::jsonb),
        'message', f."message",
        'metadata', f."metadata",
        'returnTo', f."return_to",
        'status', CASE WHEN f."status" = 'pending' AND f."expires_at" <= now()
                       THEN 'EXPIRED' ELSE {_name_sql('f."status"')} END,
        'expiresAt', {_iso_sql('f."expires_at"')},
        'createdAt', {_iso_sql('f."created_at"')},
        'acceptedAt', {_iso_sql('f."accepted_at"')},
        'deliveryStatus', {_name_sql('f."delivery_status"')},
        'sendCount', f."send_count",
        'lastSentAt', {_iso_sql('f."last_sent_at"')},
        'maxUses', f."max_uses",
        'useCount', f."use_count",
        'inviter', CASE WHEN u."id" IS NULL THEN NULL ELSE jsonb_build_object(
            'id', u."id"::text, 'externalId', u."external_id", 'email', u."email",
            'name', u."name") END),
    'group', jsonb_build_object(
        'id', g."id"::text, 'type', g."type", 'externalId', g."external_id",
        'name', g."name"))"""


# --- the feed ----------------------------------------------------------------------------

# Every event type Usher publishes; webhook endpoints and the feed filter by them.
INVITATION_EVENT_TYPES = tuple(
    f"invitation.{t}"
    for t in (
        "created",
        "sent",
        "delivery_failed",
        "resent",
        "renewed",
        "updated",
        "revoked",
        "declined",
        "accepted",
        "expired",
        "reminded",
    )
)
EVENT_TYPES = (
    *INVITATION_EVENT_TYPES,
    "membership.created",
    "membership.updated",
    "group.domains_updated",
)


def check_types(types: Sequence[str] | None, field: list[str]) -> list[str]:
    """Known event types, or INVALID_INPUT naming the unknown ones."""
    unknown = sorted(set(types or ()) - set(EVENT_TYPES))
    if unknown:
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            f"Unknown event types: {', '.join(unknown)}; known: {', '.join(EVENT_TYPES)}.",
            field,
        )
    return list(dict.fromkeys(types or ()))


async def feed(
    settings: Settings,
    principal: Principal,
    *,
    window: Window,
    types: Sequence[str] | None = None,
) -> Page[Event]:
    """Events oldest first after a cursor, for the host's backend (API keys).

    An event shows once it is `USHER_FEED_DELAY_SECONDS` old: a change that commits a moment
    after a reader passed its timestamp still shows after the reader's cursor.
    """
    if not principal.is_api_key:
        raise DomainError(ErrorCode.FORBIDDEN, "Only API keys may read the event feed.")
    wanted = check_types(types, ["types"])
    query = _visible(settings, wanted)
    if window.after is not None:
        stamp, pk = window.after
        query = query.filter(Q(created_at__gt=stamp) | Q(created_at=stamp, id__gt=pk))
    rows = await query.order_by("created_at", "id").limit(window.first + 1)
    return Page(
        rows=[(cursor_of(e.created_at, e.id), e) for e in rows[: window.first]],
        has_next_page=len(rows) > window.first,
        has_previous_page=window.after is not None,
    )


def _visible(settings: Settings, types: Sequence[str]) -> QuerySet[Event]:
    shown = Event.filter(created_at__lte=utcnow() - timedelta(seconds=settings.feed_delay_seconds))
    return shown.filter(type__in=list(types)) if types else shown


async def feed_count(settings: Settings, *, types: Sequence[str] | None = None) -> int:
    """How many events the feed shows (of these types), across all pages."""
    return await _visible(settings, check_types(types, ["types"])).count()

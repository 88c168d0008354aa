"""The one way an invitation's state changes, and everything a change brings with it.

`change()` is a conditional UPDATE whose row count decides (DESIGN.md, principle 3); when
it changes the row, `record()` writes, in the same transaction, the audit entry, the event
for the host app (webhooks and the feed) and the email the change calls for. The relay is
woken after the commit by `events.transaction()`. A new side effect of every change is one
line in `record()`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from tortoise.expressions import Q

from app.models import (
    EventType,
    Group,
    Invitation,
    InvitationEvent,
    InvitationStatus,
    Membership,
    MessageKind,
    User,
)
from app.services import events, sql
from app.services.auth import Principal
from app.services.common import utcnow


async def transition(
    invitation_id: UUID,
    *,
    from_statuses: Sequence[InvitationStatus],
    unexpired: bool = False,
    now: datetime | None = None,
    extra: Q | None = None,
    **fields: Any,
) -> bool:
    """One conditional UPDATE; True if it changed the row (the only test of success)."""
    query = Invitation.filter(id=invitation_id, status__in=list(from_statuses))
    if unexpired:
        query = query.filter(expires_at__gt=now or utcnow())
    if extra is not None:
        query = query.filter(extra)
    return await query.update(**fields) == 1


async def load(invitation_id: UUID) -> Invitation:
    """An invitation with the group and inviter its event and emails show."""
    return await Invitation.get(id=invitation_id).select_related("group", "inviter")


def event_data(
    invitation: Invitation, membership: Membership | None = None, member: User | None = None
) -> dict[str, Any]:
    """What an invitation event tells the host: the invitation, its group, the membership."""
    data: dict[str, Any] = {
        "invitation": events.invitation_data(invitation, invitation.inviter),
        "group": events.group_data(invitation.group),
    }
    if membership is not None:
        data["membership"] = events.membership_data(membership, member)
    return data


async def record(
    invitation: Invitation,
    type: EventType,
    *,
    actor: Principal | None = None,
    detail: dict[str, Any] | None = None,
    mail: MessageKind | None = None,
    membership: Membership | None = None,
    member: User | None = None,
) -> None:
    """Inside the change's transaction: the audit entry, the host's event, the email.

    `invitation` is as the change left it, with `group` and `inviter` loaded (`load()`).
    """
    data = event_data(invitation, membership, member)
    await record_many([invitation], type, actor=actor, detail=detail, mail=mail, data=[data])


async def record_many(
    invitations: Sequence[Invitation],
    type: EventType,
    *,
    actor: Principal | None = None,
    detail: dict[str, Any] | None = None,
    mail: MessageKind | None = None,
    data: Sequence[dict[str, Any]] | None = None,
) -> None:
    """`record()` for many invitations that went through the same change: one insert per
    table, whatever their number. `data` replaces each one's `event_data()`.
    """
    if not invitations:
        return
    await InvitationEvent.bulk_create(
        [
            InvitationEvent(
                invitation_id=invitation.id,
                type=type,
                actor_user=actor.user if actor else None,
                actor_api_key=actor.api_key if actor else None,
                detail=detail,
            )
            for invitation in invitations
        ]
    )
    for n, invitation in enumerate(invitations):
        await events.publish(
            f"invitation.{type.value}",
            group_id=invitation.group.id,
            invitation_id=invitation.id,
            data=data[n] if data is not None else event_data(invitation),
        )
    if mail is not None:
        await events.queue_mails(mail, invitations)


async def change(
    invitation_id: UUID,
    *,
    event: EventType,
    from_statuses: Sequence[InvitationStatus],
    actor: Principal | None = None,
    detail: dict[str, Any] | None = None,
    mail: MessageKind | None = None,
    unexpired: bool = False,
    now: datetime | None = None,
    extra: Q | None = None,
    **fields: Any,
) -> Invitation | None:
    """A state change and all it brings, in one transaction; None if the row did not match."""
    async with events.transaction():
        changed = await transition(
            invitation_id,
            from_statuses=from_statuses,
            unexpired=unexpired,
            now=now,
            extra=extra,
            **fields,
        )
        if not changed:
            return None
        invitation = await load(invitation_id)
        await record(invitation, event, actor=actor, detail=detail, mail=mail)
    return invitation


async def expire(where: str, params: Sequence[Any], *, now: datetime, limit: int | None) -> int:
    """PENDING invitations past their expiry that match `where` (SQL on "invitations" with
    `?` placeholders for `params`) become EXPIRED: at most `limit` of them, skipping rows
    another transaction holds. Each gets its `expired` audit entry and event, and the event
    its webhook deliveries, in the same transaction. Returns how many it flipped.

    On PostgreSQL this is one statement: the UPDATE, and inserts fed by its RETURNING rows,
    with the events' data built in SQL (`events.EXPIRED_EVENT_DATA_SQL`). SQLite has no
    UPDATE inside a WITH: there the UPDATE returns the ids and `record_expired()` follows.
    """
    async with events.transaction():
        if sql.is_postgres(Invitation):
            flipped, hooks = await _expire_postgres(where, params, now=now, limit=limit)
            if hooks:
                events.queued()
            return flipped
        ids = await _expire_sqlite(where, params, now=now, limit=limit)
        await record_expired(ids)
        return len(ids)


def _overdue(where: str, limit: int | None, *, lock: bool) -> str:
    # Checked again by the UPDATE itself on SQLite, and under the row lock on PostgreSQL, so
    # a renew that slipped in between is not overwritten.
    return (
        'SELECT "id" FROM "invitations" WHERE "status" = ? AND "expires_at" <= ?'
        + (f" AND ({where})" if where else "")
        + (" LIMIT ?" if limit is not None else "")
        + (" FOR UPDATE SKIP LOCKED" if lock else "")
    )


def _overdue_params(params: Sequence[Any], now: datetime, limit: int | None) -> list[Any]:
    stamp = sql.param(Invitation, "expires_at", now)
    return [InvitationStatus.PENDING.value, stamp, *params, *([limit] if limit is not None else [])]


async def _expire_sqlite(
    where: str, params: Sequence[Any], *, now: datetime, limit: int | None
) -> list[UUID]:
    rows = await sql.fetch(
        Invitation,
        'UPDATE "invitations" SET "status" = ?, "open_key" = NULL WHERE "id" IN ('
        + _overdue(where, limit, lock=False)
        + ') AND "status" = ? AND "expires_at" <= ? RETURNING "id"',
        [
            InvitationStatus.EXPIRED.value,
            *_overdue_params(params, now, limit),
            InvitationStatus.PENDING.value,
            sql.param(Invitation, "expires_at", now),
        ],
    )
    return [UUID(str(row["id"])) for row in rows]


async def _expire_postgres(
    where: str, params: Sequence[Any], *, now: datetime, limit: int | None
) -> tuple[int, int]:
    event_type = f"invitation.{EventType.EXPIRED.value}"
    statement = f"""
        WITH due AS ({_overdue(where, limit, lock=True)}),
        flipped AS (
            UPDATE "invitations" SET "status" = ?, "open_key" = NULL
            WHERE "id" IN (SELECT "id" FROM due) RETURNING *
        ),
        audit AS (
            INSERT INTO "invitation_events" ("id", "type", "created_at", "invitation_id")
            SELECT gen_random_uuid(), ?, ?, f."id" FROM flipped AS f
        ),
        feed AS (
            INSERT INTO "events" ("id", "type", "data", "created_at", "group_id", "invitation_id")
            SELECT gen_random_uuid(), ?, {events.EXPIRED_EVENT_DATA_SQL}, ?, f."group_id", f."id"
            FROM flipped AS f
            JOIN "groups" AS g ON g."id" = f."group_id"
            LEFT JOIN "users" AS u ON u."id" = f."inviter_id"
            RETURNING "id"
        ),
        hooks AS (
            INSERT INTO "outbox" ("id", "kind", "token_version", "created_at", "attempts",
                                  "event_id", "endpoint_id")
            SELECT gen_random_uuid(), ?, 1, ?, 0, feed."id", w."id"
            FROM feed CROSS JOIN "webhook_endpoints" AS w
            WHERE w."enabled" AND (jsonb_array_length(w."events") = 0
                                   OR w."events" @> jsonb_build_array(CAST(? AS TEXT)))
            RETURNING 1
        )
        SELECT (SELECT COUNT(*) FROM flipped) AS flipped, (SELECT COUNT(*) FROM hooks) AS hooks
    """
    [row] = await sql.fetch(
        Invitation,
        statement,
        [
            *_overdue_params(params, now, limit),
            InvitationStatus.EXPIRED.value,
            EventType.EXPIRED.value,
            now,
            event_type,
            now,
            MessageKind.WEBHOOK.value,
            now,
            event_type,
        ],
    )
    return int(row["flipped"]), int(row["hooks"])


async def record_expired(ids: Sequence[UUID]) -> None:
    """The `expired` entries and events of invitations just flipped to EXPIRED (SQLite).

    Batched: inside the sweep's transaction the events are written in one insert.
    """
    rows = await Invitation.filter(id__in=list(ids)).select_related("group", "inviter")
    await record_many(rows, EventType.EXPIRED)


async def membership_event(
    type: str, membership: Membership, *, group: Group, member: User | None
) -> None:
    """`membership.created` or `membership.updated`, for the host app."""
    await events.publish(
        type,
        group_id=group.id,
        data={
            "membership": events.membership_data(membership, member),
            "group": events.group_data(group),
        },
    )

"""Reminders: one email before an invitation expires (`USHER_REMINDER_HOURS_BEFORE_EXPIRY`).

An invitation gets a reminder once, when it is PENDING, its email was delivered, it
expires within the lead time, and its last email went out at least the lead time ago
(so nobody gets a reminder right after the invitation itself). The sweep writes
REMINDER outbox rows; the relay sends them like any other message.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from uuid import UUID

from app.config import Settings
from app.models import (
    DeliveryStatus,
    Invitation,
    InvitationStatus,
    MessageKind,
    OutboxMessage,
    TargetType,
)
from app.services import events, sql
from app.services.common import utcnow

log = logging.getLogger("usher.jobs")


async def queue_reminders(ctx: dict[str, Any]) -> int:
    """Write a REMINDER outbox row for every invitation due one; returns how many."""
    settings: Settings = ctx["settings"]
    if settings.reminder_hours_before_expiry <= 0:
        return 0
    lead = timedelta(hours=settings.reminder_hours_before_expiry)
    total = 0
    while True:
        queued = await _queue_batch(utcnow(), lead, settings.batch_size)
        total += queued
        if queued < settings.batch_size:
            break
    if total:
        log.info("queued %d reminders", total)
    return total


def _due(now: datetime, lead: timedelta) -> tuple[str, list[Any]]:
    """The invitations due a reminder, as SQL on "invitations" and its parameters."""
    stamp = partial(sql.param, Invitation, "expires_at")
    return (
        '"status" = ? AND "target_type" = ? AND "send_email" = ? AND "delivery_status" = ? '
        'AND "reminder_sent_at" IS NULL AND "expires_at" > ? AND "expires_at" <= ? '
        'AND "last_sent_at" <= ?',
        [
            InvitationStatus.PENDING.value,
            TargetType.EMAIL.value,
            sql.param(Invitation, "send_email", True),
            DeliveryStatus.SENT.value,
            stamp(now),
            stamp(now + lead),
            stamp(now - lead),
        ],
    )


async def _queue_batch(now: datetime, lead: timedelta, limit: int) -> int:
    """Mark up to `limit` due invitations reminded and write their outbox rows: one
    statement on PostgreSQL (rows other transactions hold are skipped), an UPDATE …
    RETURNING and an insert on SQLite. The conditions are checked by the UPDATE itself,
    so a concurrent sweep or a resend wins."""
    due, params = _due(now, lead)
    marked_at = sql.param(Invitation, "reminder_sent_at", now)
    async with events.transaction():
        if sql.is_postgres(Invitation):
            [row] = await sql.fetch(
                Invitation,
                f"""WITH due AS (
                        SELECT "id" FROM "invitations" WHERE {due} LIMIT ? FOR UPDATE SKIP LOCKED
                    ),
                    marked AS (
                        UPDATE "invitations" SET "reminder_sent_at" = ?
                        WHERE "id" IN (SELECT "id" FROM due) RETURNING "id", "token_version"
                    ),
                    queued AS (
                        INSERT INTO "outbox" ("id", "kind", "token_version", "created_at",
                                              "attempts", "invitation_id")
                        SELECT gen_random_uuid(), ?, m."token_version", ?, 0, m."id"
                        FROM marked AS m RETURNING 1
                    )
                    SELECT COUNT(*) AS n FROM queued""",
                [*params, limit, marked_at, MessageKind.REMINDER.value, now],
            )
            count = int(row["n"])
        else:
            rows = await sql.fetch(
                Invitation,
                f'UPDATE "invitations" SET "reminder_sent_at" = ? WHERE "id" IN '
                f'(SELECT "id" FROM "invitations" WHERE {due} LIMIT ?) AND {due} '
                'RETURNING "id", "token_version"',
                [marked_at, *params, limit, *params],
            )
            await OutboxMessage.bulk_create(
                [
                    OutboxMessage(
                        kind=MessageKind.REMINDER,
                        invitation_id=UUID(str(r["id"])),
                        token_version=r["token_version"],
                    )
                    for r in rows
                ]
            )
            count = len(rows)
        if count:
            events.queued()
    return count

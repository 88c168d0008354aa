"""Reminders: one email before an invitation expires (`USHER_REMINDER_HOURS_BEFORE_EXPIRY`).

An invitation gets a reminder once, when it is PENDING, its email was delivered, it
expires within the lead time, and its last email went out at least the lead time ago
(so nobody gets a reminder right after the invitation itself). The sweep writes
REMINDER outbox rows; the relay sends them like any other message.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from app.config import Settings
from app.models import (
    DeliveryStatus,
    Invitation,
    InvitationStatus,
    MessageKind,
    OutboxMessage,
    TargetType,
)
from app.services import events
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
        now = utcnow()
        due = Invitation.filter(
            status=InvitationStatus.PENDING,
            target_type=TargetType.EMAIL,
            send_email=True,
            delivery_status=DeliveryStatus.SENT,
            reminder_sent_at__isnull=True,
            expires_at__gt=now,
            expires_at__lte=now + lead,
            last_sent_at__lte=now - lead,
        )
        ids = await due.limit(settings.batch_size).values_list("id", flat=True)
        if not ids:
            break
        async with events.transaction():
            # The same conditions again in the UPDATE: a concurrent sweep or a resend wins.
            await due.filter(id__in=ids).update(reminder_sent_at=now)
            rows = await Invitation.filter(id__in=ids, reminder_sent_at=now).values_list(
                "id", "token_version"
            )
            await OutboxMessage.bulk_create(
                [
                    OutboxMessage(kind=MessageKind.REMINDER, invitation_id=i, token_version=v)
                    for i, v in rows
                ]
            )
            events.queued()
        total += len(rows)
        if len(ids) < settings.batch_size:
            break
    if total:
        log.info("queued %d reminders", total)
    return total

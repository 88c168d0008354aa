"""Expiry: make the stored status catch up with the clock.

Reads already treat a PENDING invitation past `expiresAt` as EXPIRED; these jobs only
flip the stored row and record the event. A deferred job per invitation runs at its
`expiresAt`, keyed by invitation and expiry, so a renew (a new expiry) supersedes it: the
old job finds a different expiry on the row and does nothing. A sweep flips whatever is
overdue in batches, for jobs that were lost or never scheduled.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from arq import ArqRedis, Retry

from app.config import Settings
from app.models import Invitation, InvitationStatus
from app.services import quotas
from app.services.common import utcnow
from app.services.invitations import expire_overdue

log = logging.getLogger("usher.jobs")

# The expiry scheduler looks this far ahead (a little more than its own period).
SCHEDULE_HORIZON = timedelta(minutes=15)


def expiry_job_id(invitation_id: UUID | str, expires_at: datetime) -> str:
    """The arq job id of the expiry job for this invitation at this expiry."""
    return f"expire:{invitation_id}:{int(expires_at.timestamp() * 1000)}"


async def schedule_expiry(
    redis: ArqRedis, settings: Settings, invitation_id: UUID | str, expires_at: datetime
) -> bool:
    """Queue the expiry job to run at `expires_at`; False if it is queued already."""
    job = await redis.enqueue_job(
        "expire_invitation",
        invitation_id=str(invitation_id),
        expires_at=expires_at.isoformat(),
        _job_id=expiry_job_id(invitation_id, expires_at),
        _defer_until=expires_at,
        _queue_name=settings.queue_name,
    )
    return job is not None


async def expire_invitation(ctx: dict[str, Any], *, invitation_id: str, expires_at: str) -> str:
    """Flip one invitation to EXPIRED if it is still PENDING with this very expiry."""
    due = datetime.fromisoformat(expires_at)
    invitation = await Invitation.get_or_none(id=UUID(invitation_id))
    if invitation is None:
        return "missing"
    if invitation.expires_at != due:
        return "superseded"
    if invitation.status != InvitationStatus.PENDING:
        return "not pending"
    now = utcnow()
    if due > now:
        # Ran early (clock skew between hosts): come back when it is due.
        raise Retry(defer=due - now)
    # The UPDATE checks status and expiry again, so a renew in between still wins.
    flipped = await expire_overdue(now=now, invitation_id=invitation.id)
    return "expired" if flipped else "not pending"


async def sweep_expired(ctx: dict[str, Any]) -> int:
    """Flip every overdue PENDING invitation, a batch at a time; returns how many."""
    settings: Settings = ctx["settings"]
    total = 0
    while True:
        flipped = await expire_overdue(now=utcnow(), limit=settings.batch_size)
        total += flipped
        if flipped < settings.batch_size:
            break
    if total:
        log.info("expired %d overdue invitations", total)
    await quotas.forget_old()
    return total


async def schedule_expiries(ctx: dict[str, Any]) -> int:
    """Queue the expiry job of every PENDING invitation expiring within the horizon.

    Jobs are queued shortly before they are due rather than at creation, so nothing
    waits in Redis for weeks and a renew needs no hook: the new expiry simply gets its
    own job id. Scheduling the same expiry twice is harmless.
    """
    settings: Settings = ctx["settings"]
    redis: ArqRedis = ctx["redis"]
    now = utcnow()
    rows = await (
        Invitation.filter(
            status=InvitationStatus.PENDING,
            expires_at__gt=now,
            expires_at__lte=now + SCHEDULE_HORIZON,
        )
        .order_by("expires_at")
        .limit(settings.batch_size * 10)
        .values_list("id", "expires_at")
    )
    queued = 0
    for invitation_id, expires_at in rows:
        queued += await schedule_expiry(redis, settings, invitation_id, expires_at)
    return queued

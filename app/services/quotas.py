"""Quotas against mail abuse (DESIGN.md, "Safe to expose").

Each quota counts uses per subject in a sliding window (an hour, a day): invitations made by
one user, invitations made in one group, emails to one mailbox. They are held
where every process sees them: in Redis when `REDIS_URL` is set (the `limits` package),
else in the database, where one conditional UPDATE takes what is left so two processes
never both take the last use. Open invitations per group is a count of rows, not a rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from uuid import UUID

from limits import RateLimitItemPerDay, RateLimitItemPerHour
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.limits import RateLimitItem
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q
from tortoise.transactions import in_transaction

from app.config import Settings
from app.models import Group, Invitation, InvitationStatus, QuotaCounter
from app.services.auth import Principal
from app.services.common import utcnow
from app.services.errors import RateLimited

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Quota:
    """A limit on how often something happens for one subject in one window."""

    name: str
    limit: int
    window: timedelta
    what: str  # for the message: "invitations from you", …

    def item(self) -> RateLimitItem:
        """The same quota as the `limits` package writes it."""
        per = RateLimitItemPerHour if self.window == HOUR else RateLimitItemPerDay
        return per(self.limit, namespace=f"usher-{self.name}")


def invites_per_inviter(settings: Settings) -> Quota:
    """Invitations one signed-in user creates per hour."""
    return Quota(
        "invites-per-inviter",
        settings.quota_invites_per_inviter_hour,
        HOUR,
        "invitations created by you this hour",
    )


def invites_per_group(settings: Settings) -> Quota:
    """Invitations created in one group per day."""
    return Quota(
        "invites-per-group",
        settings.quota_invites_per_group_day,
        DAY,
        "invitations created in this group today",
    )


def mails_per_recipient(settings: Settings) -> Quota:
    """Emails to one mailbox per day, all groups and kinds together."""
    return Quota(
        "mails-per-recipient",
        settings.quota_mails_per_recipient_day,
        DAY,
        "emails to this address today",
    )


def resends_per_invitation(settings: Settings) -> Quota:
    """Resends of one invitation per day."""
    return Quota("resends", settings.resend_daily_cap, DAY, "resends of this invitation today")


def mailbox(email: str) -> str:
    """The mailbox an address reaches: lower-cased, `+tag` removed from the local part."""
    local, _, domain = email.strip().lower().rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}"


def _window_start(window: timedelta, now: datetime) -> datetime:
    seconds = window.total_seconds()
    return datetime.fromtimestamp(math.floor(now.timestamp() / seconds) * seconds, UTC)


async def take(
    settings: Settings, quota: Quota, subject: str, *, field: list[str] | None = None
) -> None:
    """Count one use of `quota` for `subject`, or raise RATE_LIMITED (nothing counted)."""
    if settings.redis_url:
        # Under the queue's name: installations (and test runs) sharing a Redis keep apart.
        await _take_redis(settings.redis_url, quota, f"{settings.queue_name}:{subject}", field)
    else:
        await _take_database(quota, subject, field)


def _refusal(quota: Quota, retry_after: datetime, field: list[str] | None) -> RateLimited:
    return RateLimited(f"Limit of {quota.limit} {quota.what} reached", retry_after, field)


async def _take_database(
    quota: Quota, subject: str, field: list[str] | None, now: datetime | None = None
) -> None:
    # A sliding window, as the `limits` package counts one in Redis: the previous
    # window's count, weighted by how much of it the last `window` still covers, plus
    # this window's. A burst at the end of one window therefore counts at the start of
    # the next, and no stretch of one window's length holds much more than the quota.
    now = now or utcnow()
    start = _window_start(quota.window, now)
    key = f"{quota.name}:{subject}"[:400]
    previous = await QuotaCounter.get_or_none(key=key, window_start=start - quota.window)
    before = previous.count if previous else 0
    overlap = (start + quota.window - now) / quota.window  # share of the last window in it
    allowed = quota.limit - math.floor(before * overlap)
    try:
        # A savepoint: the row may exist already, and a failed insert must not abort
        # the caller's transaction on PostgreSQL.
        async with in_transaction():
            await QuotaCounter.create(key=key, window_start=start, count=0)
    except IntegrityError:
        pass
    # The previous window is closed, so its count no longer moves: the one conditional
    # UPDATE decides, and two processes never both take the last use.
    taken = await QuotaCounter.filter(key=key, window_start=start, count__lt=allowed).update(
        count=F("count") + 1
    )
    if not taken:
        current = await QuotaCounter.get(key=key, window_start=start)
        raise _refusal(quota, _frees_at(quota, start, before, current.count, now), field)


def _frees_at(quota: Quota, start: datetime, before: int, current: int, now: datetime) -> datetime:
    """When the sliding count drops below the limit, if nothing more is taken."""
    end = start + quota.window
    if current >= quota.limit:
        # This window's own count must first become the previous window's, and fade.
        return end + quota.window * (1 - quota.limit / current)
    if before == 0:
        return now  # a concurrent use took the last one in between: try again
    # before * (end - t) / window < limit - current
    return max(now, end - quota.window * ((quota.limit - current) / before))


@lru_cache(maxsize=4)
def _limiter(redis_url: str) -> SlidingWindowCounterRateLimiter:
    storage = RedisStorage(f"async+{redis_url}", implementation="redispy")
    return SlidingWindowCounterRateLimiter(storage)


async def _take_redis(redis_url: str, quota: Quota, subject: str, field: list[str] | None) -> None:
    limiter = _limiter(redis_url)
    item = quota.item()
    if not await limiter.hit(item, subject):
        stats = await limiter.get_window_stats(item, subject)
        raise _refusal(quota, datetime.fromtimestamp(stats.reset_time, UTC), field)


async def forget_old(now: datetime | None = None) -> int:
    """Delete database counters no sliding window reads any more (run by the sweeps)."""
    now = now or utcnow()
    return await QuotaCounter.filter(window_start__lt=now - 2 * DAY).delete()


async def take_invitation(settings: Settings, principal: Principal, group_id: UUID) -> None:
    """Count one new invitation against its inviter's and its group's quotas.

    API keys are the host's own backend: the per-inviter quota does not apply to them.
    """
    if principal.user is not None and not principal.is_api_key:
        await take(settings, invites_per_inviter(settings), str(principal.user.id))
    await take(settings, invites_per_group(settings), str(group_id))


async def take_mail(settings: Settings, email: str) -> None:
    """Count one email to the mailbox `email` reaches."""
    await take(settings, mails_per_recipient(settings), mailbox(email), field=["email"])


async def take_resend(settings: Settings, invitation_id: UUID) -> None:
    """Count one resend of an invitation against its daily cap.

    Taken inside the resend's transaction, after its conditional UPDATE: in the database
    the count commits or rolls back with the resend, so concurrent resends never pass
    the cap together.
    """
    await take(settings, resends_per_invitation(settings), str(invitation_id), field=["id"])


async def take_open_slot(settings: Settings, group_id: UUID) -> None:
    """Make sure the group may have one more open (DRAFT or PENDING, unexpired) invitation.

    Called inside the transaction that opens it. A no-op UPDATE on the group row holds
    the row (PostgreSQL) or the database (SQLite) until that transaction ends, so two
    invites into one group count one after the other and never both take the last slot.
    Over the limit, `retryAfter` is when the next open invitation expires.
    """
    await Group.filter(id=group_id).update(autojoin_role=F("autojoin_role"))
    now = utcnow()
    open_rows = Invitation.filter(
        Q(status=InvitationStatus.DRAFT) | Q(status=InvitationStatus.PENDING, expires_at__gt=now),
        group_id=group_id,
    )
    if await open_rows.count() < settings.quota_pending_per_group:
        return
    first = await open_rows.filter(status=InvitationStatus.PENDING).order_by("expires_at").first()
    # Drafts never expire: with only drafts open, a slot frees when one is sent or revoked.
    retry = first.expires_at if first else now + DAY
    raise RateLimited("This group has reached its limit of open invitations", retry, None)

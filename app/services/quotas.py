"""Quotas against mail abuse (DESIGN.md, "Safe to expose").

Each quota counts uses per subject in a sliding window (an hour, a day): invitations made by
one user, invitations made in one group, emails to one mailbox. They are held
where every process sees them: in Redis when `REDIS_URL` is set (the `limits` package),
else in the database, where one conditional upsert (or, for a batch, an UPDATE of counters
locked and read in the same transaction) takes what is left, so two processes never both
take the last use. A batch (`invite` of 100) is counted at once: its first k go through,
the rest are refused. Open invitations per group is a count of rows, not a rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from uuid import UUID

from limits import RateLimitItemPerDay, RateLimitItemPerHour
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.limits import RateLimitItem
from tortoise.expressions import F, Q

from app.config import Settings
from app.models import Group, Invitation, InvitationStatus, QuotaCounter
from app.services import sql
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


# One statement takes a use, or takes nothing: it inserts this window's counter at 1, or
# adds 1 to it, only while the count stays under what the previous window leaves. That
# window is closed, so its count no longer moves; PostgreSQL evaluates the conflict's
# WHERE on the locked row, so two processes never both take the last use. `left` is
# limit - floor(previous * share of it the sliding window still covers), in integers.
_TAKE = """
INSERT INTO "quota_counters" ("key", "window_start", "count")
SELECT ?, {stamp}, 1 WHERE {left} >= 1
ON CONFLICT ("key", "window_start") DO UPDATE SET "count" = "quota_counters"."count" + 1
WHERE "quota_counters"."count" < {left}
RETURNING "count"
"""
_LEFT = (
    '(? - COALESCE((SELECT "count" FROM "quota_counters" WHERE "key" = ? AND '
    '"window_start" = ?), 0) * CAST(? AS BIGINT) / CAST(? AS BIGINT))'
)


async def _take_database(
    quota: Quota, subject: str, field: list[str] | None, now: datetime | None = None
) -> None:
    # A sliding window, as the `limits` package counts one in Redis: the previous
    # window's count, weighted by how much of it the last `window` still covers, plus
    # this window's. A burst at the end of one window therefore counts at the start of
    # the next, and no stretch of one window's length holds much more than the quota.
    now = now or utcnow()
    start = _window_start(quota.window, now)
    key = _counter_key(quota, subject)
    previous = sql.param(QuotaCounter, "window_start", start - quota.window)
    # The share as a fraction of two integers (microseconds), so floor() is exact.
    covered = (start + quota.window - now) // timedelta(microseconds=1)
    whole = quota.window // timedelta(microseconds=1)
    left = [quota.limit, key, previous, covered, whole]
    stamp = "CAST(? AS TIMESTAMPTZ)" if sql.is_postgres(QuotaCounter) else "?"
    taken = await sql.fetch(
        QuotaCounter,
        _TAKE.format(stamp=stamp, left=_LEFT),
        [key, sql.param(QuotaCounter, "window_start", start), *left, *left],
    )
    if not taken:
        counts = dict(
            await QuotaCounter.filter(
                key=key, window_start__in=[start - quota.window, start]
            ).values_list("window_start", "count")
        )
        before, current = counts.get(start - quota.window, 0), counts.get(start, 0)
        raise _refusal(quota, _frees_at(quota, start, before, current, now), field)


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


@dataclass(frozen=True)
class Allowance:
    """How many of the uses a batch asked for a quota allowed, and the refusal of the rest."""

    granted: int
    refusal: RateLimited | None = None


async def take_invitations(
    settings: Settings, principal: Principal, group_id: UUID, wanted: int
) -> Allowance:
    """Count up to `wanted` new invitations against their inviter's and their group's
    quotas, as many as both still allow: the first `granted` of a batch go through, the
    rest get the refusal of the quota that stopped them (the inviter's first).

    API keys are the host's own backend: the per-inviter quota does not apply to them.
    Call it inside the transaction that creates the invitations: in the database, the
    counters stay locked until it ends.
    """
    uses = [(invites_per_group(settings), str(group_id))]
    if principal.user is not None and not principal.is_api_key:
        uses.insert(0, (invites_per_inviter(settings), str(principal.user.id)))
    if wanted <= 0:
        return Allowance(0)
    if settings.redis_url:
        subjects = [(q, f"{settings.queue_name}:{s}") for q, s in uses]
        return await _take_redis_batch(settings.redis_url, subjects, wanted)
    return await _take_database_batch(uses, wanted)


async def take_invitation(settings: Settings, principal: Principal, group_id: UUID) -> None:
    """Count one new invitation against its inviter's and its group's quotas, or raise."""
    allowance = await take_invitations(settings, principal, group_id, 1)
    if allowance.refusal is not None:
        raise allowance.refusal


def _counter_key(quota: Quota, subject: str) -> str:
    return f"{quota.name}:{subject}"[:400]


async def _take_database_batch(
    uses: Sequence[tuple[Quota, str]], wanted: int, now: datetime | None = None
) -> Allowance:
    # The counters of this window are locked (a no-op UPDATE: PostgreSQL locks the rows,
    # SQLite the database) before they are read, so what is left is known exactly and one
    # UPDATE takes it for the whole batch; a concurrent batch waits for this one to end.
    now = now or utcnow()
    current = [(_counter_key(q, s), _window_start(q.window, now)) for q, s in uses]
    await QuotaCounter.bulk_create(
        [QuotaCounter(key=key, window_start=start, count=0) for key, start in current],
        ignore_conflicts=True,
    )
    these = _any_of([Q(key=key, window_start=start) for key, start in current])
    await QuotaCounter.filter(these).update(count=F("count"))
    windows = _any_of(
        [
            Q(key=key, window_start__in=[start - q.window, start])
            for (q, _), (key, start) in zip(uses, current, strict=True)
        ]
    )
    counts = {
        (key, start): count
        for key, start, count in await QuotaCounter.filter(windows).values_list(
            "key", "window_start", "count"
        )
    }
    granted, refusal = wanted, None
    for (quota, _), (key, start) in zip(uses, current, strict=True):
        before = counts.get((key, start - quota.window), 0)
        used = counts.get((key, start), 0)
        overlap = (start + quota.window - now) / quota.window
        left = max(0, quota.limit - math.floor(before * overlap) - used)
        if left < granted:
            retry = _frees_at(quota, start, before, used + left, now)
            granted, refusal = left, _refusal(quota, retry, None)
    if granted:
        await QuotaCounter.filter(these).update(count=F("count") + granted)
    return Allowance(granted, refusal)


def _any_of(conditions: Sequence[Q]) -> Q:
    return Q(*conditions, join_type=Q.OR)


async def _take_redis_batch(
    redis_url: str, uses: Sequence[tuple[Quota, str]], wanted: int
) -> Allowance:
    # `hit(cost=n)` takes all n or nothing, so each quota is asked for what all of them
    # still allow. Should a concurrent use take some in between, the quotas from the one
    # that refused on are asked again for less; those before it keep the larger count
    # (counting too much, never too little).
    limiter = _limiter(redis_url)
    pending, granted = list(uses), wanted
    refusal: RateLimited | None = None
    for _ in range(5):
        for quota, subject in pending:
            stats = await limiter.get_window_stats(quota.item(), subject)
            if stats.remaining < granted:
                retry = datetime.fromtimestamp(stats.reset_time, UTC)
                granted, refusal = stats.remaining, _refusal(quota, retry, None)
        if granted == 0:
            break
        while pending and await limiter.hit(pending[0][0].item(), pending[0][1], cost=granted):
            pending.pop(0)
        if not pending:
            return Allowance(granted, refusal)
    # Nothing left, or still racing after five tries: the rest is refused this time.
    return Allowance(0, refusal or _refusal(pending[0][0], utcnow(), None))


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


async def open_slots(
    settings: Settings, group_id: UUID, wanted: int, *, expiring_at: datetime | None = None
) -> Allowance:
    """How many of `wanted` more open (DRAFT or PENDING, unexpired) invitations the group
    may have.

    Called inside the transaction that opens them, once it holds the group
    (`hold_group()`), so two invites into one group count one after the other and never
    both take the last slot. The count reads the group's kept counts (`InvitationCount`),
    less its PENDING rows past their expiry not swept yet (an index range), so a large
    group costs no more than a small one. Over the limit, `retryAfter` is when the next
    open invitation expires, those this batch opens (expiring at `expiring_at`) included.
    """
    now = utcnow()
    limit = settings.quota_pending_per_group
    group = sql.param(Invitation, "group_id", group_id)
    pending = InvitationStatus.PENDING.value
    rows = await sql.fetch(
        Invitation,
        'SELECT (SELECT COALESCE(SUM("n"), 0) FROM "invitation_counts" WHERE "group_id" = ? '
        'AND "status" IN (?, ?)) - (SELECT COUNT(*) FROM "invitations" WHERE "group_id" = ? '
        'AND "status" = ? AND "expires_at" <= ?) AS n',
        [
            group,
            InvitationStatus.DRAFT.value,
            pending,
            group,
            pending,
            sql.param(Invitation, "expires_at", now),
        ],
    )
    free = max(0, limit - int(rows[0]["n"]))
    if wanted <= free:
        return Allowance(wanted)
    first = await (
        Invitation.filter(group_id=group_id, status=InvitationStatus.PENDING, expires_at__gt=now)
        .order_by("expires_at")
        .first()
    )
    soonest = [first.expires_at] if first else []
    if free and expiring_at is not None:
        soonest.append(expiring_at)  # the batch takes the last slots itself
    # Drafts never expire: with only drafts open, a slot frees when one is sent or revoked.
    retry = min(soonest, default=now + DAY)
    refusal = RateLimited("This group has reached its limit of open invitations", retry, None)
    return Allowance(free, refusal)


async def hold_group(group_id: UUID) -> None:
    """Hold the group until the current transaction ends: a no-op UPDATE on its row locks
    the row (PostgreSQL) or the database (SQLite), so whatever counts the group's open
    invitations after this sees every other such count's outcome."""
    await Group.filter(id=group_id).update(autojoin_role=F("autojoin_role"))


async def take_open_slot(settings: Settings, group_id: UUID) -> None:
    """Make sure the group may have one more open invitation, or raise RATE_LIMITED.

    Called inside the transaction that opens it; holds the group until that one ends.
    """
    await hold_group(group_id)
    allowance = await open_slots(settings, group_id, 1)
    if allowance.refusal is not None:
        raise allowance.refusal

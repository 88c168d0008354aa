"""The delivery job: one outbox row becomes one email, at most once when all goes well.

The row is marked sent only after the transport accepted the message. A row already sent
or given up is left alone, so a job that runs twice sends once. A message written for an
older token version than the invitation's current one was superseded by a resend and is
dropped: its link no longer works.

The jobs of one process share their reads and their records of sent emails
(`MailBatches`): what many jobs ask for at once goes to the database together. The claim
right before the send stays one statement per email, so a revoke stops every email not
yet claimed.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import Message
from typing import Any
from uuid import UUID

import asyncpg
import redis.exceptions
from arq import Retry
from jinja2 import TemplateError
from tortoise.exceptions import DBConnectionError, OperationalError, TransactionManagementError
from tortoise.expressions import F, Subquery

from app.config import Settings
from app.jobs.batching import Batcher
from app.mail.render import build_message, make_message_id
from app.mail.transports import PermanentFailure, TemporaryFailure, Transport
from app.models import (
    DeliveryStatus,
    EmailKind,
    EventType,
    Invitation,
    InvitationStatus,
    MessageKind,
    OutboxMessage,
    TargetType,
)
from app.services import changes as core
from app.services import events, quotas, templates
from app.services.common import utcnow
from app.services.errors import RateLimited
from app.services.invitations import effective_status

log = logging.getLogger("usher.jobs")

# Messages that carry the invitation link; the others (the notice) do not.
LINK_KINDS = (MessageKind.INVITATION, MessageKind.RESEND, MessageKind.REMINDER)
# An acceptance notice not sent within this long is dropped.
NOTICE_LIFETIME = timedelta(days=1)
# Errors of the database or Redis (the recipient's quota), or of the connection to them,
# which a later try may not meet.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    sqlite3.OperationalError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    # A connection the server dropped while a transaction was open fails its ROLLBACK so.
    asyncpg.InternalClientError,
    OperationalError,
    DBConnectionError,
    TransactionManagementError,
)
TRANSIENT_RETRY_SECONDS = 2.0
# Waits between the tries to record a sent email, the last try after the last wait.
RECORD_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0)
# Messages whose fate is the invitation's `deliveryStatus`.
STATUS_KINDS = (MessageKind.INVITATION, MessageKind.RESEND)


async def _skip_reason(message: OutboxMessage, invitation: Invitation, now: datetime) -> str | None:
    """Why this message must not go out any more, or None if it should."""
    if message.kind in LINK_KINDS:
        if message.token_version != invitation.token_version:
            return "superseded by a newer message"
        status = effective_status(invitation, now)
        if status != InvitationStatus.PENDING:
            return f"the invitation is {status.value}"
        if invitation.target_type != TargetType.EMAIL or not invitation.email:
            return "the invitation has no email address"
        if not invitation.send_email:
            return "email is turned off for this invitation"
    elif message.kind == MessageKind.ACCEPTED_NOTICE:
        inviter = invitation.inviter
        if inviter is None or not inviter.email:
            return "the inviter has no email address"
        if not inviter.email_verified:
            return "the inviter's email address is not verified"
        if invitation.status == InvitationStatus.REVOKED:
            return "the invitation was revoked"
        if message.created_at < now - NOTICE_LIFETIME:
            # Held by the inviter's mailbox quota for a day: news no longer, and a link
            # accepted by many must not mail its inviter for weeks.
            return "older than a day"
    return None


def _recipient(message: OutboxMessage, invitation: Invitation) -> str | None:
    if message.kind == MessageKind.ACCEPTED_NOTICE:
        return invitation.inviter.email if invitation.inviter else None
    return invitation.email


async def compose(settings: Settings, message: OutboxMessage, invitation: Invitation) -> Message:
    """The email for an outbox row (the invitation with its group and inviter loaded)."""
    email = await templates.compose_email(settings, EmailKind(message.kind.value), invitation)
    return build_message(
        email.rendered,
        sender=settings.mail_from,
        sender_name=email.sender_name,
        reply_to=email.reply_to,
        recipient=_recipient(message, invitation) or "",
        message_id=make_message_id(str(message.id), settings.mail_from),
    )


@dataclass(frozen=True)
class Sent:
    """An email the transport accepted, to be recorded."""

    message: OutboxMessage
    invitation_id: UUID
    message_id: str
    attempt: int


class MailBatches:
    """The delivery jobs' reads and records of one process, batched (`app/jobs/batching.py`).

    One lives in the jobs' `ctx` for the life of the worker or the in-process runner.
    """

    def __init__(self) -> None:
        self.load = Batcher(_load)
        self.record_sent = Batcher(_record_sent_apart)


async def deliver(ctx: dict[str, Any], *, outbox_id: str) -> str:
    """Send the email of outbox row `outbox_id`; returns what happened, in a word or two.

    A database or Redis error (a dropped connection, a restart) is tried again shortly:
    whatever the job had done is either committed or claims the row for a next attempt.
    """
    try:
        return await _deliver(ctx, outbox_id=outbox_id)
    except TRANSIENT_ERRORS as exc:
        log.warning("outbox %s: %r; retrying", outbox_id, exc)
        raise Retry(defer=TRANSIENT_RETRY_SECONDS) from None


async def _deliver(ctx: dict[str, Any], *, outbox_id: str) -> str:
    settings: Settings = ctx["settings"]
    transport: Transport = ctx["transport"]
    batches: MailBatches = ctx.get("mail_batches") or MailBatches()
    now = utcnow()
    loaded = await batches.load(UUID(outbox_id))
    if loaded is None:
        return "missing"
    message, invitation = loaded
    if _done(message):
        return "already done"
    reason = await _skip_reason(message, invitation, now)
    if reason is not None:
        return await _skip(message, invitation, reason)

    await _hold_over_quota(settings, message, invitation)
    attempt = message.attempts + 1
    try:
        email = await compose(settings, message, invitation)
    except TemplateError as exc:
        # A broken (custom) template will not mend itself: fail visibly, once.
        await _give_up(message, invitation, f"template error: {exc}", attempt)
        return "failed"
    if not await _claim(message, attempt):
        now_row = await OutboxMessage.get_or_none(id=message.id)
        if now_row is None or now_row.attempts != message.attempts or _done(now_row):
            return "already done"  # by another run of this job, meanwhile
        # Revoked, declined, renewed with a new link… while the email was being written.
        fresh = await Invitation.get(id=invitation.id).select_related("inviter")
        reason = await _skip_reason(message, fresh, utcnow()) or "changed"
        return await _skip(message, fresh, reason)
    try:
        await transport.send(email)
    except PermanentFailure as exc:
        await _give_up(message, invitation, exc.reason, attempt)
        return "failed"
    except TemporaryFailure as exc:
        if attempt >= settings.mail_max_attempts:
            await _give_up(
                message, invitation, f"gave up after {attempt} attempts: {exc.reason}", attempt
            )
            return "failed"
        defer = settings.backoff(attempt)
        # Pushing enqueued_at to when the retry is due keeps the relay from taking the
        # deferred job for a lost one.
        await OutboxMessage.filter(id=message.id, sent_at=None).update(
            attempts=attempt,
            last_error=exc.reason,
            enqueued_at=utcnow() + timedelta(seconds=defer),
        )
        log.warning(
            "outbox %s attempt %d failed (%s); retrying in %.0fs",
            message.id,
            attempt,
            exc.reason,
            defer,
        )
        raise Retry(defer=defer) from None
    await _record(batches, Sent(message, invitation.id, str(email["Message-ID"]), attempt))
    return "sent"


async def _record(batches: MailBatches, sent: Sent) -> None:
    """Record a sent email, trying a while through database errors: an email sent and
    not recorded is sent again by the next attempt."""
    for delay in RECORD_RETRY_DELAYS:
        try:
            await batches.record_sent(sent)
        except TRANSIENT_ERRORS as exc:
            log.warning("outbox %s sent, recording it failed (%r)", sent.message.id, exc)
            await asyncio.sleep(delay)
        else:
            return
    await batches.record_sent(sent)


async def _load(ids: list[UUID]) -> list[tuple[OutboxMessage, Invitation] | None]:
    """Outbox rows with their invitation, its group and inviter: two queries for them all."""
    rows = await OutboxMessage.filter(id__in=ids)
    wanted = {row.invitation_id for row in rows if row.invitation_id}  # type: ignore[attr-defined]
    invitations = {
        invitation.id: invitation
        for invitation in await Invitation.filter(id__in=list(wanted)).select_related(
            "group", "inviter"
        )
    }
    found = {
        row.id: (row, invitations[row.invitation_id])  # type: ignore[attr-defined]
        for row in rows
        if row.invitation_id in invitations  # type: ignore[attr-defined]
    }
    return [found.get(id) for id in ids]


def _done(message: OutboxMessage) -> bool:
    return message.sent_at is not None or message.failed_at is not None


async def _skip(message: OutboxMessage, invitation: Invitation, reason: str) -> str:
    async with events.transaction():
        await OutboxMessage.filter(id=message.id, sent_at=None).update(
            failed_at=utcnow(), last_error=f"not sent: {reason}"
        )
        if message.kind in STATUS_KINDS:
            # Revoked or declined before it went out: the invitation's email was never
            # sent, and says so instead of staying QUEUED for ever.
            await Invitation.filter(
                id=invitation.id,
                token_version=message.token_version,
                delivery_status=DeliveryStatus.QUEUED,
            ).update(
                delivery_status=DeliveryStatus.NOT_SENT
                if invitation.send_email
                else DeliveryStatus.DISABLED,
                delivery_error=f"not sent: {reason}",
            )
    log.info("outbox %s not sent: %s", message.id, reason)
    return "skipped"


async def _claim(message: OutboxMessage, attempt: int) -> bool:
    """Claim the message for this attempt, right before it goes out: one conditional
    UPDATE that also checks, for a link, that the invitation is still open on the same
    token version, so a revoke that lands before this point stops the email."""
    # On the attempts it read: of two runs of one job at once, one claims, one stops.
    query = OutboxMessage.filter(
        id=message.id, sent_at=None, failed_at=None, attempts=message.attempts
    )
    if message.kind in LINK_KINDS:
        still_open = Invitation.filter(
            id=message.invitation_id,  # type: ignore[attr-defined]
            status=InvitationStatus.PENDING,
            expires_at__gt=utcnow(),
            token_version=message.token_version,
        )
        query = query.filter(invitation_id__in=Subquery(still_open.values("id")))
    return await query.update(attempts=attempt) == 1


async def _hold_over_quota(
    settings: Settings, message: OutboxMessage, invitation: Invitation
) -> None:
    """Count an email against its recipient's daily quota: invitations, resends,
    reminders and acceptance notices alike.

    Over it, the message waits (it is not an attempt) until the window ends: a new
    employee invited to many boards on day one gets every invitation, a few a day, and a
    stranger's inbox is never flooded.
    """
    recipient = _recipient(message, invitation)
    if not recipient:
        return
    try:
        await quotas.take_mail(settings, recipient)
    except RateLimited as limited:
        assert limited.retry_after is not None
        await OutboxMessage.filter(id=message.id, sent_at=None).update(
            enqueued_at=limited.retry_after, last_error="held: the recipient's daily quota"
        )
        log.info(
            "outbox %s held until %s by the recipient's quota", message.id, limited.retry_after
        )
        raise Retry(defer=max(limited.retry_after - utcnow(), timedelta(seconds=1))) from None
    return None


async def _record_sent_apart(sent: list[Sent]) -> list[Exception | None]:
    """Record sent emails in one transaction; if that fails, each in its own, so one that
    cannot be recorded does not take the others with it."""
    try:
        await _record_sent(sent)
    except Exception as exc:
        if len(sent) == 1:
            return [exc]
        log.warning("recording %d sent emails together failed (%r); one by one", len(sent), exc)
        results: list[Exception | None] = []
        for one in sent:
            try:
                await _record_sent([one])
            except Exception as failed:
                results.append(failed)
            else:
                results.append(None)
        return results
    return [None] * len(sent)


async def _record_sent(sent: list[Sent]) -> None:
    now = utcnow()
    # One order for the rows every transaction updates, so two never wait on each other.
    sent = sorted(sent, key=lambda one: str(one.invitation_id))
    attempts: dict[int, list[UUID]] = {}
    for one in sent:
        attempts.setdefault(one.attempt, []).append(one.message.id)
    async with events.transaction():
        for attempt, ids in attempts.items():
            await OutboxMessage.filter(id__in=ids).update(
                sent_at=now, attempts=attempt, last_error=None
            )
        for one in sent:
            if one.message.kind in STATUS_KINDS:
                # Only the message for the current token speaks for the invitation.
                await Invitation.filter(
                    id=one.invitation_id, token_version=one.message.token_version
                ).update(
                    delivery_status=DeliveryStatus.SENT,
                    delivery_error=None,
                    message_id=one.message_id,
                    send_count=F("send_count") + 1,
                    last_sent_at=now,
                )
        # As the updates left them, for the events.
        invitations = {
            invitation.id: invitation
            for invitation in await Invitation.filter(
                id__in=list({one.invitation_id for one in sent})
            ).select_related("group", "inviter")
        }
        for one in sent:
            kind = one.message.kind
            detail = {"kind": kind.value, "messageId": one.message_id, "attempts": one.attempt}
            event = EventType.REMINDED if kind == MessageKind.REMINDER else EventType.SENT
            await core.record(invitations[one.invitation_id], event, detail=detail)


async def _give_up(
    message: OutboxMessage, invitation: Invitation, reason: str, attempt: int
) -> None:
    now = utcnow()
    detail = {"kind": message.kind.value, "reason": reason, "attempts": attempt}
    async with events.transaction():
        await OutboxMessage.filter(id=message.id, sent_at=None).update(
            failed_at=now, attempts=attempt, last_error=reason
        )
        if message.kind in STATUS_KINDS:
            await Invitation.filter(id=invitation.id, token_version=message.token_version).update(
                delivery_status=DeliveryStatus.FAILED, delivery_error=reason
            )
        await core.record(await core.load(invitation.id), EventType.DELIVERY_FAILED, detail=detail)
    log.warning("outbox %s failed for good: %s", message.id, reason)

"""The webhook job: one WEBHOOK outbox row becomes one signed POST to its endpoint.

Delivery is at least once and in order per subject. A row is marked sent only after the
receiver answered 2xx; anything else is retried on `USHER_WEBHOOK_RETRY_SECONDS` (about a
day) and then given up. Every attempt is logged as a `WebhookDelivery`, which is what
`webhookEndpoints { deliveries }` shows. A row already sent or given up is left alone, so
a job that runs twice posts once when all goes well; when it does not (the receiver
answered but the row was not yet marked), the receiver sees the same `webhook-id` again
and can drop the duplicate.

The target is checked again here, on the address the connection goes to (see
`app.services.webhook_targets`): the request is made to that address, with the URL's
host in the `Host` header and as the TLS server name, so a DNS answer that changed since
the check cannot redirect it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
from arq import Retry
from standardwebhooks import Webhook
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from app.config import Settings
from app.models import Event, MessageKind, OutboxMessage, WebhookDelivery, WebhookEndpoint
from app.services import events as event_log
from app.services.common import utcnow
from app.services.webhook_targets import IPAddress, Target, UnsafeTarget, target_for

log = logging.getLogger("usher.jobs")

# Bytes of a response read at most: enough for an error message, and a receiver that
# streams forever costs nothing.
RESPONSE_CAP = 1024
# Characters of a receiver's answer kept in an error.
ERROR_EXCERPT = 200
USER_AGENT = "Usher-Webhooks/1"


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: a status code, or an error before any answer."""

    status_code: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True for a 2xx answer."""
        return self.status_code is not None and 200 <= self.status_code < 300


def signed_headers(secret: str, msg_id: str, body: str, when: datetime) -> dict[str, str]:
    """The Standard Webhooks headers for `body`, signed at `when` (timezone-aware)."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, when.astimezone(UTC), body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        # A compressed answer could expand far beyond what is read of it.
        "accept-encoding": "identity",
        # Each request is pinned to an address with its own TLS name: no connection may
        # stay open for a later request, to another host on the same address, to reuse.
        "connection": "close",
    }


def _printable(text: str, limit: int) -> str:
    text = "".join(c if c.isprintable() else " " for c in text)
    return " ".join(text.split())[:limit]


def _http_error(status: int, head: bytes) -> str:
    excerpt = _printable(head.decode("utf-8", "replace"), ERROR_EXCERPT)
    note = " (redirects are not followed)" if 300 <= status < 400 else ""
    return f"HTTP {status}{note}" + (f": {excerpt}" if excerpt else "")


async def _read_head(response: httpx.Response) -> bytes:
    data = b""
    async for chunk in response.aiter_raw():
        data += chunk
        if len(data) >= RESPONSE_CAP:
            break
    return data[:RESPONSE_CAP]


async def _send_to_any(
    client: httpx.AsyncClient,
    settings: Settings,
    target: Target,
    headers: dict[str, str],
    body: str,
) -> Outcome:
    """Post to the first of the target's addresses that takes a connection."""
    for address in target.addresses[:-1]:
        try:
            return await _send(client, settings, target, address, headers, body)
        except httpx.ConnectError:
            # As a client connecting by name would: an unreachable IPv6 address, say,
            # should not fail a host that also has a working IPv4 one.
            continue
    return await _send(client, settings, target, target.addresses[-1], headers, body)


async def _send(
    client: httpx.AsyncClient,
    settings: Settings,
    target: Target,
    address: IPAddress,
    headers: dict[str, str],
    body: str,
) -> Outcome:
    request = client.build_request(
        "POST",
        target.pinned_url(address),
        content=body.encode(),
        headers={**headers, "host": target.host_header},
        extensions={"sni_hostname": target.tls_name} if target.tls_name else {},
        timeout=settings.webhook_timeout_seconds,
    )
    response = await client.send(request, stream=True, follow_redirects=False)
    try:
        if 200 <= response.status_code < 300:
            return Outcome(status_code=response.status_code)
        head = await _read_head(response)
    finally:
        await response.aclose()
    return Outcome(status_code=response.status_code, error=_http_error(response.status_code, head))


async def post(ctx: dict[str, Any], endpoint: WebhookEndpoint, event: Event) -> Outcome:
    """One signed POST of `event` to `endpoint`, within the time limit; never raises for
    what the network or the receiver does."""
    settings: Settings = ctx["settings"]
    body = json.dumps(event_log.payload(event))
    headers = signed_headers(endpoint.secret, str(event.id), body, utcnow())
    try:
        async with asyncio.timeout(settings.webhook_timeout_seconds):
            target = await target_for(settings, endpoint.url)
            client: httpx.AsyncClient | None = ctx.get("http")
            if client is not None:
                return await _send_to_any(client, settings, target, headers, body)
            async with httpx.AsyncClient(trust_env=False) as own:
                return await _send_to_any(own, settings, target, headers, body)
    except UnsafeTarget as exc:
        return Outcome(error=f"not sent: {exc.reason}")
    except TimeoutError:
        return Outcome(error=f"no answer within {settings.webhook_timeout_seconds:g} seconds")
    except httpx.HTTPError as exc:
        detail = _printable(str(exc), ERROR_EXCERPT)
        return Outcome(error=f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__)


async def _order_wait(settings: Settings, message: OutboxMessage, event: Event) -> float | None:
    """Seconds to wait while an older delivery of the same subject to the same endpoint is
    on its way; None if there is none."""
    invitation_id = event.invitation_id  # type: ignore[attr-defined]
    if invitation_id is not None:
        subject = Q(event__invitation_id=invitation_id)
    else:
        subject = Q(event__invitation_id__isnull=True, event__group_id=event.group_id)  # type: ignore[attr-defined]
    # Rows written in one instant are ordered by id, so that one of them goes first.
    older = Q(created_at__lt=message.created_at) | Q(
        created_at=message.created_at, id__lt=message.id
    )
    earlier = OutboxMessage.filter(
        subject,
        older,
        kind=MessageKind.WEBHOOK,
        endpoint_id=message.endpoint_id,  # type: ignore[attr-defined]
        sent_at__isnull=True,
        failed_at__isnull=True,
    )
    if not await earlier.exists():
        return None
    # An older row in back-off is not tried again before its retry is due (its
    # enqueued_at): looking every few seconds meanwhile would only load the database.
    now = utcnow()
    latest = await earlier.filter(enqueued_at__gt=now).order_by("-enqueued_at").first()
    later = (latest.enqueued_at - now).total_seconds() if latest and latest.enqueued_at else 0.0
    return later + settings.webhook_order_wait_seconds


async def _postpone(message: OutboxMessage, seconds: float) -> Retry:
    # Pushing enqueued_at to when the retry is due keeps the relay from taking the
    # deferred job for a lost one.
    await OutboxMessage.filter(id=message.id, sent_at=None).update(
        enqueued_at=utcnow() + timedelta(seconds=seconds)
    )
    return Retry(defer=seconds)


async def deliver_webhook(ctx: dict[str, Any], *, outbox_id: str) -> str:
    """Post the event of WEBHOOK outbox row `outbox_id`; returns what happened, in a word
    or two, or raises `Retry` to be run again later."""
    settings: Settings = ctx["settings"]
    message = await OutboxMessage.get_or_none(id=UUID(outbox_id)).select_related(
        "event", "endpoint"
    )
    if message is None:
        return "missing"
    if message.kind != MessageKind.WEBHOOK:
        raise ValueError(f"outbox {outbox_id} is a {message.kind.value} message, not a webhook")
    if message.sent_at is not None or message.failed_at is not None:
        return "already done"
    endpoint, event = message.endpoint, message.event
    if endpoint is None or event is None:
        await _finish(message, "not sent: a webhook needs an endpoint and an event")
        return "skipped"
    if not endpoint.enabled:
        await _finish(message, "not sent: the endpoint is disabled")
        return "skipped"
    wait = await _order_wait(settings, message, event)
    if wait is not None:
        raise await _postpone(message, wait)
    attempt = message.attempts + 1
    outcome = await post(ctx, endpoint, event)
    try:
        if outcome.ok:
            await _record_success(message, endpoint, attempt, outcome)
            return "sent"
        return await _record_failure(settings, message, endpoint, attempt, outcome)
    except IntegrityError:
        # Deleted while the request was out: its log and outbox rows went with it.
        if not await WebhookEndpoint.exists(id=endpoint.id):
            return "endpoint deleted"
        raise


async def _finish(message: OutboxMessage, reason: str) -> None:
    await OutboxMessage.filter(id=message.id, sent_at=None).update(
        failed_at=utcnow(), last_error=reason
    )
    log.info("outbox %s %s", message.id, reason)


async def _log_row(message: OutboxMessage, attempt: int, outcome: Outcome, now: datetime) -> None:
    await WebhookDelivery.create(
        endpoint_id=message.endpoint_id,  # type: ignore[attr-defined]
        event_id=message.event_id,  # type: ignore[attr-defined]
        attempt=attempt,
        status_code=outcome.status_code,
        error=outcome.error,
        delivered_at=now if outcome.ok else None,
    )


async def _record_success(
    message: OutboxMessage, endpoint: WebhookEndpoint, attempt: int, outcome: Outcome
) -> None:
    now = utcnow()
    async with in_transaction():
        await _log_row(message, attempt, outcome, now)
        await OutboxMessage.filter(id=message.id, sent_at=None).update(
            sent_at=now, attempts=attempt, last_error=None
        )
        await WebhookEndpoint.filter(id=endpoint.id, failing_since__isnull=False).update(
            failing_since=None
        )


async def _record_failure(
    settings: Settings,
    message: OutboxMessage,
    endpoint: WebhookEndpoint,
    attempt: int,
    outcome: Outcome,
) -> str:
    """Log a failed attempt; raise Retry while the schedule lasts, then give the row up."""
    now = utcnow()
    schedule = settings.webhook_retry_schedule
    error = outcome.error or "failed"
    final = attempt > len(schedule)
    defer = 0.0 if final else schedule[attempt - 1]
    async with in_transaction():
        await _log_row(message, attempt, outcome, now)
        if final:
            await OutboxMessage.filter(id=message.id, sent_at=None).update(
                failed_at=now,
                attempts=attempt,
                last_error=f"gave up after {attempt} attempts: {error}",
            )
            await WebhookEndpoint.filter(id=endpoint.id, failing_since__isnull=True).update(
                failing_since=now
            )
        else:
            await OutboxMessage.filter(id=message.id, sent_at=None).update(
                attempts=attempt, last_error=error, enqueued_at=now + timedelta(seconds=defer)
            )
    await _disable_if_failing(settings, endpoint.id, now, error)
    if final:
        log.warning(
            "webhook outbox %s failed for good after %d attempts: %s", message.id, attempt, error
        )
        return "failed"
    log.warning(
        "webhook outbox %s attempt %d failed (%s); retrying in %gs",
        message.id,
        attempt,
        error,
        defer,
    )
    raise Retry(defer=defer)


def _when(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


async def _disable_if_failing(
    settings: Settings, endpoint_id: UUID, now: datetime, error: str
) -> None:
    """Disable the endpoint if its deliveries have failed for good for too long."""
    cutoff = now - timedelta(days=settings.webhook_disable_after_days)
    endpoint = await WebhookEndpoint.get_or_none(
        id=endpoint_id, enabled=True, failing_since__lte=cutoff
    )
    if endpoint is None or endpoint.failing_since is None:
        return
    reason = (
        f"Disabled on {_when(now)}: deliveries have failed since "
        f"{_when(endpoint.failing_since)}. Last error: {error}"
    )[:500]
    if await WebhookEndpoint.filter(id=endpoint_id, enabled=True).update(
        enabled=False, disabled_reason=reason
    ):
        log.warning("webhook endpoint %s disabled: %s", endpoint_id, reason)

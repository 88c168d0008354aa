"""Webhook endpoints: where the host app wants its events posted, managed with API keys.

An endpoint is the host app's own configuration, not any group's, so only API keys (the
host's backend) manage it; a signed-in user is refused whatever their roles. Its signing
secret is shown twice at most: when it is made and when it is rotated. Delivering is the
job's business (`app.jobs.webhooks`); this module says what may be saved and writes the
rows that ask for a delivery.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tortoise.transactions import in_transaction

from app.config import Settings
from app.models import Event, MessageKind, OutboxMessage, WebhookDelivery, WebhookEndpoint
from app.services import events as event_log
from app.services.auth import Principal
from app.services.common import parse_id
from app.services.errors import DomainError, ErrorCode
from app.services.events import EVENT_TYPES
from app.services.pages import PageKey, load_pages, no_filter
from app.services.text import check_text
from app.services.webhook_targets import UnsafeTarget, check_url

# What `standardwebhooks.Webhook` reads: the prefix, then the key in base64.
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
MAX_DESCRIPTION = 500
# Every event is written once per endpoint that wants it: a bound on that fan-out.
MAX_ENDPOINTS = 50
UPDATABLE = frozenset({"events", "description", "enabled"})


def new_secret() -> str:
    """A fresh signing secret, `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def require_api_key(principal: Principal) -> None:
    """FORBIDDEN unless the caller is an API key (anonymous callers never get this far)."""
    if not principal.is_api_key:
        raise DomainError(
            ErrorCode.FORBIDDEN, "Webhook endpoints are managed with an API key, not as a user."
        )


async def _url(settings: Settings, url: str) -> str:
    check_text(url, ["url"])
    try:
        await check_url(settings, url)
    except UnsafeTarget as exc:
        raise DomainError(ErrorCode.INVALID_INPUT, exc.reason, ["url"]) from None
    return url


def _event_types(types: Sequence[str] | None) -> list[str]:
    """The subscribed types, each known, without repeats; empty (or null) means all."""
    for index, name in enumerate(types or ()):
        if name not in EVENT_TYPES:
            raise DomainError(
                ErrorCode.INVALID_INPUT,
                f"Unknown event type; the types are {', '.join(EVENT_TYPES)}.",
                ["events", str(index)],
            )
    return list(dict.fromkeys(types or ()))


def _description(value: str | None) -> str | None:
    if value is None:
        return None
    value = check_text(value, ["description"], max_length=MAX_DESCRIPTION).strip()
    return value or None


async def _endpoint(endpoint_id: str) -> WebhookEndpoint:
    endpoint = await WebhookEndpoint.get_or_none(
        id=parse_id(endpoint_id, ["id"], "webhook endpoint")
    )
    if endpoint is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such webhook endpoint.", ["id"])
    return endpoint


async def create_endpoint(
    settings: Settings,
    principal: Principal,
    *,
    url: str,
    events: Sequence[str] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret, which is never shown again."""
    require_api_key(principal)
    types = _event_types(events)
    text = _description(description)
    url = await _url(settings, url)
    if await WebhookEndpoint.all().count() >= MAX_ENDPOINTS:
        raise DomainError(
            ErrorCode.LIMIT_EXCEEDED, f"At most {MAX_ENDPOINTS} webhook endpoints; delete one."
        )
    secret = new_secret()
    endpoint = await WebhookEndpoint.create(
        url=url, events=types, description=text, enabled=enabled is not False, secret=secret
    )
    return endpoint, secret


async def update_endpoint(
    settings: Settings,
    principal: Principal,
    *,
    endpoint_id: str,
    url: str,
    changes: Mapping[str, Any],
) -> WebhookEndpoint:
    """Change an endpoint: `url` always, the `changes` given (events, description, enabled).

    `enabled: True` on a disabled endpoint turns it back on and forgets why it was off and
    since when it failed; `events: None` subscribes to every type.
    """
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    require_api_key(principal)
    endpoint = await _endpoint(endpoint_id)
    values: dict[str, Any] = {}
    if "events" in changes:
        values["events"] = _event_types(changes["events"])
    if "description" in changes:
        values["description"] = _description(changes["description"])
    if url != endpoint.url:
        # The stored URL passed when it was saved and is checked at every send: checking
        # it again would keep an endpoint whose host stopped resolving from being disabled.
        values["url"] = await _url(settings, url)
    if changes.get("enabled") is False:
        values["enabled"] = False
    async with in_transaction():
        if values:
            await WebhookEndpoint.filter(id=endpoint.id).update(**values)
        if changes.get("enabled") is True:
            await WebhookEndpoint.filter(id=endpoint.id, enabled=False).update(
                enabled=True, disabled_reason=None, failing_since=None
            )
    return await _endpoint(str(endpoint.id))


async def delete_endpoint(principal: Principal, *, endpoint_id: str) -> WebhookEndpoint:
    """Delete an endpoint with its delivery log and undelivered events; returns it as it was."""
    require_api_key(principal)
    endpoint = await _endpoint(endpoint_id)
    if not await WebhookEndpoint.filter(id=endpoint.id).delete():
        raise DomainError(ErrorCode.NOT_FOUND, "No such webhook endpoint.", ["id"])
    return endpoint


async def rotate_secret(principal: Principal, *, endpoint_id: str) -> tuple[WebhookEndpoint, str]:
    """A new signing secret for an endpoint, shown this once; the old one stops at once."""
    require_api_key(principal)
    endpoint = await _endpoint(endpoint_id)
    secret = new_secret()
    if not await WebhookEndpoint.filter(id=endpoint.id).update(secret=secret):
        raise DomainError(ErrorCode.NOT_FOUND, "No such webhook endpoint.", ["id"])
    endpoint.secret = secret
    return endpoint, secret


async def list_endpoints(principal: Principal) -> list[WebhookEndpoint]:
    """Every endpoint, oldest first."""
    require_api_key(principal)
    return await WebhookEndpoint.all().order_by("created_at", "id")


async def redeliver(principal: Principal, *, delivery_id: str) -> WebhookEndpoint:
    """Send the event of a logged delivery to its endpoint again (same `webhook-id`)."""
    require_api_key(principal)
    field = ["deliveryId"]
    delivery = await WebhookDelivery.get_or_none(
        id=parse_id(delivery_id, field, "webhook delivery")
    ).select_related("endpoint")
    if delivery is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such webhook delivery.", field)
    endpoint = delivery.endpoint
    if not endpoint.enabled:
        raise DomainError(
            ErrorCode.INVALID_STATUS, "The endpoint is disabled; enable it first.", field
        )
    async with event_log.transaction():
        await OutboxMessage.create(
            kind=MessageKind.WEBHOOK,
            event_id=delivery.event_id,  # type: ignore[attr-defined]
            endpoint_id=endpoint.id,
        )
        event_log.queued()
    return endpoint


@dataclass(frozen=True)
class DeliveryRecord:
    """A logged delivery attempt and the type of the event it carried."""

    delivery: WebhookDelivery
    event_type: str


async def delivery_logs(keys: Sequence[PageKey]) -> list[list[DeliveryRecord]]:
    """Each endpoint's latest delivery attempts, newest first, batched (for a DataLoader):
    one query for the attempts of every endpoint, one for their events' types."""
    pages = await load_pages(
        WebhookDelivery, parent="endpoint_id", stamp="created_at", keys=keys, where=no_filter
    )
    event_ids = {row.event_id for page in pages for _, row in page.rows}  # type: ignore[attr-defined]
    types = dict(await Event.filter(id__in=list(event_ids)).values_list("id", "type"))
    return [
        [DeliveryRecord(row, types[row.event_id]) for _, row in page.rows]  # type: ignore[attr-defined]
        for page in pages
    ]


async def endpoint_deliveries(
    principal: Principal,
    key: PageKey,
    *,
    logs: Callable[[PageKey], Awaitable[list[DeliveryRecord]]],
) -> list[DeliveryRecord]:
    """An endpoint's latest delivery attempts, for API keys only."""
    require_api_key(principal)
    return await logs(key)

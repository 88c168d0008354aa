"""Webhooks: endpoints managed over GraphQL with API keys, and deliveries to a real receiver.

Events are published as the services publish them; `drain` runs the delivery job for
every webhook outbox row as a worker would, running a row again once its `Retry` defer
has passed (the settings shrink the back-off to fractions of a second).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq import Retry
from standardwebhooks import Webhook, WebhookVerificationError

from app.config import Settings
from app.jobs.webhooks import deliver_webhook
from app.main import create_app
from app.models import (
    DeliveryStatus,
    Event,
    Group,
    Invitation,
    InvitationStatus,
    MessageKind,
    OutboxMessage,
    TargetType,
    WebhookDelivery,
    WebhookEndpoint,
)
from app.services import events, webhooks
from app.services.auth import Principal, authenticate_api_key
from app.services.common import utcnow
from app.services.webhook_targets import non_public_kind
from tests.conftest import GQL, QueryLog
from tests.receiver import Receiver, TLSFiles, make_tls_files

ERRORS = "errors { code field message }"
ENDPOINT = "id url events description enabled disabledReason createdAt"
DELIVERIES = "deliveries { id eventId eventType attempt statusCode error deliveredAt createdAt }"
CREATE = f"""mutation($input: WebhookEndpointInput!) {{ createWebhookEndpoint(input: $input) {{
  endpoint {{ {ENDPOINT} }} secret {ERRORS} }} }}"""
UPDATE = f"""mutation($id: ID!, $input: WebhookEndpointInput!) {{
  updateWebhookEndpoint(id: $id, input: $input) {{ endpoint {{ {ENDPOINT} }} secret {ERRORS} }} }}"""
DELETE = f"""mutation($id: ID!) {{ deleteWebhookEndpoint(id: $id) {{
  endpoint {{ id url }} secret {ERRORS} }} }}"""
ROTATE = f"""mutation($id: ID!) {{ rotateWebhookSecret(id: $id) {{ endpoint {{ id }} secret {ERRORS} }} }}"""
REDELIVER = f"""mutation($id: ID!) {{ redeliverWebhook(deliveryId: $id) {{
  endpoint {{ id }} secret {ERRORS} }} }}"""
LIST = f"{{ webhookEndpoints {{ {ENDPOINT} {DELIVERIES} }} }}"


def webhook_settings(**overrides: Any) -> Settings:
    """Settings for delivery tests: three retries a twentieth of a second apart."""
    base: dict[str, Any] = {
        "database_url": "sqlite://:memory:",
        "redis_url": None,
        "accept_url": "https://app.example.com/signup?invitation={token}",
        "webhook_retry_seconds": "0.05,0.05,0.05",
        "webhook_order_wait_seconds": 0.01,
    }
    return Settings(**{**base, **overrides})


def production(**overrides: Any) -> Settings:
    """Production settings (secrets of their own)."""
    return webhook_settings(
        env="production",
        allow_sqlite=True,
        mail_dir="./outbox",
        secret_key="production-test-secret-key-0123456789",
        jwt_secret="production-test-jwt-secret-0123456789",
        **overrides,
    )


async def drain(
    settings: Settings, *, http: httpx.AsyncClient | None = None, deadline: float = 30.0
) -> list[str]:
    """Run the job for every webhook row neither sent nor failed, oldest first, as a worker
    would: a row that raises `Retry` runs again once its defer has passed. Returns the
    results, in the order they came."""
    ctx: dict[str, Any] = {"settings": settings}
    if http is not None:
        ctx["http"] = http
    loop = asyncio.get_running_loop()
    ids = await (
        OutboxMessage.filter(kind=MessageKind.WEBHOOK, sent_at=None, failed_at=None)
        .order_by("created_at")
        .values_list("id", flat=True)
    )
    queue = [(loop.time(), n, str(i)) for n, i in enumerate(ids)]
    results: list[str] = []
    async with asyncio.timeout(deadline):
        while queue:
            queue.sort()
            due, n, outbox_id = queue.pop(0)
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)  # the job's own back-off, as arq would wait it out
            try:
                results.append(await deliver_webhook(ctx, outbox_id=outbox_id))
            except Retry as retry:
                queue.append((loop.time() + (retry.defer_score or 0) / 1000, n, outbox_id))
    return results


async def attempt(settings: Settings, event: Event, **ctx: Any) -> str:
    """Run the job once for the event's row; 'retry' when it asks to run again."""
    row = await OutboxMessage.get(event_id=event.id)
    try:
        return await deliver_webhook({"settings": settings, **ctx}, outbox_id=str(row.id))
    except Retry:
        return "retry"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A receiver on a free port of 127.0.0.1, over plain http."""
    r = await Receiver().start()
    yield r
    await r.stop()


@pytest.fixture
def tls_files(tmp_path: Path) -> TLSFiles:
    """A certificate for `localhost` and the CA that signed it."""
    return make_tls_files(tmp_path)


@pytest.fixture
async def tls_receiver(tls_files: TLSFiles) -> AsyncIterator[Receiver]:
    """A receiver at https://localhost:PORT with a certificate for `localhost`."""
    r = await Receiver(tls=tls_files).start()
    yield r
    await r.stop()


@pytest.fixture
async def principal(api_key: str) -> Principal:
    """The API key of `api_key`, as the services see it."""
    return Principal(api_key=await authenticate_api_key(api_key))


@pytest.fixture
async def group() -> Group:
    """A group for events to be about."""
    return await Group.create(type="org", external_id="acme", name="Acme")


async def endpoint_for(
    principal: Principal, receiver: Receiver, settings: Settings | None = None, **fields: Any
) -> WebhookEndpoint:
    """An endpoint posting to `receiver`, whose secret the receiver then verifies with."""
    endpoint, secret = await webhooks.create_endpoint(
        settings or webhook_settings(), principal, url=receiver.url, **fields
    )
    receiver.secret = secret
    return endpoint


async def invitation_in(group: Group, email: str) -> Invitation:
    """A pending invitation row (events about an invitation need one)."""
    return await Invitation.create(
        group=group,
        target_type=TargetType.EMAIL,
        email=email,
        email_key=email,
        role="member",
        status=InvitationStatus.PENDING,
        expires_at=utcnow() + timedelta(days=7),
        delivery_status=DeliveryStatus.NOT_SENT,
    )


async def publish(
    group: Group, type: str = "group.domains_updated", invitation: Invitation | None = None
) -> Event:
    """Publish an event as the services do, in a transaction of its own."""
    async with events.transaction():
        return await events.publish(
            type,
            group_id=group.id,
            invitation_id=invitation.id if invitation else None,
            data={"group": events.group_data(group)},
        )


async def attempts_of(endpoint: WebhookEndpoint) -> list[tuple[int, int | None]]:
    """(attempt, status code) of the endpoint's logged deliveries, oldest first."""
    rows = await WebhookDelivery.filter(endpoint_id=endpoint.id).order_by("created_at")
    return [(d.attempt, d.status_code) for d in rows]


# --- delivery -------------------------------------------------------------------------


async def test_a_delivery_is_signed_with_the_standard_headers(
    receiver: Receiver, principal: Principal, group: Group
) -> None:
    endpoint = await endpoint_for(principal, receiver)
    event = await publish(group)

    assert await drain(webhook_settings()) == ["sent"]

    [request] = receiver.requests
    assert request.verified and request.status == 200
    headers = request.headers
    assert headers["webhook-id"] == str(event.id)
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    assert headers["webhook-signature"].startswith("v1,")
    assert headers["content-type"] == "application/json"
    assert headers["host"] == f"127.0.0.1:{receiver.port}"
    stored = await Event.get(id=event.id)
    assert json.loads(request.body) == request.payload == events.payload(stored)
    assert request.payload["type"] == "group.domains_updated"
    assert request.payload["data"]["group"]["externalId"] == "acme"

    row = await OutboxMessage.get(event_id=event.id)
    assert row.sent_at is not None and row.failed_at is None and row.attempts == 1
    [delivery] = await WebhookDelivery.filter(endpoint_id=endpoint.id)
    assert (delivery.attempt, delivery.status_code) == (1, 200)
    assert delivery.error is None
    assert delivery.delivered_at is not None
    # A job that runs again for a row already sent sends nothing.
    assert await attempt(webhook_settings(), event) == "already done"
    assert len(receiver.requests) == 1


async def test_a_500_is_retried_with_the_same_webhook_id(
    gql: GQL, api_key: str, receiver: Receiver, principal: Principal, group: Group
) -> None:
    await endpoint_for(principal, receiver)
    event = await publish(group)
    receiver.answer(500)

    assert await drain(webhook_settings()) == ["sent"]

    assert [r.status for r in receiver.requests] == [500, 200]
    assert [r.headers["webhook-id"] for r in receiver.requests] == [str(event.id)] * 2
    assert all(r.verified for r in receiver.requests)
    data = await gql(LIST, auth=api_key)
    [endpoint] = data["webhookEndpoints"]
    assert [
        (d["attempt"], d["statusCode"], d["error"], d["eventId"], d["eventType"])
        for d in endpoint["deliveries"]
    ] == [
        (2, 200, None, str(event.id), "group.domains_updated"),
        (1, 500, "HTTP 500: answer 500", str(event.id), "group.domains_updated"),
    ]
    assert endpoint["deliveries"][0]["deliveredAt"] is not None
    assert endpoint["deliveries"][1]["deliveredAt"] is None


async def test_a_receiver_down_gets_the_event_once_it_is_back(
    receiver: Receiver, principal: Principal, group: Group
) -> None:
    endpoint = await endpoint_for(principal, receiver)
    await receiver.stop()
    event = await publish(group)

    assert await attempt(webhook_settings(), event) == "retry"
    [failed] = await WebhookDelivery.filter(endpoint_id=endpoint.id)
    assert failed.status_code is None and failed.error is not None
    assert failed.error.startswith("ConnectError")
    row = await OutboxMessage.get(event_id=event.id)
    assert row.attempts == 1 and row.sent_at is None and row.enqueued_at is not None

    await receiver.start()
    assert await drain(webhook_settings()) == ["sent"]
    [request] = receiver.requests
    assert request.verified and request.headers["webhook-id"] == str(event.id)
    assert await attempts_of(endpoint) == [(1, None), (2, 200)]


async def test_events_about_one_invitation_keep_their_order(
    receiver: Receiver, principal: Principal, group: Group
) -> None:
    endpoint = await endpoint_for(principal, receiver)
    first_invitation = await invitation_in(group, "ada@example.com")
    other_invitation = await invitation_in(group, "bob@example.com")
    created = await publish(group, "invitation.created", first_invitation)
    sent = await publish(group, "invitation.sent", first_invitation)
    other = await publish(group, "invitation.created", other_invitation)
    settings = webhook_settings()

    receiver.answer(500)
    assert await attempt(settings, created) == "retry"
    # The next event about the same invitation waits, without an attempt of its own,
    # until after the first one's retry is due…
    assert await attempt(settings, sent) == "retry"
    waiting = await OutboxMessage.get(event_id=sent.id)
    retrying = await OutboxMessage.get(event_id=created.id)
    assert waiting.attempts == 0
    assert waiting.enqueued_at and retrying.enqueued_at
    assert waiting.enqueued_at > retrying.enqueued_at
    # …while an event about another invitation goes at once.
    assert await attempt(settings, other) == "sent"

    assert await drain(settings) == ["sent", "sent"]
    assert [(r.payload["id"], r.status) for r in receiver.requests] == [
        (str(created.id), 500),
        (str(other.id), 200),
        (str(created.id), 200),
        (str(sent.id), 200),
    ]
    sent_log = await WebhookDelivery.filter(endpoint_id=endpoint.id, event_id=sent.id)
    assert [d.attempt for d in sent_log] == [1]


async def test_a_delivery_that_keeps_failing_is_given_up_and_the_endpoint_disabled(
    receiver: Receiver, principal: Principal, group: Group
) -> None:
    endpoint = await endpoint_for(principal, receiver)
    event = await publish(group)
    receiver.answer(500, 500, 500, 500)
    settings = webhook_settings(webhook_disable_after_days=0)

    assert await drain(settings) == ["failed"]

    assert [r.status for r in receiver.requests] == [500] * 4
    row = await OutboxMessage.get(event_id=event.id)
    assert row.failed_at is not None and row.sent_at is None and row.attempts == 4
    assert row.last_error == "gave up after 4 attempts: HTTP 500: answer 500"
    assert await attempts_of(endpoint) == [(1, 500), (2, 500), (3, 500), (4, 500)]
    await endpoint.refresh_from_db()
    assert endpoint.failing_since is not None
    assert not endpoint.enabled
    assert endpoint.disabled_reason is not None
    assert "deliveries have failed since" in endpoint.disabled_reason
    assert "HTTP 500" in endpoint.disabled_reason
    # A disabled endpoint is not even written new events.
    await publish(group)
    assert await OutboxMessage.filter(endpoint_id=endpoint.id).count() == 1


async def test_an_endpoint_failing_for_days_is_disabled_and_a_success_clears_the_clock(
    gql: GQL, api_key: str, receiver: Receiver, principal: Principal, group: Group
) -> None:
    endpoint = await endpoint_for(principal, receiver)
    settings = webhook_settings(webhook_retry_seconds="0.05")
    receiver.answer(500, 500)
    await publish(group)
    assert await drain(settings) == ["failed"]
    await endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.failing_since is not None

    # A success ends the failing spell.
    await publish(group)
    assert await drain(settings) == ["sent"]
    await endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.failing_since is None

    # Failing for good since six days, and failing again: disabled at that failure, and
    # the rest of the event's retries are not sent.
    await WebhookEndpoint.filter(id=endpoint.id).update(failing_since=utcnow() - timedelta(days=6))
    receiver.answer(500)
    await publish(group)
    assert await drain(settings) == ["skipped"]
    await endpoint.refresh_from_db()
    assert not endpoint.enabled
    assert endpoint.disabled_reason is not None
    assert endpoint.disabled_reason.startswith("Disabled on ")
    assert [r.status for r in receiver.requests] == [500, 500, 200, 500]
    row = await OutboxMessage.filter(endpoint_id=endpoint.id).order_by("-created_at").first()
    assert row is not None and row.last_error == "not sent: the endpoint is disabled"

    # `enabled: true` turns it back on and forgets why it was off.
    data = await gql(
        UPDATE,
        {"id": str(endpoint.id), "input": {"url": receiver.url, "enabled": True}},
        auth=api_key,
    )
    assert data["updateWebhookEndpoint"]["endpoint"]["enabled"] is True
    assert data["updateWebhookEndpoint"]["endpoint"]["disabledReason"] is None
    await endpoint.refresh_from_db()
    assert endpoint.failing_since is None


async def test_no_answer_within_the_time_limit_is_a_failed_attempt(
    receiver: Receiver, principal: Principal, group: Group
) -> None:
    endpoint = await endpoint_for(principal, receiver)
    event = await publish(group)
    receiver.hold()
    started = time.monotonic()
    assert await attempt(webhook_settings(webhook_timeout_seconds=0.3), event) == "retry"
    assert time.monotonic() - started < 5
    receiver.release()
    [delivery] = await WebhookDelivery.filter(endpoint_id=endpoint.id)
    assert delivery.status_code is None
    assert delivery.error == "no answer within 0.3 seconds"


async def test_redirects_are_not_followed(
    receiver: Receiver, principal: Principal, group: Group
) -> None:
    endpoint = await endpoint_for(principal, receiver)
    event = await publish(group)
    receiver.answer(302)
    assert await attempt(webhook_settings(), event) == "retry"
    [delivery] = await WebhookDelivery.filter(endpoint_id=endpoint.id)
    assert delivery.status_code == 302
    assert delivery.error is not None and "redirects are not followed" in delivery.error
    assert len(receiver.requests) == 1


async def test_rows_of_disabled_or_deleted_endpoints_are_not_sent(
    receiver: Receiver, principal: Principal, group: Group
) -> None:
    disabled = await endpoint_for(principal, receiver)
    deleted = await endpoint_for(principal, receiver)
    event = await publish(group)
    await WebhookEndpoint.filter(id=disabled.id).update(enabled=False)
    rows = {r.endpoint_id: r for r in await OutboxMessage.filter(event_id=event.id)}  # type: ignore[attr-defined]
    await webhooks.delete_endpoint(principal, endpoint_id=str(deleted.id))

    ctx = {"settings": webhook_settings()}
    assert await deliver_webhook(ctx, outbox_id=str(rows[disabled.id].id)) == "skipped"
    assert await deliver_webhook(ctx, outbox_id=str(rows[deleted.id].id)) == "missing"
    row = await OutboxMessage.get(id=rows[disabled.id].id)
    assert row.failed_at is not None and row.last_error == "not sent: the endpoint is disabled"
    assert receiver.requests == []
    assert await deliver_webhook(ctx, outbox_id=str(row.id)) == "already done"


# --- where webhooks may go ------------------------------------------------------------

REFUSED_IN_PRODUCTION = [
    ("http://hooks.example.com/usher", "url must use https."),
    ("https://127.0.0.1/hook", "127.0.0.1 is a loopback address."),
    ("https://[::1]/hook", "::1 is a loopback address."),
    ("https://10.0.0.1/hook", "10.0.0.1 is a private address."),
    ("https://169.254.169.254/latest/meta-data", "169.254.169.254 is a link-local address."),
    ("https://localhost/hook", "localhost resolves to"),
    ("https://[::ffff:127.0.0.1]/hook", "a loopback address."),
    ("https://0.0.0.0/hook", "an unspecified address."),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED_IN_PRODUCTION)
async def test_production_refuses_private_targets_on_save(
    url: str, reason: str, api_key: str
) -> None:
    async with production_gql() as gql:
        data = await gql(CREATE, {"input": {"url": url}}, auth=api_key)
    payload = data["createWebhookEndpoint"]
    assert payload["endpoint"] is None and payload["secret"] is None
    [error] = payload["errors"]
    assert (error["code"], error["field"]) == ("INVALID_INPUT", ["url"])
    assert reason in error["message"]
    assert await WebhookEndpoint.all().count() == 0


async def test_allow_private_lifts_the_address_rule_but_not_https(api_key: str) -> None:
    async with production_gql(webhook_allow_private=True) as gql:
        for url in ("https://127.0.0.1/hook", "https://[::1]/hook", "https://localhost:8443/x"):
            data = await gql(CREATE, {"input": {"url": url}}, auth=api_key)
            assert data["createWebhookEndpoint"]["errors"] == [], url
        endpoint_id = data["createWebhookEndpoint"]["endpoint"]["id"]
        data = await gql(CREATE, {"input": {"url": "http://127.0.0.1/hook"}}, auth=api_key)
        assert data["createWebhookEndpoint"]["errors"][0]["message"] == "url must use https."

    async with production_gql() as gql:
        # Turned off, an endpoint saved meanwhile can still be changed, e.g. disabled; a
        # new URL must pass the rule.
        same = {"url": "https://localhost:8443/x", "enabled": False}
        data = await gql(UPDATE, {"id": endpoint_id, "input": same}, auth=api_key)
        assert data["updateWebhookEndpoint"]["errors"] == []
        other = {"url": "https://localhost:8444/x"}
        data = await gql(UPDATE, {"id": endpoint_id, "input": other}, auth=api_key)
        assert data["updateWebhookEndpoint"]["errors"][0]["field"] == ["url"]


async def test_the_address_is_checked_again_at_send_time(
    tls_receiver: Receiver, tls_files: TLSFiles, principal: Principal, group: Group
) -> None:
    # Saved while private targets were allowed; then the setting was turned off.
    allowed = production(webhook_allow_private=True)
    endpoint = await endpoint_for(principal, tls_receiver, allowed)
    event = await publish(group)
    async with httpx.AsyncClient(verify=tls_files.client_context(), trust_env=False) as http:
        assert await attempt(production(), event, http=http) == "retry"
        [refused] = await WebhookDelivery.filter(endpoint_id=endpoint.id)
        assert refused.status_code is None
        assert refused.error is not None
        assert refused.error.startswith(
            "not sent: url must not point at a private or local address: localhost resolves to"
        )
        assert refused.error.endswith("a loopback address.")
        assert tls_receiver.requests == [] and tls_receiver.tls_names == []

        # Allowed again: the connection goes to the checked address, while TLS and the
        # Host header still name the host of the URL.
        assert await drain(allowed, http=http) == ["sent"]
    [request] = tls_receiver.requests
    assert request.verified
    assert request.headers["host"] == f"localhost:{tls_receiver.port}"
    assert tls_receiver.tls_names == ["localhost"]


async def test_plain_http_is_refused_at_send_time_in_production(
    receiver: Receiver, principal: Principal, group: Group
) -> None:
    endpoint = await endpoint_for(principal, receiver)  # saved in development
    event = await publish(group)
    for settings in (production(), production(webhook_allow_private=True)):
        assert await attempt(settings, event) == "retry"
    errors = [d.error for d in await WebhookDelivery.filter(endpoint_id=endpoint.id)]
    assert errors == ["not sent: url must use https."] * 2
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("100.64.0.1", "an address not routed on the internet"),
        ("224.0.0.1", "a multicast address"),
        ("fe80::1", "a link-local address"),
        ("fc00::1", "a private address"),
        ("::ffff:10.0.0.1", "a private address"),
        ("64:ff9b::a9fe:a9fe", "a link-local address"),
        ("2002:7f00:1::1", "a loopback address"),
        ("ff02::1", "a multicast address"),
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
        ("::ffff:8.8.8.8", None),
    ],
)
def test_addresses_hidden_in_ipv6_are_judged_by_the_ipv4_they_reach(
    address: str, kind: str | None
) -> None:
    assert non_public_kind(ip_address(address)) == kind


def test_a_malformed_retry_schedule_is_refused() -> None:
    with pytest.raises(ValueError, match="USHER_WEBHOOK_RETRY_SECONDS"):
        Settings(webhook_retry_seconds="5,soon").check()
    with pytest.raises(ValueError, match="USHER_WEBHOOK_RETRY_SECONDS"):
        Settings(webhook_retry_seconds="5,0").check()


# --- GraphQL --------------------------------------------------------------------------


@asynccontextmanager
async def production_gql(**overrides: Any) -> AsyncIterator[GQL]:
    """GraphQL over HTTP to an app in production mode."""
    settings = production(**overrides)
    app = create_app(settings, run_jobs=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://usher.test") as http:
        yield GQL(http, settings)


async def test_an_api_key_manages_endpoints(gql: GQL, api_key: str) -> None:
    data = await gql(
        CREATE,
        {
            "input": {
                "url": "https://hooks.example.com/usher",
                "events": ["invitation.accepted", "membership.created"],
                "description": "CRM sync",
            }
        },
        auth=api_key,
    )
    created = data["createWebhookEndpoint"]
    assert created["errors"] == []
    endpoint = created["endpoint"]
    assert endpoint["url"] == "https://hooks.example.com/usher"
    assert endpoint["events"] == ["invitation.accepted", "membership.created"]
    assert (endpoint["description"], endpoint["enabled"]) == ("CRM sync", True)
    secret = created["secret"]
    assert secret.startswith("whsec_")
    Webhook(secret)  # the format receivers' libraries accept

    # Shown once: the list has no secret, and no field to ask for it.
    listed = await gql(LIST, auth=api_key)
    assert listed["webhookEndpoints"] == [{**endpoint, "deliveries": []}]
    assert secret not in json.dumps(listed)
    body = await gql.raw("{ webhookEndpoints { secret } }", auth=api_key)
    assert "Cannot query field 'secret'" in body["errors"][0]["message"]

    # Fields left out stay; `events: null` means every type.
    data = await gql(
        UPDATE,
        {"id": endpoint["id"], "input": {"url": "https://hooks.example.com/v2"}},
        auth=api_key,
    )
    updated = data["updateWebhookEndpoint"]
    assert updated["secret"] is None
    assert updated["endpoint"] == {**endpoint, "url": "https://hooks.example.com/v2"}
    data = await gql(
        UPDATE,
        {
            "id": endpoint["id"],
            "input": {
                "url": "https://hooks.example.com/v2",
                "events": None,
                "description": None,
                "enabled": False,
            },
        },
        auth=api_key,
    )
    updated = data["updateWebhookEndpoint"]["endpoint"]
    assert (updated["events"], updated["description"], updated["enabled"]) == ([], None, False)
    assert updated["disabledReason"] is None

    data = await gql(DELETE, {"id": endpoint["id"]}, auth=api_key)
    assert data["deleteWebhookEndpoint"]["endpoint"]["id"] == endpoint["id"]
    assert (await gql(LIST, auth=api_key))["webhookEndpoints"] == []
    data = await gql(DELETE, {"id": endpoint["id"]}, auth=api_key)
    assert data["deleteWebhookEndpoint"]["errors"][0]["code"] == "NOT_FOUND"


async def test_users_may_not_manage_endpoints(gql: GQL, api_key: str) -> None:
    user = gql.token("olivia", "olivia@acme.com")
    body = await gql.raw(LIST, auth=user)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    data = await gql(CREATE, {"input": {"url": "https://hooks.example.com/"}}, auth=user)
    assert data["createWebhookEndpoint"]["errors"][0]["code"] == "FORBIDDEN"
    assert data["createWebhookEndpoint"]["secret"] is None

    data = await gql(CREATE, {"input": {"url": "https://hooks.example.com/"}}, auth=api_key)
    endpoint_id = data["createWebhookEndpoint"]["endpoint"]["id"]
    for mutation, variables in [
        (UPDATE, {"id": endpoint_id, "input": {"url": "https://evil.example.com/"}}),
        (ROTATE, {"id": endpoint_id}),
        (DELETE, {"id": endpoint_id}),
        (REDELIVER, {"id": endpoint_id}),
    ]:
        data = await gql(mutation, variables, auth=user)
        [payload] = data.values()
        assert [e["code"] for e in payload["errors"]] == ["FORBIDDEN"]
        assert payload["secret"] is None
    body = await gql.raw(LIST)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    listed = await gql(LIST, auth=api_key)
    assert [e["url"] for e in listed["webhookEndpoints"]] == ["https://hooks.example.com/"]


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"url": "ftp://hooks.example.com/"}, ["url"], "absolute http or https"),
        ({"url": "/hooks"}, ["url"], "absolute http or https"),
        ({"url": "https://user:pw@hooks.example.com/"}, ["url"], "credentials"),
        ({"url": "https://hooks.example.com/a b"}, ["url"], "spaces"),
        ({"url": "https://hooks.example.com/" + "a" * 2048}, ["url"], "2048"),
        ({"url": "https://hooks.example.com/\x00"}, ["url"], "control characters"),
        ({"events": ["invitation.accepted", "invitation.eaten"]}, ["events", "1"], "Unknown"),
        ({"description": "x" * 501}, ["description"], "500"),
        ({"description": "CRM\x07"}, ["description"], "control characters"),
    ],
)
async def test_endpoint_input_is_checked(
    gql: GQL, api_key: str, fields: dict[str, Any], field: list[str], message: str
) -> None:
    data = await gql(
        CREATE, {"input": {"url": "https://hooks.example.com/", **fields}}, auth=api_key
    )
    [error] = data["createWebhookEndpoint"]["errors"]
    assert (error["code"], error["field"]) == ("INVALID_INPUT", field)
    assert message in error["message"]
    assert await WebhookEndpoint.all().count() == 0


async def test_unknown_ids_are_not_found(gql: GQL, api_key: str) -> None:
    for endpoint_id in ("not-an-id", "6f1c1c8e-0000-4000-8000-000000000000"):
        data = await gql(ROTATE, {"id": endpoint_id}, auth=api_key)
        assert data["rotateWebhookSecret"]["errors"] == [
            {"code": "NOT_FOUND", "field": ["id"], "message": "No such webhook endpoint."}
        ]
        data = await gql(REDELIVER, {"id": endpoint_id}, auth=api_key)
        assert data["redeliverWebhook"]["errors"][0]["field"] == ["deliveryId"]


async def test_rotating_the_secret_signs_with_the_new_one_only(
    gql: GQL, api_key: str, receiver: Receiver, group: Group
) -> None:
    data = await gql(CREATE, {"input": {"url": receiver.url}}, auth=api_key)
    endpoint_id = data["createWebhookEndpoint"]["endpoint"]["id"]
    old = receiver.secret = data["createWebhookEndpoint"]["secret"]
    await publish(group)
    assert await drain(webhook_settings()) == ["sent"]

    data = await gql(ROTATE, {"id": endpoint_id}, auth=api_key)
    new = receiver.secret = data["rotateWebhookSecret"]["secret"]
    assert new.startswith("whsec_") and new != old
    await publish(group)
    assert await drain(webhook_settings()) == ["sent"]

    before, after = receiver.requests
    assert before.verified and after.verified
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after.body, after.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(before.body, before.headers)


async def test_redelivery_sends_the_event_again_and_deliveries_list_newest_first(
    gql: GQL, api_key: str, receiver: Receiver, principal: Principal, group: Group
) -> None:
    await endpoint_for(principal, receiver)
    event = await publish(group)
    receiver.answer(500)
    assert await drain(webhook_settings()) == ["sent"]
    [endpoint] = (await gql(LIST, auth=api_key))["webhookEndpoints"]
    oldest = endpoint["deliveries"][-1]
    assert (oldest["attempt"], oldest["statusCode"]) == (1, 500)

    data = await gql(REDELIVER, {"id": oldest["id"]}, auth=api_key)
    assert data["redeliverWebhook"] == {
        "endpoint": {"id": endpoint["id"]},
        "secret": None,
        "errors": [],
    }
    assert await drain(webhook_settings()) == ["sent"]

    assert [r.headers["webhook-id"] for r in receiver.requests] == [str(event.id)] * 3
    assert all(r.verified for r in receiver.requests)
    [endpoint] = (await gql(LIST, auth=api_key))["webhookEndpoints"]
    deliveries = endpoint["deliveries"]
    assert [(d["attempt"], d["statusCode"]) for d in deliveries] == [(1, 200), (2, 200), (1, 500)]
    stamps = [d["createdAt"] for d in deliveries]
    assert stamps == sorted(stamps, reverse=True)
    one = await gql("{ webhookEndpoints { deliveries(first: 1) { id } } }", auth=api_key)
    assert one["webhookEndpoints"][0]["deliveries"] == [{"id": deliveries[0]["id"]}]

    # Nothing is redelivered to a disabled endpoint.
    await WebhookEndpoint.all().update(enabled=False)
    data = await gql(REDELIVER, {"id": oldest["id"]}, auth=api_key)
    assert data["redeliverWebhook"]["errors"][0]["code"] == "INVALID_STATUS"


async def test_deliveries_of_all_endpoints_load_in_one_query(
    gql: GQL,
    api_key: str,
    receiver: Receiver,
    principal: Principal,
    group: Group,
    queries: QueryLog,
) -> None:
    for _ in range(3):
        await endpoint_for(principal, receiver)
    receiver.secret = webhooks.new_secret()  # verifies none of them: answers 401
    await publish(group)
    await publish(group)
    assert await drain(webhook_settings(webhook_retry_seconds="")) == ["failed"] * 6

    queries.statements.clear()
    data = await gql(
        "{ webhookEndpoints { id deliveries(first: 1000) { eventType statusCode } } }",
        auth=api_key,
    )
    endpoints = data["webhookEndpoints"]
    assert len(endpoints) == 3
    assert all([d["statusCode"] for d in e["deliveries"]] == [401, 401] for e in endpoints)
    touching = [s for s in queries.statements if "webhook_deliveries" in s]
    assert len(touching) == 1, touching

    body = await gql.raw("{ webhookEndpoints { deliveries(first: 0) { id } } }", auth=api_key)
    assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


# --- the README -----------------------------------------------------------------------

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_block(language: str, word: str) -> str:
    """The README's one `language` block containing `word`."""
    blocks = re.findall(rf"```{language}\n(.*?)```", README.read_text(), re.S)
    [block] = [b for b in blocks if word in b]
    return str(block)


async def test_the_readme_webhook_examples_work(
    gql: GQL, api_key: str, receiver: Receiver, group: Group
) -> None:
    create = readme_block("graphql", "createWebhookEndpoint(")
    data = await gql(
        create.replace("https://app.example.com/hooks/usher", receiver.url), auth=api_key
    )
    assert data["createWebhookEndpoint"]["errors"] == []
    secret = receiver.secret = data["createWebhookEndpoint"]["secret"]
    await publish(group, "invitation.accepted", await invitation_in(group, "ben@example.com"))
    await publish(group, "invitation.created", await invitation_in(group, "ada@example.com"))
    assert await drain(webhook_settings()) == ["sent"]  # the endpoint wants no `created`

    listed = await gql(readme_block("graphql", "webhookEndpoints {"), auth=api_key)
    [endpoint] = listed["webhookEndpoints"]
    assert [d["eventType"] for d in endpoint["deliveries"]] == ["invitation.accepted"]

    namespace: dict[str, Any] = {}
    exec(readme_block("python", "standardwebhooks").replace("whsec_…", secret), namespace)
    [request] = receiver.requests
    assert namespace["receive"](request.body, request.headers) == 204
    assert (
        namespace["receive"](request.body.replace(b"accepted", b"declined"), request.headers) == 401
    )

"""Webhooks: `webhookEndpoints` and the mutations that manage endpoints (API keys only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry

from app import models
from app.graphql.context import Info
from app.graphql.errors import DomainErrors, UserError
from app.services import webhooks as service
from app.services.pages import MAX_PAGE, PageKey, Window

EndpointIdArg = Annotated[
    strawberry.ID, strawberry.argument(description="The webhook endpoint's id.")
]


@strawberry.type(description="One attempt to post an event to an endpoint.")
class WebhookDelivery:
    id: strawberry.ID = strawberry.field(
        description="The attempt's id; pass it to `redeliverWebhook` to send the event again."
    )
    event_id: strawberry.ID = strawberry.field(
        description="The event's id, sent as `webhook-id`: the same on every attempt."
    )
    event_type: str = strawberry.field(description="The event's type, e.g. `invitation.accepted`.")
    attempt: int = strawberry.field(description="Which attempt this was, from 1.")
    status_code: int | None = strawberry.field(
        description="The receiver's HTTP status; null when no answer came."
    )
    error: str | None = strawberry.field(
        description="What went wrong (timeout, refused address, non-2xx answer); null on success."
    )
    delivered_at: datetime | None = strawberry.field(
        description="When the receiver accepted it (2xx); null if it did not."
    )
    created_at: datetime = strawberry.field(description="When the attempt was made.")

    @classmethod
    def of(cls, record: service.DeliveryRecord) -> WebhookDelivery:
        """The GraphQL view of a logged attempt."""
        m = record.delivery
        return cls(
            id=strawberry.ID(str(m.id)),
            event_id=strawberry.ID(str(m.event_id)),  # type: ignore[attr-defined]
            event_type=record.event_type,
            attempt=m.attempt,
            status_code=m.status_code,
            error=m.error,
            delivered_at=m.delivered_at,
            created_at=m.created_at,
        )


@strawberry.type(
    description="Where Usher posts events, signed with the endpoint's secret (Standard Webhooks)."
)
class WebhookEndpoint:
    model: strawberry.Private[models.WebhookEndpoint]
    id: strawberry.ID = strawberry.field(description="The endpoint's id.")
    url: str = strawberry.field(description="Where events are posted.")
    events: list[str] = strawberry.field(description="Event types posted here; empty: all.")
    description: str | None = strawberry.field(description="A note for people.")
    enabled: bool = strawberry.field(description="False: nothing is posted here.")
    disabled_reason: str | None = strawberry.field(
        description="Why Usher disabled it, and since when deliveries failed; null otherwise."
    )
    created_at: datetime = strawberry.field(description="When it was created.")

    @classmethod
    def of(cls, m: models.WebhookEndpoint) -> WebhookEndpoint:
        """The GraphQL view of a stored endpoint (never its secret)."""
        return cls(
            model=m,
            id=strawberry.ID(str(m.id)),
            url=m.url,
            events=list(m.events or []),
            description=m.description,
            enabled=m.enabled,
            disabled_reason=m.disabled_reason,
            created_at=m.created_at,
        )

    @strawberry.field(
        description="The latest delivery attempts, newest first.", extensions=[DomainErrors()]
    )
    async def deliveries(
        self,
        info: Info,
        first: Annotated[
            int, strawberry.argument(description=f"How many, 1 to {MAX_PAGE} (more are capped).")
        ] = 20,
    ) -> list[WebhookDelivery]:
        ctx = info.context
        key = PageKey(self.model.id, Window.of(min(first, MAX_PAGE), None))
        records = await service.endpoint_deliveries(
            ctx.principal, key, logs=ctx.loaders.webhook_deliveries.load
        )
        return [WebhookDelivery.of(r) for r in records]


@strawberry.input(description="An endpoint's settings.")
class WebhookEndpointInput:
    url: str = strawberry.field(
        description="An absolute URL; in production `https`, on a public address."
    )
    events: list[str] | None = strawberry.field(
        default=strawberry.UNSET,
        description="Event types to post; empty or null: all. Left out on update: unchanged.",
    )
    description: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="A note for people, at most 500 characters. Left out on update: unchanged.",
    )
    enabled: bool | None = strawberry.field(
        default=strawberry.UNSET,
        description="False stops posting; true turns a disabled endpoint back on. "
        "Default true; left out on update: unchanged.",
    )

    def changes(self) -> dict[str, Any]:
        """The optional fields the client gave, by name."""
        return {
            name: value
            for name in service.UPDATABLE
            if (value := getattr(self, name)) is not strawberry.UNSET
        }


@strawberry.type(description="The result of a change to a webhook endpoint.")
class WebhookEndpointPayload:
    endpoint: WebhookEndpoint | None = strawberry.field(
        default=None, description="The endpoint after the change (as it was, when deleted)."
    )
    secret: str | None = strawberry.field(
        default=None,
        description="The signing secret (`whsec_…`), only from create and rotate: shown once.",
    )
    errors: list[UserError] = strawberry.field(
        default_factory=list, description="Problems the user can act on."
    )


@strawberry.type
class WebhookQuery:
    @strawberry.field(description="The webhook endpoints, oldest first (API keys only).")
    async def webhook_endpoints(self, info: Info) -> list[WebhookEndpoint]:
        rows = await service.list_endpoints(info.context.require_auth())
        return [WebhookEndpoint.of(m) for m in rows]


@strawberry.type
class WebhookMutation:
    @strawberry.mutation(
        description="Create an endpoint (API keys only); its signing secret is in the payload, "
        "shown this once."
    )
    async def create_webhook_endpoint(
        self,
        info: Info,
        input: Annotated[
            WebhookEndpointInput, strawberry.argument(description="The new endpoint.")
        ],
    ) -> WebhookEndpointPayload:
        ctx = info.context
        m, secret = await service.create_endpoint(
            ctx.settings, ctx.require_auth(), url=input.url, **input.changes()
        )
        return WebhookEndpointPayload(endpoint=WebhookEndpoint.of(m), secret=secret)

    @strawberry.mutation(description="Change an endpoint; fields left out stay as they are.")
    async def update_webhook_endpoint(
        self,
        info: Info,
        id: EndpointIdArg,
        input: Annotated[WebhookEndpointInput, strawberry.argument(description="The changes.")],
    ) -> WebhookEndpointPayload:
        ctx = info.context
        m = await service.update_endpoint(
            ctx.settings,
            ctx.require_auth(),
            endpoint_id=str(id),
            url=input.url,
            changes=input.changes(),
        )
        return WebhookEndpointPayload(endpoint=WebhookEndpoint.of(m))

    @strawberry.mutation(
        description="Delete an endpoint, its delivery log and the events not yet delivered to it."
    )
    async def delete_webhook_endpoint(
        self, info: Info, id: EndpointIdArg
    ) -> WebhookEndpointPayload:
        m = await service.delete_endpoint(info.context.require_auth(), endpoint_id=str(id))
        return WebhookEndpointPayload(endpoint=WebhookEndpoint.of(m))

    @strawberry.mutation(
        description="Give an endpoint a new signing secret, shown this once; the old one stops "
        "signing at once."
    )
    async def rotate_webhook_secret(self, info: Info, id: EndpointIdArg) -> WebhookEndpointPayload:
        m, secret = await service.rotate_secret(info.context.require_auth(), endpoint_id=str(id))
        return WebhookEndpointPayload(endpoint=WebhookEndpoint.of(m), secret=secret)

    @strawberry.mutation(
        description="Post a delivery's event to its endpoint again, with the same `webhook-id`."
    )
    async def redeliver_webhook(
        self,
        info: Info,
        delivery_id: Annotated[
            strawberry.ID,
            strawberry.argument(description="The id of a delivery from `deliveries`."),
        ],
    ) -> WebhookEndpointPayload:
        m = await service.redeliver(info.context.require_auth(), delivery_id=str(delivery_id))
        return WebhookEndpointPayload(endpoint=WebhookEndpoint.of(m))

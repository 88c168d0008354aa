"""The event feed: what happened, for a host's backend catching up without webhooks."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Annotated, cast

import strawberry
from strawberry.scalars import JSON

from app import models
from app.graphql.args import AfterArg, FirstArg
from app.graphql.context import Info
from app.graphql.types import Connection, connection_of
from app.services import events
from app.services.pages import Window


@strawberry.type(description="Something that happened, as webhooks deliver it.")
class Event:
    id: strawberry.ID = strawberry.field(
        description="The event's id; the `webhook-id` header of its deliveries."
    )
    type: str = strawberry.field(description="What happened, e.g. `invitation.accepted`.")
    timestamp: datetime = strawberry.field(description="When it happened.")
    data: JSON = strawberry.field(
        description="The invitation, its group and the membership, as they were then."
    )

    @classmethod
    def of(cls, m: models.Event) -> Event:
        """The GraphQL view of a stored event."""
        body = events.payload(m)
        return cls(
            id=strawberry.ID(body["id"]),
            type=m.type,
            timestamp=m.created_at,
            data=cast(JSON, m.data),
        )


@strawberry.type
class EventQuery:
    @strawberry.field(
        description="Events oldest first, after a cursor (API keys): a host catches up with "
        "what it missed. An event shows once it is a couple of seconds old, so following "
        "`endCursor` never skips one."
    )
    async def events(
        self,
        info: Info,
        after: AfterArg = None,
        first: FirstArg = 50,
        types: Annotated[
            list[str] | None,
            strawberry.argument(description="Only these types, e.g. `invitation.accepted`."),
        ] = None,
    ) -> Connection[Event]:
        ctx = info.context
        page = await events.feed(
            ctx.settings, ctx.require_auth(), window=Window.of(first, after), types=types
        )
        count = partial(events.feed_count, ctx.settings, types=types)
        return connection_of(page, Event.of, count)

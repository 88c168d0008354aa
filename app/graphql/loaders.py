"""DataLoaders, made per request, so lists cost a constant number of queries.

Each loader wraps a batch function of `app.services`; nested connections (members and
invitations of many groups) are loaded a page per group in one query per level. Lists
outside a connection are cut at their maximum (`LIST_MAXIMUMS`), which the cost of a
document counts on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar
from uuid import UUID

from strawberry.dataloader import DataLoader

from app.graphql.limits import LIST_MAXIMUMS
from app.models import AutojoinDomain, Group, Invitation, InvitationEvent, Membership, User
from app.services import autojoin, groups, invitations, policies, webhooks
from app.services.auth import Principal, users_by_id
from app.services.pages import CountKey, Page, PageKey

MEMBERSHIPS_SHOWN = LIST_MAXIMUMS["Viewer.memberships"]
EVENTS_SHOWN = LIST_MAXIMUMS["Invitation.events"]

K = TypeVar("K")
T = TypeVar("T")


class Loader(DataLoader[K, T]):
    """A DataLoader whose callers each wait on a future of their own.

    When a field fails, graphql-core cancels the fields beside it, and cancelling a task
    cancels the future it waits on. Were that the future the loader hands every caller of
    a key, a field elsewhere in the document waiting on the same key would get a
    CancelledError, which no error handling catches: the request would end in an HTTP 500.
    The price: a batch that every caller gave up on still runs its one query.
    """

    def load(self, key: K) -> Awaitable[T]:
        return asyncio.shield(super().load(key))


async def recent_memberships(user_ids: Sequence[UUID]) -> list[list[Membership]]:
    """Each user's most recent memberships, newest first, at most MEMBERSHIPS_SHOWN."""
    # The service reads them all, oldest first; cut here until it takes a limit.
    return [(await groups.memberships_of(i))[::-1][:MEMBERSHIPS_SHOWN] for i in user_ids]


async def recent_events(invitation_ids: Sequence[UUID]) -> list[list[InvitationEvent]]:
    """Each invitation's most recent events, oldest first, at most EVENTS_SHOWN."""
    # The service reads whole trails; cut here until it takes a limit.
    return [trail[-EVENTS_SHOWN:] for trail in await invitations.events_of(invitation_ids)]


@dataclass
class Loaders:
    """The loaders of one request."""

    principal: Principal = field(default_factory=Principal)
    group: DataLoader[UUID, Group | None] = field(
        default_factory=lambda: Loader(load_fn=groups.groups_by_id)
    )
    user: DataLoader[UUID, User | None] = field(default_factory=lambda: Loader(load_fn=users_by_id))
    events: DataLoader[UUID, list[InvitationEvent]] = field(
        default_factory=lambda: Loader(load_fn=recent_events)
    )
    # By user id: only ever the viewer's, but read once however many aliases ask.
    memberships: DataLoader[UUID, list[Membership]] = field(
        default_factory=lambda: Loader(load_fn=recent_memberships)
    )
    autojoin_domains: DataLoader[UUID, list[AutojoinDomain]] = field(
        default_factory=lambda: Loader(load_fn=autojoin.domains_of)
    )
    member_page: DataLoader[PageKey, Page[Membership]] = field(
        default_factory=lambda: Loader(load_fn=groups.member_pages)
    )
    member_count: DataLoader[CountKey, int] = field(
        default_factory=lambda: Loader(load_fn=groups.member_counts)
    )
    invitation_page: DataLoader[PageKey, Page[Invitation]] = field(
        default_factory=lambda: Loader(load_fn=invitations.invitation_pages)
    )
    invitation_count: DataLoader[CountKey, int] = field(
        default_factory=lambda: Loader(load_fn=invitations.invitation_counts)
    )
    webhook_deliveries: DataLoader[PageKey, list[webhooks.DeliveryRecord]] = field(
        default_factory=lambda: Loader(load_fn=webhooks.delivery_logs)
    )
    viewer_role: DataLoader[UUID, str | None] = field(init=False)

    def __post_init__(self) -> None:
        # Shares what it reads with the policies' checks, through the principal.
        self.viewer_role = Loader(load_fn=partial(policies.roles_in, self.principal))

    async def role_in(self, group_id: UUID) -> str | None:
        """The caller's role in a group: as this request already knows it, else loaded in
        a batch (asked for every invitation of a page, usually of one group)."""
        roles = self.principal.roles
        if group_id in roles:
            return roles[group_id]
        return await self.viewer_role.load(group_id)

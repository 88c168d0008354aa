"""DataLoaders, made per request, so lists cost a constant number of queries.

Each loader wraps a batch function of `app.services`; nested connections (members and
invitations of many groups) are loaded a page per group in one query per level.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from uuid import UUID

from strawberry.dataloader import DataLoader

from app.models import AutojoinDomain, Group, Invitation, InvitationEvent, Membership, User
from app.services import autojoin, groups, invitations, policies
from app.services.auth import users_by_id
from app.services.pages import CountKey, Page, PageKey


@dataclass
class Loaders:
    """The loaders of one request."""

    viewer_id: UUID | None = None
    group: DataLoader[UUID, Group | None] = field(
        default_factory=lambda: DataLoader(load_fn=groups.groups_by_id)
    )
    user: DataLoader[UUID, User | None] = field(
        default_factory=lambda: DataLoader(load_fn=users_by_id)
    )
    events: DataLoader[UUID, list[InvitationEvent]] = field(
        default_factory=lambda: DataLoader(load_fn=invitations.events_of)
    )
    autojoin_domains: DataLoader[UUID, list[AutojoinDomain]] = field(
        default_factory=lambda: DataLoader(load_fn=autojoin.domains_of)
    )
    member_page: DataLoader[PageKey, Page[Membership]] = field(
        default_factory=lambda: DataLoader(load_fn=groups.member_pages)
    )
    member_count: DataLoader[CountKey, int] = field(
        default_factory=lambda: DataLoader(load_fn=groups.member_counts)
    )
    invitation_page: DataLoader[PageKey, Page[Invitation]] = field(
        default_factory=lambda: DataLoader(load_fn=invitations.invitation_pages)
    )
    invitation_count: DataLoader[CountKey, int] = field(
        default_factory=lambda: DataLoader(load_fn=invitations.invitation_counts)
    )
    viewer_role: DataLoader[UUID, str | None] = field(init=False)

    def __post_init__(self) -> None:
        self.viewer_role = DataLoader(load_fn=partial(policies.roles_of, self.viewer_id))

"""DataLoaders, made per request, so lists cost a constant number of queries."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

from strawberry.dataloader import DataLoader

from app.models import AutojoinDomain, Group, InvitationEvent, Membership, User


async def _groups(ids: Sequence[UUID]) -> list[Group | None]:
    rows = {g.id: g for g in await Group.filter(id__in=list(ids))}
    return [rows.get(i) for i in ids]


async def _users(ids: Sequence[UUID]) -> list[User | None]:
    rows = {u.id: u for u in await User.filter(id__in=list(ids))}
    return [rows.get(i) for i in ids]


async def _events(ids: Sequence[UUID]) -> list[list[InvitationEvent]]:
    by_invitation: dict[UUID, list[InvitationEvent]] = defaultdict(list)
    for event in await InvitationEvent.filter(invitation_id__in=list(ids)).order_by("created_at"):
        by_invitation[event.invitation_id].append(event)  # type: ignore[attr-defined]
    return [by_invitation[i] for i in ids]


async def _domains(ids: Sequence[UUID]) -> list[list[str]]:
    by_group: dict[UUID, list[str]] = defaultdict(list)
    for row in await AutojoinDomain.filter(group_id__in=list(ids)).order_by("domain"):
        by_group[row.group_id].append(row.domain)  # type: ignore[attr-defined]
    return [by_group[i] for i in ids]


def _roles_for(user_id: UUID | None) -> DataLoader[UUID, str | None]:
    async def load(ids: Sequence[UUID]) -> list[str | None]:
        if user_id is None:
            return [None] * len(ids)
        rows = await Membership.filter(user_id=user_id, group_id__in=list(ids))
        roles = {m.group_id: m.role for m in rows}  # type: ignore[attr-defined]
        return [roles.get(i) for i in ids]

    return DataLoader(load_fn=load)


@dataclass
class Loaders:
    """The loaders of one request."""

    viewer_id: UUID | None = None
    group: DataLoader[UUID, Group | None] = field(
        default_factory=lambda: DataLoader(load_fn=_groups)
    )
    user: DataLoader[UUID, User | None] = field(default_factory=lambda: DataLoader(load_fn=_users))
    events: DataLoader[UUID, list[InvitationEvent]] = field(
        default_factory=lambda: DataLoader(load_fn=_events)
    )
    autojoin_domains: DataLoader[UUID, list[str]] = field(
        default_factory=lambda: DataLoader(load_fn=_domains)
    )
    viewer_role: DataLoader[UUID, str | None] = field(init=False)

    def __post_init__(self) -> None:
        self.viewer_role = _roles_for(self.viewer_id)

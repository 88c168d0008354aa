"""The one way an invitation's state changes, and everything a change brings with it.

`change()` is a conditional UPDATE whose row count decides (DESIGN.md, principle 3); when
it changes the row, `record()` writes, in the same transaction, the audit entry, the event
for the host app (webhooks and the feed) and the email the change calls for. The relay is
woken after the commit by `events.transaction()`. A new side effect of every change is one
line in `record()`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from tortoise.expressions import Q

from app.models import (
    EventType,
    Group,
    Invitation,
    InvitationEvent,
    InvitationStatus,
    Membership,
    MessageKind,
    User,
)
from app.services import events
from app.services.auth import Principal
from app.services.common import utcnow


async def transition(
    invitation_id: UUID,
    *,
    from_statuses: Sequence[InvitationStatus],
    unexpired: bool = False,
    now: datetime | None = None,
    extra: Q | None = None,
    **fields: Any,
) -> bool:
    """One conditional UPDATE; True if it changed the row (the only test of success)."""
    query = Invitation.filter(id=invitation_id, status__in=list(from_statuses))
    if unexpired:
        query = query.filter(expires_at__gt=now or utcnow())
    if extra is not None:
        query = query.filter(extra)
    return await query.update(**fields) == 1


async def load(invitation_id: UUID) -> Invitation:
    """An invitation with the group and inviter its event and emails show."""
    return await Invitation.get(id=invitation_id).select_related("group", "inviter")


def event_data(
    invitation: Invitation, membership: Membership | None = None, member: User | None = None
) -> dict[str, Any]:
    """What an invitation event tells the host: the invitation, its group, the membership."""
    data: dict[str, Any] = {
        "invitation": events.invitation_data(invitation, invitation.inviter),
        "group": events.group_data(invitation.group),
    }
    if membership is not None:
        data["membership"] = events.membership_data(membership, member)
    return data


async def record(
    invitation: Invitation,
    type: EventType,
    *,
    actor: Principal | None = None,
    detail: dict[str, Any] | None = None,
    mail: MessageKind | None = None,
    membership: Membership | None = None,
    member: User | None = None,
) -> None:
    """Inside the change's transaction: the audit entry, the host's event, the email.

    `invitation` is as the change left it, with `group` and `inviter` loaded (`load()`).
    """
    await InvitationEvent.create(
        invitation_id=invitation.id,
        type=type,
        actor_user=actor.user if actor else None,
        actor_api_key=actor.api_key if actor else None,
        detail=detail,
    )
    await events.publish(
        f"invitation.{type.value}",
        group_id=invitation.group.id,
        invitation_id=invitation.id,
        data=event_data(invitation, membership, member),
    )
    if mail is not None:
        await events.queue_mail(mail, invitation)


async def change(
    invitation_id: UUID,
    *,
    event: EventType,
    from_statuses: Sequence[InvitationStatus],
    actor: Principal | None = None,
    detail: dict[str, Any] | None = None,
    mail: MessageKind | None = None,
    unexpired: bool = False,
    now: datetime | None = None,
    extra: Q | None = None,
    **fields: Any,
) -> Invitation | None:
    """A state change and all it brings, in one transaction; None if the row did not match."""
    async with events.transaction():
        changed = await transition(
            invitation_id,
            from_statuses=from_statuses,
            unexpired=unexpired,
            now=now,
            extra=extra,
            **fields,
        )
        if not changed:
            return None
        invitation = await load(invitation_id)
        await record(invitation, event, actor=actor, detail=detail, mail=mail)
    return invitation


async def record_expired(ids: Sequence[UUID]) -> None:
    """The `expired` entries and events of invitations just flipped to EXPIRED.

    Batched: inside the sweep's transaction the events are written in one insert.
    """
    rows = await Invitation.filter(id__in=list(ids)).select_related("group", "inviter")
    await InvitationEvent.bulk_create(
        [InvitationEvent(invitation_id=row.id, type=EventType.EXPIRED) for row in rows]
    )
    for row in rows:
        await events.publish(
            f"invitation.{EventType.EXPIRED.value}",
            group_id=row.group.id,
            invitation_id=row.id,
            data=event_data(row),
        )


async def membership_event(
    type: str, membership: Membership, *, group: Group, member: User | None
) -> None:
    """`membership.created` or `membership.updated`, for the host app."""
    await events.publish(
        type,
        group_id=group.id,
        data={
            "membership": events.membership_data(membership, member),
            "group": events.group_data(group),
        },
    )

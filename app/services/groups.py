"""Groups and memberships."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from email_validator import EmailNotValidError, validate_email
from tortoise.exceptions import IntegrityError

from app.config import Settings
from app.mail.render import locale_tag, parse_locale
from app.models import Group, JoinMethod, Membership
from app.services import changes as core
from app.services import events
from app.services.auth import Principal
from app.services.errors import DomainError, ErrorCode
from app.services.pages import (
    CountKey,
    Page,
    PageKey,
    PageLoader,
    load_counts,
    load_pages,
    no_filter,
)
from app.services.policies import (
    RoleLookup,
    is_member,
    require_group_manager,
    require_verified_sender,
)
from app.services.text import check_text, is_clean

# The widths of the group's columns: longer text names no group.
TYPE_LENGTH = 64
EXTERNAL_ID_LENGTH = 255
NAME_LENGTH = 255
MAIL_FROM_NAME_LENGTH = 100
REPLY_TO_LENGTH = 320
LOCALE_LENGTH = 16
# What `updateGroup` may change, by model field name.
UPDATABLE = ("name", "mail_from_name", "reply_to", "locale")


def _text(value: str, field: str, max_length: int) -> str:
    value = check_text(value, [field]).strip()
    if not value:
        raise DomainError(ErrorCode.INVALID_INPUT, f"{field} must not be empty.", [field])
    return check_text(value, [field], max_length=max_length)


async def create_group(
    settings: Settings, principal: Principal, *, type: str, external_id: str, name: str
) -> Group:
    """A new group; a user who creates it becomes its owner (the highest role)."""
    require_verified_sender(principal)
    type = _text(type, "type", TYPE_LENGTH)
    external_id = _text(external_id, "externalId", EXTERNAL_ID_LENGTH)
    name = _text(name, "name", NAME_LENGTH)
    try:
        async with events.transaction():
            group = await Group.create(type=type, external_id=external_id, name=name)
            if principal.user is not None:
                membership = await Membership.create(
                    user=principal.user,
                    group=group,
                    role=settings.role_order[0],
                    joined_via=JoinMethod.CREATOR,
                )
                await core.membership_event(
                    "membership.created", membership, group=group, member=principal.user
                )
    except IntegrityError:
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            "A group with this type and externalId already exists.",
            ["externalId"],
        ) from None
    return group


async def update_group(
    settings: Settings,
    principal: Principal,
    *,
    group_type: str,
    group_id: str,
    changes: dict[str, str | None],
) -> Group:
    """Change a group's name and the branding of its emails: the sender's display name,
    a Reply-To address and the default language. A field not in `changes` stays as it is;
    null or "" clears the optional ones. Every value is checked before anything is written.
    """
    group = await find_group(group_type, group_id)
    if group is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such group.", ["groupId"])
    await require_group_manager(settings, principal, group)
    require_verified_sender(principal)
    checked = {name: _checked_setting(name, value) for name, value in changes.items()}
    if checked:
        for name, value in checked.items():
            setattr(group, name, value)
        await group.save(update_fields=list(checked))
    return group


def _checked_setting(name: str, value: str | None) -> str | None:
    field = _camel(name)
    if name == "name":
        return _text(value or "", field, NAME_LENGTH)
    value = check_text(value or "", [field]).strip()
    if not value:
        return None
    if name == "mail_from_name":
        return check_text(value, [field], max_length=MAIL_FROM_NAME_LENGTH)
    if name == "reply_to":
        try:
            address = validate_email(value, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise DomainError(ErrorCode.INVALID_EMAIL, f"replyTo: {exc}", [field]) from None
        return check_text(address, [field], max_length=REPLY_TO_LENGTH)
    return normalize_locale(value, [field])


def normalize_locale(tag: str, field: list[str]) -> str:
    """A known language tag in its BCP 47 form (`de_at` gives `de-AT`), or INVALID_INPUT."""
    check_text(tag, field, max_length=LOCALE_LENGTH)
    locale = parse_locale(tag) if tag.strip() else None
    if locale is None or len(locale_tag(locale)) > LOCALE_LENGTH:
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            f"Unknown language {tag!r}: give a BCP 47 tag such as en, nl or de-AT.",
            field,
        )
    return locale_tag(locale)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


async def find_group(group_type: str, group_id: str) -> Group | None:
    """The group with this type and external id (None for text no group can have)."""
    if not (is_clean(group_type) and is_clean(group_id)):
        return None
    # Tortoise refuses to compare a column with text wider than it (ValidationError).
    if len(group_type) > TYPE_LENGTH or len(group_id) > EXTERNAL_ID_LENGTH:
        return None
    return await Group.get_or_none(type=group_type, external_id=group_id)


async def visible_group(principal: Principal, group_type: str, group_id: str) -> Group | None:
    """The group if the caller may see it: API keys and the group's members."""
    group = await find_group(group_type, group_id)
    if group is None or principal.is_api_key:
        return group
    if principal.user is None:
        return None
    is_member = await Membership.exists(user_id=principal.user.id, group_id=group.id)
    return group if is_member else None


async def groups_by_id(ids: Sequence[UUID]) -> list[Group | None]:
    """Groups by id, in the order asked (for a DataLoader)."""
    rows = {g.id: g for g in await Group.filter(id__in=list(ids))}
    return [rows.get(i) for i in ids]


async def memberships_of(user_id: UUID) -> list[Membership]:
    """A user's memberships, oldest first."""
    return await Membership.filter(user_id=user_id).order_by("joined_at")


async def member_pages(keys: Sequence[PageKey]) -> list[Page[Membership]]:
    """Pages of groups' members, newest first, batched (for a DataLoader)."""
    return await load_pages(
        Membership, parent="group_id", stamp="joined_at", keys=keys, where=no_filter
    )


async def member_counts(keys: Sequence[CountKey]) -> list[int]:
    """How many members each group has, batched (for a DataLoader)."""
    return await load_counts(Membership, parent="group_id", keys=keys, where=no_filter)


async def group_members(
    principal: Principal,
    key: PageKey,
    *,
    pages: PageLoader[Membership],
    role_in: RoleLookup | None = None,
) -> Page[Membership] | None:
    """A page of a group's members, or None for callers who are not members (nor API keys)."""
    if not await is_member(principal, key.parent_id, role_in=role_in):
        return None
    return await pages(key)

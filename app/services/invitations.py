"""Invitations: creating them, reading them, and the one way their state changes."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import email_validator
from email_validator import EmailNotValidError, validate_email
from tortoise.exceptions import IntegrityError

from app.config import Settings, origin_of
from app.models import (
    DeliveryStatus,
    EventType,
    Group,
    Invitation,
    InvitationEvent,
    InvitationStatus,
    Membership,
    MessageKind,
    TargetType,
    User,
)
from app.services import changes, events, quotas, sql
from app.services.auth import Principal
from app.services.common import utcnow
from app.services.errors import DomainError, ErrorCode
from app.services.groups import find_group, normalize_locale
from app.services.pages import (
    CountKey,
    Page,
    PageKey,
    PageLoader,
    Where,
    Window,
    db_value,
    load_pages,
)
from app.services.policies import (
    RoleLookup,
    can_manage_invitation,
    check_grant,
    is_manager,
    require_group_manager,
    require_verified_sender,
)
from app.services.text import check_json, check_text
from app.services.tokens import make_token, read_token

MAX_INVITEES = 100
MIN_DAYS, MAX_DAYS, DEFAULT_DAYS = 1, 90, 7
MAX_MESSAGE = 2000
MAX_SUBJECT = 255
MAX_METADATA_BYTES = 16_384
MAX_PERMISSIONS = 50
MAX_NAME = 255
MAX_RETURN_TO = 2048
# In `invitation_counts`: the row counting PENDING invitations past their expiry.
LAGGING = "lagging"


def effective_status(invitation: Invitation, now: datetime | None = None) -> InvitationStatus:
    """The status as a reader must see it: a PENDING invitation past `expiresAt` is EXPIRED."""
    now = now or utcnow()
    if invitation.status == InvitationStatus.PENDING and invitation.expires_at <= now:
        return InvitationStatus.EXPIRED
    return InvitationStatus(invitation.status)


def status_where(wanted: frozenset[str]) -> Where:
    """SQL matching invitations whose *effective* status is one of `wanted` (empty: all)."""
    if not wanted:
        return Where()
    now = db_value(Invitation, "expires_at", utcnow())
    pending = InvitationStatus.PENDING.value
    parts: list[str] = []
    params: list[object] = []
    for value in sorted(wanted):
        if value == pending:
            parts.append('("status" = ? AND "expires_at" > ?)')
            params += [pending, now]
        elif value == InvitationStatus.EXPIRED.value:
            parts.append('"status" = ? OR ("status" = ? AND "expires_at" <= ?)')
            params += [value, pending, now]
        else:
            parts.append('"status" = ?')
            params.append(value)
    return Where(" OR ".join(f"({p})" for p in parts), tuple(params))


def resolve_expiry(
    now: datetime, expires_in_days: int | None, expires_at: datetime | None
) -> datetime:
    """The expiry from `expiresInDays` (1..90, default 7) or a future `expiresAt` ≤ 90 days."""
    if expires_in_days is not None and expires_at is not None:
        raise DomainError(
            ErrorCode.INVALID_INPUT, "Give expiresInDays or expiresAt, not both.", ["expiresAt"]
        )
    if expires_at is not None:
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        if expires_at <= now:
            raise DomainError(ErrorCode.INVALID_INPUT, "expiresAt is in the past.", ["expiresAt"])
        if expires_at > now + timedelta(days=MAX_DAYS):
            raise DomainError(
                ErrorCode.INVALID_INPUT,
                f"expiresAt is more than {MAX_DAYS} days ahead.",
                ["expiresAt"],
            )
        return expires_at
    days = DEFAULT_DAYS if expires_in_days is None else expires_in_days
    if not MIN_DAYS <= days <= MAX_DAYS:
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            f"expiresInDays must be between {MIN_DAYS} and {MAX_DAYS}.",
            ["expiresInDays"],
        )
    return now + timedelta(days=days)


def accept_test_domains(accepted: bool) -> None:
    """Accept addresses at `.test` (reserved for testing, RFC 6761) or refuse them, as
    email-validator does by default; development accepts them, production never does.
    `.example` and `example.com` are accepted everywhere; `.localhost`, `.local` and
    `.invalid` nowhere (no mail can reach them)."""
    email_validator.TEST_ENVIRONMENT = accepted


def normalize_email(value: str) -> tuple[str, str]:
    """(address as it will be shown, lower-cased key for matching), or INVALID_EMAIL.

    Control characters are INVALID_INPUT, as in every other text field.
    """
    check_text(value, ["email"])
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise DomainError(ErrorCode.INVALID_EMAIL, str(exc), ["email"]) from None
    return result.normalized, result.normalized.lower()


def token_for(settings: Settings, invitation: Invitation) -> str:
    """The current token of an invitation (never logged)."""
    return make_token(settings.secret_keys[0], invitation.id, invitation.token_version)


def invite_url(settings: Settings, invitation: Invitation) -> str:
    """The link that opens an invitation, from `USHER_ACCEPT_URL`."""
    return settings.accept_url.replace("{token}", token_for(settings, invitation))


async def create_invitation(*, metadata: Any, **fields: Any) -> Invitation:
    """Insert an invitation. `metadata` is set after construction, where Tortoise does not
    take a string for encoded JSON (see `JSONValueField`)."""
    invitation = Invitation(**fields)
    invitation.metadata = metadata
    await invitation.save()
    return invitation


def check_payload(
    settings: Settings,
    message: str | None,
    metadata: Any,
    permissions: Sequence[str] | None,
    return_to: str | None,
) -> None:
    """Raise INVALID_INPUT if what an invitation carries is too big or malformed."""
    if message is not None:
        check_text(message, ["message"], prose=True, max_length=MAX_MESSAGE)
    if metadata is not None and len(json.dumps(metadata)) > MAX_METADATA_BYTES:
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            f"metadata must be at most {MAX_METADATA_BYTES} bytes as JSON.",
            ["metadata"],
        )
    check_json(metadata, ["metadata"])
    for index, permission in enumerate(permissions or []):
        check_text(permission, ["permissions", str(index)])
    if permissions is not None and (
        len(permissions) > MAX_PERMISSIONS or any(not p.strip() or len(p) > 64 for p in permissions)
    ):
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            f"permissions: at most {MAX_PERMISSIONS} names of 1 to 64 characters.",
            ["permissions"],
        )
    if return_to is not None:
        check_return_to(settings, return_to)


def check_email_options(locale: str | None, subject: str | None) -> tuple[str | None, str | None]:
    """An invitation's email language in its BCP 47 form and its subject (one line, at
    most MAX_SUBJECT characters; blank is none), or INVALID_INPUT."""
    if locale is not None:
        locale = normalize_locale(locale, ["locale"]) if locale.strip() else None
    if subject is not None:
        check_text(subject, ["subject"], max_length=MAX_SUBJECT)
        subject = subject.strip() or None
    return locale, subject


def check_return_to(settings: Settings, value: str) -> None:
    """INVALID_INPUT unless `value` is a path on the app or an https URL on an allowed origin.

    The app sends the user there after accepting: anything else would let whoever writes
    the invitation send its invitee to a page of their choosing, with the app's blessing.
    """
    field = ["returnTo"]
    check_text(value, field, max_length=MAX_RETURN_TO)
    if _is_app_path(value) or _is_allowed_url(settings, value):
        return
    allowed = ", ".join(sorted(settings.allowed_return_origins)) or "none"
    raise DomainError(
        ErrorCode.INVALID_INPUT,
        f"returnTo must be a path on the app (/…) or an https URL on an allowed origin "
        f"({allowed}).",
        field,
    )


def _is_app_path(value: str) -> bool:
    # Browsers read `//host` and `/\host` as another host, so neither is a path.
    return value.startswith("/") and not value.startswith("//") and "\\" not in value


def _is_allowed_url(settings: Settings, value: str) -> bool:
    # A backslash is a slash to browsers but not to urlsplit; userinfo (`https://app@evil`)
    # makes a URL look like it is on a host it is not on: both are refused.
    if "\\" in value or not value.lower().startswith("https://"):
        return False
    origin = origin_of(value)
    return origin is not None and origin in settings.allowed_return_origins


def check_names(first_name: str | None, last_name: str | None) -> None:
    """Raise INVALID_INPUT if an invitee's first or last name is too long or malformed."""
    for field, value in (("firstName", first_name), ("lastName", last_name)):
        if value is not None:
            check_text(value, [field], max_length=MAX_NAME)


@dataclass(frozen=True)
class InvitedBy:
    """The user an API key invites on behalf of: the inviter in emails, previews and
    acceptance notices."""

    external_id: str
    email: str | None = None
    name: str | None = None

    def checked(self, principal: Principal) -> InvitedBy:
        """The same, normalized; FORBIDDEN for a user (only the host app's backend may name
        another inviter), INVALID_INPUT or INVALID_EMAIL on the field at fault."""
        field = ["invitedBy"]
        if not principal.is_api_key:
            raise DomainError(
                ErrorCode.FORBIDDEN, "Only an API key may invite on behalf of a user.", field
            )
        external_id = check_text(self.external_id, [*field, "externalId"], max_length=255)
        if not external_id.strip():
            raise DomainError(
                ErrorCode.INVALID_INPUT, "externalId cannot be empty.", [*field, "externalId"]
            )
        email = None
        if self.email is not None and self.email.strip():
            try:
                email = normalize_email(self.email)[0]
            except DomainError as error:
                raise error.at(*field) from None
        name = None
        if self.name is not None and self.name.strip():
            name = check_text(self.name, [*field, "name"], max_length=MAX_NAME).strip()
        return InvitedBy(external_id, email, name)

    async def user(self) -> User:
        """The user, made on first sight; the address and name given replace the stored
        ones. The host app's backend vouches for the address, as a verified JWT would."""
        given: dict[str, Any] = {"email": self.email, "email_verified": True} if self.email else {}
        if self.name:
            given["name"] = self.name
        user, created = await User.get_or_create(external_id=self.external_id, defaults=given)
        if not created and any(getattr(user, k) != v for k, v in given.items()):
            user.update_from_dict(given)
            await user.save(update_fields=list(given))
        return user


@dataclass
class InviteeSpec:
    """One person to invite."""

    email: str
    first_name: str | None = None
    last_name: str | None = None
    role: str | None = None


async def manageable_group(
    settings: Settings,
    principal: Principal,
    group_type: str,
    group_id: str,
    *,
    reading: bool = False,
) -> Group:
    """The named group if the caller may manage it; NOT_FOUND or FORBIDDEN otherwise.

    Unless only `reading`, a user must also have a verified email (EMAIL_NOT_VERIFIED),
    checked after the group so that the answer for others' groups stays NOT_FOUND.
    """
    group = await find_group(group_type, group_id)
    if group is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such group.", ["groupId"])
    await require_group_manager(settings, principal, group)
    if not reading:
        require_verified_sender(principal)
    return group


async def invite(
    settings: Settings,
    principal: Principal,
    *,
    group_type: str,
    group_id: str,
    invitees: Sequence[InviteeSpec],
    role: str | None = None,
    permissions: Sequence[str] | None = None,
    message: str | None = None,
    expires_in_days: int | None = None,
    expires_at: datetime | None = None,
    send_email: bool = True,
    draft: bool = False,
    metadata: Any = None,
    return_to: str | None = None,
    locale: str | None = None,
    subject: str | None = None,
    invited_by: InvitedBy | None = None,
) -> tuple[list[Invitation], list[DomainError]]:
    """Invite people by email. Whole-request problems raise; per-invitee ones are returned.

    Set-based: a fixed number of statements whatever the number of invitees, the writes in
    one transaction (see `_create`).
    """
    now = utcnow()
    group = await manageable_group(settings, principal, group_type, group_id)
    if not 1 <= len(invitees) <= MAX_INVITEES:
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            f"Invite between 1 and {MAX_INVITEES} people at a time.",
            ["invitees"],
        )
    expiry = resolve_expiry(now, expires_in_days, expires_at)
    check_payload(settings, message, metadata, permissions, return_to)
    locale, subject = check_email_options(locale, subject)
    if invited_by is not None:
        invited_by = invited_by.checked(principal)
    default_role = role or settings.role_order[-1]
    await check_grant(settings, principal, group.id, default_role, ["role"])

    errors: dict[int, DomainError] = {}
    planned = await _plan(settings, principal, group, invitees, default_role, errors)
    members = await members_among(group.id, [p.key for p in planned])
    for p in planned:
        if p.key in members:
            errors[p.index] = DomainError(
                ErrorCode.ALREADY_MEMBER, f"{p.email} is already a member.", ["email"]
            )
    terms = _Terms(
        group=group,
        principal=principal,
        permissions=list(permissions or []),
        message=message,
        metadata=metadata,
        return_to=return_to,
        locale=locale,
        subject=subject,
        invited_by=invited_by,
        expires_at=expiry,
        send_email=send_email,
        draft=draft,
    )
    fresh = [p for p in planned if p.key not in members]
    created = await _create(settings, terms, fresh, errors, now=now) if fresh else []
    ordered = [errors[i].at("invitees", str(i)) for i in sorted(errors)]
    return created, ordered


@dataclass(frozen=True)
class _Planned:
    """An invitee whose input is valid: where it was, its address and its role."""

    index: int
    spec: InviteeSpec
    email: str
    key: str
    role: str


@dataclass(frozen=True)
class _Terms:
    """What every invitation of one `invite` shares."""

    group: Group
    principal: Principal
    permissions: list[str]
    message: str | None
    metadata: Any
    return_to: str | None
    locale: str | None
    subject: str | None
    invited_by: InvitedBy | None
    expires_at: datetime
    send_email: bool
    draft: bool


async def _plan(
    settings: Settings,
    principal: Principal,
    group: Group,
    invitees: Sequence[InviteeSpec],
    role: str,
    errors: dict[int, DomainError],
) -> list[_Planned]:
    """The invitees whose input is valid; the others' errors go into `errors` by index."""
    planned: list[_Planned] = []
    seen: set[str] = set()
    grants: dict[str, DomainError | None] = {role: None}
    for index, spec in enumerate(invitees):
        try:
            email, key = normalize_email(spec.email)
            check_names(spec.first_name, spec.last_name)
            if key in seen:
                raise DomainError(ErrorCode.ALREADY_INVITED, f"{email} appears twice.", ["email"])
            seen.add(key)
            wanted = spec.role or role
            if wanted not in grants:  # one check per distinct role, not per invitee
                try:
                    await check_grant(settings, principal, group.id, wanted, ["role"])
                    grants[wanted] = None
                except DomainError as error:
                    grants[wanted] = error
            if (refused := grants[wanted]) is not None:
                raise refused
        except DomainError as error:
            errors[index] = error
        else:
            planned.append(_Planned(index, spec, email, key, wanted))
    return planned


async def members_among(group_id: UUID, keys: Sequence[str]) -> set[str]:
    """Which of the addresses `keys` belong to members of the group, in one query.

    Addresses compare as `email__iexact` does, UPPER() on both sides, in the database.
    Only an address the member's identity provider verified counts: anyone may claim an
    address in a JWT, and a claim must not keep its owner from being invited.
    """
    if not keys:
        return set()
    rows = await sql.fetch(
        Membership,
        'SELECT DISTINCT v."column1" AS "key" FROM "memberships" AS m '
        'JOIN "users" AS u ON u."id" = m."user_id" '
        f"JOIN (VALUES {', '.join(['(CAST(? AS TEXT))'] * len(keys))}) AS v "
        'ON UPPER(u."email") = UPPER(v."column1") '
        'WHERE m."group_id" = ? AND u."email_verified" = ?',
        [*keys, sql.param(Membership, "group_id", group_id), True],
    )
    return {str(row["key"]) for row in rows}


async def _create(
    settings: Settings,
    terms: _Terms,
    fresh: Sequence[_Planned],
    errors: dict[int, DomainError],
    *,
    now: datetime,
) -> list[Invitation]:
    """In one transaction: expire the addresses' overdue invitations, hold the group, see
    which addresses are invited already, take the quotas for the rest, and insert them
    with their events and emails. Refusals go into `errors`."""
    group = terms.group
    keys = [p.key for p in fresh]
    async with events.transaction():
        # From here on the group is held: other invites into it wait for this one to end.
        await quotas.hold_group(group.id)
        await expire_overdue(now=now, group_id=group.id, open_keys=keys)
        open_keys = await _open_among(group.id, keys)
        todo: list[_Planned] = []
        for p in fresh:
            if p.key in open_keys:
                errors[p.index] = _already_invited(p.email)
            else:
                todo.append(p)
        expiring = None if terms.draft else terms.expires_at
        slots = await quotas.open_slots(settings, group.id, len(todo), expiring_at=expiring)
        rate = await quotas.take_invitations(settings, terms.principal, group.id, slots.granted)
        granted = rate.granted
        # As if one at a time: the open slots are checked first, then the inviter's and
        # the group's quotas; whichever stopped the batch refuses all that are left.
        refusal = slots.refusal if granted == slots.granted else rate.refusal
        if refusal is not None:
            errors.update((p.index, refusal) for p in todo[granted:])
        return await _insert(terms, todo[:granted], errors)


async def _open_among(group_id: UUID, keys: Sequence[str]) -> set[str]:
    """Which of the addresses `keys` have an open invitation in the group."""
    among, params = sql.text_in(Invitation, "open_key", keys)
    rows = await sql.fetch(
        Invitation,
        f'SELECT "open_key" FROM "invitations" WHERE "group_id" = ? AND {among}',
        [sql.param(Invitation, "group_id", group_id), *params],
    )
    return {str(row["open_key"]) for row in rows}


def _already_invited(email: str) -> DomainError:
    return DomainError(
        ErrorCode.ALREADY_INVITED, f"{email} already has an open invitation.", ["email"]
    )


async def _insert(
    terms: _Terms, todo: Sequence[_Planned], errors: dict[int, DomainError]
) -> list[Invitation]:
    """The invitations, their `created` entries, events and emails: one insert per table.

    The group is held, so no other invite opens one of these addresses meanwhile; should
    anything else have (the unique index on (group, open_key) says so), each invitee is
    inserted on its own and those that collide are ALREADY_INVITED.
    """
    inviter = await terms.invited_by.user() if terms.invited_by else terms.principal.user
    rows = [_invitation(terms, p, inviter) for p in todo]
    try:
        async with events.transaction():  # a savepoint
            await _write(terms, rows)
        return rows
    except IntegrityError:
        pass
    written: list[Invitation] = []
    for p, row in zip(todo, rows, strict=True):
        try:
            async with events.transaction():
                await _write(terms, [row])
        except IntegrityError:
            errors[p.index] = _already_invited(p.email)
        else:
            written.append(row)
    return written


def _invitation(terms: _Terms, p: _Planned, inviter: User | None) -> Invitation:
    if terms.draft:
        status, delivery = InvitationStatus.DRAFT, DeliveryStatus.NOT_SENT
    else:
        status = InvitationStatus.PENDING
        delivery = DeliveryStatus.QUEUED if terms.send_email else DeliveryStatus.DISABLED
    invitation = Invitation(
        group=terms.group,
        target_type=TargetType.EMAIL,
        email=p.email,
        email_key=p.key,
        open_key=p.key,
        first_name=p.spec.first_name,
        last_name=p.spec.last_name,
        role=p.role,
        permissions=terms.permissions,
        message=terms.message,
        return_to=terms.return_to,
        locale=terms.locale,
        subject=terms.subject,
        status=status,
        expires_at=terms.expires_at,
        inviter=inviter,
        inviter_api_key=terms.principal.api_key,
        send_email=terms.send_email,
        delivery_status=delivery,
    )
    # Set after construction, where Tortoise does not take a string for encoded JSON.
    invitation.metadata = terms.metadata
    return invitation


async def _write(terms: _Terms, rows: Sequence[Invitation]) -> None:
    await Invitation.bulk_create(rows)
    queued = [r for r in rows if r.delivery_status == DeliveryStatus.QUEUED]
    await changes.record_many(rows, EventType.CREATED, actor=terms.principal)
    if queued:
        await events.queue_mails(MessageKind.INVITATION, queued)


async def expire_overdue(
    *,
    now: datetime,
    limit: int | None = None,
    invitation_id: UUID | None = None,
    group_id: UUID | None = None,
    open_keys: Sequence[str] | None = None,
) -> int:
    """Make stored state catch up with the clock: PENDING past `expiresAt` becomes EXPIRED.

    All overdue invitations, or those of one id, or of some addresses in one group; at
    most `limit` (a batch of the sweep). Set-based, one statement on PostgreSQL
    (`changes.expire`); records an `expired` event per row it flipped. Returns how many
    it flipped.
    """
    where: list[str] = []
    params: list[Any] = []
    if invitation_id is not None:
        where.append('"id" = ?')
        params.append(sql.param(Invitation, "id", invitation_id))
    if group_id is not None:
        where.append('"group_id" = ?')
        params.append(sql.param(Invitation, "group_id", group_id))
    if open_keys is not None:
        if not open_keys:
            return 0
        among, among_params = sql.text_in(Invitation, "open_key", open_keys)
        where.append(among)
        params += among_params
    return await changes.expire(" AND ".join(where), params, now=now, limit=limit)


async def events_of(invitation_ids: Sequence[UUID]) -> list[list[InvitationEvent]]:
    """Each invitation's audit trail, oldest first, in one query (for a DataLoader)."""
    by_invitation: dict[UUID, list[InvitationEvent]] = defaultdict(list)
    rows = InvitationEvent.filter(invitation_id__in=list(invitation_ids)).order_by("created_at")
    for event in await rows:
        by_invitation[event.invitation_id].append(event)  # type: ignore[attr-defined]
    return [by_invitation[i] for i in invitation_ids]


async def get_invitation(
    settings: Settings, principal: Principal, invitation_id: str
) -> Invitation | None:
    """The invitation if the caller may see it: its managers and its invitee."""
    try:
        uid = UUID(invitation_id)
    except ValueError:
        return None
    invitation = await Invitation.get_or_none(id=uid)
    if invitation is None:
        return None
    if await can_manage_invitation(settings, principal, invitation):
        return invitation
    email = principal.verified_email
    if email is not None and invitation.email_key == email:
        return invitation
    return None


async def by_token(settings: Settings, token: str) -> Invitation | None:
    """The invitation a genuine, current token opens; None for any other token."""
    read = read_token(settings.secret_keys, token)
    if read is None:
        return None
    invitation_id, version = read
    return await Invitation.get_or_none(id=invitation_id, token_version=version)


async def open_invitations(
    principal: Principal, *, target_type: TargetType, target_value: str
) -> list[Invitation]:
    """PENDING, unexpired invitations for an email (its verified owner or an API key)."""
    if target_type != TargetType.EMAIL:
        raise DomainError(
            ErrorCode.INVALID_INPUT, "Only EMAIL targets can be listed.", ["targetType"]
        )
    _, key = normalize_email(target_value)
    if not principal.is_api_key and principal.verified_email != key:
        raise DomainError(
            ErrorCode.FORBIDDEN,
            "Only the verified owner of an address, or an API key, may list its invitations.",
            ["targetValue"],
        )
    return await Invitation.filter(
        email_key=key, status=InvitationStatus.PENDING, expires_at__gt=utcnow()
    ).order_by("-created_at")


async def invitation_pages(keys: Sequence[PageKey]) -> list[Page[Invitation]]:
    """Pages of groups' invitations, newest first, batched (for a DataLoader)."""
    return await load_pages(
        Invitation, parent="group_id", stamp="created_at", keys=keys, where=status_where
    )


async def invitation_counts(keys: Sequence[CountKey]) -> list[int]:
    """How many invitations each key matches, batched (for a DataLoader), in one statement.

    Reads the counts kept by stored status (`InvitationCount`, kept by triggers), so the
    cost does not grow with a group's invitations. Filters go by *effective* status: the
    PENDING rows past their expiry that the sweep has not reached yet are counted apart,
    from the (group, status, expires_at) index, and moved from PENDING to EXPIRED.
    """
    ids = list(dict.fromkeys(key.parent_id for key in keys))
    if not ids:
        return []
    pending, expired = InvitationStatus.PENDING.value, InvitationStatus.EXPIRED.value
    condition = f'"group_id" IN ({sql.marks(len(ids))})'
    params = [sql.param(Invitation, "group_id", i) for i in ids]
    statement = f'SELECT "group_id", "status", "n" FROM "invitation_counts" WHERE {condition}'
    if any((pending in key.filter) != (expired in key.filter) for key in keys):
        statement += (
            f' UNION ALL SELECT "group_id", \'{LAGGING}\', COUNT(*) FROM "invitations"'
            f' WHERE {condition} AND "status" = ? AND "expires_at" <= ? GROUP BY "group_id"'
        )
        params += [*params, pending, sql.param(Invitation, "expires_at", utcnow())]
    rows = await sql.fetch(Invitation, statement, params)
    kept: dict[str, dict[str, int]] = defaultdict(dict)
    for row in rows:
        kept[str(row["group_id"])][row["status"]] = int(row["n"])
    totals = []
    for key in keys:
        by_status = kept[str(key.parent_id)]
        if not key.filter:
            totals.append(sum(n for status, n in by_status.items() if status != LAGGING))
            continue
        total = sum(by_status.get(status, 0) for status in key.filter)
        lagging = by_status.get(LAGGING, 0)
        if pending in key.filter and expired not in key.filter:
            total -= lagging
        elif expired in key.filter and pending not in key.filter:
            total += lagging
        totals.append(total)
    return totals


async def group_invitations(
    settings: Settings,
    principal: Principal,
    key: PageKey,
    *,
    pages: PageLoader[Invitation],
    role_in: RoleLookup | None = None,
) -> Page[Invitation] | None:
    """A page of a group's invitations, or None for callers who may not manage them."""
    if not await is_manager(settings, principal, key.parent_id, role_in=role_in):
        return None
    return await pages(key)


async def invitations_by_group(
    settings: Settings,
    principal: Principal,
    *,
    group_type: str,
    group_id: str,
    statuses: Sequence[InvitationStatus] | None,
    window: Window,
    pages: PageLoader[Invitation],
) -> tuple[PageKey, Page[Invitation]]:
    """`invitationsByGroup`: a page of the named group's invitations, and its key."""
    group = await manageable_group(settings, principal, group_type, group_id, reading=True)
    key = PageKey(group.id, window, frozenset(statuses or ()))
    return key, await pages(key)

"""The emails a group brands: its own templates, their language, and the email itself.

One function, `compose_email`, turns an invitation and a kind of email into what is sent:
the delivery job sends it and `emailPreview` shows it, so a preview is the email.

Which template: the group's for the language, the group's for any language (locale ""),
the built-in one for the language, the built-in one (English). The language is the
invitation's `locale`, else the group's, else English; a regional tag falls back to its
language (`de-AT`, then `de`). Dates are written in the language of the template chosen,
so an English text never carries a Dutch date. The acceptance notice goes to the inviter
and follows the group's language only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID

from jinja2 import TemplateError, TemplateSyntaxError
from jinja2.exceptions import SecurityError, UndefinedError
from tortoise.exceptions import IntegrityError

from app.config import Settings
from app.mail.render import (
    DEFAULT_LANGUAGE,
    Rendered,
    Source,
    UnsafeTemplate,
    builtin_language,
    candidates,
    check_source,
    format_moment,
    parse_locale,
    render,
    render_part,
    render_source,
)
from app.models import EmailKind, EmailTemplate, Group, Invitation, InvitationUse, User
from app.services.auth import Principal
from app.services.common import shown_name
from app.services.errors import DomainError, ErrorCode
from app.services.groups import normalize_locale
from app.services.invitations import invite_url, manageable_group
from app.services.policies import can_manage_invitation
from app.services.text import check_text

# Emails that carry the invitation's link: to the invitee, in the invitation's language,
# under its `subject` when it has one.
LINK_KINDS = (EmailKind.INVITATION, EmailKind.RESEND, EmailKind.REMINDER)
# Size limits of a group's template, in characters (the subject's is its column's).
MAX_SUBJECT = 255
MAX_TEXT = 20_000
MAX_HTML = 100_000
SAMPLE_URL = "https://app.example.com/accept?token=inv_sample"


@dataclass(frozen=True)
class Email:
    """An email as it will be sent: its parts, and the group's sender name and reply-to."""

    rendered: Rendered
    sender_name: str | None
    reply_to: str | None


# The group's own templates -------------------------------------------------------------


async def set_email_template(
    settings: Settings,
    principal: Principal,
    *,
    group_type: str,
    group_id: str,
    kind: EmailKind,
    locale: str | None,
    subject: str | None,
    html: str | None,
    text: str | None,
) -> Group:
    """Save a group's template for `kind` in `locale` ("" or None: any language), or
    remove it when `subject`, `html` and `text` are all null or empty.

    The template is checked first: its syntax, what it uses (`check_source`), and a render
    against sample data with and without the optional facts (no undefined names, no
    attribute the sandbox refuses, a subject that is not empty, and for emails that carry
    the link, the link in both parts). Any fault is INVALID_INPUT on its field.
    """
    group = await manageable_group(settings, principal, group_type, group_id)
    tag = normalize_locale(locale, ["locale"]) if locale else ""
    parts = {"subject": subject or "", "html": html or "", "text": text or ""}
    if not any(parts.values()):
        await EmailTemplate.filter(group_id=group.id, kind=kind, locale=tag).delete()
        return group
    source = _checked(kind, Source(**parts))
    updated = await EmailTemplate.filter(group_id=group.id, kind=kind, locale=tag).update(
        subject=source.subject, html=source.html, text=source.text
    )
    if not updated:
        try:
            await EmailTemplate.create(
                group=group,
                kind=kind,
                locale=tag,
                subject=source.subject,
                html=source.html,
                text=source.text,
            )
        except IntegrityError:
            # Created by a concurrent save, meanwhile: the last one wins, as with updates.
            await EmailTemplate.filter(group_id=group.id, kind=kind, locale=tag).update(
                subject=source.subject, html=source.html, text=source.text
            )
    return group


def _checked(kind: EmailKind, source: Source) -> Source:
    limits = {"subject": MAX_SUBJECT, "text": MAX_TEXT, "html": MAX_HTML}
    for field, limit in limits.items():
        value = getattr(source, field)
        if not value.strip():
            raise DomainError(
                ErrorCode.INVALID_INPUT,
                f"{field} is empty: give subject, html and text, or none of them to remove "
                "the template.",
                [field],
            )
        check_text(value, [field], prose=field != "subject", max_length=limit)
        _check_syntax(field, value)
    for sample in _samples(kind):
        parts = {field: _test_render(field, source, sample) for field in limits}
        if not parts["subject"].strip():
            raise DomainError(
                ErrorCode.INVALID_INPUT, "subject renders empty with the sample data.", ["subject"]
            )
        if kind in LINK_KINDS:
            for field in ("html", "text"):
                if SAMPLE_URL not in parts[field]:
                    raise DomainError(
                        ErrorCode.INVALID_INPUT,
                        f"{field} must show the link, {{{{ accept_url }}}}, whatever the "
                        "invitation holds.",
                        [field],
                    )
    return source


def _check_syntax(field: str, value: str) -> None:
    try:
        check_source(value, html=field == "html")
    except TemplateSyntaxError as exc:
        raise DomainError(
            ErrorCode.INVALID_INPUT, f"{field}, line {exc.lineno}: {exc.message}", [field]
        ) from None
    except UnsafeTemplate as exc:
        raise DomainError(
            ErrorCode.INVALID_INPUT, f"{field}, line {exc.lineno}: {exc.message}.", [field]
        ) from None
    except RecursionError:
        raise DomainError(
            ErrorCode.INVALID_INPUT, f"{field} is nested too deeply.", [field]
        ) from None


def _test_render(field: str, source: Source, sample: dict[str, Any]) -> str:
    try:
        return render_part(getattr(source, field), sample, html=field == "html")
    except SecurityError as exc:
        reason = f"reads what templates may not ({exc})"
    except UndefinedError as exc:
        names = ", ".join(sorted(sample))
        reason = f"{exc.message}; the names are {names}"
    except TemplateError as exc:
        reason = f"fails with the sample data ({exc})"
    raise DomainError(ErrorCode.INVALID_INPUT, f"{field} {reason}.", [field])


def _samples(kind: EmailKind) -> list[dict[str, Any]]:
    """Facts like a real email's: once with every optional one, once with none."""
    full = _context(
        kind,
        group_name="Acme",
        inviter_name="Olivia Owner",
        role="member",
        first_name="Ben",
        last_name="Bauer",
        email="ben@example.com",
        message="Welcome aboard!",
        expires_at="1 January 2030, 12:00 UTC",
        lang=DEFAULT_LANGUAGE,
        accept_url=SAMPLE_URL,
        accepter_name="Ben Bauer",
        accepter_email="ben@example.com",
    )
    bare = full | {
        "inviter_name": None,
        "first_name": None,
        "last_name": None,
        "message": None,
    }
    if kind == EmailKind.ACCEPTED_NOTICE:
        bare |= {"accepter_name": "ben@example.com", "accepter_email": None, "email": None}
    return [full, bare]


def _context(
    kind: EmailKind,
    *,
    accept_url: str,
    accepter_name: str,
    accepter_email: str | None,
    **facts: Any,
) -> dict[str, Any]:
    """The names a template of `kind` sees (README, "Branding"): the same for real emails
    and for the sample data templates are checked against."""
    if kind == EmailKind.ACCEPTED_NOTICE:
        return facts | {"accepter_name": accepter_name, "accepter_email": accepter_email}
    return facts | {"accept_url": accept_url}


# The email ------------------------------------------------------------------------------


async def compose_email(settings: Settings, kind: EmailKind, invitation: Invitation) -> Email:
    """The email of `kind` for an invitation (with its group and inviter loaded)."""
    group: Group = invitation.group
    wanted = _language(invitation, group, kind)
    rows = await EmailTemplate.filter(group_id=group.id, kind=kind)
    chosen = _choose(rows, wanted)
    builtin: str | None = None
    if chosen is not None:
        language = chosen.locale or wanted
    else:
        builtin = builtin_language(kind.value, wanted, templates_dir=settings.templates_dir)
        language = builtin or DEFAULT_LANGUAGE
    context = await _facts(settings, kind, invitation, language)
    if chosen is not None:
        rendered = render_source(Source(chosen.subject, chosen.html, chosen.text), context)
    else:
        rendered = render(
            kind.value, context, templates_dir=settings.templates_dir, language=builtin
        )
    if invitation.subject and kind in LINK_KINDS:
        # One line, as every subject: a line break in a header would start another.
        rendered = replace(rendered, subject=" ".join(invitation.subject.split()))
    return Email(rendered, sender_name=group.mail_from_name, reply_to=group.reply_to)


def _language(invitation: Invitation, group: Group, kind: EmailKind) -> str:
    """The language wanted: the invitation's (not for the inviter's notice), the group's,
    or English; a tag no longer known counts as none."""
    tags = [invitation.locale] if kind in LINK_KINDS else []
    for tag in [*tags, group.locale]:
        if tag and parse_locale(tag) is not None:
            return tag
    return DEFAULT_LANGUAGE


def _choose(rows: list[EmailTemplate], wanted: str) -> EmailTemplate | None:
    """The group's template for the language (best match first), else for any language."""
    by_locale = {row.locale: row for row in rows}
    for tag in (*candidates(wanted), ""):
        if tag in by_locale:
            return by_locale[tag]
    return None


async def _facts(
    settings: Settings, kind: EmailKind, invitation: Invitation, language: str
) -> dict[str, Any]:
    accepter_name, accepter_email = "", None
    if kind == EmailKind.ACCEPTED_NOTICE:
        accepter = await _accepter(invitation)
        accepter_name = display_name(accepter) or invitation.email or "Someone"
        # An address the accepter's identity provider did not verify could be anyone's.
        verified = accepter.email if accepter and accepter.email_verified else None
        accepter_email = verified or (None if accepter else invitation.email)
    return _context(
        kind,
        group_name=invitation.group.name,
        inviter_name=display_name(invitation.inviter),
        role=invitation.role,
        first_name=invitation.first_name,
        last_name=invitation.last_name,
        email=invitation.email,
        message=invitation.message,
        expires_at=format_moment(invitation.expires_at, language),
        lang=language,
        accept_url="" if kind == EmailKind.ACCEPTED_NOTICE else invite_url(settings, invitation),
        accepter_name=accepter_name,
        accepter_email=accepter_email,
    )


def display_name(user: User | None) -> str | None:
    """How emails name a user: their name, else their address."""
    return None if user is None else shown_name(user.name, user.email)


async def _accepter(invitation: Invitation) -> User | None:
    accepted_by: UUID | None = invitation.accepted_by_id  # type: ignore[attr-defined]
    if accepted_by is None:
        use = await InvitationUse.filter(invitation_id=invitation.id).order_by("-used_at").first()
        accepted_by = use.user_id if use else None  # type: ignore[attr-defined]
    return await User.get_or_none(id=accepted_by) if accepted_by else None


async def email_preview(
    settings: Settings, principal: Principal, *, invitation_id: str, kind: EmailKind
) -> Rendered | None:
    """The email of `kind` for an invitation exactly as it would be sent now, for those
    who may manage it; None for anyone else, as for an invitation that does not exist."""
    try:
        uid = UUID(invitation_id)
    except ValueError:
        return None
    invitation = await Invitation.get_or_none(id=uid).select_related("group", "inviter")
    if invitation is None or not await can_manage_invitation(settings, principal, invitation):
        return None
    try:
        email = await compose_email(settings, kind, invitation)
    except TemplateError as exc:
        raise DomainError(ErrorCode.INVALID_INPUT, f"The template fails: {exc}") from None
    return email.rendered

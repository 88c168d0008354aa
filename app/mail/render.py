"""Turning a message kind and its facts into an email: Jinja2 templates, HTML and text parts.

Built-in templates live in `app/mail/templates/` as `<kind>.subject.txt`, `<kind>.txt` and
`<kind>.html` (English), with translations in a folder per language (`nl/`, `de/`); a file
of the same name in `USHER_TEMPLATES_DIR` takes precedence. A group's own templates
(`setEmailTemplate`) are text from the API, so they run in Jinja2's sandbox, limited to
what an email needs (`check_source`). HTML parts are autoescaped (group, inviter and
personal message are user input); the text part and the subject are plain text, and the
subject is folded onto one line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.charset import QP, Charset
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.utils import formataddr, formatdate, parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time, get_datetime_format
from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    TemplateRuntimeError,
    nodes,
    select_autoescape,
)
from jinja2.sandbox import SandboxedEnvironment

DEFAULT_TEMPLATES = Path(__file__).parent / "templates"
DEFAULT_LANGUAGE = "en"


@dataclass(frozen=True)
class Rendered:
    """The three parts of one email."""

    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class Source:
    """A template given as text: a group's own, for one kind of email."""

    subject: str
    html: str
    text: str


@lru_cache(maxsize=256)
def parse_locale(tag: str) -> Locale | None:
    """The locale a BCP 47 tag (`nl`, `de-AT`, also `de_AT`) names, or None if unknown."""
    try:
        return Locale.parse(tag.strip().replace("_", "-"), sep="-")
    except (UnknownLocaleError, ValueError, TypeError):
        return None


def locale_tag(locale: Locale) -> str:
    """The BCP 47 tag of a locale, e.g. `de-AT`."""
    return str(locale).replace("_", "-")


def candidates(tag: str) -> tuple[str, ...]:
    """The tags to try for a language, best first: `de-AT` gives `de-AT`, then `de`."""
    locale = parse_locale(tag)
    if locale is None:
        return ()
    return tuple(dict.fromkeys([locale_tag(locale), locale.language]))


def format_moment(moment: datetime, tag: str) -> str:
    """A date and time as the language writes them, in UTC: `1 december 2026, 10:05 UTC`."""
    locale = parse_locale(tag) or Locale.parse(DEFAULT_LANGUAGE)
    moment = moment.astimezone(UTC)
    date = format_date(moment, "long", locale=locale)
    time = format_time(moment, "short", tzinfo=UTC, locale=locale)
    joined = str(get_datetime_format("long", locale=locale)).replace("'", "")
    return f"{joined.replace('{1}', date).replace('{0}', time)} UTC"


@lru_cache(maxsize=8)
def environment(templates_dir: str | None = None) -> Environment:
    """The Jinja2 environment: `templates_dir` first, then the built-in templates."""
    loaders = [FileSystemLoader(DEFAULT_TEMPLATES)]
    if templates_dir:
        loaders.insert(0, FileSystemLoader(templates_dir))
    return Environment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


@lru_cache(maxsize=256)
def builtin_language(kind: str, tag: str, *, templates_dir: str | None = None) -> str | None:
    """The best language the built-in (or `templates_dir`) templates of `kind` have for
    `tag`: `de` for `de-AT`; None when only the default (English) ones fit."""
    env = environment(templates_dir)
    for candidate in candidates(tag):
        try:
            env.get_template(f"{candidate}/{kind}.subject.txt")
        except TemplateNotFound:
            continue
        return candidate
    return None


def render(
    kind: str,
    context: dict[str, Any],
    *,
    templates_dir: str | None = None,
    language: str | None = None,
) -> Rendered:
    """Render the built-in subject, text and HTML of message `kind` with `context`, in
    `language` (a folder of templates, see `builtin_language`), else in English."""
    env = environment(templates_dir)
    prefix = f"{language}/" if language else ""
    return _rendered(
        env.get_template(f"{prefix}{kind}.subject.txt").render(context),
        env.get_template(f"{prefix}{kind}.txt").render(context),
        env.get_template(f"{prefix}{kind}.html").render(context),
    )


def render_source(source: Source, context: dict[str, Any]) -> Rendered:
    """Render a group's own template (checked with `check_source` when it was saved)."""
    return _rendered(
        render_part(source.subject, context, html=False),
        render_part(source.text, context, html=False),
        render_part(source.html, context, html=True),
    )


def render_part(source: str, context: dict[str, Any], *, html: bool) -> str:
    """One part of a group's template, in the sandbox (autoescaped if `html`).

    Any failure is a TemplateError, which the sender takes for a broken template (the
    email FAILED, once) rather than a bug to retry.
    """
    try:
        return _compiled(source, html=html).render(context)
    except TemplateError:
        raise
    except Exception as exc:
        raise TemplateRuntimeError(f"{type(exc).__name__}: {exc}") from exc


def _rendered(subject: str, text: str, html: str) -> Rendered:
    return Rendered(subject=re.sub(r"\s+", " ", subject).strip(), text=text, html=html)


# What a group's template may use: output, conditions, names, attributes and a few filters.
# No loops, macros, calls, includes, arithmetic that multiplies, nor variables (`set` and
# `with` would let `a ~ a` double at each step): the output stays as long as the template
# and its values, whatever its author writes, so one template cannot stall the worker that
# sends everyone's email.
ALLOWED_NODES = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Name,
    nodes.Const,
    nodes.Getattr,
    nodes.Getitem,
    nodes.Slice,
    nodes.If,
    nodes.CondExpr,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Compare,
    nodes.Operand,
    nodes.Concat,
    nodes.Add,
    nodes.Sub,
    nodes.Neg,
    nodes.Pos,
    nodes.Test,
    nodes.Filter,
    nodes.Keyword,
    nodes.Tuple,
    nodes.List,
)
ALLOWED_FILTERS = frozenset(
    {
        "capitalize",
        "d",
        "default",
        "e",
        "escape",
        "length",
        "lower",
        "striptags",
        "title",
        "trim",
        "truncate",
        "upper",
    }
)


class UnsafeTemplate(Exception):
    """A group's template uses what templates may not (`ALLOWED_NODES`, `ALLOWED_FILTERS`)."""

    def __init__(self, message: str, lineno: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.lineno = lineno


def check_source(source: str, *, html: bool) -> None:
    """Raise jinja2's TemplateSyntaxError for text that is no template, or UnsafeTemplate
    for one that uses more than an email needs; compiles it for `render_source`."""
    env = _sandbox(html)
    for node in env.parse(source).find_all(nodes.Node):
        if not isinstance(node, ALLOWED_NODES):
            raise UnsafeTemplate(_describe(node), node.lineno)
        if isinstance(node, nodes.Filter) and node.name not in ALLOWED_FILTERS:
            raise UnsafeTemplate(
                f"the filter {node.name!r} is not available; filters are "
                f"{', '.join(sorted(ALLOWED_FILTERS))}",
                node.lineno,
            )
    _compiled(source, html=html)


def _describe(node: nodes.Node) -> str:
    kinds = {
        nodes.For: "loops ({% for %})",
        nodes.Macro: "macros",
        nodes.Call: "calls (name(…))",
        nodes.Assign: "variables ({% set %})",
        nodes.AssignBlock: "variables ({% set %})",
        nodes.With: "variables ({% with %})",
        nodes.Include: "includes",
        nodes.Extends: "extends",
        nodes.Import: "imports",
        nodes.FromImport: "imports",
    }
    for kind, words in kinds.items():
        if isinstance(node, kind):
            return f"{words} are not available in email templates"
    if isinstance(node, nodes.BinExpr):
        return f"the operator {node.operator!r} is not available in email templates"
    return f"{type(node).__name__} is not available in email templates"


@lru_cache(maxsize=2)
def _sandbox(html: bool) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        autoescape=html, undefined=StrictUndefined, keep_trailing_newline=True
    )


@lru_cache(maxsize=128)
def _compiled(source: str, *, html: bool) -> Template:
    return _sandbox(html).from_string(source)


def build_message(
    rendered: Rendered,
    *,
    sender: str,
    recipient: str,
    message_id: str,
    sender_name: str | None = None,
    reply_to: str | None = None,
) -> Message:
    """A multipart/alternative email (text, then HTML) ready for a transport.

    Built with the `email.mime` classes: `EmailMessage` parses every header it is given
    into objects, which took several times longer than sending the message. A display
    name or subject in other than ASCII becomes RFC 2047 encoded words, and both parts are
    quoted-printable UTF-8. An address in other than ASCII (SMTPUTF8) cannot be written
    that way, so such a message is built with `EmailMessage`, which writes it as UTF-8.
    `sender_name` replaces the display name of `sender` (a group's `mailFromName`).
    """
    name, address = parseaddr(sender)
    name = sender_name or name
    if not (address + recipient + (reply_to or "")).isascii():
        return _build_utf8_message(
            rendered,
            sender=Address(display_name=name, addr_spec=address),
            recipient=recipient,
            message_id=message_id,
            reply_to=reply_to,
        )
    message = MIMEMultipart("alternative")
    message["From"] = formataddr((name, address), charset="utf-8") if name else address
    message["To"] = recipient
    if reply_to:
        message["Reply-To"] = reply_to
    if rendered.subject.isascii():
        message["Subject"] = rendered.subject
    else:
        # compat32 takes a Header and folds it into encoded words (typeshed has only str).
        message["Subject"] = Header(rendered.subject, "utf-8")  # type: ignore[assignment]
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message.attach(_text_part(rendered.text, "plain"))
    message.attach(_text_part(rendered.html, "html"))
    return message


def _text_part(text: str, subtype: str) -> MIMENonMultipart:
    """A text part in quoted-printable UTF-8 (readable, and no line over 76 characters)."""
    charset = Charset("utf-8")
    charset.body_encoding = QP
    part = MIMENonMultipart("text", subtype, charset="utf-8")
    part.set_payload(text, charset)
    return part


def _build_utf8_message(
    rendered: Rendered,
    *,
    sender: Address,
    recipient: str,
    message_id: str,
    reply_to: str | None,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    if reply_to:
        message["Reply-To"] = reply_to
    message["Subject"] = rendered.subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message


def make_message_id(key: str, sender: str) -> str:
    """A Message-ID fixed by `key` (the outbox row), so a repeated send carries the same one."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    return f"<{key}@{domain}>"

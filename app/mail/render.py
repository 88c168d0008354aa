"""Turning a message kind and its facts into an email: Jinja2 templates, HTML and text parts.

Templates live in `app/mail/templates/` as `<kind>.subject.txt`, `<kind>.txt` and
`<kind>.html`; a file of the same name in `USHER_TEMPLATES_DIR` takes precedence. The
HTML part is autoescaped (group, inviter and personal message are user input); the text
part and the subject are plain text, and the subject is folded onto one line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.charset import QP, Charset
from email.header import Header
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.utils import formataddr, formatdate, parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape

DEFAULT_TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Rendered:
    """The three parts of one email."""

    subject: str
    text: str
    html: str


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


def render(kind: str, context: dict[str, Any], *, templates_dir: str | None = None) -> Rendered:
    """Render the subject, text and HTML of message `kind` with `context`."""
    env = environment(templates_dir)
    subject = env.get_template(f"{kind}.subject.txt").render(context)
    return Rendered(
        subject=re.sub(r"\s+", " ", subject).strip(),
        text=env.get_template(f"{kind}.txt").render(context),
        html=env.get_template(f"{kind}.html").render(context),
    )


def build_message(rendered: Rendered, *, sender: str, recipient: str, message_id: str) -> Message:
    """A multipart/alternative email (text, then HTML) ready for a transport.

    Built with the `email.mime` classes: `EmailMessage` parses every header it is given
    into objects, which took several times longer than sending the message. A display
    name or subject in other than ASCII becomes RFC 2047 encoded words, and both parts are
    quoted-printable UTF-8. An address in other than ASCII (SMTPUTF8) cannot be written
    that way, so such a message is built with `EmailMessage`, which writes it as UTF-8.
    """
    name, address = parseaddr(sender)
    if not (address + recipient).isascii():
        return _build_utf8_message(
            rendered, sender=sender, recipient=recipient, message_id=message_id
        )
    message = MIMEMultipart("alternative")
    message["From"] = formataddr((name, address), charset="utf-8") if name else address
    message["To"] = recipient
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
    rendered: Rendered, *, sender: str, recipient: str, message_id: str
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
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

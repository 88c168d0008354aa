"""Where emails go: an SMTP server (`USHER_SMTP_URL`), or `.eml` files in `USHER_MAIL_DIR`.

A transport raises `TemporaryFailure` when trying again later may work (4xx replies,
refused connections, timeouts) and `PermanentFailure` when it will not (5xx replies).
Only the subject and the recipient are logged: the body carries the invitation link.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from app.config import Settings

log = logging.getLogger("usher.mail")


class DeliveryError(Exception):
    """Sending failed; `reason` is safe to store and show (it never holds the message body)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TemporaryFailure(DeliveryError):
    """Worth trying again later."""


class PermanentFailure(DeliveryError):
    """Trying again will not help."""


class Transport(Protocol):
    """Something that sends an email."""

    async def send(self, message: EmailMessage) -> None:
        """Send `message` or raise a `DeliveryError`."""


class SmtpTransport:
    """Sends through an SMTP server.

    `smtp://user:pass@host:port` (STARTTLS when the server offers it; `?starttls=true`
    requires it, `?starttls=false` never uses it) or `smtps://…` (TLS from the start).
    """

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("USHER_SMTP_URL must start with smtp:// or smtps://")
        self.hostname = parts.hostname or "localhost"
        self.use_tls = parts.scheme == "smtps"
        self.port = parts.port or (465 if self.use_tls else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        query = {k: v[-1].lower() for k, v in parse_qs(parts.query).items()}
        starttls = query.get("starttls", "auto")
        self.start_tls: bool | None = None
        if not self.use_tls and starttls in ("true", "1", "yes", "require"):
            self.start_tls = True
        elif self.use_tls or starttls in ("false", "0", "no", "never"):
            self.start_tls = False
        self.timeout = timeout

    async def send(self, message: EmailMessage) -> None:
        """Send `message` in one SMTP session."""
        try:
            await aiosmtplib.send(
                message,
                hostname=self.hostname,
                port=self.port,
                username=self.username,
                password=self.password,
                use_tls=self.use_tls,
                start_tls=self.start_tls,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            detail = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
            raise _by_code(min(codes, default=-1), f"recipient refused: {detail}") from None
        except aiosmtplib.SMTPResponseException as exc:
            raise _by_code(exc.code, f"{exc.code} {exc.message}") from None
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            reason = str(exc) or type(exc).__name__
            raise TemporaryFailure(f"{self.hostname}:{self.port}: {reason}") from None
        log.info("sent %r to %s", message["Subject"], message["To"])


def _by_code(code: int, reason: str) -> DeliveryError:
    if 500 <= code < 600:
        return PermanentFailure(reason)
    return TemporaryFailure(reason)


class FolderTransport:
    """Writes each email as an `.eml` file, for development without a mail server."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    async def send(self, message: EmailMessage) -> None:
        """Write `message` to the folder and log its subject and recipient."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.directory / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        try:
            await asyncio.to_thread(self._write, path, message.as_bytes())
        except OSError as exc:
            raise TemporaryFailure(f"cannot write to {self.directory}: {exc}") from None
        log.info("mail %r to %s written to %s", message["Subject"], message["To"], path)

    def _write(self, path: Path, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.rename(path)


def transport_for(settings: Settings) -> Transport:
    """SMTP when `USHER_SMTP_URL` is set, else the mail folder."""
    if settings.smtp_url:
        return SmtpTransport(settings.smtp_url, timeout=settings.smtp_timeout_seconds)
    return FolderTransport(settings.mail_dir)

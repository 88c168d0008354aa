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
from email.message import Message
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
from aiosmtplib.email import extract_recipients, extract_sender, flatten_message

from app.config import Settings
from app.mail.pool import PooledSession, SmtpPool

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

    async def send(self, message: Message) -> None:
        """Send `message` or raise a `DeliveryError`."""

    async def aclose(self) -> None:
        """Let go of whatever the transport holds open (connections)."""


class SmtpTransport:
    """Sends through an SMTP server, over a pool of sessions (`app/mail/pool.py`).

    `smtp://user:pass@host:port` (STARTTLS when the server offers it; `?starttls=true`
    requires it, `?starttls=false` never uses it) or `smtps://…` (TLS from the start).
    A pooled session the server dropped while it sat idle is noticed when MAIL FROM
    fails, before the server can have taken anything, and the message goes out at once on
    a new session: that retry is not a failed attempt. A session lost later, during DATA,
    is a temporary failure like any other, since the server may have taken the message.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        pool_size: int = 10,
        idle_seconds: float = 30.0,
        messages_per_connection: int = 100,
    ) -> None:
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
        self.pool = SmtpPool(
            self._connect,
            size=pool_size,
            idle_seconds=idle_seconds,
            max_messages=messages_per_connection,
            wait_seconds=timeout,
        )

    async def _connect(self) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(
            hostname=self.hostname,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.use_tls,
            start_tls=self.start_tls,
            timeout=self.timeout,
        )
        await client.connect()
        return client

    async def send(self, message: Message) -> None:
        """Send `message` on a pooled session."""
        try:
            await self._send(message)
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

    async def _send(self, message: Message) -> None:
        session = await self.pool.acquire()
        try:
            await self._carry(session, message)
        except _SessionLost as lost:
            if not session.reused:
                raise lost.error from None
            log.info(
                "pooled SMTP session to %s:%s was closed by the server (%s); sending on a new one",
                self.hostname,
                self.port,
                lost.error,
            )
        else:
            return
        try:
            await self._carry(await self.pool.acquire(fresh=True), message)
        except _SessionLost as lost:
            raise lost.error from None

    async def _carry(self, session: PooledSession, message: Message) -> None:
        """Send on `session`, then give it back: kept only if the message was accepted."""
        accepted = False
        try:
            await _transmit(session.client, message)
            accepted = True
        finally:
            self.pool.release(session, accepted=accepted)

    async def aclose(self) -> None:
        """Close the pooled sessions."""
        await self.pool.aclose()


class _SessionLost(Exception):
    """The session was gone before the server could take the message."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


async def _transmit(client: aiosmtplib.SMTP, message: Message) -> None:
    """MAIL FROM, RCPT TO and DATA for `message`, as `SMTP.send_message` does, but saying
    (with `_SessionLost`) when the session was lost before DATA, so nothing was taken."""
    sender = extract_sender(message)
    recipients = extract_recipients(message)
    if not sender or not recipients:
        raise ValueError("a message needs From and To")
    utf8 = not (sender + "".join(recipients)).isascii()
    if utf8 and not client.supports_extension("smtputf8"):
        raise aiosmtplib.SMTPNotSupported("the server does not take non-ASCII addresses")
    eight_bit = client.supports_extension("8bitmime")
    data = flatten_message(message, utf8=utf8, cte_type="8bit" if eight_bit else "7bit")
    options = ["SMTPUTF8"] if utf8 else []
    if eight_bit:
        options.append("BODY=8BITMIME")
    if client.supports_extension("size"):
        # RFC 1870: octets as sent, with every line ending a CRLF.
        size = len(data) + data.count(b"\n") - data.count(b"\r\n")
        options.append(f"SIZE={size}")
    encoding = "utf-8" if utf8 else "ascii"
    try:
        await client.mail(sender, options=options, encoding=encoding)
        refused = []
        for recipient in recipients:
            try:
                await client.rcpt(recipient, encoding=encoding)
            except aiosmtplib.SMTPRecipientRefused as exc:
                refused.append(exc)
        if len(refused) == len(recipients):
            raise aiosmtplib.SMTPRecipientsRefused(refused)
    except Exception as exc:
        # aiosmtplib closes the session on a lost connection, a timeout and a 421 reply.
        if not client.is_connected:
            raise _SessionLost(exc) from exc
        raise
    await client.data(data)


def _by_code(code: int, reason: str) -> DeliveryError:
    if 500 <= code < 600:
        return PermanentFailure(reason)
    return TemporaryFailure(reason)


class FolderTransport:
    """Writes each email as an `.eml` file, for development without a mail server."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    async def send(self, message: Message) -> None:
        """Write `message` to the folder and log its subject and recipient."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.directory / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        try:
            await asyncio.to_thread(self._write, path, message.as_bytes())
        except OSError as exc:
            raise TemporaryFailure(f"cannot write to {self.directory}: {exc}") from None
        log.info("mail %r to %s written to %s", message["Subject"], message["To"], path)

    async def aclose(self) -> None:
        """Nothing to close."""

    def _write(self, path: Path, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.rename(path)


def transport_for(settings: Settings) -> Transport:
    """SMTP when `USHER_SMTP_URL` is set, else the mail folder."""
    if settings.smtp_url:
        return SmtpTransport(
            settings.smtp_url,
            timeout=settings.smtp_timeout_seconds,
            pool_size=settings.smtp_pool_size,
            idle_seconds=settings.smtp_idle_seconds,
            messages_per_connection=settings.smtp_messages_per_connection,
        )
    return FolderTransport(settings.mail_dir)

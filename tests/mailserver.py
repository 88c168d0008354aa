"""A real SMTP server (aiosmtpd) in the test process, able to refuse mail on demand."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class MailHandler:
    """Keeps every accepted message; answers queued error replies first. Counts the
    connections made to it, and can drop one the way a server that gives up does."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.replies: deque[str] = deque()
        self.refused = 0
        self.delay = 0.0  # seconds before answering DATA, like a slow remote server
        self.connections = 0  # made since the last reset
        self.open: set[SMTP] = set()  # open now
        self.most_open = 0  # the most open at once since the last reset
        self.drop_at_mail = 0  # drop the next N connections when they send MAIL FROM
        self.drop_after_data = 0  # take the next N messages, then drop before answering
        self.receiving = 0  # DATA commands begun (answered or not)
        self._lock = threading.Lock()

    def connected(self, server: SMTP) -> None:
        with self._lock:
            self.connections += 1
            self.open.add(server)
            self.most_open = max(self.most_open, len(self.open))

    def disconnected(self, server: SMTP) -> None:
        with self._lock:
            self.open.discard(server)

    def close_idle(self) -> None:
        """Close every open connection, as a server whose idle timeout passed does."""
        for server in list(self.open):
            transport = server.transport
            if transport is not None:
                server.loop.call_soon_threadsafe(transport.close)

    async def handle_MAIL(
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.drop_at_mail:
            self.drop_at_mail -= 1
            assert server.transport is not None
            server.transport.close()
            return "421 4.4.2 closing"  # never sent: the connection is gone
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    def fail_next(self, reply: str, times: int = 1) -> None:
        """Answer the next `times` messages with `reply` (e.g. "451 4.3.0 Try later")."""
        self.replies.extend([reply] * times)

    def reset(self) -> None:
        """Forget messages, pending replies and connection counts."""
        with self._lock:
            self.messages.clear()
            self.replies.clear()
            self.refused = 0
            self.delay = 0.0
            self.connections = 0
            self.most_open = len(self.open)
            self.drop_at_mail = 0
            self.drop_after_data = 0
            self.receiving = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.receiving += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        with self._lock:
            if self.replies:
                self.refused += 1
                return self.replies.popleft()
            message = message_from_bytes(envelope.content, policy=policy.default)
            assert isinstance(message, EmailMessage)
            self.messages.append(message)
            if self.drop_after_data:
                # Taken, but the client never hears so: it cannot know the message arrived.
                self.drop_after_data -= 1
                assert server.transport is not None
                server.transport.close()
        return "250 Message accepted for delivery"

    async def wait_for(self, count: int, within: float = 30.0) -> list[EmailMessage]:
        """Wait until `count` messages have arrived; returns them."""
        await self.wait_until(lambda: len(self.messages) >= count, f"{count} messages", within)
        return list(self.messages)

    async def wait_until(
        self, condition: Callable[[], bool], what: str, within: float = 30.0
    ) -> None:
        """Wait until `condition()` holds (checked every 10 ms)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not condition():
            if loop.time() > deadline:
                raise AssertionError(
                    f"expected {what}; have {len(self.messages)} messages, "
                    f"{self.connections} connections, {len(self.open)} open"
                )
            await asyncio.sleep(0.01)


class CountingController(Controller):
    """aiosmtpd's Controller, telling its handler of every connection made and lost."""

    def factory(self) -> SMTP:
        return _CountingSMTP(self.handler, **self.SMTP_kwargs)


class _CountingSMTP(SMTP):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None  # not the STARTTLS upgrade of an open connection
        super().connection_made(transport)
        if first:
            self.event_handler.connected(self)

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self.event_handler.disconnected(self)


class MailServer:
    """The running server: its URL and its handler."""

    def __init__(self, controller: Controller, handler: MailHandler) -> None:
        self.controller = controller
        self.handler = handler
        self.url = f"smtp://127.0.0.1:{controller.port}"


@pytest.fixture(scope="session")
def mail_server_session() -> Iterator[MailServer]:
    """One aiosmtpd server for the whole session."""
    handler = MailHandler()
    controller = CountingController(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield MailServer(controller, handler)
    finally:
        controller.stop()


@pytest.fixture
def mail_server(mail_server_session: MailServer) -> Iterator[MailServer]:
    """The SMTP server, emptied before and after the test."""
    mail_server_session.handler.reset()
    yield mail_server_session
    mail_server_session.handler.reset()


def body(message: EmailMessage, subtype: str) -> str:
    """The text or HTML part of a message."""
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None and isinstance(part, EmailMessage)
    content: str = part.get_content()
    return content


INVITATION_FIELDS = """
query($id: ID!) {
  invitation(id: $id) {
    id status deliveryStatus deliveryError sendCount lastSentAt
    events { type detail }
  }
}"""

BY_TOKEN = """
query($token: String!) {
  invitationByToken(token: $token) { status groupName inviterName targetType }
}"""


def link_token(text: str) -> str:
    """The invitation token in the link of a message's text part."""
    match = re.search(r"invitation=(inv_[A-Za-z0-9_-]+)", text)
    assert match, text
    return match.group(1)

"""A real SMTP server (aiosmtpd) in the test process, able to refuse mail on demand."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from collections import deque
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class MailHandler:
    """Keeps every accepted message; answers queued error replies first."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.replies: deque[str] = deque()
        self.refused = 0
        self.delay = 0.0  # seconds before answering DATA, like a slow remote server
        self._lock = threading.Lock()

    def fail_next(self, reply: str, times: int = 1) -> None:
        """Answer the next `times` messages with `reply` (e.g. "451 4.3.0 Try later")."""
        self.replies.extend([reply] * times)

    def reset(self) -> None:
        """Forget messages and pending replies."""
        with self._lock:
            self.messages.clear()
            self.replies.clear()
            self.refused = 0
            self.delay = 0.0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        with self._lock:
            if self.replies:
                self.refused += 1
                return self.replies.popleft()
            message = message_from_bytes(envelope.content, policy=policy.default)
            assert isinstance(message, EmailMessage)
            self.messages.append(message)
        return "250 Message accepted for delivery"

    async def wait_for(self, count: int, within: float = 5.0) -> list[EmailMessage]:
        """Wait until `count` messages have arrived; returns them."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while len(self.messages) < count:
            if loop.time() > deadline:
                raise AssertionError(f"expected {count} messages, got {len(self.messages)}")
            await asyncio.sleep(0.01)
        return list(self.messages)


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
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
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

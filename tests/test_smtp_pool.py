"""SMTP sessions kept open across messages, counted at a real server (aiosmtpd): reused,
bounded, replaced when the server dropped them, never reused after a failure."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from app.jobs.email import deliver
from app.mail.render import Rendered, build_message
from app.mail.transports import PermanentFailure, SmtpTransport, TemporaryFailure
from app.models import OutboxMessage
from tests.conftest import GQL, INVITE
from tests.mailserver import MailServer, body, mail_server, mail_server_session
from tests.redis_helpers import job_ctx, job_settings, opened_transports

__all__ = ["mail_server", "mail_server_session"]

MakeGroup = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
async def server(mail_server: MailServer) -> AsyncIterator[MailServer]:
    """The test's SMTP server, once the sessions earlier tests closed are gone."""
    handler = mail_server.handler
    await handler.wait_until(lambda: not handler.open, "no open connection")
    handler.reset()
    yield mail_server


def transport(server: MailServer, **options: Any) -> SmtpTransport:
    """A pooled transport to `server`, closed after the test."""
    made = SmtpTransport(server.url, timeout=5, **options)
    opened_transports.append(made)
    return made


def message(n: int) -> Message:
    rendered = Rendered(subject=f"Message {n}", text=f"Number {n}\n", html=f"<p>{n}</p>\n")
    return build_message(
        rendered,
        sender="Usher <invitations@usher.test>",
        recipient=f"r{n}@example.com",
        message_id=f"<{uuid.uuid4()}@usher.test>",
    )


def recipients(server: MailServer) -> list[str]:
    return [str(m["To"]) for m in server.handler.messages]


async def test_one_session_carries_many_messages(server: MailServer) -> None:
    smtp = transport(server)
    for n in range(5):
        await smtp.send(message(n))
    assert recipients(server) == [f"r{n}@example.com" for n in range(5)]
    assert server.handler.connections == 1


async def test_the_pool_is_bounded(server: MailServer) -> None:
    server.handler.delay = 0.05  # every send is in flight long enough to want a session
    smtp = transport(server, pool_size=3)
    await asyncio.gather(*(smtp.send(message(n)) for n in range(12)))
    assert sorted(recipients(server)) == sorted(f"r{n}@example.com" for n in range(12))
    assert server.handler.most_open == 3
    assert server.handler.connections == 3


async def test_a_session_the_server_closed_while_idle_is_replaced(server: MailServer) -> None:
    smtp = transport(server)
    await smtp.send(message(0))
    server.handler.close_idle()
    await server.handler.wait_until(lambda: not server.handler.open, "the session closed")
    await smtp.send(message(1))
    assert recipients(server) == ["r0@example.com", "r1@example.com"]
    assert server.handler.connections == 2


async def test_a_pooled_session_lost_at_mail_from_is_retried_once_on_a_new_one(
    server: MailServer, caplog: pytest.LogCaptureFixture
) -> None:
    smtp = transport(server)
    await smtp.send(message(0))
    # The server drops the session just as it is used again: the client learns of it from
    # MAIL FROM, before the server could take anything, and sends on a new session.
    server.handler.drop_at_mail = 1
    with caplog.at_level(logging.INFO, logger="usher.mail"):
        await smtp.send(message(1))
    assert "was closed by the server" in caplog.text
    assert recipients(server) == ["r0@example.com", "r1@example.com"]
    assert server.handler.connections == 2


async def test_a_new_session_lost_at_mail_from_is_a_temporary_failure(
    server: MailServer,
) -> None:
    smtp = transport(server)
    server.handler.drop_at_mail = 2
    with pytest.raises(TemporaryFailure):
        await smtp.send(message(0))
    # Not retried at once: a server dropping fresh sessions has trouble of its own.
    assert server.handler.connections == 1
    with pytest.raises(TemporaryFailure):
        await smtp.send(message(1))
    await smtp.send(message(2))
    assert recipients(server) == ["r2@example.com"]
    assert server.handler.connections == 3


async def test_a_session_lost_after_data_is_not_sent_again_at_once(server: MailServer) -> None:
    smtp = transport(server)
    await smtp.send(message(0))
    # The server takes the message and drops the session before answering: the client
    # cannot know it arrived, so this is a failed attempt, not a silent second copy.
    server.handler.drop_after_data = 1
    with pytest.raises(TemporaryFailure):
        await smtp.send(message(1))
    assert recipients(server) == ["r0@example.com", "r1@example.com"]
    assert server.handler.connections == 1


@pytest.mark.parametrize(
    ("reply", "failure"),
    [("451 4.3.0 Try later", TemporaryFailure), ("554 5.7.1 Refused", PermanentFailure)],
)
async def test_a_session_that_failed_is_closed_not_reused(
    server: MailServer, reply: str, failure: type[Exception]
) -> None:
    smtp = transport(server)
    await smtp.send(message(0))
    server.handler.fail_next(reply)
    with pytest.raises(failure):
        await smtp.send(message(1))
    await server.handler.wait_until(lambda: not server.handler.open, "the failed session closed")
    await smtp.send(message(2))
    assert recipients(server) == ["r0@example.com", "r2@example.com"]
    assert server.handler.connections == 2


async def test_an_idle_session_is_closed(server: MailServer) -> None:
    smtp = transport(server, idle_seconds=0.2)
    await smtp.send(message(0))
    await server.handler.wait_until(lambda: not server.handler.open, "the idle session closed")
    await smtp.send(message(1))
    assert server.handler.connections == 2


async def test_a_session_is_retired_after_its_messages(server: MailServer) -> None:
    smtp = transport(server, messages_per_connection=2)
    for n in range(5):
        await smtp.send(message(n))
    assert len(recipients(server)) == 5
    assert server.handler.connections == 3


async def test_closing_the_transport_closes_its_sessions(server: MailServer) -> None:
    server.handler.delay = 0.05
    smtp = transport(server)
    await asyncio.gather(*(smtp.send(message(n)) for n in range(3)))
    assert server.handler.open
    await smtp.aclose()
    await server.handler.wait_until(lambda: not server.handler.open, "every session closed")


@pytest.fixture
def settings(mail_server: MailServer, tmp_path: Path) -> Settings:
    return job_settings(
        Settings(
            database_url="sqlite://:memory:",
            redis_url=None,
            accept_url="https://app.example.com/signup?invitation={token}",
            smtp_url=mail_server.url,
            smtp_timeout_seconds=5,
            mail_dir=str(tmp_path / "mail"),
        )
    )


async def test_delivery_jobs_share_a_session(
    gql: GQL, make_group: MakeGroup, settings: Settings, server: MailServer
) -> None:
    olivia = gql.token("olivia", "olivia@acme.test", name="Olivia")
    await make_group(olivia)
    invitees = [{"email": f"guest{n}@example.com"} for n in range(4)]
    data = await gql(
        INVITE,
        {"input": {"groupType": "org", "groupId": "acme", "invitees": invitees}},
        auth=olivia,
    )
    assert data["invite"]["errors"] == []
    ctx = job_ctx(settings)
    for row in await OutboxMessage.all().order_by("created_at"):
        assert await deliver(ctx, outbox_id=str(row.id)) == "sent"
    assert sorted(recipients(server)) == sorted(i["email"] for i in invitees)
    assert server.handler.connections == 1


def test_pool_settings_are_checked() -> None:
    with pytest.raises(ValueError) as refused:
        Settings(smtp_pool_size=0, smtp_idle_seconds=0, smtp_messages_per_connection=0).check()
    for name in ("POOL_SIZE", "IDLE_SECONDS", "MESSAGES_PER_CONNECTION"):
        assert f"USHER_SMTP_{name}" in str(refused.value)


async def test_names_subjects_and_addresses_in_other_than_ascii(server: MailServer) -> None:
    smtp = transport(server)
    rendered = Rendered(
        subject="Olivia vous invite chez Acmé", text="Bonjour Bén\n", html="<p>é</p>\n"
    )
    for recipient in ("ben@example.com", "bén@example.com"):
        await smtp.send(
            build_message(
                rendered,
                sender="Équipe Usher <invitations@usher.test>",
                recipient=recipient,
                message_id=f"<{uuid.uuid4()}@usher.test>",
            )
        )
    ascii_mail, utf8_mail = await server.handler.wait_for(2)
    for mail, recipient in ((ascii_mail, "ben@example.com"), (utf8_mail, "bén@example.com")):
        assert mail["To"] == recipient
        assert mail["From"] == "Équipe Usher <invitations@usher.test>"
        assert mail["Subject"] == rendered.subject
        # Lines end in CRLF on the wire, the canonical form of text (RFC 2046).
        assert body(mail, "plain").replace("\r\n", "\n") == rendered.text
        assert body(mail, "html").replace("\r\n", "\n") == rendered.html

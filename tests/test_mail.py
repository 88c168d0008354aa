"""The delivery job against a real SMTP server: content, links, retries, failures."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from arq import Retry

from app.config import Settings
from app.jobs.email import deliver
from app.mail.render import render
from app.mail.transports import SmtpTransport
from app.models import (
    DeliveryStatus,
    EventType,
    Invitation,
    InvitationEvent,
    InvitationStatus,
    MessageKind,
    OutboxMessage,
    User,
)
from tests.conftest import GQL, INVITE
from tests.mailserver import (
    BY_TOKEN,
    INVITATION_FIELDS,
    MailHandler,
    MailServer,
    body,
    free_port,
    link_token,
    mail_server,
    mail_server_session,
)
from tests.redis_helpers import job_ctx, job_settings

__all__ = ["mail_server", "mail_server_session"]

MakeGroup = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def settings(mail_server: MailServer, tmp_path: Path) -> Settings:
    """Settings that send to the test's SMTP server, with short back-offs."""
    return job_settings(
        Settings(
            database_url="sqlite://:memory:",
            redis_url=None,
            accept_url="https://app.example.com/signup?invitation={token}",
            smtp_url=mail_server.url,
            smtp_timeout_seconds=5,
            mail_dir=str(tmp_path / "mail"),
            mail_from="Usher <invitations@usher.test>",
        )
    )


async def invite(
    gql: GQL, make_group: MakeGroup, *, message: str | None = None, group_name: str = "Acme"
) -> tuple[str, str]:
    """Olivia invites ben@example.com; returns (olivia's JWT, the invitation id)."""
    olivia = gql.token("olivia", "olivia@acme.test", name="Olivia <Owner>")
    await make_group(olivia, name=group_name)
    data = await gql(
        INVITE,
        {
            "input": {
                "groupType": "org",
                "groupId": "acme",
                "invitees": [{"email": "ben@example.com", "firstName": "Ben"}],
                "message": message,
            }
        },
        auth=olivia,
    )
    assert data["invite"]["errors"] == []
    return olivia, data["invite"]["invitations"][0]["id"]


async def outbox_id(invitation_id: str, kind: MessageKind = MessageKind.INVITATION) -> str:
    row = await OutboxMessage.get(invitation_id=invitation_id, kind=kind)
    return str(row.id)


async def test_invitation_email_content_and_link(
    gql: GQL, make_group: MakeGroup, settings: Settings, mail_server: MailServer
) -> None:
    olivia, inv_id = await invite(
        gql, make_group, message="See you <script>alert(1)</script> soon", group_name="Acme & <Co>"
    )
    assert await deliver(job_ctx(settings), outbox_id=await outbox_id(inv_id)) == "sent"

    [mail] = await mail_server.handler.wait_for(1)
    assert mail["To"] == "ben@example.com"
    assert mail["From"] == "Usher <invitations@usher.test>"
    assert mail["Subject"] == "Olivia <Owner> invited you to join Acme & <Co>"
    text, html = body(mail, "plain"), body(mail, "html")
    assert "Hello Ben," in text
    assert "See you <script>alert(1)</script> soon" in text
    assert "<script>" not in html
    assert "See you &lt;script&gt;alert(1)&lt;/script&gt; soon" in html
    assert "Acme &amp; &lt;Co&gt;" in html and "Olivia &lt;Owner&gt;" in html
    token = link_token(text)
    assert f"https://app.example.com/signup?invitation={token}" in html

    # The mailed link opens this very invitation.
    preview = (await gql(BY_TOKEN, {"token": token}))["invitationByToken"]
    assert preview == {
        "status": "PENDING",
        "groupName": "Acme & <Co>",
        "inviterName": "Olivia <Owner>",
        "targetType": "EMAIL",
    }

    inv = (await gql(INVITATION_FIELDS, {"id": inv_id}, auth=olivia))["invitation"]
    assert inv["deliveryStatus"] == "SENT"
    assert inv["sendCount"] == 1
    assert inv["lastSentAt"] is not None
    sent = [e for e in inv["events"] if e["type"] == "SENT"]
    assert sent and sent[0]["detail"]["messageId"] == mail["Message-ID"]
    stored = await Invitation.get(id=inv_id)
    assert stored.message_id == mail["Message-ID"]


async def test_a_job_that_runs_twice_sends_once(
    gql: GQL, make_group: MakeGroup, settings: Settings, mail_server: MailServer
) -> None:
    _, inv_id = await invite(gql, make_group)
    ctx, row = job_ctx(settings), await outbox_id(inv_id)
    assert await deliver(ctx, outbox_id=row) == "sent"
    assert await deliver(ctx, outbox_id=row) == "already done"
    assert len(mail_server.handler.messages) == 1
    assert (await Invitation.get(id=inv_id)).send_count == 1


async def test_temporary_failure_retries_then_succeeds(
    gql: GQL, make_group: MakeGroup, settings: Settings, mail_server: MailServer
) -> None:
    olivia, inv_id = await invite(gql, make_group)
    mail_server.handler.fail_next("451 4.3.0 Mailbox busy, try later")
    ctx, row = job_ctx(settings), await outbox_id(inv_id)

    with pytest.raises(Retry) as retry:
        await deliver(ctx, outbox_id=row)
    assert retry.value.defer_score == 50  # ms: the first back-off of the test settings
    stored = await OutboxMessage.get(id=row)
    assert stored.attempts == 1 and stored.sent_at is None
    assert stored.last_error is not None and stored.last_error.startswith("451")
    assert (await Invitation.get(id=inv_id)).delivery_status == DeliveryStatus.QUEUED

    assert await deliver(ctx, outbox_id=row) == "sent"
    assert len(mail_server.handler.messages) == 1
    stored = await OutboxMessage.get(id=row)
    assert stored.attempts == 2 and stored.sent_at is not None
    inv = (await gql(INVITATION_FIELDS, {"id": inv_id}, auth=olivia))["invitation"]
    assert (inv["deliveryStatus"], inv["sendCount"]) == ("SENT", 1)


async def test_permanent_failure_marks_failed_with_reason(
    gql: GQL, make_group: MakeGroup, settings: Settings, mail_server: MailServer
) -> None:
    olivia, inv_id = await invite(gql, make_group)
    mail_server.handler.fail_next("550 5.1.1 No such user here")
    assert await deliver(job_ctx(settings), outbox_id=await outbox_id(inv_id)) == "failed"
    assert mail_server.handler.messages == []

    inv = (await gql(INVITATION_FIELDS, {"id": inv_id}, auth=olivia))["invitation"]
    assert inv["deliveryStatus"] == "FAILED"
    assert inv["deliveryError"] == "550 5.1.1 No such user here"
    assert inv["sendCount"] == 0
    [failed] = [e for e in inv["events"] if e["type"] == "DELIVERY_FAILED"]
    assert failed["detail"]["reason"] == "550 5.1.1 No such user here"


async def test_connection_refused_retries_until_the_cap(
    gql: GQL, make_group: MakeGroup, settings: Settings
) -> None:
    _, inv_id = await invite(gql, make_group)
    refused = settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{free_port()}"})
    ctx, row = job_ctx(refused), await outbox_id(inv_id)
    delays = []
    for _ in range(2):
        with pytest.raises(Retry) as retry:
            await deliver(ctx, outbox_id=row)
        delays.append(retry.value.defer_score)
    assert delays == [50, 100]  # doubling back-off
    assert await deliver(ctx, outbox_id=row) == "failed"  # the third attempt is the last

    stored = await Invitation.get(id=inv_id)
    assert stored.delivery_status == DeliveryStatus.FAILED
    assert stored.delivery_error is not None
    assert stored.delivery_error.startswith("gave up after 3 attempts: 127.0.0.1:")
    assert await deliver(ctx, outbox_id=row) == "already done"


async def test_timeout_is_temporary(gql: GQL, make_group: MakeGroup, settings: Settings) -> None:
    """A server that accepts the connection but never speaks: a timeout, then a retry."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and hangs up
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        _, inv_id = await invite(gql, make_group)
        slow = settings.model_copy(
            update={"smtp_url": f"smtp://127.0.0.1:{port}", "smtp_timeout_seconds": 0.2}
        )
        with pytest.raises(Retry):
            await deliver(job_ctx(slow), outbox_id=await outbox_id(inv_id))
    finally:
        server.close()
    row = await OutboxMessage.get(invitation_id=inv_id)
    assert row.attempts == 1 and row.last_error is not None


async def test_superseded_message_is_not_sent(
    gql: GQL, make_group: MakeGroup, settings: Settings, mail_server: MailServer
) -> None:
    _, inv_id = await invite(gql, make_group)
    row = await outbox_id(inv_id)
    # A resend rotated the token: the first message's link would no longer work.
    await Invitation.filter(id=inv_id).update(token_version=2)
    assert await deliver(job_ctx(settings), outbox_id=row) == "skipped"
    assert mail_server.handler.messages == []
    stored = await OutboxMessage.get(id=row)
    assert stored.failed_at is not None and stored.last_error is not None
    assert "superseded" in stored.last_error


async def test_message_for_a_revoked_invitation_is_not_sent(
    gql: GQL, make_group: MakeGroup, settings: Settings, mail_server: MailServer
) -> None:
    _, inv_id = await invite(gql, make_group)
    await Invitation.filter(id=inv_id).update(status=InvitationStatus.REVOKED, open_key=None)
    assert await deliver(job_ctx(settings), outbox_id=await outbox_id(inv_id)) == "skipped"
    assert mail_server.handler.messages == []
    # The invitation says its email never went out, instead of staying QUEUED.
    stored = await Invitation.get(id=inv_id)
    assert stored.delivery_status == DeliveryStatus.NOT_SENT
    assert stored.delivery_error == "not sent: the invitation is revoked"


async def test_acceptance_notice_goes_to_the_inviter(
    gql: GQL, make_group: MakeGroup, settings: Settings, mail_server: MailServer
) -> None:
    _, inv_id = await invite(gql, make_group, group_name="Acme")
    ben = await User.create(
        external_id="ben", email="ben@example.com", email_verified=True, name="Ben <B>"
    )
    await Invitation.filter(id=inv_id).update(
        status=InvitationStatus.ACCEPTED, accepted_by_id=ben.id, open_key=None
    )
    notice = await OutboxMessage.create(kind=MessageKind.ACCEPTED_NOTICE, invitation_id=inv_id)
    assert await deliver(job_ctx(settings), outbox_id=str(notice.id)) == "sent"

    [mail] = await mail_server.handler.wait_for(1)
    assert mail["To"] == "olivia@acme.test"
    # The subject carries no text of the accepter's: a name is whatever a throwaway
    # account says it is.
    assert mail["Subject"] == "Your invitation to Acme was accepted"
    assert "Ben <B> (ben@example.com) accepted your invitation and joined Acme" in body(
        mail, "plain"
    )
    assert "Ben &lt;B&gt;" in body(mail, "html")
    assert "invitation=" not in mail.as_string()
    stored = await Invitation.get(id=inv_id)
    assert stored.send_count == 0  # the notice is not the invitation's email


async def test_no_acceptance_notice_to_an_unverified_address(
    gql: GQL, make_group: MakeGroup, settings: Settings, mail_server: MailServer
) -> None:
    _, inv_id = await invite(gql, make_group)
    # Olivia's last JWT carried an address her identity provider had not verified.
    await gql("{ viewer { user { id } } }", auth=gql.token("olivia", "o@else.test", verified=False))
    await Invitation.filter(id=inv_id).update(status=InvitationStatus.ACCEPTED, open_key=None)
    notice = await OutboxMessage.create(kind=MessageKind.ACCEPTED_NOTICE, invitation_id=inv_id)
    assert await deliver(job_ctx(settings), outbox_id=str(notice.id)) == "skipped"
    assert mail_server.handler.messages == []
    stored = await OutboxMessage.get(id=notice.id)
    assert stored.last_error == "not sent: the inviter's email address is not verified"


async def test_a_notice_shows_only_a_verified_address_and_goes_stale(
    gql: GQL, make_group: MakeGroup, settings: Settings, mail_server: MailServer
) -> None:
    from datetime import UTC, datetime, timedelta

    _, inv_id = await invite(gql, make_group)
    # The accepter's JWT claimed the CEO's address without verifying it.
    poser = await User.create(external_id="poser", email="ceo@acme.test", name="The CEO")
    await Invitation.filter(id=inv_id).update(
        status=InvitationStatus.ACCEPTED, accepted_by_id=poser.id, open_key=None
    )
    notice = await OutboxMessage.create(kind=MessageKind.ACCEPTED_NOTICE, invitation_id=inv_id)
    assert await deliver(job_ctx(settings), outbox_id=str(notice.id)) == "sent"
    [mail] = await mail_server.handler.wait_for(1)
    assert "ceo@acme.test" not in mail.as_string()
    # A notice held for more than a day is news no longer.
    stale = await OutboxMessage.create(kind=MessageKind.ACCEPTED_NOTICE, invitation_id=inv_id)
    a_day_ago = datetime.now(UTC) - timedelta(days=1, minutes=1)
    await OutboxMessage.filter(id=stale.id).update(created_at=a_day_ago)
    assert await deliver(job_ctx(settings), outbox_id=str(stale.id)) == "skipped"
    # Nor does a revoked link mail its inviter about accepts still waiting.
    await Invitation.filter(id=inv_id).update(status=InvitationStatus.REVOKED)
    late = await OutboxMessage.create(kind=MessageKind.ACCEPTED_NOTICE, invitation_id=inv_id)
    assert await deliver(job_ctx(settings), outbox_id=str(late.id)) == "skipped"
    assert len(mail_server.handler.messages) == 1


async def test_every_kind_of_email_counts_against_the_mailbox(
    gql: GQL, make_group: MakeGroup, settings: Settings, mail_server: MailServer
) -> None:
    counted = settings.model_copy(update={"quota_mails_per_recipient_day": 2})
    _, inv_id = await invite(gql, make_group)
    assert await deliver(job_ctx(counted), outbox_id=await outbox_id(inv_id)) == "sent"
    reminder = await OutboxMessage.create(
        kind=MessageKind.REMINDER, invitation_id=inv_id, token_version=1
    )
    assert await deliver(job_ctx(counted), outbox_id=str(reminder.id)) == "sent"
    another = await OutboxMessage.create(
        kind=MessageKind.REMINDER, invitation_id=inv_id, token_version=1
    )
    with pytest.raises(Retry):
        await deliver(job_ctx(counted), outbox_id=str(another.id))
    assert len(mail_server.handler.messages) == 2
    # Notices count against the inviter's mailbox, `+tags` and case folded.
    await Invitation.filter(id=inv_id).update(status=InvitationStatus.ACCEPTED, open_key=None)
    notices = [
        await OutboxMessage.create(kind=MessageKind.ACCEPTED_NOTICE, invitation_id=inv_id)
        for _ in range(3)
    ]
    for notice in notices[:2]:
        assert await deliver(job_ctx(counted), outbox_id=str(notice.id)) == "sent"
    with pytest.raises(Retry):
        await deliver(job_ctx(counted), outbox_id=str(notices[2].id))
    held = await OutboxMessage.get(id=notices[2].id)
    assert held.last_error == "held: the recipient's daily quota" and held.attempts == 0


async def test_without_smtp_mail_goes_to_a_folder_and_the_log(
    gql: GQL,
    make_group: MakeGroup,
    settings: Settings,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, inv_id = await invite(gql, make_group)
    folder = settings.model_copy(update={"smtp_url": None})
    with caplog.at_level(logging.INFO):
        assert await deliver(job_ctx(folder), outbox_id=await outbox_id(inv_id)) == "sent"
    [eml] = list((tmp_path / "mail").glob("*.eml"))
    mail = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert isinstance(mail, EmailMessage)
    assert mail["To"] == "ben@example.com"
    token = link_token(body(mail, "plain"))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "ben@example.com" in logged and "invited you to join Acme" in logged
    assert token not in logged and "inv_" not in logged
    assert (await Invitation.get(id=inv_id)).delivery_status == DeliveryStatus.SENT


async def test_templates_can_be_overridden(tmp_path: Path) -> None:
    (tmp_path / "invitation.subject.txt").write_text("Come and join {{ group_name }}\n")
    context = {
        "group_name": "<Acme>",
        "inviter_name": None,
        "role": "member",
        "first_name": None,
        "last_name": None,
        "email": "ben@example.com",
        "message": None,
        "expires_at": "1 January 2030, 00:00 UTC",
        "accept_url": "https://app.example.com/x",
    }
    rendered = render("invitation", context, templates_dir=str(tmp_path))
    assert rendered.subject == "Come and join <Acme>"  # overridden
    assert "invited to join <strong>&lt;Acme&gt;</strong>" in rendered.html  # built-in
    assert rendered.text.startswith("Hello,\n\nYou have been invited to join <Acme> as member.")


def test_smtp_url_forms() -> None:
    plain = SmtpTransport("smtp://mail.example.com")
    assert (plain.port, plain.use_tls, plain.start_tls, plain.username) == (25, False, None, None)
    tls = SmtpTransport("smtps://me%40x.com:p%2Fw@mail.example.com")
    assert (tls.port, tls.use_tls, tls.start_tls) == (465, True, False)
    assert (tls.username, tls.password) == ("me@x.com", "p/w")
    required = SmtpTransport("smtp://u:p@mail.example.com:587?starttls=true")
    assert (required.port, required.start_tls) == (587, True)
    never = SmtpTransport("smtp://mail.example.com:2525?starttls=false")
    assert never.start_tls is False
    with pytest.raises(ValueError):
        SmtpTransport("http://mail.example.com")


async def test_events_record_each_delivery(
    gql: GQL, make_group: MakeGroup, settings: Settings, mail_server: MailServer
) -> None:
    _, inv_id = await invite(gql, make_group)
    await deliver(job_ctx(settings), outbox_id=await outbox_id(inv_id))
    events = await InvitationEvent.filter(invitation_id=inv_id)
    assert sorted(e.type for e in events) == sorted([EventType.CREATED, EventType.SENT])


async def test_job_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USHER_MAIL_MAX_ATTEMPTS", "4")
    monkeypatch.setenv("USHER_MAIL_RETRY_SECONDS", "10")
    read = Settings()
    assert read.mail_max_attempts == 4
    assert [read.backoff(n) for n in (1, 2, 3)] == [10, 20, 40]
    assert Settings(mail_retry_max_seconds=15).backoff(5) == 15


class Credentials:
    """An aiosmtpd authenticator accepting one login; remembers the good ones."""

    def __init__(self) -> None:
        self.accepted: list[bytes] = []

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = auth_data.login == b"usher" and auth_data.password == b"s3cret/pw"
        if ok:
            self.accepted.append(auth_data.login)
        return AuthResult(success=ok, handled=False)


@pytest.fixture
def auth_server() -> Iterator[tuple[MailServer, Credentials]]:
    """An SMTP server offering AUTH over plain TCP (for the test only)."""
    handler, credentials = MailHandler(), Credentials()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=credentials,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield MailServer(controller, handler), credentials
    finally:
        controller.stop()


async def test_smtp_login(
    gql: GQL,
    make_group: MakeGroup,
    settings: Settings,
    auth_server: tuple[MailServer, Credentials],
) -> None:
    server, credentials = auth_server
    _, inv_id = await invite(gql, make_group)
    row = await outbox_id(inv_id)
    port = server.controller.port
    wrong = settings.model_copy(update={"smtp_url": f"smtp://usher:nope@127.0.0.1:{port}"})
    right = settings.model_copy(update={"smtp_url": f"smtp://usher:s3cret%2Fpw@127.0.0.1:{port}"})
    # A refused login is a 5xx: the message fails with the server's reason.
    assert await deliver(job_ctx(wrong), outbox_id=row) == "failed"
    stored = await Invitation.get(id=inv_id)
    assert stored.delivery_error is not None and stored.delivery_error.startswith("535")

    second = await OutboxMessage.create(kind=MessageKind.RESEND, invitation_id=inv_id)
    assert await deliver(job_ctx(right), outbox_id=str(second.id)) == "sent"
    [mail] = await server.handler.wait_for(1)
    assert mail["To"] == "ben@example.com"
    assert credentials.accepted == [b"usher"]


async def test_resend_supersedes_the_first_message_and_carries_the_new_link(
    gql: GQL, make_group: MakeGroup, settings: Settings, mail_server: MailServer
) -> None:
    olivia, inv_id = await invite(gql, make_group)
    first = await outbox_id(inv_id)
    # What resend does: rotate the token and queue a RESEND for the new version.
    await Invitation.filter(id=inv_id).update(token_version=2)
    resend = await OutboxMessage.create(
        kind=MessageKind.RESEND, invitation_id=inv_id, token_version=2
    )
    ctx = job_ctx(settings)
    assert await deliver(ctx, outbox_id=first) == "skipped"
    assert await deliver(ctx, outbox_id=str(resend.id)) == "sent"

    [mail] = await mail_server.handler.wait_for(1)
    assert mail["Subject"].startswith("Reminder: Olivia <Owner> invited you to join Acme")
    assert "Links in earlier emails no longer work." in body(mail, "plain")
    token = link_token(body(mail, "plain"))
    assert (await gql(BY_TOKEN, {"token": token}))["invitationByToken"]["status"] == "PENDING"
    inv = (await gql(INVITATION_FIELDS, {"id": inv_id}, auth=olivia))["invitation"]
    assert (inv["deliveryStatus"], inv["sendCount"]) == ("SENT", 1)


async def test_a_broken_template_fails_the_message_once(
    gql: GQL, make_group: MakeGroup, settings: Settings, mail_server: MailServer, tmp_path: Path
) -> None:
    custom = tmp_path / "templates"
    custom.mkdir()
    (custom / "invitation.txt").write_text("Hello {{ firstname }}\n")  # no such variable
    broken = settings.model_copy(update={"templates_dir": str(custom)})
    _, inv_id = await invite(gql, make_group)
    assert await deliver(job_ctx(broken), outbox_id=await outbox_id(inv_id)) == "failed"
    stored = await Invitation.get(id=inv_id)
    assert stored.delivery_status == DeliveryStatus.FAILED
    assert stored.delivery_error == "template error: 'firstname' is undefined"
    assert mail_server.handler.messages == []

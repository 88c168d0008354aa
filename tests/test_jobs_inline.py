"""Jobs without Redis: the in-process runner, the expiry sweep and reminders."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from app.jobs.email import deliver
from app.jobs.expiry import expire_invitation, sweep_expired
from app.jobs.inline import InlineRunner
from app.jobs.reminders import queue_reminders
from app.models import (
    DeliveryStatus,
    EventType,
    Invitation,
    InvitationEvent,
    InvitationStatus,
    MessageKind,
    OutboxMessage,
)
from app.services import sql
from app.services.common import utcnow
from tests.conftest import GQL, INVITE, QueryLog
from tests.mailserver import (
    BY_TOKEN,
    INVITATION_FIELDS,
    MailServer,
    body,
    link_token,
    mail_server,
    mail_server_session,
)
from tests.redis_helpers import job_ctx, job_settings

__all__ = ["mail_server", "mail_server_session"]

MakeGroup = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def settings(mail_server: MailServer, tmp_path: Path) -> Settings:
    """No Redis; the test's SMTP server; short back-offs and batches of 2."""
    return job_settings(
        Settings(
            database_url="sqlite://:memory:",
            redis_url=None,
            accept_url="https://app.example.com/signup?invitation={token}",
            smtp_url=mail_server.url,
            smtp_timeout_seconds=5,
            mail_dir=str(tmp_path / "mail"),
            reminder_hours_before_expiry=24,
            resend_cooldown_seconds=0,
        )
    )


async def invite(gql: GQL, make_group: MakeGroup, *emails: str) -> tuple[str, list[str]]:
    """Olivia invites `emails` (ben@example.com by default); returns her JWT and the ids."""
    olivia = gql.token("olivia", "olivia@acme.test", name="Olivia")
    await make_group(olivia)
    invitees = [{"email": e} for e in emails or ("ben@example.com",)]
    data = await gql(
        INVITE,
        {"input": {"groupType": "org", "groupId": "acme", "invitees": invitees}},
        auth=olivia,
    )
    assert data["invite"]["errors"] == []
    return olivia, [i["id"] for i in data["invite"]["invitations"]]


async def test_in_process_invitation_reaches_smtp_at_once(
    gql: GQL, make_group: MakeGroup, settings: Settings, mail_server: MailServer
) -> None:
    # A long interval: only the wake-up from the commit can send the mail in time.
    async with InlineRunner(settings, interval=60) as runner:
        async with asyncio.timeout(30):
            while runner.rounds < 1:  # its first round found nothing  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        olivia, [inv_id] = await invite(gql, make_group)
        # Well before the next round would: sent because the commit woke the runner.
        [mail] = await mail_server.handler.wait_for(1, within=30)

    token = link_token(body(mail, "plain"))
    preview = (await gql(BY_TOKEN, {"token": token}))["invitationByToken"]
    assert preview["status"] == "PENDING"
    inv = (await gql(INVITATION_FIELDS, {"id": inv_id}, auth=olivia))["invitation"]
    assert (inv["deliveryStatus"], inv["sendCount"]) == ("SENT", 1)


async def test_in_process_retry_after_4xx(
    gql: GQL, make_group: MakeGroup, settings: Settings, mail_server: MailServer
) -> None:
    mail_server.handler.fail_next("450 4.2.1 Mailbox busy")
    async with InlineRunner(settings, interval=60):
        _, [inv_id] = await invite(gql, make_group)
        await mail_server.handler.wait_for(1)
    assert mail_server.handler.refused == 1
    row = await OutboxMessage.get(invitation_id=inv_id)
    assert row.attempts == 2 and row.sent_at is not None


async def test_in_process_without_smtp_writes_eml_files(
    gql: GQL, make_group: MakeGroup, settings: Settings, tmp_path: Path
) -> None:
    folder = settings.model_copy(update={"smtp_url": None})
    async with InlineRunner(folder, interval=60):
        _, [inv_id] = await invite(gql, make_group)
        for _ in range(200):
            if list((tmp_path / "mail").glob("*.eml")):
                break
            await asyncio.sleep(0.01)
    [eml] = list((tmp_path / "mail").glob("*.eml"))
    mail = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert isinstance(mail, EmailMessage)
    assert mail["To"] == "ben@example.com"
    assert "invitation=inv_" in body(mail, "plain")
    assert (await Invitation.get(id=inv_id)).delivery_status == DeliveryStatus.SENT


async def test_in_process_runner_expires_overdue_invitations(
    gql: GQL, make_group: MakeGroup, settings: Settings, mail_server: MailServer
) -> None:
    _, [inv_id] = await invite(gql, make_group)
    await Invitation.filter(id=inv_id).update(expires_at=utcnow() - timedelta(seconds=1))
    runner = InlineRunner(settings, interval=60)
    await runner.tick()
    assert (await Invitation.get(id=inv_id)).status == InvitationStatus.EXPIRED
    assert mail_server.handler.messages == []  # its email no longer goes out


async def test_sweep_flips_overdue_rows_in_batches(
    gql: GQL, make_group: MakeGroup, settings: Settings
) -> None:
    _, ids = await invite(gql, make_group, *(f"p{i}@example.com" for i in range(5)))
    overdue, fresh = ids[:4], ids[4]
    await Invitation.filter(id__in=overdue).update(expires_at=utcnow() - timedelta(minutes=1))
    ctx = job_ctx(settings)  # batches of 2
    assert await sweep_expired(ctx) == 4
    assert await sweep_expired(ctx) == 0
    statuses = dict(await Invitation.all().values_list("id", "status"))
    assert {str(k): v for k, v in statuses.items()} == {
        **{i: InvitationStatus.EXPIRED for i in overdue},
        fresh: InvitationStatus.PENDING,
    }
    assert await InvitationEvent.filter(type=EventType.EXPIRED).count() == 4


async def test_expiry_job_checks_the_row_again(
    gql: GQL, make_group: MakeGroup, settings: Settings
) -> None:
    _, [inv_id] = await invite(gql, make_group)
    ctx = job_ctx(settings)
    inv = await Invitation.get(id=inv_id)
    assert await expire_invitation(
        ctx, invitation_id=inv_id, expires_at="2020-01-01T00:00:00+00:00"
    ) == ("superseded")
    past = utcnow() - timedelta(seconds=1)
    await Invitation.filter(id=inv_id).update(expires_at=past)
    assert (
        await expire_invitation(ctx, invitation_id=inv_id, expires_at=past.isoformat()) == "expired"
    )
    assert await expire_invitation(ctx, invitation_id=inv_id, expires_at=past.isoformat()) == (
        "not pending"
    )
    assert inv.status == InvitationStatus.PENDING  # the copy read before


async def test_reminder_before_expiry(
    gql: GQL, make_group: MakeGroup, settings: Settings, mail_server: MailServer
) -> None:
    olivia, [due, recent, far] = await invite(
        gql, make_group, "due@example.com", "recent@example.com", "far@example.com"
    )
    ctx = job_ctx(settings)
    now = utcnow()
    await Invitation.filter(id__in=[due, recent, far]).update(
        delivery_status=DeliveryStatus.SENT, send_count=1, last_sent_at=now - timedelta(days=3)
    )
    await Invitation.filter(id__in=[due, recent]).update(expires_at=now + timedelta(hours=12))
    # Sent within the lead time: the invitation itself is reminder enough.
    await Invitation.filter(id=recent).update(last_sent_at=now - timedelta(hours=1))
    await OutboxMessage.all().update(sent_at=now)

    assert await queue_reminders(ctx) == 1
    assert await queue_reminders(ctx) == 0  # once only
    row = await OutboxMessage.get(kind=MessageKind.REMINDER)
    assert str(row.invitation_id) == due  # type: ignore[attr-defined]
    assert await deliver(ctx, outbox_id=str(row.id)) == "sent"

    [mail] = await mail_server.handler.wait_for(1)
    assert mail["To"] == "due@example.com"
    assert mail["Subject"] == "Your invitation to join Acme expires soon"
    assert link_token(body(mail, "plain"))
    inv = (await gql(INVITATION_FIELDS, {"id": due}, auth=olivia))["invitation"]
    assert "REMINDED" in [e["type"] for e in inv["events"]]
    assert inv["sendCount"] == 1  # reminders are not resends


async def test_reminders_are_queued_a_batch_per_statement(
    gql: GQL, make_group: MakeGroup, settings: Settings, queries: QueryLog
) -> None:
    _, ids = await invite(gql, make_group, *(f"p{i}@example.com" for i in range(5)))
    now = utcnow()
    await Invitation.filter(id__in=ids).update(
        delivery_status=DeliveryStatus.SENT,
        last_sent_at=now - timedelta(days=3),
        expires_at=now + timedelta(hours=12),
    )
    queries.statements.clear()
    assert await queue_reminders(job_ctx(settings)) == 5  # batches of 2: 2, 2, 1
    marks = [s for s in queries.statements if 'SET "reminder_sent_at"' in s]
    assert len(marks) == 3
    if sql.is_postgres(Invitation):
        assert len(queries.statements) == 3  # the outbox rows are inserted by the same one
    rows = await OutboxMessage.filter(kind=MessageKind.REMINDER).values_list(
        "invitation_id", "token_version"
    )
    assert sorted((str(i), v) for i, v in rows) == sorted((i, 1) for i in ids)
    assert await queue_reminders(job_ctx(settings)) == 0


async def test_reminders_can_be_turned_off(
    gql: GQL, make_group: MakeGroup, settings: Settings
) -> None:
    _, [inv_id] = await invite(gql, make_group)
    now = utcnow()
    await Invitation.filter(id=inv_id).update(
        delivery_status=DeliveryStatus.SENT,
        last_sent_at=now - timedelta(days=3),
        expires_at=now + timedelta(hours=1),
    )
    off = settings.model_copy(update={"reminder_hours_before_expiry": 0})
    assert await queue_reminders(job_ctx(off)) == 0


async def test_stopping_lets_a_send_in_progress_finish(
    gql: GQL, make_group: MakeGroup, settings: Settings, mail_server: MailServer
) -> None:
    mail_server.handler.delay = 1.0
    async with InlineRunner(settings, interval=60):
        _, [inv_id] = await invite(gql, make_group)
        # Stop while the server is still chewing on the message.
        await mail_server.handler.wait_until(lambda: mail_server.handler.receiving >= 1, "DATA")
    # Stopping waited for the "250" and recorded it: nothing will send it again.
    assert len(mail_server.handler.messages) == 1
    row = await OutboxMessage.get(invitation_id=inv_id)
    assert row.sent_at is not None
    assert (await Invitation.get(id=inv_id)).delivery_status == DeliveryStatus.SENT


RESEND = """
mutation($id: ID!) {
  resendInvitation(id: $id) { invitation { deliveryStatus } errors { code message } }
}"""


async def test_in_process_resend_sends_a_new_link(
    gql: GQL, make_group: MakeGroup, settings: Settings, mail_server: MailServer
) -> None:
    async with InlineRunner(settings, interval=60):
        olivia, [inv_id] = await invite(gql, make_group)
        [first] = await mail_server.handler.wait_for(1)
        resent = (await gql(RESEND, {"id": inv_id}, auth=olivia))["resendInvitation"]
        assert resent["errors"] == []
        second = (await mail_server.handler.wait_for(2))[1]
        # The server has the email; the job records it right after. Wait for that, not
        # for a moment: leaving the runner stops a job still in flight.
        async with asyncio.timeout(30):
            while (await Invitation.get(id=inv_id)).send_count < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    old, new = link_token(body(first, "plain")), link_token(body(second, "plain"))
    assert old != new
    assert "Links in earlier emails no longer work." in body(second, "plain")
    assert (await gql(BY_TOKEN, {"token": old}))["invitationByToken"] is None
    assert (await gql(BY_TOKEN, {"token": new}))["invitationByToken"]["status"] == "PENDING"
    inv = (await gql(INVITATION_FIELDS, {"id": inv_id}, auth=olivia))["invitation"]
    assert (inv["deliveryStatus"], inv["sendCount"]) == ("SENT", 2)


async def test_a_revoke_while_the_email_is_written_stops_it(
    gql: GQL, make_group: MakeGroup, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    from app.jobs import email as email_job
    from app.jobs.email import deliver
    from app.mail.transports import FolderTransport
    from tests.lifecycle_helpers import REVOKE

    olivia, [inv_id] = await invite(gql, make_group)
    compose = email_job.compose

    async def compose_while_revoked(*args: Any) -> Any:
        # The revoke lands after the job's first look at the invitation, before the send.
        revoked = await gql(REVOKE, {"id": inv_id}, auth=olivia)
        assert revoked["revokeInvitation"]["errors"] == []
        return await compose(*args)

    monkeypatch.setattr(email_job, "compose", compose_while_revoked)
    [row] = await OutboxMessage.filter(invitation_id=inv_id)
    outbox = tmp_path / "sent"
    ctx = {"settings": settings, "transport": FolderTransport(str(outbox))}
    assert await deliver(ctx, outbox_id=str(row.id)) == "skipped"

    assert not outbox.exists() or not list(outbox.iterdir())
    await row.refresh_from_db()
    assert row.sent_at is None and row.last_error == "not sent: the invitation is revoked"
    invitation = await Invitation.get(id=inv_id)
    assert invitation.delivery_status != DeliveryStatus.SENT
    events = await InvitationEvent.filter(invitation_id=inv_id).order_by("created_at")
    assert [e.type for e in events] == [EventType.CREATED, EventType.REVOKED]

"""Concurrent calls served together (`app/jobs/batching.py`), and the delivery jobs that share
their reads and their records through it, against a real SMTP server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from app.jobs.batching import Batcher
from app.jobs.email import deliver
from app.mail.transports import Transport
from app.models import EventType, Invitation, InvitationEvent, OutboxMessage
from tests.conftest import GQL, INVITE, QueryLog
from tests.mailserver import MailServer, mail_server, mail_server_session
from tests.redis_helpers import job_ctx, job_settings

__all__ = ["mail_server", "mail_server_session"]

MakeGroup = Callable[..., Awaitable[dict[str, Any]]]


class Recorded:
    """A batch function that remembers its batches; it fails on the item "boom" and
    refuses the item "no" alone."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, items: list[str]) -> list[str | Exception]:
        self.batches.append(items)
        self.started.set()
        await self.release.wait()
        if "boom" in items:
            raise RuntimeError("the batch failed")
        return [ValueError(item) if item == "no" else item.upper() for item in items]


async def test_calls_made_together_are_one_batch() -> None:
    run = Recorded()
    batcher = Batcher(run)
    assert await asyncio.gather(*(batcher(x) for x in "abc")) == ["A", "B", "C"]
    assert run.batches == [["a", "b", "c"]]


async def test_calls_made_while_a_batch_runs_form_the_next() -> None:
    run = Recorded()
    run.release.clear()
    batcher = Batcher(run, max_size=2)
    first = asyncio.ensure_future(batcher("a"))
    await run.started.wait()
    rest = [asyncio.ensure_future(batcher(x)) for x in "bcd"]
    await asyncio.sleep(0)
    run.release.set()
    assert await asyncio.gather(first, *rest) == ["A", "B", "C", "D"]
    assert run.batches == [["a"], ["b", "c"], ["d"]]


async def test_an_item_refused_fails_only_its_caller() -> None:
    batcher = Batcher(Recorded())
    results = await asyncio.gather(batcher("yes"), batcher("no"), return_exceptions=True)
    assert results[0] == "YES"
    assert isinstance(results[1], ValueError)


async def test_a_batch_that_fails_fails_its_callers_not_the_next_batch() -> None:
    run = Recorded()
    batcher = Batcher(run)
    results = await asyncio.gather(batcher("boom"), batcher("a"), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert await batcher("b") == "B"


async def test_a_caller_cancelled_while_it_waits_leaves_the_batch_to_the_others() -> None:
    run = Recorded()
    run.release.clear()
    batcher = Batcher(run)
    gone, stays = asyncio.ensure_future(batcher("x")), asyncio.ensure_future(batcher("y"))
    await run.started.wait()
    gone.cancel()
    run.release.set()
    assert await stays == "Y"
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert run.batches == [["x", "y"]]


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


async def invite(gql: GQL, make_group: MakeGroup, emails: list[str]) -> dict[str, str]:
    """Olivia invites `emails`; returns their outbox rows' ids by email."""
    olivia = gql.token("olivia", "olivia@acme.test", name="Olivia")
    await make_group(olivia)
    invitees = [{"email": e} for e in emails]
    data = await gql(
        INVITE,
        {"input": {"groupType": "org", "groupId": "acme", "invitees": invitees}},
        auth=olivia,
    )
    assert data["invite"]["errors"] == []
    emails_by_id = dict(await Invitation.all().values_list("id", "email"))
    rows = await OutboxMessage.all().values_list("id", "invitation_id")
    return {str(emails_by_id[invitation]): str(row) for row, invitation in rows}


async def test_jobs_running_together_share_their_reads_and_records(
    gql: GQL, make_group: MakeGroup, settings: Settings, mail_server: MailServer, queries: QueryLog
) -> None:
    emails = [f"guest{n}@example.com" for n in range(10)]
    rows = await invite(gql, make_group, emails)
    ctx = job_ctx(settings)
    queries.statements.clear()
    results = await asyncio.gather(*(deliver(ctx, outbox_id=row) for row in rows.values()))
    assert results == ["sent"] * 10
    outbox_reads = [
        s
        for s in queries.statements
        if s.lstrip().startswith("SELECT") and '"outbox"' in s.split("WHERE")[0]
    ]
    assert len(outbox_reads) == 1, outbox_reads

    assert sorted(str(m["To"]) for m in mail_server.handler.messages) == emails
    for invitation in await Invitation.all():
        assert invitation.send_count == 1 and invitation.message_id
        events = await InvitationEvent.filter(invitation_id=invitation.id, type=EventType.SENT)
        assert len(events) == 1
    assert await OutboxMessage.filter(sent_at__isnull=True).count() == 0


async def test_two_runs_of_one_job_at_once_send_once(
    gql: GQL, make_group: MakeGroup, settings: Settings, mail_server: MailServer
) -> None:
    rows = await invite(gql, make_group, ["ben@example.com"])
    ctx, row = job_ctx(settings), rows["ben@example.com"]
    results = await asyncio.gather(deliver(ctx, outbox_id=row), deliver(ctx, outbox_id=row))
    assert sorted(results) == ["already done", "sent"]
    assert len(mail_server.handler.messages) == 1
    stored = await OutboxMessage.get(id=row)
    assert stored.sent_at is not None and stored.failed_at is None and stored.attempts == 1
    assert (await Invitation.get(email="ben@example.com")).send_count == 1


class DeletesOnSend:
    """The real SMTP transport, but sending to `doomed` deletes that invitation (as if it
    vanished between the send and its record); every send waits until `count` have gone,
    so their records meet in one batch."""

    def __init__(self, inner: Transport, doomed: str, count: int) -> None:
        self.inner, self.doomed, self.count = inner, doomed, count
        self.sent = 0
        self.all_sent = asyncio.Event()

    async def send(self, message: Message) -> None:
        await self.inner.send(message)
        if message["To"] == self.doomed:
            await Invitation.filter(email=self.doomed).delete()
        self.sent += 1
        if self.sent == self.count:
            self.all_sent.set()
        await self.all_sent.wait()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_send_that_cannot_be_recorded_does_not_undo_the_others(
    gql: GQL,
    make_group: MakeGroup,
    settings: Settings,
    mail_server: MailServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    emails = ["a@example.com", "gone@example.com", "c@example.com"]
    rows = await invite(gql, make_group, emails)
    ctx = job_ctx(settings)
    ctx["transport"] = DeletesOnSend(ctx["transport"], "gone@example.com", len(emails))
    results = await asyncio.gather(
        *(deliver(ctx, outbox_id=rows[email]) for email in emails), return_exceptions=True
    )
    assert results[0] == results[2] == "sent"
    assert isinstance(results[1], Exception)
    assert "recording 3 sent emails together failed" in caplog.text
    for email in ("a@example.com", "c@example.com"):
        invitation = await Invitation.get(email=email)
        assert invitation.send_count == 1
        assert await InvitationEvent.filter(invitation_id=invitation.id, type=EventType.SENT)
    assert await OutboxMessage.filter(sent_at__isnull=True).count() == 0

"""Quotas against mail abuse: per inviter, per group, open invitations per group, and
invitation emails per mailbox, held in the database or in Redis."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.config import Settings
from app.jobs.inline import InlineRunner
from app.mail.transports import FolderTransport
from app.models import Invitation, OutboxMessage, QuotaCounter
from app.services import quotas
from app.services.errors import RateLimited
from tests.conftest import GQL, INVITE, QueryLog
from tests.lifecycle_helpers import CREATE_LINK, REVOKE
from tests.redis_helpers import REDIS_URL, private_queue, redis

__all__ = ["redis"]


@pytest.fixture
def settings() -> Settings:
    """Small quotas, no Redis."""
    return Settings(
        database_url="sqlite://:memory:",
        redis_url=None,
        accept_url="https://app.example.com/signup?invitation={token}",
        quota_invites_per_inviter_hour=3,
        quota_invites_per_group_day=5,
        quota_mails_per_recipient_day=2,
        quota_pending_per_group=4,
    )


def _invitees(*emails: str) -> dict[str, Any]:
    return {"groupType": "org", "groupId": "acme", "invitees": [{"email": e} for e in emails]}


async def _invite(gql: GQL, auth: str, *emails: str) -> dict[str, Any]:
    payload: dict[str, Any] = (await gql(INVITE, {"input": _invitees(*emails)}, auth=auth))[
        "invite"
    ]
    return payload


def _limited(payload: dict[str, Any]) -> list[tuple[list[str], bool]]:
    return [
        (e["field"], "try again after" in e["message"])
        for e in payload["errors"]
        if e["code"] == "RATE_LIMITED"
    ]


async def test_one_user_invites_at_most_the_hourly_quota(
    gql: GQL, make_group, api_key: str, settings: Settings
) -> None:
    settings.quota_pending_per_group = 100
    olivia = gql.token("olivia", "olivia@acme.com")
    await make_group(olivia)
    payload = await _invite(gql, olivia, *(f"p{n}@example.com" for n in range(4)))
    assert len(payload["invitations"]) == 3
    assert _limited(payload) == [(["invitees", "3"], True)]
    # Each refusal says when to come back: the end of the hour.
    body = await gql.raw(
        """mutation($input: InviteInput!) { invite(input: $input) {
            errors { code retryAfter } } }""",
        {"input": _invitees("late@example.com")},
        auth=olivia,
    )
    [error] = body["data"]["invite"]["errors"]
    retry = datetime.fromisoformat(error["retryAfter"])
    assert datetime.now(UTC) < retry <= datetime.now(UTC) + timedelta(hours=1)
    # A link counts too.
    link = await gql(CREATE_LINK, {"input": {"groupType": "org", "groupId": "acme"}}, auth=olivia)
    assert link["createInviteLink"]["errors"][0]["code"] == "RATE_LIMITED"
    # The host's own backend is not an inviter: only the group's quota applies to it.
    payload = await _invite(gql, api_key, "k1@example.com", "k2@example.com", "k3@example.com")
    assert len(payload["invitations"]) == 2  # the group's 5 of the day are used up
    assert _limited(payload) == [(["invitees", "2"], True)]
    assert await Invitation.all().count() == 5


async def test_open_invitations_per_group_are_bounded(gql: GQL, make_group, api_key, settings):
    settings.quota_invites_per_group_day = 100
    await make_group(gql.token("olivia", "olivia@acme.com"))
    payload = await _invite(gql, api_key, *(f"p{n}@example.com" for n in range(5)))
    assert len(payload["invitations"]) == 4
    [error] = payload["errors"]
    assert error["code"] == "RATE_LIMITED" and error["field"] == ["invitees", "4"]
    # A slot frees when an open invitation closes.
    revoked = await gql(REVOKE, {"id": payload["invitations"][0]["id"]}, auth=api_key)
    assert revoked["revokeInvitation"]["errors"] == []
    again = await _invite(gql, api_key, "p4@example.com")
    assert again["errors"] == []


async def test_open_invitations_hold_under_concurrency(gql: GQL, make_group, api_key, settings):
    settings.quota_invites_per_group_day = 100
    await make_group(gql.token("olivia", "olivia@acme.com"))
    payloads = await asyncio.gather(
        *(_invite(gql, api_key, f"p{n}@example.com") for n in range(20))
    )
    assert sum(len(p["invitations"]) for p in payloads) == 4
    assert sorted(e["code"] for p in payloads for e in p["errors"]) == ["RATE_LIMITED"] * 16
    assert await Invitation.all().count() == 4


async def test_a_full_group_says_when_the_next_slot_frees(gql: GQL, make_group, api_key, settings):
    settings.quota_invites_per_group_day = 100
    await make_group(gql.token("olivia", "olivia@acme.com"))
    body = await gql.raw(
        """mutation($input: InviteInput!) { invite(input: $input) {
            invitations { expiresAt } errors { code field retryAfter } } }""",
        {"input": {**_invitees(*(f"p{n}@example.com" for n in range(6))), "expiresInDays": 3}},
        auth=api_key,
    )
    payload = body["data"]["invite"]
    assert len(payload["invitations"]) == 4
    # The batch ran out half-way: the refusals name the first expiry, not "tomorrow".
    first_expiry = min(datetime.fromisoformat(i["expiresAt"]) for i in payload["invitations"])
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [
        ("RATE_LIMITED", ["invitees", "4"]),
        ("RATE_LIMITED", ["invitees", "5"]),
    ]
    for error in payload["errors"]:
        assert abs(datetime.fromisoformat(error["retryAfter"]) - first_expiry) < timedelta(
            seconds=1
        )
    # An expired invitation holds no slot, and reopening it takes one.
    await Invitation.filter(email_key="p0@example.com").update(
        expires_at=datetime.now(UTC) - timedelta(minutes=1)
    )
    assert (await _invite(gql, api_key, "p9@example.com"))["errors"] == []
    renew = """mutation($id: ID!) { renewInvitation(id: $id) { errors { code } } }"""
    stale = await Invitation.get(email_key="p0@example.com")
    renewed = await gql(renew, {"id": str(stale.id)}, auth=api_key)
    assert renewed["renewInvitation"]["errors"] == [{"code": "RATE_LIMITED"}]


async def test_a_mailbox_gets_at_most_its_daily_emails(
    gql: GQL, make_group, api_key: str, settings: Settings, tmp_path
) -> None:
    settings.quota_invites_per_inviter_hour = 100
    settings.quota_invites_per_group_day = 100
    # Throwaway groups, `+tags` and capitals: all one mailbox.
    olivia = gql.token("olivia", "olivia@acme.com")
    for n in range(3):
        await make_group(olivia, f"g{n}", f"G{n}")
    addresses = ["victim@corp.example", "Victim+1@corp.example", "victim+2@CORP.example"]
    async with InlineRunner(settings, interval=60, transport=FolderTransport(str(tmp_path))):
        for n, address in enumerate(addresses):
            data = await gql(
                INVITE,
                {
                    "input": {
                        "groupType": "org",
                        "groupId": f"g{n}",
                        "invitees": [{"email": address}],
                    }
                },
                auth=olivia,
            )
            assert data["invite"]["errors"] == []
        # Invite, wait for the email, revoke, invite again: each new invitation is another
        # email to the same mailbox.
        for _ in range(3):
            data = await gql(
                INVITE,
                {
                    "input": {
                        "groupType": "org",
                        "groupId": "g0",
                        "invitees": [{"email": "o@x.example"}],
                    }
                },
                auth=api_key,
            )
            [again] = data["invite"]["invitations"]
            await _settled()
            await gql(REVOKE, {"id": again["id"]}, auth=api_key)
        await _settled()
    held = await OutboxMessage.filter(sent_at__isnull=True, failed_at__isnull=True)
    sent = await OutboxMessage.filter(sent_at__isnull=False).count()
    assert len(list(tmp_path.glob("*.eml"))) == sent == 2 + 2
    # The third email to each mailbox waits for tomorrow (not an attempt, not lost); the
    # one to the revoked invitation will be dropped when it comes due.
    assert [(m.attempts, m.last_error) for m in held] == [
        (0, "held: the recipient's daily quota")
    ] * 2
    assert all(m.enqueued_at is not None and m.enqueued_at > datetime.now(UTC) for m in held)
    # The invitation itself exists: the invitee sees it when they sign in.
    assert await Invitation.filter(email_key="victim+2@corp.example").count() == 1


async def _settled() -> None:
    """Wait until no outbox row is due now (sent, failed, or held for later)."""

    async def due() -> bool:
        now = datetime.now(UTC)
        waiting = OutboxMessage.filter(sent_at__isnull=True, failed_at__isnull=True)
        return (
            await waiting.filter(enqueued_at__isnull=True).exists()
            or await waiting.filter(enqueued_at__lte=now, last_error__isnull=True).exists()
        )

    async with asyncio.timeout(30):
        while await due():  # noqa: ASYNC110 (a database condition, polled)
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("address", ["ben@example.com", "Ben+work@Example.com", " BEN@example.com"])
def test_mailboxes_ignore_case_and_tags(address: str) -> None:
    assert quotas.mailbox(address) == "ben@example.com"


async def test_database_quotas_hold_under_concurrency(settings: Settings) -> None:
    quota = quotas.Quota("test", 5, quotas.DAY, "tests")
    results = await asyncio.gather(
        *(quotas.take(settings, quota, "same") for _ in range(20)), return_exceptions=True
    )
    assert sum(r is None for r in results) == 5
    assert all(isinstance(r, RateLimited) for r in results if r is not None)
    assert [c.count for c in await QuotaCounter.all()] == [5]


async def test_a_burst_across_a_window_edge_counts_on_both_sides() -> None:
    # Five used at the end of the previous hour: six minutes into this one they still
    # count for nine tenths (the share of the last hour they cover), so a spammer who
    # times a burst on the edge gets the quota once, not twice.
    quota = quotas.Quota("edge", 5, quotas.HOUR, "tests")
    start = datetime(2026, 3, 1, 10, tzinfo=UTC)
    now = start + timedelta(minutes=6)
    await QuotaCounter.create(key="edge:same", window_start=start - quotas.HOUR, count=5)

    async def take(subject: str = "same") -> None:
        await quotas._take_database(quota, subject, None, now=now)

    results = await asyncio.gather(*(take() for _ in range(5)), return_exceptions=True)
    assert sum(r is None for r in results) == 1  # 5 - floor(5 * 0.9)
    refusals = [r for r in results if isinstance(r, RateLimited)]
    assert len(refusals) == 4
    # One more fits once the last hour's five count for less than four: at 10:12.
    assert {r.retry_after for r in refusals} == {start + timedelta(minutes=12)}
    await take("other")  # another subject has a count of its own
    # A full hour refuses until its own count has faded into the next one.
    await QuotaCounter.create(key="edge:full", window_start=start, count=5)
    with pytest.raises(RateLimited) as raised:
        await take("full")
    assert raised.value.retry_after == start + quotas.HOUR


async def test_a_database_quota_takes_one_statement_per_use(
    settings: Settings, queries: QueryLog
) -> None:
    quota = quotas.Quota("one", 2, quotas.DAY, "tests")
    assert not await QuotaCounter.exists()  # the connection is open
    for _ in range(2):
        queries.statements.clear()
        await quotas.take(settings, quota, "same")
        assert len(queries.statements) == 1, queries.statements
    with pytest.raises(RateLimited):
        await quotas.take(settings, quota, "same")
    assert [c.count for c in await QuotaCounter.all()] == [2]


async def test_redis_quotas_hold_and_keep_installations_apart(settings: Settings, redis) -> None:
    quota = quotas.Quota("test", 3, quotas.HOUR, "tests")
    ours = settings.model_copy(update={"redis_url": REDIS_URL, "queue_name": private_queue()})
    theirs = settings.model_copy(update={"redis_url": REDIS_URL, "queue_name": private_queue()})
    results = await asyncio.gather(
        *(quotas.take(ours, quota, "same") for _ in range(8)), return_exceptions=True
    )
    assert sum(r is None for r in results) == 3
    limited = [r for r in results if isinstance(r, RateLimited)]
    assert len(limited) == 5
    assert limited[0].retry_after is not None
    assert limited[0].retry_after <= datetime.now(UTC) + timedelta(hours=1)
    await quotas.take(theirs, quota, "same")  # another queue name: a quota of its own
    assert not await QuotaCounter.exists()  # nothing in the database


def test_a_quota_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="USHER_QUOTA_PENDING_PER_GROUP must be at least 1"):
        Settings(quota_pending_per_group=0).check()


async def test_a_batch_takes_what_is_left_of_the_redis_quotas(
    gql: GQL, make_group, api_key: str, settings: Settings, redis
) -> None:
    settings.redis_url = REDIS_URL
    settings.queue_name = redis.default_queue_name
    settings.quota_pending_per_group = 100
    olivia = gql.token("olivia", "olivia@acme.com")
    await make_group(olivia)
    payload = await _invite(gql, olivia, *(f"p{n}@example.com" for n in range(4)))
    assert len(payload["invitations"]) == 3
    assert _limited(payload) == [(["invitees", "3"], True)]
    payload = await _invite(gql, api_key, "k1@example.com", "k2@example.com", "k3@example.com")
    assert len(payload["invitations"]) == 2  # the group's 5 of the day
    assert _limited(payload) == [(["invitees", "2"], True)]
    assert not await QuotaCounter.exists()


async def test_concurrent_batches_never_pass_a_database_quota_together(
    gql: GQL, make_group, settings: Settings
) -> None:
    await _four_batches_of_two_in_four_groups(gql, make_group)


async def test_concurrent_batches_never_pass_a_redis_quota_together(
    gql: GQL, make_group, settings: Settings, redis
) -> None:
    settings.redis_url = REDIS_URL
    settings.queue_name = redis.default_queue_name
    await _four_batches_of_two_in_four_groups(gql, make_group)


async def _four_batches_of_two_in_four_groups(gql: GQL, make_group) -> None:
    # Four groups, so the group locks do not put the batches one after the other.
    olivia = gql.token("olivia", "olivia@acme.com")
    for n in range(4):
        await make_group(olivia, f"g{n}", f"G{n}")

    async def batch(n: int) -> dict[str, Any]:
        data = await gql(
            INVITE,
            {
                "input": {
                    "groupType": "org",
                    "groupId": f"g{n}",
                    "invitees": [{"email": f"a{n}@example.com"}, {"email": f"b{n}@example.com"}],
                }
            },
            auth=olivia,
        )
        payload: dict[str, Any] = data["invite"]
        return payload

    payloads = await asyncio.gather(*(batch(n) for n in range(4)))
    # Olivia's 3 an hour, whichever groups they went to.
    assert sum(len(p["invitations"]) for p in payloads) == 3
    assert sorted(e["code"] for p in payloads for e in p["errors"]) == ["RATE_LIMITED"] * 5
    assert await Invitation.all().count() == 3

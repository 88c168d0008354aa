"""Events: every change to an invitation or a membership is one event, written with the
change, and read back in order through the `events` feed."""

from __future__ import annotations

from typing import Any

import pytest

from app.config import Settings
from app.jobs.inline import InlineRunner
from app.mail.transports import FolderTransport
from app.models import Event, Group, OutboxMessage, WebhookEndpoint
from app.services import events
from tests.conftest import GQL
from tests.lifecycle_helpers import (
    ACCEPT,
    CREATE_LINK,
    DECLINE,
    RENEW,
    RESEND,
    REVOKE,
    SET_AUTOJOIN,
    UPDATE,
    age,
    invite_one,
    overdue,
    token_of,
)

FEED = """query($after: String, $first: Int! = 50, $types: [String!]) {
  events(after: $after, first: $first, types: $types) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node { id type timestamp data } } } }"""


@pytest.fixture
def settings() -> Settings:
    """No delay before the feed shows an event, so tests need not wait."""
    return Settings(
        database_url="sqlite://:memory:",
        redis_url=None,
        accept_url="https://app.example.com/signup?invitation={token}",
        resend_cooldown_seconds=0,
        feed_delay_seconds=0,
    )


async def _feed(gql: GQL, api_key: str, **variables: Any) -> list[dict[str, Any]]:
    """Every event the feed shows, following the cursor a small page at a time."""
    seen: list[dict[str, Any]] = []
    after = None
    while True:
        data = await gql(FEED, {"after": after, "first": 3, **variables}, auth=api_key)
        page = data["events"]
        seen += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return seen
        after = page["pageInfo"]["endCursor"]


async def test_every_change_is_one_event_in_order(
    gql: GQL, api_key: str, make_group, settings: Settings, tmp_path
) -> None:
    olivia = gql.token("olivia", "olivia@acme.com", name="Olivia")
    await make_group(olivia)
    ben = gql.token("ben", "ben@example.com", name="Ben")
    first = await invite_one(gql, olivia, "ben@example.com", role="admin")
    await gql(UPDATE, {"id": first["id"], "input": {"message": "Hi"}}, auth=olivia)
    await age(first["id"])
    await gql(RESEND, {"id": first["id"]}, auth=olivia)
    await gql(RENEW, {"id": first["id"], "days": 14}, auth=olivia)
    # The emails go out: the first was superseded by the resend, the second is sent.
    runner = InlineRunner(settings, transport=FolderTransport(str(tmp_path)))
    await runner.relay()
    # Ben joins by a link as a member, then accepts the admin invitation: raised.
    link = await gql(CREATE_LINK, {"input": {"groupType": "org", "groupId": "acme"}}, auth=olivia)
    link_token = token_of(link["createInviteLink"]["invitation"]["inviteUrl"])
    assert (await gql(ACCEPT, {"token": link_token}, auth=ben))["acceptInvitation"]["errors"] == []
    url = (
        await gql(
            "query($id: ID!) { invitation(id: $id) { inviteUrl } }",
            {"id": first["id"]},
            auth=olivia,
        )
    )["invitation"]["inviteUrl"]
    accepted = await gql(ACCEPT, {"token": token_of(url)}, auth=ben)
    assert accepted["acceptInvitation"]["errors"] == []
    third = await invite_one(gql, olivia, "carol@example.com")
    await gql(REVOKE, {"id": third["id"]}, auth=olivia)
    fourth = await invite_one(gql, olivia, "dan@example.com")
    await gql(DECLINE, {"id": fourth["id"]}, auth=gql.token("dan", "dan@example.com"))
    fifth = await invite_one(gql, olivia, "erin@example.com")
    await overdue(fifth["id"], flip=True)
    await gql(SET_AUTOJOIN, {"domains": ["acme.com"]}, auth=olivia)

    feed = await _feed(gql, api_key)
    about = [(e["type"], (e["data"].get("invitation") or {}).get("email")) for e in feed]
    assert about == [
        ("membership.created", None),  # Olivia creates the group
        ("invitation.created", "ben@example.com"),
        ("invitation.updated", "ben@example.com"),
        ("invitation.resent", "ben@example.com"),
        ("invitation.renewed", "ben@example.com"),
        # One email went out: the first, superseded by the resend, was dropped unsent.
        ("invitation.sent", "ben@example.com"),
        ("invitation.created", None),  # the link
        ("membership.created", None),
        ("invitation.accepted", None),
        ("membership.updated", None),  # raised to admin by the email invitation
        ("invitation.accepted", "ben@example.com"),
        ("invitation.created", "carol@example.com"),
        ("invitation.revoked", "carol@example.com"),
        ("invitation.created", "dan@example.com"),
        ("invitation.declined", "dan@example.com"),
        ("invitation.created", "erin@example.com"),
        ("invitation.expired", "erin@example.com"),
        ("group.domains_updated", None),
    ]
    assert len(feed) == len({e["id"] for e in feed}) == await Event.all().count()
    # One event per change: the first invitation's events, in the order they happened.
    mine = [e["type"] for e in feed if (e["data"].get("invitation") or {}).get("id") == first["id"]]
    assert mine == [
        "invitation.created",
        "invitation.updated",
        "invitation.resent",
        "invitation.renewed",
        "invitation.sent",
        "invitation.accepted",
    ]


async def test_event_data_shows_what_graphql_shows(gql: GQL, api_key: str, make_group) -> None:
    olivia = gql.token("olivia", "olivia@acme.com", name="Olivia")
    await make_group(olivia)
    invitation = await invite_one(
        gql, olivia, "Ben@Example.com", role="member", metadata={"plan": "pro"}
    )
    ben = gql.token("ben", "ben@example.com", name="Ben")
    await gql(ACCEPT, {"token": token_of(invitation["inviteUrl"])}, auth=ben)

    [accepted] = await _feed(gql, api_key, types=["invitation.accepted"])
    data = accepted["data"]
    assert data["invitation"]["id"] == invitation["id"]
    assert data["invitation"]["status"] == "ACCEPTED"
    assert data["invitation"]["email"] == invitation["email"]
    assert data["invitation"]["metadata"] == {"plan": "pro"}
    assert data["invitation"]["inviter"]["externalId"] == "olivia"
    assert "inviteUrl" not in data["invitation"]
    assert data["group"] == {
        "id": data["group"]["id"],
        "type": "org",
        "externalId": "acme",
        "name": "Acme",
    }
    assert data["membership"]["role"] == "member"
    assert data["membership"]["user"]["externalId"] == "ben"
    # The webhook body is the same thing.
    stored = await Event.get(id=accepted["id"])
    assert events.payload(stored) == {
        "id": accepted["id"],
        "type": "invitation.accepted",
        "timestamp": stored.created_at.isoformat(),
        "data": data,
    }


async def test_a_refused_change_writes_no_event(gql: GQL, api_key: str, make_group) -> None:
    olivia = gql.token("olivia", "olivia@acme.com")
    await make_group(olivia)
    invitation = await invite_one(gql, olivia)
    await gql(REVOKE, {"id": invitation["id"]}, auth=olivia)
    before = await Event.all().count()
    again = await gql(REVOKE, {"id": invitation["id"]}, auth=olivia)
    assert again["revokeInvitation"]["errors"][0]["code"] == "INVALID_STATUS"
    renew = await gql(RENEW, {"id": invitation["id"]}, auth=olivia)
    assert renew["renewInvitation"]["errors"][0]["code"] == "INVALID_STATUS"
    assert await Event.all().count() == before


async def test_the_feed_is_for_api_keys_and_known_types(gql: GQL, api_key: str, make_group) -> None:
    olivia = gql.token("olivia", "olivia@acme.com")
    await make_group(olivia)
    body = await gql.raw(FEED, auth=olivia)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    body = await gql.raw(FEED, {"types": ["invitation.nonsense"]}, auth=api_key)
    assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    data = await gql(FEED, {"types": ["membership.created"]}, auth=api_key)
    assert data["events"]["totalCount"] == 1


async def test_the_feed_waits_before_showing_an_event(
    gql: GQL, api_key: str, make_group, settings
) -> None:
    settings.feed_delay_seconds = 3600
    await make_group(gql.token("olivia", "olivia@acme.com"))
    data = await gql(FEED, auth=api_key)
    assert data["events"]["edges"] == []
    assert await Event.all().count() == 1


async def test_events_roll_back_with_their_change(make_group, gql: GQL) -> None:
    await make_group(gql.token("olivia", "olivia@acme.com"))
    group = await Group.get(external_id="acme")
    await WebhookEndpoint.create(url="https://hooks.example.com/usher", secret="whsec_test")
    before = await Event.all().count()
    with pytest.raises(RuntimeError):
        async with events.transaction():
            await events.publish("group.domains_updated", group_id=group.id, data={})
            raise RuntimeError("the change fails")
    assert await Event.all().count() == before
    assert await OutboxMessage.all().count() == 0
    # A savepoint that rolls back takes its events with it; the outer change keeps its own.
    async with events.transaction():
        await events.publish("group.domains_updated", group_id=group.id, data={"kept": True})
        with pytest.raises(RuntimeError):
            async with events.transaction():
                await events.publish("group.domains_updated", group_id=group.id, data={})
                raise RuntimeError("the inner step fails")
    kept = [e.data for e in await Event.filter(type="group.domains_updated")]
    assert kept == [{"kept": True}]
    assert await OutboxMessage.filter(kind="webhook").count() == 1

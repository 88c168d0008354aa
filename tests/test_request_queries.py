"""What the busiest requests cost in SQL statements: the preview one, a page of a group's
invitations a fixed number whatever its size, and a signed-in user's request nothing to
sync them while their claims stay the same."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.models import Invitation, InvitationStatus
from app.services import preview
from app.services.auth import Claims, KnownUsers, sync_user
from app.services.invitations import effective_status
from tests.conftest import GQL, QueryLog
from tests.lifecycle_helpers import token_of
from tests.test_limits import _gql
from tests.test_queries import PREVIEW, invite_many

PAGE = """query($first: Int!) {
  invitationsByGroup(groupType: "org", groupId: "acme", first: $first) {
    totalCount
    edges { cursor node { id email status expiresAt inviteUrl group { name } inviter { name }
                          events { type createdAt } } }
    pageInfo { hasNextPage endCursor }
  }
}"""
VIEWER = "{ viewer { user { externalId name } } }"


def _on(queries: QueryLog, table: str) -> list[str]:
    return [s for s in queries.statements if f'"{table}"' in s]


async def test_the_preview_is_one_statement(gql: GQL, make_group, queries: QueryLog) -> None:
    olivia = gql.token("olivia", "olivia@acme.com", name="Olivia")
    await make_group(olivia)
    [made] = await invite_many(gql, olivia, ["ben@example.com"])
    token = token_of(made["inviteUrl"])
    queries.statements.clear()
    data = await gql(PREVIEW, {"token": token})
    assert data["invitationByToken"]["inviterName"] == "Olivia"
    assert len(queries.statements) == 1, queries.statements
    # A token that does not verify costs none.
    queries.statements.clear()
    assert (await gql(PREVIEW, {"token": token[:-2] + "xx"}))["invitationByToken"] is None
    assert queries.statements == []


async def test_an_invitation_by_link_previews_without_an_inviter(
    gql: GQL, api_key: str, make_group
) -> None:
    await make_group(api_key)
    link = await gql(
        'mutation { createInviteLink(input: {groupType: "org", groupId: "acme"}) '
        "{ invitation { inviteUrl } } }",
        auth=api_key,
    )
    token = token_of(link["createInviteLink"]["invitation"]["inviteUrl"])
    data = (await gql(PREVIEW, {"token": token}))["invitationByToken"]
    assert data["inviterName"] is None and data["targetType"] == "LINK"
    assert data["groupName"] == "Acme" and data["status"] == "PENDING"


@pytest.mark.parametrize("stored", list(InvitationStatus))
@pytest.mark.parametrize("hours", [-1, 1])
def test_the_preview_reads_the_status_as_every_reader_does(
    stored: InvitationStatus, hours: int
) -> None:
    expires_at = datetime.now(UTC) + timedelta(hours=hours)
    model = Invitation(status=stored, expires_at=expires_at)
    assert preview.status_at(stored, expires_at) == effective_status(model)


async def test_a_page_costs_a_fixed_number_of_statements(
    gql: GQL, api_key: str, make_group, queries: QueryLog
) -> None:
    olivia = gql.token("olivia", "olivia@acme.com", name="Olivia")
    await make_group(olivia)
    await invite_many(gql, olivia, [f"p{i}@example.com" for i in range(60)])
    await gql(VIEWER, auth=api_key)  # records the key's first use
    for auth in (olivia, api_key):
        counts = []
        for first in (50, 5):
            queries.statements.clear()
            data = await gql(PAGE, {"first": first}, auth=auth)
            edges = data["invitationsByGroup"]["edges"]
            assert len(edges) == first and edges[0]["node"]["inviteUrl"]
            assert edges[0]["node"]["events"] and edges[0]["node"]["inviter"]["name"] == "Olivia"
            counts.append(len(queries.statements))
            # The group, its page, its count, the groups, the inviters, the events; and the
            # caller: their role, read once for the group and every inviteUrl (the user
            # was synced by their previous request), or the API key.
            assert len(queries.statements) == 7, queries.statements
            if auth == olivia:
                assert len(_on(queries, "memberships")) == 1
                assert not [s for s in queries.statements if 'WHERE "external_id"' in s]
            else:
                assert len(_on(queries, "api_keys")) == 1 and not _on(queries, "memberships")
        assert counts[0] == counts[1]


async def test_an_invite_reads_the_callers_role_once(
    gql: GQL, make_group, queries: QueryLog
) -> None:
    olivia = gql.token("olivia", "olivia@acme.com", name="Olivia")
    await make_group(olivia)
    queries.statements.clear()
    made = await invite_many(gql, olivia, ["a@example.com", "b@example.com"], role="member")
    assert all(m["inviteUrl"] for m in made)
    # Finding the group, the grant of the role and every inviteUrl share one read.
    mine = [s for s in _on(queries, "memberships") if 'WHERE "user_id"' in s]
    assert len(mine) == 1, queries.statements


async def test_each_root_field_of_a_mutation_reads_roles_afresh(gql: GQL, make_group) -> None:
    olivia = gql.token("olivia", "olivia@acme.com", name="Olivia")
    ben = gql.token("ben", "ben@example.com", name="Ben")
    await make_group(olivia)
    [first] = await invite_many(gql, olivia, ["x@example.com"])
    [promoted] = await invite_many(gql, olivia, ["ben@example.com"], role="admin")
    # Ben is refused the first invitation, accepts the admin role, then may revoke it.
    document = """mutation($first: ID!, $token: String!) {
      before: revokeInvitation(id: $first) { errors { code } }
      accept: acceptInvitation(token: $token) { errors { code } memberships { role } }
      after: revokeInvitation(id: $first) { invitation { status } errors { code } }
    }"""
    data = await gql(
        document, {"first": first["id"], "token": token_of(promoted["inviteUrl"])}, auth=ben
    )
    assert data["before"]["errors"] != []
    assert data["accept"]["memberships"] == [{"role": "admin"}]
    assert data["after"] == {"invitation": {"status": "REVOKED"}, "errors": []}


async def test_a_jwt_request_for_an_unchanged_user_costs_no_write(
    gql: GQL, settings, queries: QueryLog
) -> None:
    token = gql.token("olivia", "olivia@acme.com", name="Olivia")
    assert (await gql(VIEWER, auth=token))["viewer"]["user"]["name"] == "Olivia"
    assert [s for s in _on(queries, "users") if s.startswith("INSERT")]
    # The same claims again: nothing to read or write.
    queries.statements.clear()
    await gql(VIEWER, auth=token)
    assert _on(queries, "users") == []
    # Another process (an app of its own) reads the row once, and writes nothing.
    async with _gql(settings) as elsewhere:
        queries.statements.clear()
        assert (await elsewhere(VIEWER, auth=token))["viewer"]["user"]["name"] == "Olivia"
        [read] = _on(queries, "users")
        assert read.startswith("SELECT")
        queries.statements.clear()
        await elsewhere(VIEWER, auth=token)
        assert _on(queries, "users") == []
    # New claims are written at once.
    queries.statements.clear()
    renamed = gql.token("olivia", "olivia@acme.com", name="Olivia B.")
    assert (await gql(VIEWER, auth=renamed))["viewer"]["user"]["name"] == "Olivia B."
    assert [s for s in _on(queries, "users") if s.startswith("UPDATE")]


async def test_a_synced_user_is_read_again_once_the_time_is_up(queries: QueryLog) -> None:
    claims = Claims(sub="olivia", email="olivia@acme.com", email_verified=True, name="Olivia")
    known = KnownUsers(seconds=0)
    created = await sync_user(claims, known)
    queries.statements.clear()
    again = await sync_user(claims, known)
    assert again.id == created.id
    [read] = queries.statements
    assert read.startswith("SELECT")


def test_known_users_are_bounded() -> None:
    known = KnownUsers(size=2)
    users = {}
    for n in range(3):
        claims = Claims(sub=f"u{n}", email=None, email_verified=False, name=None)
        users[claims] = object()
        known.add(claims, users[claims])  # type: ignore[arg-type]
    assert [known.get(c) is users[c] for c in users] == [False, True, True]


async def test_one_groups_page_reads_the_page_alone(
    gql: GQL, api_key: str, make_group, queries: QueryLog
) -> None:
    # With an index on (group_id, created_at, id) the database reads only the page, where
    # ranking every row of the group first read all of them.
    await make_group(api_key)
    await invite_many(gql, api_key, [f"p{i}@example.com" for i in range(3)])
    queries.statements.clear()
    data = await gql(PAGE, {"first": 2}, auth=api_key)
    assert data["invitationsByGroup"]["pageInfo"]["hasNextPage"] is True
    [page] = [s for s in _on(queries, "invitations") if s.startswith("SELECT *")]
    assert "ROW_NUMBER" not in page and "LIMIT" in page

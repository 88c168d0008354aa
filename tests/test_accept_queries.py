"""What accepting costs in queries: a constant number per item, none per field shown."""

from __future__ import annotations

from tests.conftest import GQL, INVITE, QueryLog
from tests.lifecycle_helpers import ACCEPT, ACCEPT_IDS, token_of


async def _invite(gql: GQL, auth: str, groups: int) -> list[str]:
    ids = []
    for n in range(groups):
        await gql(
            """mutation($input: CreateGroupInput!) { createGroup(input: $input) { errors { code } } }""",
            {"input": {"type": "org", "externalId": f"g{n}", "name": f"G{n}"}},
            auth=auth,
        )
        data = await gql(
            INVITE,
            {
                "input": {
                    "groupType": "org",
                    "groupId": f"g{n}",
                    "invitees": [{"email": "ben@example.com"}],
                }
            },
            auth=auth,
        )
        ids.append(data["invite"]["invitations"][0]["id"])
    return ids


async def _accept_ids(gql: GQL, ben: str, ids: list[str], queries: QueryLog) -> int:
    queries.statements.clear()
    payload = (await gql(ACCEPT_IDS, {"ids": ids}, auth=ben))["acceptInvitations"]
    assert payload["errors"] == []
    assert len(payload["memberships"]) == len(ids)
    return len(queries.statements)


async def test_accept_costs_a_constant_number_of_queries_per_invitation(
    gql: GQL, api_key: str, queries: QueryLog
) -> None:
    ids = await _invite(gql, api_key, 11)
    ben = gql.token("ben", "ben@example.com")
    await gql("{ viewer { user { id } } }", auth=ben)  # Ben is known before counting
    one = await _accept_ids(gql, ben, ids[:1], queries)
    ten = await _accept_ids(gql, ben, ids[1:], queries)
    per_item = (ten - one) / 9
    # Per invitation: read it, the conditional UPDATE, read it back with its group, the
    # membership, the audit entry, the host's events (one insert for all of them) and the
    # webhook endpoints that may want them.
    assert per_item == 7, queries.statements
    # The rest is the caller and one batched query per kind of related row shown.
    assert one - per_item <= 6, queries.statements


async def test_accept_by_token_query_count(gql: GQL, api_key: str, queries: QueryLog) -> None:
    [invitation_id] = await _invite(gql, api_key, 1)
    data = await gql(
        """query($id: ID!) { invitation(id: $id) { inviteUrl } }""",
        {"id": invitation_id},
        auth=api_key,
    )
    token = token_of(data["invitation"]["inviteUrl"])
    ben = gql.token("ben", "ben@example.com")
    queries.statements.clear()
    payload = (await gql(ACCEPT, {"token": token}, auth=ben))["acceptInvitation"]
    assert payload["errors"] == []
    assert len(queries.statements) <= 13, queries.statements

"""What fuzzing the schema found (`test_fuzz.py`), each kept as a focused test."""

from __future__ import annotations

from tests.conftest import CREATE_GROUP, GQL

FIND_GROUP = """
query($type: String!, $id: String!) { group(groupType: $type, groupId: $id) { type externalId } }
"""

JOIN_GROUP = """
mutation($type: String!, $id: String!) {
  joinGroup(groupType: $type, groupId: $id) { errors { code field } }
}"""


async def test_group_keys_wider_than_their_columns_name_no_group(gql: GQL, api_key: str) -> None:
    # The lookup used to hand them to Tortoise, which refused them with a ValidationError:
    # "Unexpected error." in production.
    widest = {"type": "t" * 64, "externalId": "x" * 255, "name": "Widest"}
    data = await gql(CREATE_GROUP, {"input": widest}, auth=api_key)
    assert data["createGroup"]["errors"] == []
    found = await gql(FIND_GROUP, {"type": "t" * 64, "id": "x" * 255}, auth=api_key)
    assert found["group"] == {"type": "t" * 64, "externalId": "x" * 255}
    for keys in ({"type": "t" * 65, "id": "x" * 255}, {"type": "t" * 64, "id": "x" * 256}):
        assert (await gql(FIND_GROUP, keys, auth=api_key))["group"] is None
        joined = await gql(JOIN_GROUP, keys, auth=gql.token())
        assert [e["code"] for e in joined["joinGroup"]["errors"]] == ["NOT_FOUND"]

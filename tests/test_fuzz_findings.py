"""What fuzzing the schema found (`test_fuzz.py`), each kept as a focused test."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.graphql.loaders import Loader
from app.main import create_app
from tests.conftest import CREATE_GROUP, GQL, INVITE
from tests.lifecycle_helpers import CREATE_LINK, UPDATE

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


SHARED_LOAD = """
query($id: ID!) {
  invitation(id: $id) {
    group { domains { domain } invitations(first: 0) { totalCount } }
    inviteUrl
  }
}"""


async def test_a_failing_field_leaves_the_loads_it_shares_to_the_others(database: str) -> None:
    # `invitations(first: 0)` fails, so graphql-core cancels `domains` beside it, which
    # waits for the viewer's role in the group, as `inviteUrl` does: the cancellation used
    # to reach `inviteUrl` too, and the CancelledError went out of the app (HTTP 500).
    config = Settings(
        env="production",
        allow_sqlite=True,
        mail_dir="./outbox",
        secret_key="fuzz-tests-secret-key-0123456789abcdef",
        jwt_secret="fuzz-tests-jwt-secret-0123456789abcdef",
        accept_url="https://app.example.com/accept?token={token}",
    )
    transport = httpx.ASGITransport(app=create_app(config, run_jobs=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://usher.test") as http:
        gql = GQL(http, config)
        owner = gql.token()
        group = {"type": "org", "externalId": "acme", "name": "Acme"}
        assert (await gql(CREATE_GROUP, {"input": group}, auth=owner))["createGroup"][
            "errors"
        ] == []
        invite = {"groupType": "org", "groupId": "acme", "invitees": [{"email": "a@example.com"}]}
        data = await gql(INVITE, {"input": invite}, auth=owner)
        invitation_id = data["invite"]["invitations"][0]["id"]
        for _ in range(5):
            body = await gql.raw(SHARED_LOAD, {"id": invitation_id}, auth=owner)
            assert body["data"] == {"invitation": None}
            assert [e["message"] for e in body["errors"]] == ["first must be between 1 and 100."]


async def test_a_caller_that_gives_up_leaves_the_load_to_the_others() -> None:
    release = asyncio.Event()

    async def doubled(keys: Sequence[int]) -> list[int]:
        await release.wait()
        return [key * 2 for key in keys]

    loader = Loader(load_fn=doubled)

    async def load() -> int:
        return await loader.load(21)

    staying, leaving = asyncio.create_task(load()), asyncio.create_task(load())
    await asyncio.sleep(0)
    leaving.cancel()
    release.set()
    assert await staying == 42
    assert leaving.cancelled()


METADATA_KINDS = ["", "hello", "42", "null", 42, 1.5, True, None, [], ["a", 1], {"a": {"b": [1]}}]


@pytest.mark.parametrize("metadata", METADATA_KINDS, ids=repr)
async def test_metadata_of_every_json_kind_comes_back_as_given(
    gql: GQL, make_group, api_key: str, metadata: Any
) -> None:
    # A JSON string used to reach Tortoise as JSON already encoded: "hello" failed with
    # "Unexpected error." and "42" came back the number 42.
    await make_group(gql.token("olivia", "olivia@acme.com"))
    read = "query($id: ID!) { invitation(id: $id) { metadata } }"
    target = {"groupType": "org", "groupId": "acme", "metadata": metadata}
    invited = await gql(
        INVITE, {"input": {**target, "invitees": [{"email": "ben@example.com"}]}}, auth=api_key
    )
    assert invited["invite"]["errors"] == []
    linked = await gql(CREATE_LINK, {"input": target}, auth=api_key)
    assert linked["createInviteLink"]["errors"] == []
    ids = [
        invited["invite"]["invitations"][0]["id"],
        linked["createInviteLink"]["invitation"]["id"],
    ]
    for invitation_id in ids:
        found = await gql(read, {"id": invitation_id}, auth=api_key)
        assert found["invitation"]["metadata"] == metadata
    # An update replaces it with the same care.
    updated = await gql(UPDATE, {"id": ids[0], "input": {"metadata": metadata}}, auth=api_key)
    assert updated["updateInvitation"]["errors"] == []
    found = await gql(read, {"id": ids[0]}, auth=api_key)
    assert found["invitation"]["metadata"] == metadata


async def test_a_number_literal_too_long_for_python_is_refused_cleanly(gql: GQL) -> None:
    # int() refuses more than 4,300 digits with a ValueError: it was "Unexpected error.".
    for literal in ("9" * 4301, "1" * 101, "1." + "5" * 200):
        body = await gql.raw(
            f'{{ invitationsByGroup(groupType: "o", groupId: "g", first: {literal}) '
            "{ totalCount } }"
        )
        assert body.get("data") is None
        [error] = body["errors"]
        assert error["message"] == "A number literal has more than 100 characters."
    fine = await gql.raw(
        '{ invitationsByGroup(groupType: "o", groupId: "g", first: 5) { totalCount } }'
    )
    assert "number literal" not in str(fine)

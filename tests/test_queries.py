import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.models import Invitation
from app.services.tokens import make_token
from tests.conftest import GQL, INVITE

BY_GROUP = """
query($status: [InvitationStatus!], $first: Int!, $after: String) {
  invitationsByGroup(groupType: "org", groupId: "acme", status: $status, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { email status } }
  }
}"""

PREVIEW = """
query($token: String!) {
  invitationByToken(token: $token) { status groupName inviterName expiresAt targetType }
}"""


async def invite_many(gql: GQL, auth: str, emails: list[str], **extra: Any) -> list[dict[str, Any]]:
    data = await gql(
        INVITE,
        {
            "input": {
                "groupType": "org",
                "groupId": "acme",
                "invitees": [{"email": e} for e in emails],
                **extra,
            }
        },
        auth=auth,
    )
    assert data["invite"]["errors"] == []
    invitations: list[dict[str, Any]] = data["invite"]["invitations"]
    return invitations


async def expire(invitation_id: str) -> None:
    """Let the clock pass an invitation's expiry without any job running."""
    await Invitation.filter(id=invitation_id).update(
        expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )


async def test_invitations_by_group_pages_and_filters(gql: GQL, api_key: str, make_group) -> None:
    await make_group(api_key)
    made = await invite_many(gql, api_key, [f"p{i}@example.com" for i in range(7)])
    await expire(made[0]["id"])
    await invite_many(gql, api_key, ["draft@example.com"], draft=True)

    seen: list[str] = []
    after = None
    while True:
        data = await gql(BY_GROUP, {"first": 3, "after": after}, auth=api_key)
        conn = data["invitationsByGroup"]
        assert conn["totalCount"] == 8
        seen += [e["node"]["email"] for e in conn["edges"]]
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert len(seen) == 8 and len(set(seen)) == 8
    assert seen[0] == "draft@example.com"  # newest first

    expired = await gql(BY_GROUP, {"status": ["EXPIRED"], "first": 50}, auth=api_key)
    assert [e["node"] for e in expired["invitationsByGroup"]["edges"]] == [
        {"email": "p0@example.com", "status": "EXPIRED"}
    ]
    pending = await gql(BY_GROUP, {"status": ["PENDING"], "first": 50}, auth=api_key)
    assert pending["invitationsByGroup"]["totalCount"] == 6
    assert {e["node"]["status"] for e in pending["invitationsByGroup"]["edges"]} == {"PENDING"}
    both = await gql(BY_GROUP, {"status": ["DRAFT", "EXPIRED"], "first": 50}, auth=api_key)
    assert both["invitationsByGroup"]["totalCount"] == 2


async def test_invitations_by_group_errors(gql: GQL, api_key: str, make_group) -> None:
    await make_group(api_key)
    body = await gql.raw(BY_GROUP, {"first": 0}, auth=api_key)
    assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    body = await gql.raw(BY_GROUP, {"first": 5, "after": "garbage"}, auth=api_key)
    assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    body = await gql.raw(BY_GROUP, {"first": 5}, auth=gql.token("stranger"))
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


HOSTILE_CURSORS = {
    # Valid JSON and a valid timestamp, but one that cannot be moved to UTC.
    "overflow": _b64(json.dumps(["0001-01-01T00:00:00+14:00", str(uuid.uuid4())])),
    "deep": _b64("[" * 5_000),
    "number-id": _b64(json.dumps(["2026-01-01T00:00:00+00:00", 5])),
    "object": _b64(json.dumps({"a": 1})),
    "three-items": _b64(json.dumps(["2026-01-01T00:00:00+00:00", str(uuid.uuid4()), 1])),
    "long": _b64(json.dumps(["2026-01-01T00:00:00+00:00", "x" * 100_000])),
    "not-ascii": "é" * 10,
}


@pytest.mark.parametrize("cursor", HOSTILE_CURSORS.values(), ids=HOSTILE_CURSORS.keys())
async def test_hostile_cursors_are_malformed_cursors(
    gql: GQL, api_key: str, make_group, cursor: str
) -> None:
    await make_group(api_key)
    members = """query($after: String) { group(groupType: "org", groupId: "acme") {
        members(first: 5, after: $after) { totalCount } } }"""
    for query, variables in (
        (BY_GROUP, {"first": 5, "after": cursor}),
        (members, {"after": cursor}),
    ):
        [error] = (await gql.raw(query, variables, auth=api_key))["errors"]
        assert error["message"] == "Malformed cursor."
        assert error["extensions"] == {"code": "INVALID_INPUT", "field": ["after"]}


async def test_expiry_is_read_from_the_clock(gql: GQL, api_key: str, make_group) -> None:
    await make_group(api_key)
    [inv] = await invite_many(gql, api_key, ["ben@example.com"])
    await expire(inv["id"])
    data = await gql(
        "query($id: ID!) { invitation(id: $id) { status } }", {"id": inv["id"]}, auth=api_key
    )
    assert data["invitation"]["status"] == "EXPIRED"
    stored = await Invitation.get(id=inv["id"])
    assert stored.status == "pending"  # no job ran; reads are right regardless


async def test_preview_by_token(gql: GQL, settings, make_group) -> None:
    olivia = gql.token("olivia", "olivia@acme.com", name="Olivia")
    await make_group(olivia, name="Acme <Corp>")
    [inv] = await invite_many(gql, olivia, ["ben@example.com"])
    token = inv["inviteUrl"].split("invitation=")[1]

    data = await gql(PREVIEW, {"token": token})  # anonymous
    assert data["invitationByToken"]["status"] == "PENDING"
    assert data["invitationByToken"]["groupName"] == "Acme <Corp>"
    assert data["invitationByToken"]["inviterName"] == "Olivia"
    assert data["invitationByToken"]["targetType"] == "EMAIL"

    await expire(inv["id"])
    data = await gql(PREVIEW, {"token": token})
    assert data["invitationByToken"]["status"] == "EXPIRED"

    invitation_id = (await Invitation.get(id=inv["id"])).id
    forged = make_token("another-secret", invitation_id, 1)
    stale = make_token(settings.secret_keys[0], invitation_id, 2)
    for bad in (forged, stale, "inv_AAAA", "nonsense", token[:-2] + "xx"):
        data = await gql(PREVIEW, {"token": bad})
        assert data["invitationByToken"] is None, bad


async def test_a_rotated_secret_still_verifies(
    gql: GQL, settings, api_key: str, make_group
) -> None:
    await make_group(api_key)
    [inv] = await invite_many(gql, api_key, ["ben@example.com"])
    old_token = inv["inviteUrl"].split("invitation=")[1]
    settings.secret_key = f"new-secret,{settings.secret_key}"
    data = await gql(PREVIEW, {"token": old_token})
    assert data["invitationByToken"]["status"] == "PENDING"
    settings.secret_key = "new-secret"
    data = await gql(PREVIEW, {"token": old_token})
    assert data["invitationByToken"] is None


async def test_open_invitations_for_an_email(gql: GQL, api_key: str, make_group) -> None:
    await make_group(api_key)
    made = await invite_many(gql, api_key, ["ben@example.com"])
    await make_group(api_key, external_id="globex", name="Globex")
    await gql(
        INVITE,
        {
            "input": {
                "groupType": "org",
                "groupId": "globex",
                "invitees": [{"email": "BEN@example.com"}],
            }
        },
        auth=api_key,
    )
    await make_group(api_key, external_id="old", name="Old")
    [old] = (
        await gql(
            INVITE,
            {
                "input": {
                    "groupType": "org",
                    "groupId": "old",
                    "invitees": [{"email": "ben@example.com"}],
                }
            },
            auth=api_key,
        )
    )["invite"]["invitations"]
    await expire(old["id"])

    query = """query($v: String!) { invitations(targetType: EMAIL, targetValue: $v) {
        invitations { id group { name } inviteUrl } autojoinGroups { name } } }"""
    ben = gql.token("ben", "Ben@Example.com")
    data = await gql(query, {"v": "ben@example.com"}, auth=ben)
    names = sorted(i["group"]["name"] for i in data["invitations"]["invitations"])
    assert names == ["Acme", "Globex"]  # the expired one is not open
    assert all(i["inviteUrl"] is None for i in data["invitations"]["invitations"])
    assert made[0]["id"] in {i["id"] for i in data["invitations"]["invitations"]}

    data = await gql(query, {"v": "ben@example.com"}, auth=api_key)
    assert len(data["invitations"]["invitations"]) == 2

    for who in (
        gql.token("ben", "ben@example.com", verified=False),
        gql.token("eve", "eve@example.com"),
    ):
        body = await gql.raw(query, {"v": "ben@example.com"}, auth=who)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_invitation_by_id_visibility(gql: GQL, make_group) -> None:
    olivia = gql.token("olivia")
    await make_group(olivia)
    [inv] = await invite_many(gql, olivia, ["ben@example.com"])
    query = "query($id: ID!) { invitation(id: $id) { email inviteUrl inviter { externalId } events { type actor { externalId } byApiKey } } }"
    mine = await gql(query, {"id": inv["id"]}, auth=olivia)
    assert mine["invitation"]["inviteUrl"]
    assert mine["invitation"]["inviter"] == {"externalId": "olivia"}
    assert mine["invitation"]["events"] == [
        {"type": "CREATED", "actor": {"externalId": "olivia"}, "byApiKey": False}
    ]
    invitee = await gql(query, {"id": inv["id"]}, auth=gql.token("ben", "ben@example.com"))
    assert invitee["invitation"]["email"] == "ben@example.com"
    assert invitee["invitation"]["inviteUrl"] is None
    stranger = await gql(query, {"id": inv["id"]}, auth=gql.token("eve"))
    assert stranger["invitation"] is None
    nonsense = await gql(query, {"id": "not-a-uuid"}, auth=olivia)
    assert nonsense["invitation"] is None


async def test_get_requests_cannot_mutate(client, gql: GQL, api_key: str) -> None:
    response = await client.get(
        "/graphql",
        params={
            "query": 'mutation { createGroup(input: {type: "org", externalId: "g", name: "G"}) { errors { code } } }'
        },
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert response.status_code in (400, 405)
    data = await gql('{ group(groupType: "org", groupId: "g") { id } }', auth=api_key)
    assert data["group"] is None

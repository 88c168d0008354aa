"""Text with control characters is refused on its field, and nothing is half-written;
lookups with such text find nothing. On SQLite and on PostgreSQL alike."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from graphql import GraphQLError, OperationDefinitionNode, parse

from app.config import Settings
from app.graphql.schema import _should_mask
from app.main import create_app
from app.models import (
    AutojoinDomain,
    Group,
    Invitation,
    InvitationEvent,
    Membership,
    OutboxMessage,
    User,
)
from tests.conftest import CREATE_GROUP, GQL, INVITE
from tests.lifecycle_helpers import (
    ACCEPT,
    CREATE_LINK,
    DECLINE,
    PREVIEW,
    SET_AUTOJOIN,
    UPDATE,
    invite_one,
    only_error,
    stored,
)

NUL = "\x00"
# C0, DEL, C1 and a lone surrogate (JSON can carry one; no database can store it).
CONTROLS = ["\x00", "\x01", "\x1b", "\x7f", "\x85", "\x9f", "\ud800", "\n", "\r", "\t"]


async def post(
    gql: GQL, query: str, variables: dict[str, Any] | None = None, *, auth: str | None = None
) -> dict[str, Any]:
    """The whole response; JSON written with escapes, so lone surrogates travel too."""
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = f"Bearer {auth}"
    body = json.dumps({"query": query, "variables": variables or {}})
    response = await gql.http.post("/graphql", content=body, headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def data(gql: GQL, query: str, variables: dict[str, Any], *, auth: str) -> dict[str, Any]:
    """The `data` of a response without top-level errors."""
    body = await post(gql, query, variables, auth=auth)
    assert "errors" not in body, body["errors"]
    result: dict[str, Any] = body["data"]
    return result


async def counts() -> dict[str, int]:
    """Rows in every table a mutation here could write."""
    models = (Group, Membership, Invitation, InvitationEvent, OutboxMessage, AutojoinDomain, User)
    return {m.__name__: await m.all().count() for m in models}


def refused(payload: dict[str, Any], field: list[str]) -> None:
    """The payload carries exactly one INVALID_INPUT error, on `field`."""
    error = only_error(payload)
    assert (error["code"], error["field"]) == ("INVALID_INPUT", field), error


@pytest.fixture
async def acme(gql: GQL, api_key: str, make_group) -> dict[str, Any]:
    """The group `org/acme`, made by the API key."""
    group: dict[str, Any] = await make_group(api_key)
    return group


# --- createGroup --------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["type", "externalId", "name"])
async def test_create_group_refuses_a_nul_in_each_field(gql: GQL, api_key: str, field: str) -> None:
    group = {"type": "org", "externalId": "acme", "name": "Acme", field: f"ac{NUL}me"}
    before = await counts()
    result = await data(gql, CREATE_GROUP, {"input": group}, auth=api_key)
    refused(result["createGroup"], [field])
    assert result["createGroup"]["group"] is None
    assert await counts() == before


@pytest.mark.parametrize("char", CONTROLS, ids=[f"U+{ord(c):04X}" for c in CONTROLS])
async def test_every_control_character_is_refused(gql: GQL, api_key: str, char: str) -> None:
    group = {"type": "org", "externalId": "acme", "name": f"Ac{char}me"}
    result = await data(gql, CREATE_GROUP, {"input": group}, auth=api_key)
    refused(result["createGroup"], ["name"])
    assert await Group.all().count() == 0


# --- invite -------------------------------------------------------------------------------

SHARED = [
    ("role", f"member{NUL}", ["role"]),
    ("permissions", ["billing", f"bill{NUL}ing"], ["permissions", "1"]),
    ("message", f"Welcome{NUL}", ["message"]),
    ("metadata", {"plan": {f"se{NUL}ats": 3}}, ["metadata"]),
    ("metadata", {"plan": ["pro", {"seats": f"3{NUL}"}]}, ["metadata"]),
    ("returnTo", f"/projects/42{NUL}", ["returnTo"]),
    # Sent as JSON's non-standard NaN, Infinity and -Infinity (Python writes them so);
    # PostgreSQL's jsonb has no such numbers.
    ("metadata", {"seats": float("nan")}, ["metadata"]),
    ("metadata", {"plan": [1, float("inf")]}, ["metadata"]),
    ("metadata", float("-inf"), ["metadata"]),
]
SHARED_IDS = [
    "role",
    "permissions",
    "message",
    "metadata-key",
    "metadata-value",
    "returnTo",
    "metadata-nan",
    "metadata-infinity",
    "metadata-minus-infinity",
]


@pytest.mark.parametrize(("name", "value", "field"), SHARED, ids=SHARED_IDS)
async def test_invite_refuses_a_bad_shared_field_before_writing_anything(
    gql: GQL, api_key: str, acme: dict[str, Any], name: str, value: Any, field: list[str]
) -> None:
    invitees = [{"email": "ann@example.com"}, {"email": "ben@example.com"}]
    invite = {"groupType": "org", "groupId": "acme", "invitees": invitees, name: value}
    before = await counts()
    result = await data(gql, INVITE, {"input": invite}, auth=api_key)
    refused(result["invite"], field)
    assert result["invite"]["invitations"] == []
    assert await counts() == before


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("email", f"bad{NUL}@example.com"),
        ("firstName", f"B{NUL}"),
        ("lastName", f"B{NUL}"),
        ("firstName", "Two\nlines"),
        ("role", f"admin{NUL}"),
    ],
)
async def test_invite_refuses_a_bad_invitee_and_keeps_the_others(
    gql: GQL, api_key: str, acme: dict[str, Any], name: str, value: str
) -> None:
    bad = {"email": "bad@example.com", name: value}
    invitees = [{"email": "ann@example.com"}, bad, {"email": "cid@example.com"}]
    invite = {"groupType": "org", "groupId": "acme", "invitees": invitees}
    before = await counts()
    result = await data(gql, INVITE, {"input": invite}, auth=api_key)
    refused(result["invite"], ["invitees", "1", name])
    created = [i["email"] for i in result["invite"]["invitations"]]
    assert created == ["ann@example.com", "cid@example.com"]
    after = await counts()
    assert after["Invitation"] - before["Invitation"] == 2
    assert after["InvitationEvent"] - before["InvitationEvent"] == 2
    assert after["OutboxMessage"] - before["OutboxMessage"] == 2
    stored_emails = [i.email for i in await Invitation.all().order_by("email")]
    assert stored_emails == ["ann@example.com", "cid@example.com"]


async def test_a_message_may_have_tabs_and_line_breaks(
    gql: GQL, api_key: str, acme: dict[str, Any]
) -> None:
    message = "Hello Ben,\r\n\tsee you on Monday.\n"
    invitation = await invite_one(gql, api_key, message=message)
    assert invitation["message"] == message
    assert (await stored(invitation["id"])).message == message


# --- createInviteLink ---------------------------------------------------------------------


@pytest.mark.parametrize(("name", "value", "field"), SHARED, ids=SHARED_IDS)
async def test_create_invite_link_refuses_a_bad_field(
    gql: GQL, api_key: str, acme: dict[str, Any], name: str, value: Any, field: list[str]
) -> None:
    link = {"groupType": "org", "groupId": "acme", name: value}
    before = await counts()
    result = await data(gql, CREATE_LINK, {"input": link}, auth=api_key)
    refused(result["createInviteLink"], field)
    assert result["createInviteLink"]["invitation"] is None
    assert await counts() == before


async def test_numbers_too_large_for_a_double_are_refused(
    gql: GQL, api_key: str, acme: dict[str, Any]
) -> None:
    # 1e400 reads as infinity, in a JSON body as in a GraphQL literal.
    link = '{"groupType": "org", "groupId": "acme", "metadata": {"seats": 1e400}}'
    body = f'{{"query": {json.dumps(CREATE_LINK)}, "variables": {{"input": {link}}}}}'
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    response = await gql.http.post("/graphql", content=body, headers=headers)
    refused(response.json()["data"]["createInviteLink"], ["metadata"])
    literal = CREATE_LINK.replace("$input: CreateInviteLinkInput!", "").replace(
        "input: $input", 'input: {groupType: "org", groupId: "acme", metadata: {seats: [1e400]}}'
    )
    result = await data(gql, literal.replace("mutation()", "mutation"), {}, auth=api_key)
    refused(result["createInviteLink"], ["metadata"])
    assert await Invitation.all().count() == 0


# --- updateInvitation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [
        *SHARED,
        ("firstName", f"B{NUL}", ["firstName"]),
        ("lastName", f"B{NUL}", ["lastName"]),
        ("lastName", "B\tB", ["lastName"]),
    ],
    ids=[*SHARED_IDS, "firstName", "lastName", "lastName-tab"],
)
async def test_update_invitation_refuses_a_bad_field(
    gql: GQL, api_key: str, acme: dict[str, Any], name: str, value: Any, field: list[str]
) -> None:
    invitation = await invite_one(gql, api_key, message="Hi")
    before, row = await counts(), await stored(invitation["id"])
    result = await data(gql, UPDATE, {"id": invitation["id"], "input": {name: value}}, auth=api_key)
    refused(result["updateInvitation"], field)
    assert await counts() == before
    after = await stored(invitation["id"])
    assert (after.role, after.message, after.metadata, after.first_name, after.updated_at) == (
        row.role,
        row.message,
        row.metadata,
        row.first_name,
        row.updated_at,
    )


# --- setAutojoinDomains -------------------------------------------------------------------


async def test_set_autojoin_domains_refuses_a_bad_domain_and_changes_nothing(
    gql: GQL, api_key: str, acme: dict[str, Any]
) -> None:
    done = await data(gql, SET_AUTOJOIN, {"domains": ["acme.com"]}, auth=api_key)
    assert done["setAutojoinDomains"]["errors"] == []
    for domains, field in (
        (["acme.org", f"ac{NUL}me.com"], ["domains", "1"]),
        ([f"acme.com{NUL}"], ["domains", "0"]),
        (["acme.org", "\ud800.com"], ["domains", "1"]),
    ):
        result = await data(gql, SET_AUTOJOIN, {"domains": domains}, auth=api_key)
        refused(result["setAutojoinDomains"], field)
        assert "control characters" in result["setAutojoinDomains"]["errors"][0]["message"]
    result = await data(
        gql, SET_AUTOJOIN, {"domains": ["acme.org"], "role": f"member{NUL}"}, auth=api_key
    )
    refused(result["setAutojoinDomains"], ["role"])
    assert [d.domain for d in await AutojoinDomain.all()] == ["acme.com"]
    assert (await Group.get(external_id="acme")).autojoin_role == "member"


# --- lookups ------------------------------------------------------------------------------


@pytest.mark.parametrize("char", [NUL, "\ud800"], ids=["NUL", "surrogate"])
async def test_lookups_with_control_characters_find_nothing(
    gql: GQL, api_key: str, acme: dict[str, Any], char: str
) -> None:
    await invite_one(gql, api_key)
    before = await counts()
    ask = {"auth": api_key}
    preview = await data(gql, PREVIEW, {"token": f"inv_{char}"}, **ask)
    assert preview["invitationByToken"] is None
    one = await data(gql, "query($id: ID!) { invitation(id: $id) { id } }", {"id": char}, **ask)
    assert one["invitation"] is None
    group_query = 'query($t: String!) { group(groupType: $t, groupId: "acme") { id } }'
    assert (await data(gql, group_query, {"t": char}, **ask))["group"] is None
    assert (await data(gql, group_query, {"t": f"org{char}"}, **ask))["group"] is None

    listing = await post(
        gql,
        "query($v: String!) { invitations(targetValue: $v) { invitations { id } } }",
        {"v": f"a{char}@b.c"},
        **ask,
    )
    assert listing["errors"][0]["extensions"] == {"code": "INVALID_INPUT", "field": ["email"]}
    by_group = 'query($t: String!, $after: String) { invitationsByGroup(groupType: $t, groupId: "acme", after: $after) { totalCount } }'
    missing = await post(gql, by_group, {"t": f"org{char}"}, **ask)
    assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    bad_cursor = await post(gql, by_group, {"t": "org", "after": char}, **ask)
    assert bad_cursor["errors"][0]["extensions"]["code"] == "INVALID_INPUT"

    user = gql.token("ben", "ben@example.com")
    accepted = await data(gql, ACCEPT, {"token": f"inv_{char}"}, auth=user)
    assert only_error(accepted["acceptInvitation"])["code"] == "NOT_FOUND"
    declined = await data(gql, DECLINE, {"id": char}, auth=user)
    assert only_error(declined["declineInvitation"])["code"] == "NOT_FOUND"
    join = 'mutation($t: String!) { joinGroup(groupType: $t, groupId: "acme") { errors { code } } }'
    joined = await data(gql, join, {"t": f"org{char}"}, auth=user)
    assert joined["joinGroup"]["errors"] == [{"code": "NOT_FOUND"}]
    invite = {"groupType": f"org{char}", "groupId": "acme", "invitees": [{"email": "x@y.co"}]}
    invited = await data(gql, INVITE, {"input": invite}, **ask)
    assert only_error(invited["invite"])["code"] == "NOT_FOUND"

    after = await counts()
    assert after == {**before, "User": before["User"] + 1}  # only ben, from his JWT


# --- variables that fail coercion ---------------------------------------------------------

PRODUCTION = Settings(
    env="production",
    allow_sqlite=True,
    mail_dir="./outbox",
    secret_key="hygiene-tests-secret-key-of-32-chars-or-more",
    jwt_secret="hygiene-tests-jwt-secret-of-32-chars-or-more",
    database_url="sqlite://:memory:",
    redis_url=None,
    accept_url="https://app.example.com/signup?invitation={token}",
)
BAD_VARIABLES = {
    "enum": (
        'query($t: TargetType!) { invitations(targetType: $t, targetValue: "a@b.co") { invitations { id } } }',
        {"t": "nonsense"},
        "Value 'nonsense' does not exist in 'TargetType' enum.",
    ),
    "date-time": (
        'mutation($at: DateTime) { renewInvitation(id: "x", expiresAt: $at) { errors { code } } }',
        {"at": "2026-13-01T00:00:00Z"},
        "month must be in 1..12",
    ),
    "int": (
        'query($f: Int!) { invitationsByGroup(groupType: "org", groupId: "acme", first: $f) { totalCount } }',
        {"f": 1e12},
        "Int cannot represent non 32-bit signed integer value",
    ),
}


@pytest.mark.parametrize(
    ("query", "variables", "reason"), BAD_VARIABLES.values(), ids=BAD_VARIABLES.keys()
)
async def test_variables_that_fail_coercion_are_shown_in_production(
    api_key: str, query: str, variables: dict[str, Any], reason: str
) -> None:
    app = create_app(PRODUCTION, run_jobs=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://usher.test") as http:
        gql = GQL(http, PRODUCTION)
        body = await post(gql, query, variables, auth=api_key)
    assert body["data"] is None
    [error] = body["errors"]
    assert error["message"].startswith("Variable '$") and reason in error["message"], error
    assert error["locations"][0]["line"] == 1


def test_a_type_that_fails_on_a_variable_with_a_bug_stays_masked() -> None:
    [operation] = parse("query($t: TargetType!) { __typename }").definitions
    assert isinstance(operation, OperationDefinitionNode)
    [definition] = operation.variable_definitions or ()
    refused = GraphQLError("Value 'x' does not exist in 'TargetType' enum.")
    shown = GraphQLError("Variable '$t' has invalid value", definition, original_error=refused)
    assert not _should_mask(shown)
    # A scalar that crashed is reported the same way by graphql-core, but it is a bug.
    crashed = GraphQLError("Expected value", original_error=AttributeError("internal detail"))
    bug = GraphQLError("Variable '$t' has invalid value", definition, original_error=crashed)
    assert _should_mask(bug)


async def test_group_names_longer_than_any_group_find_nothing(gql: GQL, api_key: str) -> None:
    long_type, long_id = "t" * 65, "g" * 256
    body = await gql.raw(
        "query($t: String!, $g: String!) { group(groupType: $t, groupId: $g) { id } }",
        {"t": long_type, "g": "acme"},
        auth=api_key,
    )
    assert body == {"data": {"group": None}}
    listing = await gql.raw(
        'query($g: String!) { invitationsByGroup(groupType: "org", groupId: $g) { totalCount } }',
        {"g": long_id},
        auth=api_key,
    )
    assert listing["errors"][0]["extensions"]["code"] == "NOT_FOUND"

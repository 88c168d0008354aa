"""Fuzzing the schema: generated queries and mutations, from every kind of caller, against the
app as it runs in production.

hypothesis-graphql writes valid operations from the printed schema; the values of arguments
with a known meaning (a group, an invitation id, a token, an email…) are sometimes replaced
with real ones, so that operations get past "not found" into the code behind it, and half
of the operations send their arguments as variables. Whatever is asked, the answer must be
a deliberate one: HTTP 200 with a JSON body (400 or 413 for a request refused whole), and
never the "Unexpected error." that stands, once masked, for an exception Usher did not
expect. Data builds up across examples: each operation meets what the earlier ones left.

The run is bounded for CI: 2000 operations, about 40 s per database on two cores, the same
ones every run (derandomized). A longer pass, by hand:

    USHER_FUZZ_EXAMPLES=20000 .venv/bin/pytest tests/test_fuzz.py -k deliberate

What the fuzzing found is kept as focused tests in `test_fuzz_findings.py`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from traceback import format_exception
from typing import Any
from urllib.parse import parse_qs, urlsplit

import graphql
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import from_schema, nodes

from app.config import Settings
from app.graphql.schema import schema
from app.main import create_app
from app.services.auth import create_api_key, make_dev_jwt
from app.services.events import EVENT_TYPES
from tests.conftest import CREATE_GROUP, GQL, INVITE

EXAMPLES = int(os.environ.get("USHER_FUZZ_EXAMPLES", "2000"))
UNEXPECTED = "Unexpected error."
SCHEMA = graphql.build_schema(schema.as_str())

CREATE_LINK = """
mutation($input: CreateInviteLinkInput!) {
  createInviteLink(input: $input) { invitation { id inviteUrl } errors { code message } }
}"""

CREATE_ENDPOINT = """
mutation($input: WebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) { endpoint { id } errors { code message } }
}"""

FIRST_PAGE = """
query { invitationsByGroup(groupType: "org", groupId: "fuzz-a", first: 1) { pageInfo { endCursor } } }
"""


def fuzz_settings() -> Settings:
    """Production, with introspection on and webhooks allowed to local targets (so saving an
    endpoint needs no DNS), and a DNS server that is not there (so a TXT lookup fails fast)."""
    return Settings(
        env="production",
        allow_sqlite=True,
        mail_dir="./outbox",
        secret_key="fuzz-tests-secret-key-0123456789abcdef",
        jwt_secret="fuzz-tests-jwt-secret-0123456789abcdef",
        accept_url="https://app.example.com/accept?token={token}",
        introspection=True,
        webhook_allow_private=True,
        redis_url=None,
        dns_nameservers="127.0.0.1:9",
        dns_timeout_seconds=0.2,
    )


@dataclass(repr=False)
class World:
    """The app, its callers, and real values to put into generated operations."""

    http: httpx.AsyncClient
    callers: dict[str, str | None]
    # Argument and input-field names, each with the plausible values to give it.
    plausible: dict[str, st.SearchStrategy[Any]]

    def __repr__(self) -> str:
        # Failure reports show what was sent; the credentials and value pools are noise there.
        return f"World(callers={sorted(self.callers)})"


@pytest.fixture
async def world() -> AsyncIterator[World]:
    """The app in production, its callers, and what they own (one world per run)."""
    config = fuzz_settings()
    transport = httpx.ASGITransport(app=create_app(config, run_jobs=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://usher.test") as http:
        gql = GQL(http, config)
        _, api_key = await create_api_key("fuzz")
        callers: dict[str, str | None] = {
            "anonymous": None,
            "api key": api_key,
            "owner": make_dev_jwt(config, sub="fuzz-owner", email="owner@example.com"),
            "guest": make_dev_jwt(config, sub="fuzz-guest", email="guest@example.com"),
            "unverified": make_dev_jwt(
                config, sub="fuzz-unverified", email="unverified@example.com", verified=False
            ),
        }
        yield World(http, callers, await _seed(gql, callers))


async def _seed(gql: GQL, callers: Mapping[str, str | None]) -> dict[str, st.SearchStrategy[Any]]:
    """A group of the owner's and one of the API key's, invitations by email (one a draft)
    and by link, and a webhook endpoint; returns the plausible values they make."""
    owner, api_key = callers["owner"], callers["api key"]
    for auth, kind, external_id in ((owner, "org", "fuzz-a"), (api_key, "team", "fuzz-b")):
        group = {"type": kind, "externalId": external_id, "name": external_id.upper()}
        data = await gql(CREATE_GROUP, {"input": group}, auth=auth)
        assert data["createGroup"]["errors"] == []
    invitations = []
    for auth, group_id, emails, draft in (
        (
            owner,
            "fuzz-a",
            ["guest@example.com", "new@example.com", "unverified@example.com"],
            False,
        ),
        (owner, "fuzz-a", ["later@example.com"], True),
        (api_key, "fuzz-b", ["guest@example.com"], False),
    ):
        invite = {
            "groupType": "org" if group_id == "fuzz-a" else "team",
            "groupId": group_id,
            "invitees": [{"email": email} for email in emails],
            "sendEmail": False,
            "draft": draft,
        }
        data = await gql(INVITE, {"input": invite}, auth=auth)
        assert data["invite"]["errors"] == []
        invitations += data["invite"]["invitations"]
    link = {"groupType": "org", "groupId": "fuzz-a", "maxUses": 3}
    created = await gql(CREATE_LINK, {"input": link}, auth=owner)
    invitations.append(created["createInviteLink"]["invitation"])
    hook = {"url": "https://hooks.example.com/usher", "events": ["invitation.accepted"]}
    endpoint = (await gql(CREATE_ENDPOINT, {"input": hook}, auth=api_key))["createWebhookEndpoint"]
    page = (await gql(FIRST_PAGE, auth=owner))["invitationsByGroup"]["pageInfo"]

    invitation_ids = [i["id"] for i in invitations]
    unknown = str(uuid.uuid4())
    tokens = [parse_qs(urlsplit(i["inviteUrl"]).query)["token"][0] for i in invitations]
    emails = ["guest@example.com", "owner@example.com", "new@example.com", "Guest+x@Example.com"]
    domains = ["example.com", "acme.com", "gmail.com"]
    groups = [("org", "fuzz-a"), ("team", "fuzz-b"), ("org", "fuzz-missing")]
    return {
        "group": st.sampled_from(groups),
        "newGroup": st.sampled_from([*groups, ("org", "fuzz-new")]),
        "id": st.sampled_from([*invitation_ids, unknown]),
        "endpointId": st.sampled_from([endpoint["endpoint"]["id"], unknown]),
        "deliveryId": st.just(unknown),
        "ids": st.lists(st.sampled_from([*invitation_ids, unknown]), max_size=3),
        "token": st.sampled_from([*tokens, "inv_not-a-token"]),
        "email": st.sampled_from(emails),
        "targetValue": st.sampled_from(emails),
        "domain": st.sampled_from(domains),
        "domains": st.lists(st.sampled_from(domains), max_size=3),
        "role": st.sampled_from(["owner", "admin", "member", "nobody"]),
        "permissions": st.lists(st.sampled_from(["billing", "read"]), max_size=2),
        "returnTo": st.sampled_from(["/welcome", "https://app.example.com/done", "//evil.com"]),
        "url": st.sampled_from(["https://hooks.example.com/other", "http://127.0.0.1:9/hook"]),
        "events": st.lists(st.sampled_from([*EVENT_TYPES, "nope"]), max_size=3),
        "types": st.lists(st.sampled_from([*EVENT_TYPES, "nope"]), max_size=3),
        "after": st.sampled_from([page["endCursor"], "bm9wZQ=="]),
        "first": st.sampled_from([0, 1, 2, 50, 100, 101]),
        "expiresInDays": st.sampled_from([0, 1, 7, 90, 91]),
        "maxUses": st.sampled_from([1, 2, 10000, 10001]),
        "sendEmail": st.booleans(),
    }


# Values of the custom scalars: around now or anywhere in the calendar, with and without a
# time zone, or not a date at all; JSON of any shape whose object keys are GraphQL names.
_DATETIMES = st.one_of(
    st.timedeltas(min_value=timedelta(days=-30), max_value=timedelta(days=120)).map(
        lambda delta: (datetime.now(UTC) + delta).isoformat()
    ),
    st.datetimes(timezones=st.sampled_from([None, UTC])).map(datetime.isoformat),
    st.text(max_size=20),
)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.from_regex(r"[_A-Za-z][_0-9A-Za-z]{0,7}", fullmatch=True), inner, max_size=3
        )
    ),
    max_leaves=10,
)


def literal(value: Any) -> graphql.ValueNode:
    """The GraphQL literal of a JSON-like value."""
    if value is None:
        return nodes.Null
    if isinstance(value, bool):
        return nodes.Boolean(value)
    if isinstance(value, int):
        return nodes.Int(value)
    if isinstance(value, float):
        return nodes.Float(value)
    if isinstance(value, str):
        return nodes.String(value)
    if isinstance(value, list):
        return nodes.List([literal(item) for item in value])
    fields = [
        graphql.ObjectFieldNode(name=graphql.NameNode(value=key), value=literal(item))
        for key, item in value.items()
    ]
    return nodes.Object(fields)


# One strategy per root field, drawn from evenly: left to itself, hypothesis-graphql favours
# the fields a root type lists first.
ROOT_FIELDS = sorted({*SCHEMA.query_type.fields, *SCHEMA.mutation_type.fields})  # type: ignore[union-attr]
OPERATIONS = {
    name: from_schema(
        SCHEMA,
        fields=[name],
        custom_scalars={"DateTime": _DATETIMES.map(nodes.String), "JSON": _JSON.map(literal)},
    )
    for name in ROOT_FIELDS
}


# Root fields whose `id` is a webhook endpoint's (everywhere else, an invitation's).
ENDPOINT_IDS = {"updateWebhookEndpoint", "deleteWebhookEndpoint", "rotateWebhookSecret"}


class Plausible(graphql.Visitor):
    """Gives arguments and input fields named in `values` the value drawn for that name."""

    def __init__(self, root: str, values: Mapping[str, Any]) -> None:
        super().__init__()
        self.values = dict(values)
        endpoint_id = self.values.pop("endpointId", None)
        if root in ENDPOINT_IDS:
            self.values.pop("id", None)
            if endpoint_id is not None:
                self.values["id"] = endpoint_id
        for pair, names in (
            ("group", ("groupType", "groupId")),
            ("newGroup", ("type", "externalId")),
        ):
            if pair in self.values:
                self.values.update(zip(names, self.values.pop(pair), strict=True))

    def _replace(self, node: Any) -> Any:
        name = node.name.value
        if name not in self.values:
            return None
        return type(node)(name=node.name, value=literal(self.values[name]))

    def leave_argument(self, node: graphql.ArgumentNode, *_: Any) -> Any:
        return self._replace(node)

    def leave_object_field(self, node: graphql.ObjectFieldNode, *_: Any) -> Any:
        return self._replace(node)


class Lift(graphql.Visitor):
    """Turns every argument into a variable of the argument's type, with the same value."""

    def __init__(self, type_info: graphql.TypeInfo) -> None:
        super().__init__()
        self.type_info = type_info
        self.definitions: list[graphql.VariableDefinitionNode] = []
        self.variables: dict[str, Any] = {}

    def leave_argument(self, node: graphql.ArgumentNode, *_: Any) -> Any:
        argument = self.type_info.get_argument()
        assert argument is not None
        variable = graphql.VariableNode(name=graphql.NameNode(value=f"v{len(self.variables)}"))
        self.variables[variable.name.value] = graphql.value_from_ast_untyped(node.value)
        self.definitions.append(
            graphql.VariableDefinitionNode(
                variable=variable, type=graphql.parse_type(str(argument.type))
            )
        )
        return graphql.ArgumentNode(name=node.name, value=variable)

    def leave_operation_definition(self, node: graphql.OperationDefinitionNode, *_: Any) -> Any:
        return graphql.OperationDefinitionNode(
            operation=node.operation,
            name=node.name,
            directives=node.directives,
            selection_set=node.selection_set,
            variable_definitions=tuple(self.definitions),
        )


def as_variables(document: graphql.DocumentNode) -> tuple[graphql.DocumentNode, dict[str, Any]]:
    """The same operation with its arguments sent as variables."""
    type_info = graphql.TypeInfo(SCHEMA)
    lift = Lift(type_info)
    lifted = graphql.visit(document, graphql.TypeInfoVisitor(type_info, lift))
    return lifted, lift.variables


# Text that JSON can carry and a document cannot (a lone surrogate), or that no field should
# take as it is: NUL, a right-to-left override, a character outside the BMP, a long run.
ODD_TEXT = ("\ud800", "\x00", "\u202e", "\U0001d518", "x" * 5000)


def count_strings(value: Any) -> int:
    """How many strings a JSON value holds (object keys aside)."""
    if isinstance(value, str):
        return 1
    if isinstance(value, dict):
        value = list(value.values())
    return sum(map(count_strings, value)) if isinstance(value, list) else 0


def with_text(value: Any, index: int, text: str) -> Any:
    """A JSON value with `text` added to its string number `index`, counted depth first."""
    counter = itertools.count()

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return item + text if next(counter) == index else item
        if isinstance(item, list):
            return [walk(each) for each in item]
        if isinstance(item, dict):
            return {key: walk(each) for key, each in item.items()}
        return item

    return walk(value)


@dataclass
class Exchange:
    """One request and its answer, as a failure report shows them."""

    caller: str
    query: str
    variables: dict[str, Any]
    response: httpx.Response
    log: list[str]

    def __str__(self) -> str:
        variables = json.dumps(_clip(self.variables, 200), indent=2)
        lines = [_clip(line, 500) for record in self.log for line in record.splitlines()]
        log = "\n".join(lines) or "(nothing logged)"
        return (
            f"as {self.caller}:\n{_clip(self.query)}\nvariables: {variables}\n"
            f"answer: HTTP {self.response.status_code} {_clip(self.response.text)}\nlog:\n{log}"
        )


def _clip(value: Any, limit: int = 4000) -> Any:
    """`value` with every string longer than `limit` cut short, saying how long it was."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[: limit // 2]}…({len(value)} characters)…{value[-limit // 4 :]}"
    if isinstance(value, list):
        return [_clip(item, limit) for item in value]
    if isinstance(value, dict):
        return {key: _clip(item, limit) for key, item in value.items()}
    return value


def check(exchange: Exchange) -> None:
    """A deliberate answer: 200 with JSON and no masked error, or a request refused whole."""
    status = exchange.response.status_code
    assert status in (200, 400, 413), f"HTTP {status}\n{exchange}"
    if status != 200:
        return
    try:
        body = exchange.response.json()
    except ValueError:
        pytest.fail(f"the body is not JSON\n{exchange}")
    assert isinstance(body, dict) and ("data" in body or "errors" in body), str(exchange)
    messages = [error.get("message") for error in body.get("errors") or ()]
    assert UNEXPECTED not in messages, f"an unexpected error\n{exchange}"


class Records(logging.Handler):
    """Keeps what is logged at WARNING or above during one request."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {self.format(record)}")


async def send(world: World, caller: str, query: str, variables: dict[str, Any]) -> Exchange:
    """Post one operation as `caller`; an exception out of the app is reported as a 500."""
    token = world.callers[caller]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    records = Records()
    root = logging.getLogger()
    root.addHandler(records)
    try:
        # Encoded here, not by httpx: its encoder refuses lone surrogates, which JSON allows.
        body = json.dumps({"query": query, "variables": variables})
        headers["Content-Type"] = "application/json"
        response = await world.http.post("/graphql", content=body, headers=headers)
    except (Exception, asyncio.CancelledError) as exc:
        task = asyncio.current_task()
        if isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling():
            raise  # the test itself is being stopped
        response = httpx.Response(500, text=f"{type(exc).__name__}: {exc}")
        records.lines.append("raised out of the app: " + "".join(format_exception(exc)))
    finally:
        root.removeHandler(records)
    return Exchange(caller, query, variables, response, records.lines)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        # One app and one database for the whole run, on purpose: data builds up.
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(data=st.data())
async def test_generated_operations_get_deliberate_answers(
    world: World, data: st.DataObject
) -> None:
    caller = data.draw(st.sampled_from(sorted(world.callers)), label="caller")
    root = data.draw(st.sampled_from(ROOT_FIELDS), label="root field")
    generated = data.draw(OPERATIONS[root], label="operation")
    values = data.draw(st.fixed_dictionaries({}, optional=world.plausible), label="real values")
    document = graphql.visit(graphql.parse(generated), Plausible(root, values))
    variables: dict[str, Any] = {}
    if data.draw(st.booleans(), label="as variables"):
        document, variables = as_variables(document)
        strings = count_strings(variables)
        if strings and data.draw(st.booleans(), label="odd text"):
            index = data.draw(st.integers(0, strings - 1), label="in string number")
            variables = with_text(variables, index, data.draw(st.sampled_from(ODD_TEXT)))
    check(await send(world, caller, graphql.print_ast(document), variables))

"""What one request may cost: documents are measured before they run (DESIGN.md, "Safe to
expose"), bodies are bounded, malformed bodies are 400, slow operations stop."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import get_introspection_query, parse

from app.config import Settings
from app.graphql import limits
from app.graphql.schema import schema
from app.main import create_app
from app.models import (
    AutojoinDomain,
    DeliveryStatus,
    EventType,
    Group,
    Invitation,
    InvitationEvent,
    InvitationStatus,
    JoinMethod,
    Membership,
    TargetType,
    User,
)
from app.services import groups as group_service
from tests.conftest import CREATE_GROUP, GQL, QueryLog
from tests.lifecycle_helpers import token_of

README = Path(__file__).resolve().parent.parent / "README.md"


def _settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "database_url": "sqlite://:memory:",
        "redis_url": None,
        "accept_url": "https://app.example.com/signup?invitation={token}",
    }
    return Settings(**{**base, **overrides})


def _production(**overrides: Any) -> Settings:
    return _settings(
        env="production",
        allow_sqlite=True,
        mail_dir="./outbox",
        secret_key="production-test-secret-key-0123456789",
        jwt_secret="production-test-jwt-secret-0123456789",
        **overrides,
    )


@asynccontextmanager
async def _gql(settings: Settings) -> AsyncIterator[GQL]:
    """GraphQL over HTTP to an app built from `settings`."""
    app = create_app(settings, run_jobs=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://usher.test") as http:
        yield GQL(http, settings)


def _chain(levels: int) -> str:
    """Fragments each spreading the previous one twice: 2**levels fields once expanded."""
    fragments = ["fragment F0 on Query { __typename }"]
    fragments += [
        f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels + 1)
    ]
    return f"query {{ ...F{levels} }} " + " ".join(fragments)


def _refusal(body: dict[str, Any]) -> dict[str, Any]:
    """The one QUERY_TOO_COMPLEX error of a refused document."""
    assert body.get("data") is None, body
    [error] = body["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX", error
    return error  # type: ignore[no-any-return]


NESTED_MEMBERS = "members(first: 100) { edges { node { group { members(first: 100) { edges { node { user { id name } } } } } } } }"
ALIASED_MEMBERS = (
    "{ "
    + " ".join(
        f"a{i}: viewer {{ memberships {{ group {{ {NESTED_MEMBERS} }} }} }}" for i in range(30)
    )
    + " }"
)

ADMIN_PAGE = """
query($first: Int!) {
  invitationsByGroup(groupType: "org", groupId: "acme", first: $first) {
    totalCount
    edges { cursor node { id email status expiresAt group { name } inviter { name } events { type } } }
    pageInfo { hasNextPage endCursor }
  }
}"""


# Fragments and cost


async def test_an_exponential_fragment_chain_is_refused_before_any_sql(queries: QueryLog) -> None:
    async with _gql(_production()) as gql:
        error = _refusal(await gql.raw(_chain(29)))
        # GET runs the same checks.
        response = await gql.http.get("/graphql", params={"query": _chain(29)})
        assert _refusal(response.json()) == error
    assert f"{2**29:,}" in error["message"] and "50,000" in error["message"]
    assert error["extensions"]["measured"] == 2**29
    assert queries.statements == []


def test_the_checker_walks_each_fragment_once() -> None:
    visited = {n: limits.measure(parse(_chain(n)), schema._schema).visited for n in (10, 20, 40)}
    assert visited[20] <= 2.5 * visited[10]
    assert visited[40] <= 2.5 * visited[20]
    assert limits.measure(parse(_chain(40)), schema._schema).cost == limits.COST_CEILING


async def test_a_fragment_cycle_is_a_clean_error(gql: GQL, queries: QueryLog) -> None:
    body = await gql.raw(
        "{ ...A } fragment A on Query { ...B } fragment B on Query { viewer { ...C } } fragment C on Viewer { ...A }"
    )
    assert "spreads itself" in _refusal(body)["message"]
    assert queries.statements == []


async def test_nested_member_lists_are_refused_with_their_cost(gql: GQL, queries: QueryLog) -> None:
    body = await gql.raw(ALIASED_MEMBERS, auth=gql.token("mallory"))
    error = _refusal(body)
    cost = error["extensions"]["measured"]
    assert cost > 1_000_000 and f"{cost:,}" in error["message"]
    # Only the caller's own row was read to authenticate; no resolver ran.
    assert not [s for s in queries.statements if "memberships" in s or "groups" in s]


async def test_the_cost_limit_is_a_setting_and_follows_variables(api_key: str, make_group) -> None:
    await make_group(api_key)
    async with _gql(_settings(max_query_cost=2_000)) as gql:
        small = await gql(ADMIN_PAGE, {"first": 20}, auth=api_key)
        assert small["invitationsByGroup"]["totalCount"] == 0
        error = _refusal(await gql.raw(ADMIN_PAGE, {"first": 50}, auth=api_key))
        assert "2,000" in error["message"]
        # Left out, `first` counts the schema's default (50); a huge one counts a full page.
        default = ADMIN_PAGE.replace("query($first: Int!)", "query").replace(", first: $first", "")
        _refusal(await gql.raw(default, auth=api_key))
        _refusal(await gql.raw(ADMIN_PAGE, {"first": 10**12}, auth=api_key))
        # A negative one counts 1: the document runs, and the field refuses it.
        negative = await gql.raw(ADMIN_PAGE, {"first": -5}, auth=api_key)
        assert negative["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


async def test_only_the_chosen_operation_is_costed(api_key: str, make_group) -> None:
    await make_group(api_key)
    cheap = 'query Cheap($first: Int! = 1) { invitationsByGroup(groupType: "org", groupId: "acme", first: $first) { totalCount } }'
    document = cheap + ADMIN_PAGE.replace("query($first: Int!)", "query Page($first: Int! = 100)")
    async with _gql(_settings(max_query_cost=2_000)) as gql:
        headers = {"Authorization": f"Bearer {api_key}"}
        chosen = {"query": document, "operationName": "Cheap"}
        response = await gql.http.post("/graphql", json=chosen, headers=headers)
        assert response.json() == {"data": {"invitationsByGroup": {"totalCount": 0}}}
        # The other operation's smaller default for $first does not hide this one's.
        chosen["operationName"] = "Page"
        response = await gql.http.post("/graphql", json=chosen, headers=headers)
        error = _refusal(response.json())
        # 1 + 100 * 66 for the page (50 events each); with the other default, 1, it
        # would be 67.
        assert error["extensions"]["measured"] == 6_601 and "6,601" in error["message"]


async def test_an_admin_page_and_the_readme_tour_are_accepted(gql: GQL, api_key: str) -> None:
    olivia = gql.token("olivia", "olivia@acme.com", name="Olivia")
    ben = gql.token("ben", "ben@example.com")
    blocks: list[str] = re.findall(r"```graphql\n(.*?)```", README.read_text(), re.S)

    def tour(field: str) -> str:
        [block] = [b for b in blocks if re.search(rf"\b{field}\(", b)]
        return block

    create, invite, preview, by_group, accept = map(
        tour,
        ["createGroup", "invite", "invitationByToken", "invitationsByGroup", "acceptInvitation"],
    )
    await gql(create, auth=olivia)
    invited = await gql(invite, auth=olivia)
    token = token_of(invited["invite"]["invitations"][0]["inviteUrl"])
    assert (await gql(preview.replace("inv_…", token)))["invitationByToken"]["status"] == "PENDING"
    assert (await gql(by_group, auth=olivia))["invitationsByGroup"]["totalCount"] == 1
    page = await gql(ADMIN_PAGE, {"first": 50}, auth=api_key)
    node = page["invitationsByGroup"]["edges"][0]["node"]
    assert node["group"] == {"name": "Acme"} and node["inviter"] == {"name": "Olivia"}
    accepted = await gql(accept.replace("inv_…", token), auth=ben)
    assert accepted["acceptInvitation"]["errors"] == []
    # An admin's overview of every group they belong to, with a few members of each.
    overview = "{ viewer { memberships { group { name viewerRole members(first: 10) { edges { node { user { name } } } } } } } }"
    assert limits.measure(parse(overview), schema._schema).cost == 4_402
    [membership] = (await gql(overview, auth=olivia))["viewer"]["memberships"]
    assert membership["group"]["viewerRole"] == "owner"
    assert len(membership["group"]["members"]["edges"]) == 2


# Lists outside connections

VIEWER_FIELDS = (
    "fragment V on Viewer { memberships { id role permissions joinedAt "
    "group { id type externalId name viewerRole autojoinRole autojoinDomains } } }"
)


def _viewers(aliases: int) -> str:
    """The viewer's memberships, asked for under `aliases` aliases."""
    return (
        "{ " + " ".join(f"a{i}: viewer {{ ...V }}" for i in range(aliases)) + " } " + VIEWER_FIELDS
    )


def test_every_list_of_objects_has_a_maximum() -> None:
    assert limits.unbounded_lists(schema._schema) == []


async def test_plain_lists_are_costed_at_their_maximum(gql: GQL, queries: QueryLog) -> None:
    # Per viewer: 1 + (1 + 100 memberships * (4 fields + 1 group of 7 fields)).
    one = limits.measure(parse(_viewers(1)), schema._schema).cost
    assert one == 1 + 1 + limits.LIST_MAXIMUMS["Viewer.memberships"] * 12 == 1_202
    error = _refusal(await gql.raw(_viewers(100), auth=gql.token("mallory")))
    assert error["extensions"]["measured"] == 100 * one
    assert not [s for s in queries.statements if "memberships" in s or "groups" in s]


async def _memberships(user: User, count: int) -> None:
    """`count` groups with `user` as a member, joined a minute apart, oldest first."""
    groups = [Group(type="org", external_id=f"g{n}", name=f"G{n}") for n in range(count)]
    await Group.bulk_create(groups)
    rows = [
        Membership(user=user, group=g, role="owner", joined_via=JoinMethod.CREATOR)
        for g in await Group.all().order_by("external_id")
    ]
    await Membership.bulk_create(rows)
    start = datetime.now(UTC) - timedelta(days=1)
    for row in await Membership.filter(user=user).prefetch_related("group"):
        minutes = int(row.group.external_id[1:])
        await Membership.filter(id=row.id).update(joined_at=start + timedelta(minutes=minutes))


async def test_the_viewer_sees_their_most_recent_memberships(gql: GQL) -> None:
    await _memberships(await User.create(external_id="olivia", email="olivia@acme.com"), 120)
    auth = gql.token("olivia", "olivia@acme.com")
    data = await gql("{ viewer { memberships { group { externalId } } } }", auth=auth)
    shown = [m["group"]["externalId"] for m in data["viewer"]["memberships"]]
    assert shown == [f"g{n}" for n in range(119, 19, -1)]
    # Twenty aliases read the memberships once.
    many = await gql(_viewers(20), auth=auth)
    assert all(len(v["memberships"]) == 100 for v in many.values())


async def test_an_invitation_shows_its_most_recent_events(gql: GQL, api_key: str) -> None:
    await gql(
        CREATE_GROUP, {"input": {"type": "org", "externalId": "acme", "name": "Acme"}}, auth=api_key
    )
    invited = await gql(
        'mutation { invite(input: {groupType: "org", groupId: "acme", sendEmail: false, '
        'invitees: [{email: "ben@example.com"}]}) { invitations { id } } }',
        auth=api_key,
    )
    invitation_id = invited["invite"]["invitations"][0]["id"]
    await InvitationEvent.bulk_create(
        [
            InvitationEvent(invitation_id=invitation_id, type=EventType.SENT, detail={"n": n})
            for n in range(60)
        ]
    )
    start = datetime.now(UTC) + timedelta(minutes=1)
    for event in await InvitationEvent.filter(type=EventType.SENT):
        assert event.detail is not None
        await InvitationEvent.filter(id=event.id).update(
            created_at=start + timedelta(seconds=event.detail["n"])
        )
    query = "query($id: ID!) { invitation(id: $id) { events { type detail } } }"
    data = await gql(query, {"id": invitation_id}, auth=api_key)
    events = data["invitation"]["events"]
    assert [e["detail"]["n"] for e in events] == list(range(10, 60))


async def test_open_invitations_and_autojoin_groups_are_cut(gql: GQL, api_key: str) -> None:
    count = limits.LIST_MAXIMUMS["OpenInvitations.invitations"] + 1
    groups = [
        Group(type="org", external_id=f"g{n}", name=f"G{n:03}", autojoin_role="member")
        for n in range(count)
    ]
    await Group.bulk_create(groups)
    stored = await Group.all()
    verified = datetime.now(UTC)
    await AutojoinDomain.bulk_create(
        [
            AutojoinDomain(
                group=g, domain="acme.com", verification_token=f"t{n}", verified_at=verified
            )
            for n, g in enumerate(stored)
        ]
    )
    later = datetime.now(UTC) + timedelta(days=7)
    await Invitation.bulk_create(
        [
            Invitation(
                group=g,
                target_type=TargetType.EMAIL,
                email="sam@acme.com",
                email_key="sam@acme.com",
                open_key="sam@acme.com",
                role="member",
                status=InvitationStatus.PENDING,
                expires_at=later,
                delivery_status=DeliveryStatus.DISABLED,
            )
            for g in stored
        ]
    )
    query = """{ invitations(targetType: EMAIL, targetValue: "sam@acme.com") {
        invitations { id } autojoinGroups { name } } }"""
    data = (await gql(query, auth=api_key))["invitations"]
    assert len(data["invitations"]) == 100
    assert [g["name"] for g in data["autojoinGroups"]] == [f"G{n:03}" for n in range(100)]


# Written counts, depth, tokens


@pytest.mark.parametrize(
    ("document", "limit"),
    [
        (
            "{ " + " ".join(f"a{i}: __typename" for i in range(limits.MAX_ALIASES + 1)) + " }",
            limits.MAX_ALIASES,
        ),
        (
            "{ " + "__typename @skip(if: false) " * (limits.MAX_DIRECTIVES + 1) + "}",
            limits.MAX_DIRECTIVES,
        ),
        (
            "{ ...F0 } "
            + " ".join(
                f"fragment F{i} on Query {{ __typename }}" for i in range(limits.MAX_FRAGMENTS + 1)
            ),
            limits.MAX_FRAGMENTS,
        ),
        ("{ " + "__typename " * (limits.MAX_FIELDS + 1) + "}", limits.MAX_FIELDS),
        (
            "{ viewer { memberships { group { members { edges { node { group { members { edges { node { group { members { edges { node { user { id } } } } } } } } } } } } } } } }",
            limits.MAX_DEPTH,
        ),
        ("{ " + "__typename " * 20_000 + "}", limits.MAX_TOKENS),
        ("#\n" * (limits.MAX_COMMENTS + 1) + "{ __typename }", limits.MAX_COMMENTS),
    ],
    ids=["aliases", "directives", "fragments", "fields", "depth", "tokens", "comments"],
)
async def test_written_limits(gql: GQL, queries: QueryLog, document: str, limit: int) -> None:
    error = _refusal(await gql.raw(document))
    assert error["extensions"]["limit"] == limit and f"{limit}" in error["message"]
    assert queries.statements == []


async def test_many_fields_are_refused_before_validation(gql: GQL) -> None:
    # Validation would also report the unknown field; it never runs.
    body = await gql.raw("{ " + "__typename " * 2_000 + "noSuchField }")
    assert "field selections" in _refusal(body)["message"]


async def test_pairwise_field_comparisons_are_bounded(gql: GQL, queries: QueryLog) -> None:
    # Within every written limit, but 124,251 pairs of same-named fields to compare.
    fields = " ".join(f'invitation(id: "{i}") {{ id }}' for i in range(limits.MAX_FIELDS // 2 - 1))
    body = await gql.raw("{ " + fields + " }")
    assert body == {"data": None, "errors": [{"message": "Validation aborted."}]}
    assert queries.statements == []


async def test_a_refused_mutation_writes_nothing(gql: GQL, api_key: str) -> None:
    creates = " ".join(
        f'g{i}: createGroup(input: {{type: "org", externalId: "g{i}", name: "G"}}) {{ errors {{ code }} }}'
        for i in range(limits.MAX_ALIASES + 1)
    )
    _refusal(await gql.raw(f"mutation {{ {creates} }}", auth=api_key))
    assert await Group.all().count() == 0


async def test_graphiql_introspection_fits_the_limits(gql: GQL) -> None:
    query = get_introspection_query(
        descriptions=True,
        specified_by_url=True,
        directive_is_repeatable=True,
        schema_description=True,
        input_value_deprecation=True,
    )
    data = await gql(query)
    assert any(t["name"] == "Invitation" for t in data["__schema"]["types"])


# Introspection

INTROSPECT = "{ __schema { types { name } } }"


async def test_introspection_is_off_in_production(api_key: str) -> None:
    async with _gql(_production()) as gql:
        for auth in (None, api_key, gql.token("u1")):
            body = await gql.raw(INTROSPECT, auth=auth)
            assert body["data"] is None
            assert "introspection has been disabled" in body["errors"][0]["message"]
        assert (await gql("{ __typename }")) == {"__typename": "Query"}
    async with _gql(_production(introspection=True)) as gql:
        assert (await gql(INTROSPECT))["__schema"]["types"]
    async with _gql(_settings()) as gql:
        assert (await gql(INTROSPECT))["__schema"]["types"]


# HTTP bodies


async def test_bodies_over_one_mebibyte_get_413(client: httpx.AsyncClient) -> None:
    big = b'{"query": "{ __typename }", "variables": {"pad": "' + b"x" * (2 << 20) + b'"}}'
    declared = await client.post(
        "/graphql", content=big, headers={"content-type": "application/json"}
    )
    assert declared.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    streamed = await client.post(
        "/graphql", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    # Just under the limit is fine.
    padded = {"query": "{ __typename }", "variables": {"pad": "x" * 1_000_000}}
    assert (await client.post("/graphql", json=padded)).json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 2_000 + b"]" * 2_000,
        b'{"query": "{ __typename }", "variables": ' + b'{"a": ' * 2_000 + b"1" + b"}" * 2_001,
        b'{"query": "\xff\xfe{ __typename }"}',
        b'"{ __typename }"',
        b"null",
        b"[]",
        b'{"query": 5}',
        b'{"query": "{ __typename }", "variables": [1]}',
        b'{"query": "{ __typename }", "operationName": 5}',
        b'{"query": "{ __typename }"',
    ],
    ids=[
        "deep-array",
        "deep-variables",
        "bad-utf8",
        "string",
        "null",
        "array",
        "query-int",
        "variables-list",
        "name-int",
        "truncated",
    ],
)
async def test_malformed_bodies_get_400(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text


async def test_json_nesting_is_bounded(client: httpx.AsyncClient) -> None:
    def nested(levels: int) -> dict[str, Any]:
        value: dict[str, Any] = {}
        for _ in range(levels - 2):  # the body and `variables` are two levels
            value = {"a": value}
        return {"query": "{ __typename }", "variables": value}

    at_limit = await client.post("/graphql", json=nested(limits.MAX_JSON_DEPTH))
    assert at_limit.json() == {"data": {"__typename": "Query"}}
    over = await client.post("/graphql", json=nested(limits.MAX_JSON_DEPTH + 1))
    assert over.status_code == 400 and f"{limits.MAX_JSON_DEPTH}" in over.text


async def test_malformed_query_string_variables_get_400(client: httpx.AsyncClient) -> None:
    for variables in ("[1]", "{", "[" * 2_000):
        response = await client.get(
            "/graphql", params={"query": "{ __typename }", "variables": variables}
        )
        assert response.status_code == 400, response.text


# Time limit


async def test_a_slow_operation_is_stopped(monkeypatch: pytest.MonkeyPatch, api_key: str) -> None:
    async def stalled(*args: object, **kwargs: object) -> None:
        await asyncio.sleep(30)

    monkeypatch.setattr(group_service, "visible_group", stalled)
    async with _gql(_production(query_timeout_seconds=0.2)) as gql:
        body = await gql.raw('{ group(groupType: "org", groupId: "acme") { id } }', auth=api_key)
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "TIMEOUT" and "0.2 seconds" in error["message"]


async def test_a_mutation_is_not_stopped_half_way(monkeypatch: pytest.MonkeyPatch) -> None:
    class SlowMembership:
        @staticmethod
        async def create(**kwargs: Any) -> Membership:
            await asyncio.sleep(0.5)  # longer than the time limit, with the group written
            return await Membership.create(**kwargs)

    monkeypatch.setattr(group_service, "Membership", SlowMembership)
    async with _gql(_production(query_timeout_seconds=0.2)) as gql:
        variables = {"input": {"type": "org", "externalId": "acme", "name": "Acme"}}
        data = await gql(CREATE_GROUP, variables, auth=gql.token("olivia"))
    assert data["createGroup"]["group"]["viewerRole"] == "owner"
    assert await Membership.filter(group__external_id="acme").count() == 1


def _creates(count: int) -> str:
    return " ".join(
        f'g{i}: createGroup(input: {{type: "org", externalId: "g{i}", name: "G"}}) {{ errors {{ code }} }}'
        for i in range(count)
    )


async def test_mutations_are_bounded_by_their_root_fields(gql: GQL, api_key: str) -> None:
    most = limits.MAX_MUTATION_FIELDS
    over = [
        f"mutation {{ {_creates(most + 1)} }}",
        # Through a fragment and an inline fragment, counted once each as written.
        f"mutation {{ ...M ... on Mutation {{ {_creates(1).replace('g0:', 'x:')} }} }} "
        f"fragment M on Mutation {{ {_creates(most)} }}",
        # A fragment spread twice counts twice (an upper bound: same fields would merge).
        f"mutation {{ ...M ...M }} fragment M on Mutation {{ {_creates(most // 2 + 1)} }}",
    ]
    for document in over:
        error = _refusal(await gql.raw(document, auth=api_key))
        assert error["extensions"]["limit"] == most and "root fields" in error["message"]
    assert await Group.all().count() == 0
    data = await gql(f"mutation {{ {_creates(most)} }}", auth=api_key)
    assert len(data) == most and await Group.all().count() == most
    # Queries are bounded by their cost alone.
    aliases = " ".join(
        f'q{i}: group(groupType: "org", groupId: "g{i}") {{ id }}' for i in range(20)
    )
    assert len(await gql(f"{{ {aliases} }}", auth=api_key)) == 20


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="USHER_MAX_QUERY_COST"):
        create_app(_settings(max_query_cost=0))
    with pytest.raises(ValueError, match="USHER_QUERY_TIMEOUT_SECONDS"):
        create_app(_settings(query_timeout_seconds=0))

"""Documents are parsed, measured and validated once per text (`limits.DocumentCache`), and
every limit still holds for a document the cache knows: refused the first time, refused
every time, and measured again when its cost depends on the variables."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from graphql import DocumentNode
from strawberry.schema import schema as strawberry_schema

from app.graphql import limits
from tests.test_limits import (
    ADMIN_PAGE,
    ALIASED_MEMBERS,
    _chain,
    _gql,
    _production,
    _refusal,
    _settings,
)

DEEP = "{ viewer { memberships { group { members(first: 1) { edges { node { group { members(first: 1) { edges { node { group { members(first: 1) { edges { node { user { id } } } } } } } } } } } } } } } }"
ALIASES = "{ " + " ".join(f"a{i}: __typename" for i in range(limits.MAX_ALIASES + 1)) + " }"
CYCLE = "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }"
INTROSPECTION = "{ __schema { queryType { name } } }"
UNKNOWN_FIELD = "{ viewer { nonsense } }"


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many times documents were parsed, measured and validated."""
    counts = {"parse": 0, "measure": 0, "validate": 0}

    def counted(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(limits, "parse_document", counted("parse", limits.parse_document))
    monkeypatch.setattr(limits, "measure", counted("measure", limits.measure))
    validate = counted("validate", strawberry_schema.validate_document)
    monkeypatch.setattr(limits, "validate_document", validate)
    return counts


@pytest.mark.parametrize(
    "document",
    [ALIASED_MEMBERS, DEEP, ALIASES, CYCLE, _chain(29)],
    ids=["cost", "depth", "aliases", "cycle", "fragment-chain"],
)
async def test_a_refused_document_is_refused_every_time(document: str, api_key: str) -> None:
    async with _gql(_production()) as gql:
        first = await gql.raw(document, auth=api_key)
        _refusal(first)
        for _ in range(3):
            assert await gql.raw(document, auth=api_key) == first
        # Other variables change nothing for a document none of whose costs they decide.
        assert await gql.raw(document, {"first": 1}, auth=api_key) == first


async def test_refused_by_validation_every_time(api_key: str, calls: dict[str, int]) -> None:
    async with _gql(_production()) as gql:
        for document in (INTROSPECTION, UNKNOWN_FIELD):
            first = await gql.raw(document, auth=api_key)
            assert first.get("data") is None and first["errors"], first
            for _ in range(3):
                assert await gql.raw(document, auth=api_key) == first
    assert calls == {"parse": 2, "measure": 2, "validate": 2}


async def test_introspection_follows_each_apps_settings(api_key: str) -> None:
    async with _gql(_production()) as production, _gql(_settings()) as development:
        for _ in range(2):
            refused = await production.raw(INTROSPECTION, auth=api_key)
            assert "introspection has been disabled" in refused["errors"][0]["message"]
            allowed = await development(INTROSPECTION, auth=api_key)
            assert allowed["__schema"]["queryType"]["name"] == "Query"


async def test_a_cost_that_follows_variables_is_measured_each_time(
    api_key: str, make_group, calls: dict[str, int]
) -> None:
    await make_group(api_key)
    calls.update(dict.fromkeys(calls, 0))
    async with _gql(_settings(max_query_cost=2_000)) as gql:
        for first, allowed in [(50, False), (20, True), (50, False), (100, False), (20, True)]:
            body = await gql.raw(ADMIN_PAGE, {"first": first}, auth=api_key)
            if allowed:
                assert body["data"]["invitationsByGroup"]["totalCount"] == 0, body
            else:
                assert _refusal(body)["extensions"]["measured"] == 1 + first * 66
        # A default in the document counts when the variable is left out.
        defaulted = ADMIN_PAGE.replace("$first: Int!", "$first: Int = 50")
        for variables, allowed in [({}, False), ({"first": 10}, True), ({}, False)]:
            body = await gql.raw(defaulted, variables, auth=api_key)
            assert ("errors" not in body) is allowed, body
    # Two texts, each parsed and validated once (refused requests are never validated),
    # measured at every request.
    assert calls["parse"] == 2 and calls["validate"] == 2 and calls["measure"] == 8


async def test_a_fixed_cost_is_measured_once(api_key: str, calls: dict[str, int]) -> None:
    async with _gql(_settings(max_query_cost=2_000)) as gql:
        document = "{ viewer { user { id } } }"
        for _ in range(3):
            await gql.raw(document, auth=api_key)
        # Refused documents keep their measure too, and are refused from it.
        for _ in range(3):
            _refusal(await gql.raw(ALIASED_MEMBERS, auth=api_key))
    assert calls == {"parse": 2, "measure": 2, "validate": 1}


async def test_each_operation_of_a_document_keeps_its_own_measure(
    api_key: str, make_group, calls: dict[str, int]
) -> None:
    await make_group(api_key)
    cheap = 'query Cheap { invitationsByGroup(groupType: "org", groupId: "acme", first: 1) { totalCount } }'
    page = ADMIN_PAGE.replace("query($first: Int!)", "query Page").replace("$first", "100")
    document = cheap + page
    calls.update(dict.fromkeys(calls, 0))
    async with _gql(_settings(max_query_cost=2_000)) as gql:
        headers = {"Authorization": f"Bearer {api_key}"}
        for _ in range(2):
            for name, allowed in [("Cheap", True), ("Page", False)]:
                chosen = {"query": document, "operationName": name}
                body = (await gql.http.post("/graphql", json=chosen, headers=headers)).json()
                assert ("errors" not in body) is allowed, body
            # A name no operation has is refused before anything is measured or kept:
            # clients cannot grow an entry with names.
            chosen = {"query": document, "operationName": "Nobody"}
            response = await gql.http.post("/graphql", json=chosen, headers=headers)
            assert response.status_code == 400
    assert calls == {"parse": 1, "measure": 2, "validate": 1}


def test_the_cache_is_bounded() -> None:
    cache = limits.DocumentCache(size=3, max_chars=100, total_chars=40)
    texts = [f"{{ a{n}: __typename }}" for n in range(5)]  # 20 characters each
    documents = [cache.parse(text) for text in texts[:2]]
    assert len(cache) == 2
    # Used again, the first is kept; the second, least recently used, makes room.
    assert cache.parse(texts[0]) is documents[0]
    cache.parse(texts[2])
    assert _known(cache, texts[0], documents[0]) and len(cache) == 2
    assert cache.known(texts[1], documents[1]) is None
    # A text over the limit of one entry is parsed each time, never kept.
    long = "{ " + "__typename " * 10 + "}"
    assert cache.parse(long) is not cache.parse(long)
    assert len(cache) == 2
    # The number of entries is bounded too.
    small = limits.DocumentCache(size=3)
    for text in texts:
        small.parse(text)
    assert len(small) == 3


def test_a_document_is_known_only_as_parsed_from_its_text() -> None:
    cache = limits.DocumentCache()
    document = cache.parse("{ __typename }")
    assert cache.known("{ __typename }", document) is not None
    # Another document under the same text (a client's own parse) is measured afresh.
    assert cache.known("{ __typename }", limits.parse_document("{ __typename }")) is None
    assert cache.known(None, document) is None


def _known(cache: limits.DocumentCache, text: str, document: DocumentNode) -> bool:
    return cache.known(text, document) is not None

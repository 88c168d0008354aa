"""What code generators read from the schema: formats of scalars, described enum values,
optional page sizes, and Relay's whole PageInfo."""

from typing import Any

from graphql import GraphQLEnumType, GraphQLNonNull, GraphQLScalarType

from app.graphql.schema import schema
from tests.conftest import GQL
from tests.test_queries import invite_many

PAGE = """
query($first: Int, $after: String) {
  invitationsByGroup(groupType: "org", groupId: "acme", first: $first, after: $after) {
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { email } }
  }
}"""


def test_scalars_name_their_format() -> None:
    scalars = [schema._schema.type_map[name] for name in ("DateTime", "JSON")]
    urls = {s.name: s.specified_by_url for s in scalars if isinstance(s, GraphQLScalarType)}
    assert urls == {
        "DateTime": "https://datatracker.ietf.org/doc/html/rfc3339",
        "JSON": "https://ecma-international.org/wp-content/uploads/"
        "ECMA-404_2nd_edition_december_2017.pdf",
    }


def test_every_enum_value_is_described() -> None:
    enums = [
        t
        for name, t in schema._schema.type_map.items()
        if isinstance(t, GraphQLEnumType) and not name.startswith("__")
    ]
    assert {e.name for e in enums} >= {"InvitationStatus", "ErrorCode", "DeliveryStatus"}
    missing = [
        f"{e.name}.{v}" for e in enums for v, value in e.values.items() if not value.description
    ]
    assert missing == []


def test_every_first_is_optional_with_a_default_of_50() -> None:
    firsts = {
        f"{type_name}.{field_name}": (arg.type, arg.default_value)
        for type_name, gtype in schema._schema.type_map.items()
        for field_name, field in getattr(gtype, "fields", {}).items()
        if (arg := getattr(field, "args", {}).get("first")) is not None
        and str(field.type).rstrip("!").endswith("Connection")
    }
    assert {"Query.invitationsByGroup", "Group.members", "Query.events"} <= firsts.keys()
    for name, (arg_type, default) in firsts.items():
        assert not isinstance(arg_type, GraphQLNonNull), name
        assert default == 50, name


async def test_page_info_pages_forward(gql: GQL, api_key: str, make_group: Any) -> None:
    await make_group(api_key)
    await invite_many(gql, api_key, [f"p{i}@example.com" for i in range(5)])

    first = (await gql(PAGE, {"first": 2}, auth=api_key))["invitationsByGroup"]
    cursors = [e["cursor"] for e in first["edges"]]
    assert first["pageInfo"] == {
        "hasNextPage": True,
        "hasPreviousPage": False,
        "startCursor": cursors[0],
        "endCursor": cursors[-1],
    }

    last = (await gql(PAGE, {"first": 10, "after": cursors[-1]}, auth=api_key))[
        "invitationsByGroup"
    ]
    cursors = [e["cursor"] for e in last["edges"]]
    assert len(cursors) == 3
    assert last["pageInfo"] == {
        "hasNextPage": False,
        "hasPreviousPage": True,
        "startCursor": cursors[0],
        "endCursor": cursors[-1],
    }


async def test_null_first_means_50(gql: GQL, api_key: str, make_group: Any) -> None:
    await make_group(api_key)
    await invite_many(gql, api_key, [f"p{i}@example.com" for i in range(51)])

    page = (await gql(PAGE, {"first": None}, auth=api_key))["invitationsByGroup"]
    assert len(page["edges"]) == 50
    assert page["pageInfo"]["hasNextPage"] is True


async def test_an_empty_page_has_no_cursors(gql: GQL, api_key: str, make_group: Any) -> None:
    await make_group(api_key)
    page = (await gql(PAGE, {}, auth=api_key))["invitationsByGroup"]
    assert page == {
        "pageInfo": {
            "hasNextPage": False,
            "hasPreviousPage": False,
            "startCursor": None,
            "endCursor": None,
        },
        "edges": [],
    }

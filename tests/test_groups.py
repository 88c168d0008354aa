from app.models import Group
from app.services.auth import make_dev_jwt
from tests.conftest import CREATE_GROUP, GQL


async def test_creator_becomes_owner_and_sees_the_group(gql: GQL) -> None:
    olivia = gql.token("olivia", "olivia@acme.com", name="Olivia")
    data = await gql(
        CREATE_GROUP, {"input": {"type": "org", "externalId": "acme", "name": "Acme"}}, auth=olivia
    )
    assert data["createGroup"]["errors"] == []
    assert data["createGroup"]["group"]["viewerRole"] == "owner"

    viewer = await gql(
        "{ viewer { user { externalId email name } memberships { role group { name } } } }",
        auth=olivia,
    )
    assert viewer["viewer"]["user"] == {
        "externalId": "olivia",
        "email": "olivia@acme.com",
        "name": "Olivia",
    }
    assert viewer["viewer"]["memberships"] == [{"role": "owner", "group": {"name": "Acme"}}]

    group = await gql(
        '{ group(groupType: "org", groupId: "acme") { name members { totalCount edges { node { role user { externalId } } } } } }',
        auth=olivia,
    )
    assert group["group"]["members"]["totalCount"] == 1


async def test_group_is_invisible_to_non_members(gql: GQL, make_group) -> None:
    await make_group(gql.token("olivia"))
    data = await gql('{ group(groupType: "org", groupId: "acme") { name } }', auth=gql.token())
    assert data["group"] is None


async def test_api_key_creates_group_without_members(gql: GQL, api_key: str) -> None:
    data = await gql(
        CREATE_GROUP, {"input": {"type": "org", "externalId": "x1", "name": "X"}}, auth=api_key
    )
    assert data["createGroup"]["group"]["viewerRole"] is None
    again = await gql(
        CREATE_GROUP, {"input": {"type": "org", "externalId": "x1", "name": "X"}}, auth=api_key
    )
    assert again["createGroup"]["group"] is None
    assert again["createGroup"]["errors"][0]["code"] == "INVALID_INPUT"
    assert again["createGroup"]["errors"][0]["field"] == ["externalId"]


async def test_blank_names_are_refused(gql: GQL, api_key: str) -> None:
    data = await gql(
        CREATE_GROUP, {"input": {"type": "org", "externalId": "x", "name": "  "}}, auth=api_key
    )
    assert data["createGroup"]["errors"] == [
        {"code": "INVALID_INPUT", "field": ["name"], "message": "name must not be empty."}
    ]


async def test_anonymous_and_bad_credentials_are_top_level_errors(gql: GQL) -> None:
    body = await gql.raw("{ viewer { user { id } } }")
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    body = await gql.raw("{ viewer { user { id } } }", auth="not-a-jwt")
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    body = await gql.raw("{ viewer { user { id } } }", auth="usk_unknown")
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_cors_allows_only_configured_origins(database: str) -> None:
    import httpx

    from app.config import Settings
    from app.main import create_app

    app = create_app(Settings(cors_origins="https://app.example.com"), run_jobs=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://usher.test"
    ) as http:
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        }
        ok = await http.options(
            "/graphql", headers={"Origin": "https://app.example.com", **preflight}
        )
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "https://app.example.com"
        assert "authorization" in ok.headers["access-control-allow-headers"].lower()
        denied = await http.options(
            "/graphql", headers={"Origin": "https://evil.example", **preflight}
        )
        assert "access-control-allow-origin" not in denied.headers


async def test_a_user_needs_a_verified_email_to_create_a_group(gql: GQL) -> None:
    unverified = gql.token("olivia", "olivia@acme.com", verified=False)
    data = await gql(
        CREATE_GROUP,
        {"input": {"type": "org", "externalId": "acme", "name": "Acme"}},
        auth=unverified,
    )
    assert data["createGroup"]["group"] is None
    assert [e["code"] for e in data["createGroup"]["errors"]] == ["EMAIL_NOT_VERIFIED"]
    assert await Group.all().count() == 0
    no_email = make_dev_jwt(gql.settings, sub="olivia", email=None)
    data = await gql(
        CREATE_GROUP,
        {"input": {"type": "org", "externalId": "acme", "name": "Acme"}},
        auth=no_email,
    )
    assert [e["code"] for e in data["createGroup"]["errors"]] == ["EMAIL_NOT_VERIFIED"]

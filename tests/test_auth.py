import re
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app.config import DEV_JWT_SECRET, DEV_SECRET_KEY, Settings
from app.main import create_app
from app.models import ApiKey, User
from app.services.auth import InvalidCredential, decode_jwt, record_use
from tests.conftest import GQL, QueryLog

VIEWER = "{ viewer { user { externalId email } } }"


def _claims(**extra: object) -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        "sub": "u1",
        "email": "u1@example.com",
        "email_verified": True,
        "exp": now + timedelta(hours=1),
        **extra,
    }


@pytest.mark.parametrize(
    ("make_key", "algorithm"),
    [
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
        (lambda: ec.generate_private_key(ec.SECP256R1()), "ES256"),
    ],
)
def test_public_key_verification(make_key, algorithm: str) -> None:
    private = make_key()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    settings = Settings(jwt_public_key=public_pem)
    token = jwt.encode(_claims(name="Una"), private, algorithm=algorithm)
    claims = decode_jwt(settings, token)
    assert (claims.sub, claims.email, claims.email_verified, claims.name) == (
        "u1",
        "u1@example.com",
        True,
        "Una",
    )
    # An HS256 token signed with the shared secret is not accepted once keys are configured.
    with pytest.raises(InvalidCredential):
        decode_jwt(settings, jwt.encode(_claims(), settings.jwt_secret, algorithm="HS256"))


def test_expired_and_subless_tokens_are_refused() -> None:
    settings = Settings()
    expired = jwt.encode(
        _claims(exp=datetime.now(UTC) - timedelta(seconds=5)),
        settings.jwt_secret,
        algorithm="HS256",
    )
    with pytest.raises(InvalidCredential, match="expired"):
        decode_jwt(settings, expired)
    subless = jwt.encode({"email": "x@example.com"}, settings.jwt_secret, algorithm="HS256")
    with pytest.raises(InvalidCredential):
        decode_jwt(settings, subless)
    wrong_key = jwt.encode(_claims(), "some-other-secret-of-sufficient-length!", algorithm="HS256")
    with pytest.raises(InvalidCredential):
        decode_jwt(settings, wrong_key)


def test_email_verified_must_be_literally_true() -> None:
    settings = Settings()
    token = jwt.encode(_claims(email_verified="true"), settings.jwt_secret, algorithm="HS256")
    assert decode_jwt(settings, token).email_verified is False


def test_production_refuses_development_secrets() -> None:
    with pytest.raises(ValueError, match="USHER_SECRET_KEY is the development value"):
        create_app(
            Settings(
                env="production",
                allow_sqlite=True,
                mail_dir="./outbox",
                accept_url="https://app.example.com/i?t={token}",
                jwt_secret="production-test-jwt-secret-0123456789",
            )
        )
    with pytest.raises(ValueError, match="USHER_JWT_SECRET is the development value"):
        create_app(
            Settings(
                env="production",
                allow_sqlite=True,
                mail_dir="./outbox",
                accept_url="https://app.example.com/i?t={token}",
                secret_key="production-test-secret-key-0123456789",
            )
        )
    with pytest.raises(ValueError, match="USHER_SECRET_KEY"):
        create_app(
            Settings(
                env="production",
                allow_sqlite=True,
                mail_dir="./outbox",
                accept_url="https://app.example.com/i?t={token}",
                secret_key=f"new,{DEV_SECRET_KEY}",
                jwt_secret="production-test-jwt-secret-0123456789",
            )
        )
    app = create_app(
        Settings(
            env="production",
            allow_sqlite=True,
            mail_dir="./outbox",
            accept_url="https://app.example.com/i?t={token}",
            secret_key="production-test-secret-key-0123456789",
            jwt_secret="production-test-jwt-secret-0123456789",
        )
    )
    assert app is not None
    assert Settings().jwt_secret == DEV_JWT_SECRET


async def test_users_are_mirrored_from_the_jwt(gql: GQL) -> None:
    first = await gql(VIEWER, auth=gql.token("u1", "old@example.com"))
    assert first["viewer"]["user"] == {"externalId": "u1", "email": "old@example.com"}
    second = await gql(VIEWER, auth=gql.token("u1", "new@example.com"))
    assert second["viewer"]["user"] == {"externalId": "u1", "email": "new@example.com"}


async def test_api_keys_have_no_viewer(gql: GQL, api_key: str) -> None:
    data = await gql(VIEWER, auth=api_key)
    assert data["viewer"] is None


async def test_production_masks_unexpected_errors(database: str) -> None:
    import httpx

    from app.services import groups

    settings = Settings(
        env="production",
        allow_sqlite=True,
        mail_dir="./outbox",
        accept_url="https://app.example.com/i?t={token}",
        secret_key="production-test-secret-key-0123456789",
        jwt_secret="production-test-jwt-secret-0123456789",
    )
    app = create_app(settings, run_jobs=False)
    original = groups.visible_group

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database password is hunter2")

    groups.visible_group = broken
    try:
        from app.services.auth import make_dev_jwt

        token = make_dev_jwt(settings, sub="u1", email="u1@example.com")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as http:
            response = await http.post(
                "/graphql",
                json={"query": '{ group(groupType: "a", groupId: "b") { id } }'},
                headers={"Authorization": f"Bearer {token}"},
            )
            body = response.json()
            assert "hunter2" not in response.text
            assert body["errors"][0]["message"] == "Unexpected error."
            # Deliberate errors still reach the client.
            response = await http.post("/graphql", json={"query": "{ viewer { user { id } } }"})
            assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
            # GraphiQL is off in production.
            page = await http.get("/graphql", headers={"Accept": "text/html"})
            assert "graphiql" not in page.text.lower()
    finally:
        groups.visible_group = original


async def test_jwks_url_verification(gql: GQL, settings: Settings) -> None:
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from jwt.algorithms import RSAAlgorithm

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    jwk.update({"kid": "key-1", "use": "sig", "alg": "RS256"})
    body = json.dumps({"keys": [jwk]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        settings.jwt_jwks_url = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
        token = jwt.encode(_claims(), private, algorithm="RS256", headers={"kid": "key-1"})
        data = await gql(VIEWER, auth=token)
        assert data["viewer"]["user"] == {"externalId": "u1", "email": "u1@example.com"}
        unknown_kid = jwt.encode(_claims(), private, algorithm="RS256", headers={"kid": "nope"})
        body_ = await gql.raw(VIEWER, auth=unknown_kid)
        assert body_["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


BAD_CLAIMS = {
    "sub over 255": {"sub": "s" * 256},
    "name over 255": {"name": "n" * 256},
    "email over 320": {"email": "e" * 309 + "@example.com"},
    "NUL in sub": {"sub": "u\x001"},
    "NUL in name": {"name": "Una\x00"},
    "NUL in email": {"email": "u1\x00@example.com"},
    "escape in name": {"name": "\x1b[31mUna"},
    "surrogate in name": {"name": "Una\ud800"},
    "number as name": {"name": 5},
    "list as email": {"email": ["u1@example.com"]},
    "object as name": {"name": {"first": "Una"}},
    "boolean as email": {"email": True},
    "number as sub": {"sub": 12345},
    "empty sub": {"sub": ""},
    "blank sub": {"sub": "   "},
    "no-break-space sub": {"sub": "\u00a0\u3000"},
}


@pytest.mark.parametrize("claims", BAD_CLAIMS.values(), ids=BAD_CLAIMS.keys())
def test_claims_usher_cannot_store_are_an_invalid_credential(claims: dict[str, object]) -> None:
    settings = Settings()
    token = jwt.encode(_claims(**claims), settings.jwt_secret, algorithm="HS256")
    with pytest.raises(InvalidCredential, match="Invalid token"):
        decode_jwt(settings, token)


@pytest.mark.parametrize("claims", BAD_CLAIMS.values(), ids=BAD_CLAIMS.keys())
async def test_bad_claims_are_unauthenticated_not_a_server_error(
    gql: GQL, settings: Settings, claims: dict[str, object]
) -> None:
    token = jwt.encode(_claims(**claims), settings.jwt_secret, algorithm="HS256")
    response = await gql.http.post(
        "/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert await User.all().count() == 0


async def test_claims_at_their_limits_are_stored(gql: GQL, settings: Settings) -> None:
    claims = {"sub": "s" * 255, "name": "n" * 255, "email": "e" * 308 + "@example.com"}
    token = jwt.encode(_claims(**claims), settings.jwt_secret, algorithm="HS256")
    data = await gql(VIEWER, auth=token)
    assert data["viewer"]["user"]["externalId"] == "s" * 255
    user = await User.get(external_id="s" * 255)
    assert (user.name, user.email) == ("n" * 255, claims["email"])
    # Absent or empty optional claims are simply not there.
    token = jwt.encode(_claims(sub="u2", email="", name=None), settings.jwt_secret, "HS256")
    assert (await gql(VIEWER, auth=token))["viewer"]["user"] == {"externalId": "u2", "email": None}


SHORT = "0123456789abcdefghijklmnopqrstu"  # one byte short of the minimum
STRONG = "production-test-secret-key-0123456789"


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"secret_key": SHORT}, "USHER_SECRET_KEY"),
        ({"secret_key": f"{STRONG},{SHORT}"}, "USHER_SECRET_KEY"),
        ({"secret_key": "y" * 40}, "USHER_SECRET_KEY"),  # long, but one character
        ({"jwt_secret": SHORT}, "USHER_JWT_SECRET"),
        ({"jwt_secret": "é" * 15}, "USHER_JWT_SECRET"),  # 30 bytes, though 15 characters
        ({"jwt_secret": " " * 40}, "USHER_JWT_SECRET"),
        ({"jwt_secret": f" {SHORT}\t\n "}, "USHER_JWT_SECRET"),  # 31 bytes between blanks
        ({"jwt_secret": "abababab" * 8}, "USHER_JWT_SECRET"),  # 64 bytes of two characters
    ],
)
def test_production_refuses_short_secrets(overrides: dict[str, str], variable: str) -> None:
    values = {"secret_key": STRONG, "jwt_secret": STRONG.replace("key", "jwt"), **overrides}
    with pytest.raises(ValueError, match=f"{variable} .*shorter than 32 bytes") as raised:
        Settings.model_validate({"env": "production", **values}).check()
    assert "\n" not in str(raised.value)
    # Development accepts them: tests and laptops need no long secrets.
    Settings.model_validate(values).check()


@pytest.mark.parametrize(
    ("overrides", "refusal"),
    [
        (
            {"allow_sqlite": False},
            "DATABASE_URL is SQLite; use PostgreSQL, or set USHER_ALLOW_SQLITE=true",
        ),
        (
            {"accept_url": "http://localhost:8000/accept?token={token}"},
            "USHER_ACCEPT_URL points at this machine",
        ),
        (
            {"accept_url": "https://127.0.0.1/a?t={token}"},
            "USHER_ACCEPT_URL points at this machine",
        ),
        (
            {"accept_url": "https://app.localhost/a?t={token}"},
            "USHER_ACCEPT_URL points at this machine",
        ),
        (
            {"mail_dir": None},
            "USHER_SMTP_URL is not set, so mail would only be written to a folder",
        ),
    ],
)
def test_production_refuses_laptop_defaults(overrides: dict[str, Any], refusal: str) -> None:
    values: dict[str, Any] = {
        "env": "production",
        "secret_key": STRONG,
        "jwt_secret": STRONG.replace("key", "jwt"),
        "database_url": "sqlite://usher.db",
        "allow_sqlite": True,
        "mail_dir": "./outbox",
        "accept_url": "https://app.example.com/invite?token={token}",
    }
    Settings.model_validate(values).check()  # each default, set on purpose, is accepted
    values.update(overrides)
    values = {k: v for k, v in values.items() if v is not None}  # None: left at its default
    with pytest.raises(ValueError, match=re.escape(refusal)) as raised:
        Settings.model_validate(values).check()
    assert "\n" not in str(raised.value)
    # PostgreSQL, SMTP and the app's own page need no word.
    fine = {k: v for k, v in values.items() if k not in ("allow_sqlite", "mail_dir")}
    fine.update(
        database_url="postgres://db/usher",
        smtp_url="smtp://mail:25",
        accept_url="https://app.example.com/invite?token={token}",
    )
    Settings.model_validate(fine).check()


def test_a_short_jwt_secret_is_fine_when_jwts_are_verified_by_public_key() -> None:
    Settings(
        env="production",
        allow_sqlite=True,
        mail_dir="./outbox",
        accept_url="https://app.example.com/i?t={token}",
        secret_key="production-test-secret-key-0123456789",
        jwt_secret="short",
        jwt_jwks_url="https://idp/jwks",
    ).check()


async def test_api_keys_record_when_they_were_last_used(
    gql: GQL, api_key: str, queries: QueryLog
) -> None:
    row = await ApiKey.get(prefix=api_key[:12])
    assert row.last_used_at is None
    before = datetime.now(UTC)
    await gql(VIEWER, auth=api_key)
    first = (await ApiKey.get(id=row.id)).last_used_at
    assert first is not None and first >= before - timedelta(seconds=1)

    # Within the minute, using the key writes nothing.
    queries.statements.clear()
    await gql(VIEWER, auth=api_key)
    assert not [s for s in queries.statements if "UPDATE" in s and "api_keys" in s]
    assert (await ApiKey.get(id=row.id)).last_used_at == first

    # A minute on, the next use moves it.
    await ApiKey.filter(id=row.id).update(last_used_at=first - timedelta(minutes=2))
    await gql(VIEWER, auth=api_key)
    latest = (await ApiKey.get(id=row.id)).last_used_at
    assert latest is not None and latest >= first


async def test_a_use_read_before_another_was_recorded_writes_nothing(api_key: str) -> None:
    # Two requests read the key before either records its use: only one write lands.
    first, second = await ApiKey.get(prefix=api_key[:12]), await ApiKey.get(prefix=api_key[:12])
    assert await record_use(first) is True
    assert await record_use(second) is False
    assert (await ApiKey.get(id=first.id)).last_used_at == first.last_used_at

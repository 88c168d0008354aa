"""The `usher` command, run as a newcomer would run it."""

import os
import subprocess
import sys

import jwt
import pytest

from app.config import Settings
from tests.conftest import GQL


def usher(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )
    return result.stdout


def test_token_prints_a_jwt_on_its_last_line() -> None:
    out = usher("token", "--sub", "olivia", "--email", "olivia@acme.com", "--name", "Olivia")
    claims = jwt.decode(out.strip().splitlines()[-1], Settings().jwt_secret, algorithms=["HS256"])
    assert claims["sub"] == "olivia"
    assert claims["email"] == "olivia@acme.com"
    assert claims["email_verified"] is True
    assert claims["name"] == "Olivia"
    out = usher("token", "--sub", "u", "--email", "u@example.com", "--unverified")
    claims = jwt.decode(out.strip().splitlines()[-1], Settings().jwt_secret, algorithms=["HS256"])
    assert claims["email_verified"] is False


def test_token_refuses_to_mint_in_production() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "token", "--sub", "admin", "--email", "a@acme.com"],
        capture_output=True,
        text=True,
        env={**os.environ, **PRODUCTION},
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "USHER_ENV=production" in result.stderr


PRODUCTION = {
    "USHER_ENV": "production",
    "USHER_SECRET_KEY": "cli-tests-secret-key-0123456789abcdef",
    "USHER_JWT_SECRET": "cli-tests-jwt-secret-0123456789abcdef",
    "USHER_ALLOW_SQLITE": "true",
    "USHER_MAIL_DIR": "./outbox",
    "USHER_ACCEPT_URL": "https://app.example.com/invite?token={token}",
}


@pytest.mark.parametrize(
    ("env", "said"),
    [
        (
            {"USHER_RESEND_COOLDOWN_SECONDS": "soon", "USHER_QUOTA_PENDING_PER_GROUP": "x"},
            "Refusing to start: USHER_RESEND_COOLDOWN_SECONDS: input should be a valid integer, "
            "unable to parse string as an integer (got 'soon'); USHER_QUOTA_PENDING_PER_GROUP:",
        ),
        ({"DATABASE_URL": "garbage"}, "DATABASE_URL must be sqlite://PATH or postgres://"),
        ({**PRODUCTION, "USHER_ALLOW_SQLITE": "false"}, "DATABASE_URL is SQLite; use PostgreSQL"),
    ],
)
def test_configuration_mistakes_are_one_line_naming_the_variable(
    env: dict[str, str], said: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "migrate"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert said in result.stderr


async def test_apikey_create_prints_a_working_key(gql: GQL, database: str) -> None:
    out = usher("apikey", "create", "--name", "backend", env={"DATABASE_URL": database})
    key = out.strip().splitlines()[-1]
    assert key.startswith("usk_")
    assert "last used never" in usher("apikey", "list", env={"DATABASE_URL": database})
    data = await gql('{ group(groupType: "org", groupId: "none") { id } }', auth=key)
    assert data["group"] is None
    body = await gql.raw("{ viewer { user { id } } }", auth=key + "x")
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    listed = usher("apikey", "list", env={"DATABASE_URL": database})
    assert f"{key[:12]}…  backend" in listed and "active" in listed
    assert "last used 20" in listed  # the requests above used it
    usher("apikey", "revoke", key[:12], env={"DATABASE_URL": database})
    assert "revoked" in usher("apikey", "list", env={"DATABASE_URL": database})
    body = await gql.raw("{ viewer { user { id } } }", auth=key)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_export_schema_writes_the_sdl(tmp_path) -> None:
    target = tmp_path / "schema.graphql"
    usher("export-schema", "--output", str(target))
    text = target.read_text()
    assert "type Query" in text and "invitationByToken(" in text and "token: String!" in text


def test_migrate_creates_the_tables(tmp_path) -> None:
    db = tmp_path / "fresh.db"
    usher("migrate", env={"DATABASE_URL": f"sqlite://{db}"})
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    tables = {row[0] for row in rows}
    assert {"invitations", "groups", "memberships", "outbox", "users", "api_keys"} <= tables


def test_worker_without_redis_says_why() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "USHER_REDIS_URL")}
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "worker"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode != 0
    assert "REDIS_URL is not set" in result.stderr


def test_serve_chooses_its_event_loop_and_http_parser() -> None:
    from app.cli import parser

    default = parser().parse_args(["serve"])
    # uvicorn's auto: uvloop and httptools when installed (they are, with Usher).
    assert (default.loop, default.http) == ("auto", "auto")
    chosen = parser().parse_args(["serve", "--loop", "asyncio", "--http", "h11"])
    assert (chosen.loop, chosen.http) == ("asyncio", "h11")

"""The `usher` command, run as a newcomer would run it: in-process where the command
touches no database (what it prints and how it exits), as a process where it does."""

import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import jwt
import pytest

from app.cli import main
from app.config import Settings, get_settings
from tests.conftest import GQL


@dataclass
class Ran:
    """How a command ended: its exit code and what it printed."""

    code: int
    stdout: str
    stderr: str


Usher = Callable[..., Ran]


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Usher]:
    """`usher ARGS…` in this process, with `env` set, as `python -m app.cli` would run it."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    formatters = [h.formatter for h in handlers]

    def usher_(*args: str, env: dict[str, str] | None = None) -> Ran:
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        code = 0
        try:
            main(list(args))
        except SystemExit as exit_:
            # `sys.exit("message")` prints the message to stderr on the way out.
            if isinstance(exit_.code, str):
                print(exit_.code, file=sys.stderr)
            code = exit_.code if isinstance(exit_.code, int) else 1
        finally:
            get_settings.cache_clear()
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    yield usher_
    root.setLevel(level)
    root.handlers[:] = handlers
    for handler, formatter in zip(handlers, formatters, strict=True):
        handler.setFormatter(formatter)


def usher(*args: str, env: dict[str, str] | None = None) -> str:
    """`usher ARGS…` as a process (for the commands that open the database)."""
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )
    return result.stdout


def test_token_prints_a_jwt_on_its_last_line(run: Usher) -> None:
    out = run("token", "--sub", "olivia", "--email", "olivia@acme.com", "--name", "Olivia").stdout
    claims = jwt.decode(out.strip().splitlines()[-1], Settings().jwt_secret, algorithms=["HS256"])
    assert claims["sub"] == "olivia"
    assert claims["email"] == "olivia@acme.com"
    assert claims["email_verified"] is True
    assert claims["name"] == "Olivia"
    out = run("token", "--sub", "u", "--email", "u@example.com", "--unverified").stdout
    claims = jwt.decode(out.strip().splitlines()[-1], Settings().jwt_secret, algorithms=["HS256"])
    assert claims["email_verified"] is False


def test_token_refuses_to_mint_in_production(run: Usher) -> None:
    result = run("token", "--sub", "admin", "--email", "a@acme.com", env=PRODUCTION)
    assert result.code != 0
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
    run: Usher, env: dict[str, str], said: str
) -> None:
    result = run("migrate", env=env)
    assert result.code != 0
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


def test_export_schema_writes_the_sdl(run: Usher, tmp_path) -> None:
    target = tmp_path / "schema.graphql"
    assert run("export-schema", "--output", str(target)).code == 0
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


def test_worker_without_redis_says_why(run: Usher, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("USHER_REDIS_URL", raising=False)
    result = run("worker")
    assert result.code != 0
    assert "REDIS_URL is not set" in result.stderr


def test_serve_chooses_its_event_loop_and_http_parser() -> None:
    from app.cli import parser

    default = parser().parse_args(["serve"])
    # uvicorn's auto: uvloop and httptools when installed (they are, with Usher).
    assert (default.loop, default.http) == ("auto", "auto")
    chosen = parser().parse_args(["serve", "--loop", "asyncio", "--http", "h11"])
    assert (chosen.loop, chosen.http) == ("asyncio", "h11")

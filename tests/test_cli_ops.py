"""What an operator asks the `usher` command: its version, its options, what a migration
did, and whether a worker could run here."""

import argparse
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from app.cli import parser
from tests.mailserver import free_port


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "USHER_REDIS_URL")}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=60,
    )


def commands(p: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """`p` and every command under it."""
    found = [p]
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found += commands(child)
    return found


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"usher {version('usher')}"


def test_every_option_has_help_and_shows_its_default() -> None:
    missing = [
        f"{command.prog} {action.dest}"
        for command in commands(parser())
        for action in command._actions
        if not isinstance(action, argparse._SubParsersAction) and not action.help
    ]
    assert missing == []
    for command in commands(parser()):
        assert isinstance(command.formatter_class, type)
        assert issubclass(command.formatter_class, argparse.ArgumentDefaultsHelpFormatter)
    text = run("serve", "--help").stdout
    assert "--port PORT           port to listen on (default: 8000)" in text


def test_migrate_lists_what_it_applied(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite://{tmp_path / 'usher.db'}"}
    first = run("migrate", env=env)
    assert first.returncode == 0, first.stderr
    migrations = sorted(p.stem for p in Path("migrations").glob("0*.py"))
    assert (
        first.stdout.strip()
        == f"Migrations applied: {', '.join(f'models.{m}' for m in migrations)}."
    )
    again = run("migrate", env=env)
    assert again.stdout.strip() == "Migrations: nothing to apply."
    assert "shutdown" not in first.stderr + again.stderr


@pytest.fixture
def sqlite_env(tmp_path: Path) -> dict[str, str]:
    return {"DATABASE_URL": f"sqlite://{tmp_path / 'usher.db'}"}


def test_worker_check_passes_when_all_answer(sqlite_env: dict[str, str]) -> None:
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    result = run("worker", "--check", env={**sqlite_env, "REDIS_URL": redis_url})
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == ["config: ok", "database: ok", "redis: ok"]


def test_worker_check_fails_naming_what_does_not_answer(sqlite_env: dict[str, str]) -> None:
    result = run(
        "worker", "--check", env={**sqlite_env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    )
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[:2] == ["config: ok", "database: ok"]
    assert lines[2].startswith("redis: ") and lines[2] != "redis: ok"
    assert len(lines) == 3

    result = run("worker", "--check", env=sqlite_env)
    assert result.returncode == 1
    assert "redis: REDIS_URL is not set" in result.stdout


def test_worker_check_reports_a_configuration_mistake_in_one_line() -> None:
    result = run("worker", "--check", env={"DATABASE_URL": "garbage"})
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "DATABASE_URL" in result.stderr

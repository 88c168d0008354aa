"""The `usher` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from app.config import Settings, explain, get_settings, tortoise_config


async def migrate_database(database_url: str | None = None) -> list[str]:
    """Apply every migration in `migrations/` to the database; the names of those applied."""
    from tortoise import Tortoise
    from tortoise.migrations.api import migrate

    applied: list[str] = []

    def progress(event: str, app: str, name: str) -> None:
        if event == "apply_done":
            applied.append(f"{app}.{name}")

    url = database_url or get_settings().database_url
    lock: contextlib.AbstractAsyncContextManager[None] = contextlib.nullcontext()
    if url.startswith("sqlite:"):
        from app.sqlite_client import migration_lock

        lock = migration_lock(url)
    async with lock:
        try:
            await migrate(config=tortoise_config(url), progress=progress)
        finally:
            # Tortoise logs "shutdown" here, which read as the service stopping at start.
            with _quiet("tortoise"):
                await Tortoise.close_connections()
    return applied


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """`logger`'s INFO records dropped while the block runs."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)


def _migrations_report(applied: list[str]) -> str:
    if not applied:
        return "Migrations: nothing to apply."
    return f"Migrations applied: {', '.join(applied)}."


async def _with_db(work: Callable[[], Awaitable[None]]) -> None:
    from tortoise import Tortoise

    await Tortoise.init(config=tortoise_config(), _enable_global_fallback=True)
    try:
        await work()
    finally:
        await Tortoise.close_connections()


def checked_settings() -> Settings:
    """The settings, or exit with the reason they are refused."""
    settings = get_settings()
    try:
        settings.check()
    except ValueError as exc:
        sys.exit(str(exc))
    return settings


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from app.log import uvicorn_log_config

    checked_settings()
    if not args.no_migrate:
        logging.getLogger("usher").info(_migrations_report(asyncio.run(migrate_database())))
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop=args.loop,
        http=args.http,
        log_level="info",
        log_config=uvicorn_log_config(get_settings().effective_log_format),
    )


def cmd_migrate(_: argparse.Namespace) -> None:
    print(_migrations_report(asyncio.run(migrate_database())))


def cmd_apikey_create(args: argparse.Namespace) -> None:
    from app.services.auth import create_api_key

    async def work() -> None:
        row, key = await create_api_key(args.name)
        print(f"Created API key {row.name!r} ({row.prefix}…). It is shown only once:")
        print(key)

    asyncio.run(_with_db(work))


def cmd_apikey_list(_: argparse.Namespace) -> None:
    from app.models import ApiKey

    async def work() -> None:
        for row in await ApiKey.all().order_by("created_at"):
            state = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
            used = f"{row.last_used_at:%Y-%m-%d %H:%M} UTC" if row.last_used_at else "never"
            print(
                f"{row.prefix}…  {row.name}  created {row.created_at:%Y-%m-%d}  "
                f"last used {used}  {state}"
            )

    asyncio.run(_with_db(work))


def cmd_apikey_revoke(args: argparse.Namespace) -> None:
    from app.services.auth import revoke_api_key

    async def work() -> None:
        count = await revoke_api_key(args.prefix)
        if count != 1:
            sys.exit(f"No single active key starts with {args.prefix!r} ({count} match).")
        print(f"Revoked {args.prefix}…")

    asyncio.run(_with_db(work))


def cmd_token(args: argparse.Namespace) -> None:
    from app.services.auth import make_dev_jwt

    settings = get_settings()
    if settings.is_production:
        # Whoever can run it could sign in as anyone; production JWTs come from the host app.
        sys.exit("usher token makes development JWTs; it refuses to with USHER_ENV=production.")
    print(
        make_dev_jwt(
            settings,
            sub=args.sub,
            email=args.email,
            name=args.name,
            verified=not args.unverified,
            hours=args.hours,
        )
    )


def cmd_export_schema(args: argparse.Namespace) -> None:
    from app.graphql.schema import schema

    text = schema.as_str() + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
        print(f"Wrote {args.output}")


def cmd_worker(args: argparse.Namespace) -> None:
    from app.jobs.worker import run

    settings = checked_settings()
    if args.check:
        sys.exit(asyncio.run(_check_worker(settings)))
    if not settings.redis_url:
        sys.exit(NO_REDIS)
    run(settings)


NO_REDIS = "REDIS_URL is not set: without it, `usher serve` runs the jobs in-process."


async def _check_worker(settings: Settings) -> int:
    """Print one line per check the worker needs (configuration, database, Redis); 0 if all
    pass. The configuration was checked before this runs, or `usher` would have exited."""
    from tortoise import Tortoise

    from app.ops import readiness

    print("config: ok")
    if not settings.redis_url:
        print(f"redis: {NO_REDIS}")
    try:
        await Tortoise.init(config=tortoise_config(settings.database_url))
        results = await readiness(settings)
    except Exception as exc:  # an unreachable database can fail at init already
        results = {"database": f"{type(exc).__name__}: {str(exc)[:200]}"}
    finally:
        with _quiet("tortoise"):
            await Tortoise.close_connections()
    for name, result in results.items():
        print(f"{name}: {result}")
    ok = settings.redis_url and all(r == "ok" for r in results.values())
    return 0 if ok else 1


def parser() -> argparse.ArgumentParser:
    """The command line of `usher`; `--help` on any command shows its options and defaults."""
    formatter = argparse.ArgumentDefaultsHelpFormatter
    p = argparse.ArgumentParser(
        prog="usher",
        description="Usher, the invitation service. Configured by environment variables "
        "(README, Configuration).",
        formatter_class=formatter,
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {version('usher')}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, description: str, **kwargs: Any) -> argparse.ArgumentParser:
        return sub.add_parser(
            name, help=description, description=description, formatter_class=formatter, **kwargs
        )

    serve = command("serve", "Apply migrations, then serve the GraphQL API.")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on")
    serve.add_argument("--workers", type=int, default=1, help="server processes")
    serve.add_argument("--no-migrate", action="store_true", help="do not apply migrations first")
    # uvicorn's `auto` takes uvloop and httptools, installed with Usher where they build.
    serve.add_argument(
        "--loop", choices=["auto", "asyncio", "uvloop"], default="auto", help="event loop"
    )
    serve.add_argument(
        "--http", choices=["auto", "h11", "httptools"], default="auto", help="HTTP parser"
    )
    serve.set_defaults(func=cmd_serve)

    worker = command("worker", "Run the job worker (arq) on REDIS_URL.")
    worker.add_argument(
        "--check",
        action="store_true",
        help="check the configuration, the database and Redis, one line each, then exit "
        "(0: all reachable)",
    )
    worker.set_defaults(func=cmd_worker)
    command("migrate", "Apply migrations and list those applied.").set_defaults(func=cmd_migrate)

    apikey = command("apikey", "Manage API keys.")
    apikey_sub = apikey.add_subparsers(dest="apikey_command", required=True, metavar="COMMAND")
    create = apikey_sub.add_parser(
        "create", help="create a key; prints it on the last line", formatter_class=formatter
    )
    create.add_argument("--name", required=True, help="what the key is for, shown by `list`")
    create.set_defaults(func=cmd_apikey_create)
    apikey_sub.add_parser(
        "list", help="list keys by prefix", formatter_class=formatter
    ).set_defaults(func=cmd_apikey_list)
    revoke = apikey_sub.add_parser(
        "revoke", help="revoke the key with this prefix", formatter_class=formatter
    )
    revoke.add_argument("prefix", help="the key's first 12 characters, as `list` shows")
    revoke.set_defaults(func=cmd_apikey_revoke)

    token = command("token", "Print a development JWT on the last line (not in production).")
    token.add_argument("--sub", required=True, help="the user's id (JWT `sub`)")
    token.add_argument("--email", help="the user's email (none when left out)")
    token.add_argument("--name", help="the user's display name")
    token.add_argument("--unverified", action="store_true", help="email_verified: false")
    token.add_argument("--hours", type=int, default=24, help="hours until it expires")
    token.set_defaults(func=cmd_token)

    export = command("export-schema", "Write the GraphQL schema (SDL).")
    export.add_argument("--output", default="schema.graphql", help="file, or - for stdout")
    export.set_defaults(func=cmd_export_schema)
    return p


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `usher` command."""
    from app.log import configure_logging

    args = parser().parse_args(argv)
    try:
        settings = get_settings()
        settings.check()
    except ValidationError as exc:
        configure_logging()
        sys.exit(explain(exc))
    except ValueError as exc:
        configure_logging()
        sys.exit(str(exc))
    configure_logging(settings.effective_log_format)
    args.func(args)


if __name__ == "__main__":
    main()

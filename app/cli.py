"""The `usher` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from pydantic import ValidationError

from app.config import Settings, explain, get_settings, tortoise_config


async def migrate_database(database_url: str | None = None) -> None:
    """Apply every migration in `migrations/` to the database."""
    from tortoise import Tortoise
    from tortoise.migrations.api import migrate

    url = database_url or get_settings().database_url
    lock: contextlib.AbstractAsyncContextManager[None] = contextlib.nullcontext()
    if url.startswith("sqlite:"):
        from app.sqlite_client import migration_lock

        lock = migration_lock(url)
    async with lock:
        try:
            await migrate(config=tortoise_config(url))
        finally:
            await Tortoise.close_connections()


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
        asyncio.run(migrate_database())
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
    asyncio.run(migrate_database())
    print("Migrations applied.")


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


def cmd_worker(_: argparse.Namespace) -> None:
    from app.jobs.worker import run

    settings = checked_settings()
    if not settings.redis_url:
        sys.exit("REDIS_URL is not set: without it, `usher serve` runs the jobs in-process.")
    run(settings)


def parser() -> argparse.ArgumentParser:
    """The command line of `usher`."""
    p = argparse.ArgumentParser(prog="usher", description="Usher, the invitation service.")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="migrate, then serve the GraphQL API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--no-migrate", action="store_true", help="do not apply migrations first")
    # uvicorn's `auto` takes uvloop and httptools, installed with Usher where they build.
    serve.add_argument(
        "--loop", choices=["auto", "asyncio", "uvloop"], default="auto", help="event loop"
    )
    serve.add_argument(
        "--http", choices=["auto", "h11", "httptools"], default="auto", help="HTTP parser"
    )
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("worker", help="run the arq worker on REDIS_URL").set_defaults(func=cmd_worker)
    sub.add_parser("migrate", help="apply migrations").set_defaults(func=cmd_migrate)

    apikey = sub.add_parser("apikey", help="manage API keys")
    apikey_sub = apikey.add_subparsers(dest="apikey_command", required=True)
    create = apikey_sub.add_parser("create", help="create a key; prints it on the last line")
    create.add_argument("--name", required=True)
    create.set_defaults(func=cmd_apikey_create)
    apikey_sub.add_parser("list", help="list keys by prefix").set_defaults(func=cmd_apikey_list)
    revoke = apikey_sub.add_parser("revoke", help="revoke the key with this prefix")
    revoke.add_argument("prefix", help="the key's first 12 characters, as `list` shows")
    revoke.set_defaults(func=cmd_apikey_revoke)

    token = sub.add_parser("token", help="print a development JWT on the last line")
    token.add_argument("--sub", required=True)
    token.add_argument("--email")
    token.add_argument("--name")
    token.add_argument("--unverified", action="store_true", help="email_verified: false")
    token.add_argument("--hours", type=int, default=24)
    token.set_defaults(func=cmd_token)

    export = sub.add_parser("export-schema", help="write the GraphQL schema (SDL)")
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

"""The ASGI application."""

from __future__ import annotations

import gc
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from cross_web import HTTPException
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.asgi import GraphQL
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.contrib.starlette import RegisterTortoise

from app import graphiql, ops
from app.config import Settings, get_settings, tortoise_config
from app.graphql.context import Context, build_context
from app.graphql.limits import MAX_BODY_BYTES, MAX_JSON_DEPTH, json_too_deep
from app.graphql.schema import build_schema
from app.services.auth import KnownUsers
from app.services.invitations import accept_test_domains


class UsherGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI view with Usher's context, and 400 for bad JSON.

    The time limit is the schema's (`QueryTimeLimit`), where the operation's type is known.
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            build_schema(settings),
            graphql_ide="graphiql" if settings.graphiql_enabled else None,
        )
        self.settings = settings
        self.users = KnownUsers()

    async def render_graphql_ide(self, request: Request) -> Response:
        """Usher's own GraphiQL page, with files it serves itself."""
        return graphiql.page()

    async def get_context(self, request: Request, response: Response) -> Context:  # type: ignore[override]
        return await build_context(self.settings, request, self.users)

    def parse_json(self, data: str | bytes) -> Any:
        """A JSON object (the body, or `variables` in a query string), else HTTP 400."""
        try:
            value = json.loads(data)
        # Invalid UTF-8 is a ValueError; nesting deeper than the stack is a RecursionError.
        except (ValueError, RecursionError) as exc:
            raise HTTPException(400, "Unable to parse request body as JSON") from exc
        if not isinstance(value, dict):
            raise HTTPException(400, "Expected a JSON object.")
        if json_too_deep(value):
            raise HTTPException(400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels.")
        return value


class BodyLimit:
    """Answers 413 to a body over `limit` bytes, declared or streamed, before it is parsed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse on Content-Length at once; otherwise count the chunks as they arrive."""
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and (len(declared) > 15 or int(declared) > self.limit):
            await self._refuse(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise _BodyTooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _BodyTooLarge:
            # The view reads the whole body before it answers, so nothing was sent yet.
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = PlainTextResponse(
            f"Request body larger than {self.limit} bytes.", status_code=413
        )
        await response(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


async def keep_session(connection: object) -> None:
    """What a connection going back to asyncpg's pool needs besides asyncpg's own clean-up.

    asyncpg always rolls back a transaction left open and drops the connection's
    listeners; by default it then sends `SELECT pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL`, a round trip after every statement, since Tortoise takes a
    connection from the pool for each. Usher leaves nothing for it to undo: no advisory
    locks, cursors, LISTEN or SET outside a transaction.
    """


def database_config(database_url: str) -> dict[str, Any]:
    """Tortoise's configuration for the server: on PostgreSQL, with `keep_session`."""
    config = tortoise_config(database_url)
    connection = expand_db_url(database_url)
    if connection["engine"] == "tortoise.backends.asyncpg":
        connection["credentials"]["reset"] = keep_session
        config["connections"]["default"] = connection
    return config


async def accept_page(request: Request) -> Response:
    """Where USHER_ACCEPT_URL points by default: a note, since GET never changes anything."""
    return PlainTextResponse(
        "This is an Usher invitation link. Your app should show it to a signed-in user and "
        "call the acceptInvitation mutation with the token.\n"
    )


def create_app(settings: Settings | None = None, *, run_jobs: bool | None = None) -> Starlette:
    """The Starlette app; with `run_jobs` (default: no REDIS_URL) jobs run in-process."""
    settings = settings or get_settings()
    settings.check()
    accept_test_domains(not settings.is_production)
    if run_jobs is None:
        run_jobs = settings.redis_url is None
    graphql = UsherGraphQL(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with RegisterTortoise(app, config=database_config(settings.database_url)):
            # What start-up built lives as long as the process: out of the collector's way,
            # full collections stay short (they were 60-90 ms, the preview's p99).
            gc.collect()
            gc.freeze()
            if run_jobs:
                from app.jobs.inline import InlineRunner

                async with InlineRunner(settings):
                    yield
            elif settings.redis_url:
                from app.jobs.outbox import QueueRelay

                # Hands new outbox rows to the worker's queue right after each commit.
                async with QueueRelay(settings):
                    yield
            else:
                yield

    middleware = [Middleware(ops.RequestIds)]
    if settings.allowed_origins:
        # Bearer tokens, not cookies: no credentials mode is needed.
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.allowed_origins,
                allow_methods=["GET", "POST"],
                # With the tracing headers browsers' instrumentation adds.
                allow_headers=[
                    "Authorization",
                    "Content-Type",
                    "X-Request-ID",
                    "traceparent",
                    "tracestate",
                    "baggage",
                    "sentry-trace",
                ],
                expose_headers=["X-Request-ID"],
                max_age=3600,
            )
        )
    return Starlette(
        middleware=middleware,
        routes=[
            Route("/graphql", BodyLimit(graphql, MAX_BODY_BYTES), methods=["GET", "POST"]),
            *(
                [Route(f"{graphiql.PREFIX}/{{name}}", graphiql.asset)]
                if settings.graphiql_enabled
                else []
            ),
            Route("/healthz", ops.healthz),
            Route("/health", ops.healthz),  # the name of earlier versions
            Route("/readyz", ops.readyz(settings)),
            Route("/metrics", ops.metrics_endpoint),
            Route("/accept", accept_page),
        ],
        lifespan=lifespan,
    )

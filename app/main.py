"""The ASGI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from strawberry.asgi import GraphQL
from tortoise.contrib.starlette import RegisterTortoise

from app.config import Settings, get_settings, tortoise_config
from app.graphql.context import Context, build_context
from app.graphql.schema import build_schema


class UsherGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI view with Usher's context."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            build_schema(production=settings.is_production),
            graphql_ide="graphiql" if settings.graphiql_enabled else None,
        )
        self.settings = settings

    async def get_context(self, request: Request, response: Response) -> Context:  # type: ignore[override]
        return await build_context(self.settings, request)


async def health(_: Request) -> Response:
    """Liveness probe."""
    return JSONResponse({"status": "ok"})


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
    if run_jobs is None:
        run_jobs = settings.redis_url is None
    graphql = UsherGraphQL(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with RegisterTortoise(app, config=tortoise_config(settings.database_url)):
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

    middleware = []
    if settings.allowed_origins:
        # Bearer tokens, not cookies: no credentials mode is needed.
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.allowed_origins,
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type"],
                max_age=3600,
            )
        )
    return Starlette(
        middleware=middleware,
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            Route("/health", health),
            Route("/accept", accept_page),
        ],
        lifespan=lifespan,
    )

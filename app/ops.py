"""What operators probe: `/healthz`, `/readyz` and `/metrics` (DESIGN.md, "Operations")."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import SchemaExtension

from app import metrics
from app.config import Settings
from app.log import request_id

# How long a readiness check waits for the database or Redis before calling it down.
READY_TIMEOUT_SECONDS = 2.0


async def healthz(_: Request) -> Response:
    """Liveness: the process answers. Never touches the database or Redis."""
    return JSONResponse({"status": "ok"})


async def _database() -> None:
    from tortoise import connections

    await connections.get("default").execute_query("SELECT 1")


async def _redis(url: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url, socket_connect_timeout=READY_TIMEOUT_SECONDS)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _check(name: str, probe: Awaitable[None]) -> tuple[str, str]:
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            await probe
    except TimeoutError:
        return name, f"no answer within {READY_TIMEOUT_SECONDS:g}s"
    except Exception as exc:
        return name, f"{type(exc).__name__}: {str(exc)[:200]}"
    return name, "ok"


async def readiness(settings: Settings) -> dict[str, str]:
    """ "ok", or what failed, for the database and (when configured) Redis, checked at once."""
    checks = [_check("database", _database())]
    if settings.redis_url:
        checks.append(_check("redis", _redis(settings.redis_url)))
    return dict(await asyncio.gather(*checks))


def readyz(settings: Settings) -> Callable[[Request], Awaitable[Response]]:
    """Readiness: 200 when the database (and Redis, when configured) answer, else 503
    naming what failed."""

    async def ready(_: Request) -> Response:
        results = await readiness(settings)
        ok = all(v == "ok" for v in results.values())
        body = {"status": "ok" if ok else "unavailable", "checks": results}
        return JSONResponse(body, status_code=200 if ok else 503)

    return ready


async def metrics_endpoint(_: Request) -> Response:
    """Prometheus text. The outbox gauges are read from the database first; if it does not
    answer, the rest is still served."""
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            await metrics.OUTBOX.refresh()
    except Exception:
        pass
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)


class RequestMetrics(SchemaExtension):
    """Counts each GraphQL operation and times it, by operation name and outcome."""

    def on_operation(self) -> Iterator[None]:
        start = time.perf_counter()
        yield
        context = self.execution_context
        label = metrics.operation_label(context.operation_name)
        result = context.result
        outcome = "error" if result is None or getattr(result, "errors", None) else "ok"
        metrics.REQUESTS.labels(operation=label, outcome=outcome).inc()
        metrics.LATENCY.labels(operation=label).observe(time.perf_counter() - start)


_GIVEN_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class RequestIds:
    """Gives each HTTP request an id: the caller's `X-Request-ID` when it is a plain token
    of up to 128 characters, else a new one. It is on every log record written while the
    request is answered, and returned in the response's `X-Request-ID`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _GIVEN_ID.fullmatch(given) else uuid.uuid4().hex
        header = (b"x-request-id", rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        token = request_id.set(rid)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)

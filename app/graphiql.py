"""GraphiQL, served by Usher itself from files vendored in `app/static/graphiql`
(`make graphiql` refreshes them from their npm packages), so it works behind a firewall and
with no internet. It opens with the README's tour and keeps nothing in the browser."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response

FOLDER = Path(__file__).resolve().parent / "static" / "graphiql"
PREFIX = "/graphiql"
TYPES = {".js": "text/javascript", ".css": "text/css", ".graphql": "text/plain"}
# Only the page's own origin: no CDN, no beacon. GraphiQL styles itself inline.
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def page() -> Response:
    """The GraphiQL page."""
    html = (FOLDER / "index.html").read_text().replace("{static}", PREFIX)
    return HTMLResponse(
        html,
        headers={"Content-Security-Policy": POLICY, "Cache-Control": "no-store"},
    )


async def asset(request: Request) -> Response:
    """One of GraphiQL's files; nothing else in the folder, and nothing outside it."""
    name = str(request.path_params["name"])
    path = FOLDER / name
    media_type = TYPES.get(path.suffix)
    if media_type is None or "/" in name or name.startswith(".") or not path.is_file():
        return Response("Not found", status_code=404, media_type="text/plain")
    return FileResponse(
        path, media_type=media_type, headers={"Cache-Control": "public, max-age=3600"}
    )

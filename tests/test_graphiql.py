"""GraphiQL is served by Usher itself: it works in a browser with no internet, opens with
the tour, and keeps no token in the browser."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import parse, validate

from app.config import Settings
from app.graphiql import FOLDER
from app.graphql.schema import schema
from app.services.auth import make_dev_jwt
from tests.conftest import IN_CI
from tests.test_worker_e2e import JWT_SECRET, Service

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


async def test_the_page_and_its_files_come_from_usher(client: httpx.AsyncClient) -> None:
    page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "//" not in page.text.replace("<!doctype html>", "")  # no URL of another host
    for name in (
        "graphiql.min.js",
        "graphiql.min.css",
        "react.production.min.js",
        "react-dom.production.min.js",
        "usher.js",
        "tour.graphql",
    ):
        response = await client.get(f"/graphiql/{name}")
        assert response.status_code == 200, name
    for name in ("index.html", "LICENSE.react", "..%2Fgraphiql.py", "%2Fetc%2Fpasswd", "nope.js"):
        assert (await client.get(f"/graphiql/{name}")).status_code == 404, name


def test_the_tour_is_valid_against_the_schema() -> None:
    tour = parse((FOLDER / "tour.graphql").read_text())
    assert validate(schema._schema, tour) == []
    names = [d.name.value for d in tour.definitions if getattr(d, "name", None)]  # type: ignore[attr-defined]
    assert names == ["CreateGroup", "Invite", "Preview", "Invitations", "Accept"]


def _chromium() -> str:
    if not Path(CHROMIUM).exists():
        message = "chromium is not installed (apt-get install chromium)"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return CHROMIUM


ANSWERED = (
    "() => document.querySelector('.result-window .CodeMirror')"
    ".CodeMirror.getValue().includes('olivia@acme.com')"
)
SET_EDITOR = """([selector, text]) => {
  const editor = document.querySelector(selector).CodeMirror;
  editor.setValue(text);
}"""


async def test_graphiql_runs_a_query_in_a_browser_with_no_internet(tmp_path: Path) -> None:
    from playwright.async_api import TimeoutError as PlaywrightTimeout
    from playwright.async_api import async_playwright

    executable = _chromium()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "USHER_REDIS_URL")}
    env.update(
        DATABASE_URL=f"sqlite://{tmp_path / 'usher.db'}",
        USHER_ENV="development",
        USHER_JWT_SECRET=JWT_SECRET,
        USHER_MAIL_DIR=str(tmp_path / "mail"),
        PYTHONUNBUFFERED="1",
    )
    service = Service(tmp_path, env)
    token = make_dev_jwt(Settings(jwt_secret=JWT_SECRET), sub="olivia", email="olivia@acme.com")
    requested: list[str] = []
    try:
        await service.serve()
        origin = f"http://127.0.0.1:{service.port}"
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=executable,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    # No internet: every host name but loopback fails to resolve.
                    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                ],
            )
            try:
                page = await browser.new_page()
                page.on("request", lambda request: requested.append(request.url))
                await page.goto(f"{origin}/graphql")
                await page.wait_for_selector(".graphiql-container", timeout=30_000)
                # It opens with the tour.
                await page.wait_for_function(
                    "() => document.querySelector('.graphiql-query-editor .CodeMirror')"
                    ".CodeMirror.getValue().includes('mutation CreateGroup')",
                    timeout=30_000,
                )
                query = "query Me { viewer { user { externalId email } } }"
                headers = f'{{"Authorization": "Bearer {token}"}}'
                await page.evaluate(SET_EDITOR, [".graphiql-query-editor .CodeMirror", query])
                visible = ".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror"
                await page.evaluate(SET_EDITOR, [visible, headers])
                # The editors hand their text to GraphiQL after a short debounce: until
                # then ▶ sees the tour's five operations and offers a menu. Run until the
                # answer shows, closing such a menu, within a deadline.
                async with asyncio.timeout(60):
                    while True:
                        await page.click(".graphiql-execute-button")
                        try:
                            await page.wait_for_function(ANSWERED, timeout=2_000)
                            break
                        except PlaywrightTimeout:
                            await page.keyboard.press("Escape")
                result: Any = await page.evaluate(
                    "() => document.querySelector('.result-window .CodeMirror')"
                    ".CodeMirror.getValue()"
                )
                assert '"externalId": "olivia"' in result
                # The token is nowhere in the browser's storage.
                stored = await page.evaluate(
                    "() => JSON.stringify("
                    "Object.assign({}, window.localStorage, window.sessionStorage))"
                )
                assert token not in stored and "Bearer" not in stored
            finally:
                await browser.close()
    except BaseException:
        print(service.log())
        raise
    finally:
        await service.stop()
    assert requested and all(url.startswith(origin) for url in requested), requested

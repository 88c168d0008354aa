"""No token, JWT or API key reaches a log line, whatever logger writes it and in whatever form."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import traceback
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from graphql import GraphQLError, Source
from uvicorn.logging import AccessFormatter, DefaultFormatter

from app.config import Settings
from app.log import LOG_FORMAT, RedactSecrets, configure_logging, redacting, uvicorn_log_config
from app.main import create_app
from app.services.auth import make_dev_jwt
from tests.conftest import CREATE_GROUP, INVITE
from tests.lifecycle_helpers import token_of

TOKEN = "inv_m3U7IjhURlylCV49QjG4pgAAAAH2-9OnhWmf8Tup1ULb2KBu"
API_KEY = "usk_qZjazX0uuwy2nFZfPZTdkviPUsjWRC1VKB6qMy9Hb5w"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1MSIsImVtYWlsIjoidTFAZXhhbXBsZS5jb20ifQ"
    ".kR3g0Yb-lO2pSp8m2u0l9fM5JYkq2YQ3oRjV3-yW1eE"
)
SECRETS = (TOKEN, API_KEY, JWT)


def _pieces(secret: str) -> list[str]:
    """Parts of a secret that must not survive either (everything after its prefix)."""
    body = secret[4:]
    return [secret, body[:16], body[-16:]]


def assert_clean(text: str, *secrets: str) -> None:
    """No secret, nor a recognisable piece of one, is in `text`."""
    for secret in secrets or SECRETS:
        for piece in _pieces(secret):
            assert piece not in text, f"{piece!r} leaked into:\n{text}"


def _record(
    msg: object, args: Any = None, *, exc_info: Any = None, stack_info: str | None = None
) -> logging.LogRecord:
    return logging.LogRecord(
        "usher.test", logging.ERROR, __file__, 1, msg, args, exc_info, sinfo=stack_info
    )


def _format(record: logging.LogRecord, formatter: logging.Formatter | None = None) -> str:
    assert RedactSecrets().filter(record)
    return (formatter or logging.Formatter(LOG_FORMAT)).format(record)


def _bad_preview(token: str) -> str:
    """A document that fails validation on a line quoting `token`."""
    return '{ invitationByToken(token: "TOKEN") { status nosuchfield } }'.replace("TOKEN", token)


def _exc_info(message: str) -> Any:
    try:
        raise ValueError(message)
    except ValueError:
        return sys.exc_info()


# --- what is recognised ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"token={TOKEN}&x=1", "token=inv_…"),
        (f"\"{TOKEN}\" and '{API_KEY}'", "\"inv_…\" and 'usk_…'"),
        (f"Authorization: Bearer {JWT}", "Authorization: Bearer eyJ…"),
        # A dot or junk inside does not end the redaction early.
        (f"{TOKEN[:20]}.x{TOKEN[20:]} next", "inv_… next"),
        (f"{TOKEN[:10]}!\\u0000{TOKEN[10:]}", "inv_…"),
        (f"{API_KEY[:12]}%{API_KEY[12:]}.", "usk_…"),
        (f"{JWT}==~junk", "eyJ…"),
        ("a plain line, with inv and usk and ey.J", "a plain line, with inv and usk and ey.J"),
        # In quotes, a space or an escaped line break does not end it either.
        (f'token: "{TOKEN[:20]} {TOKEN[20:]}"', 'token: "inv_…"'),
        (f"key: '{API_KEY[:20]}\\n{API_KEY[20:]}'", "key: 'usk_…'"),
        # Written with GraphQL's or JSON's escapes.
        (f'"\\u0069{TOKEN[1:]}"', '"inv_…"'),
        (f"\\u{{75}}{API_KEY[1:]} next", "usk_… next"),
        (f"\\u0065{JWT[1:]}", "eyJ…"),
        # Escapes without a secret are left as they were written.
        ("caf\\u00e9 \\u0041", "caf\\u00e9 \\u0041"),
    ],
)
def test_what_is_redacted(text: str, expected: str) -> None:
    assert _format(_record(text)).endswith(expected)


# --- every part of a record -------------------------------------------------------------


def test_access_log_lines_lose_their_tokens() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/accept?token=inv_rr4zWpaOTq6GlFbJ-gsu_hyw", "1.1", 200),
        None,
    )
    assert RedactSecrets().filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "GET /accept?token=inv_… HTTP/1.1" 200'
    # Uvicorn's own access formatter still reads the record.
    line = AccessFormatter("%(request_line)s %(status_code)s", use_colors=False).format(record)
    assert line == "GET /accept?token=inv_… HTTP/1.1 200 OK"


def test_a_message_that_is_not_a_string() -> None:
    # What Strawberry logs: the GraphQLError itself, whose str() quotes the document.
    source = Source(_bad_preview(TOKEN))
    error = GraphQLError("Cannot query field 'nosuchfield'.", source=source, positions=[40])
    assert TOKEN in str(error)
    line = _format(_record(error))
    assert_clean(line)
    assert "nosuchfield" in line


def test_arguments_of_every_shape() -> None:
    line = _format(_record("dict: %(token)s %(n)d", {"token": TOKEN, "n": 3}))
    assert line.endswith("dict: inv_… 3")
    line = _format(_record("objects: %r %s", ([API_KEY], ValueError(JWT))))
    assert_clean(line)
    assert "objects: ['usk_…'] eyJ…" in line
    # A secret split between the format string and its argument.
    assert_clean(_format(_record("inv_%s", (TOKEN[4:],))))
    # Arguments that do not fit the format: logging's own error report must not leak them.
    assert_clean(_format(_record("%d", (TOKEN,))))


def test_exception_text() -> None:
    record = _record("failed", exc_info=_exc_info(f"no invitation for {TOKEN}"))
    line = _format(record)
    assert_clean(line)
    assert "Traceback (most recent call last)" in line
    assert "ValueError: no invitation for inv_…" in line
    assert record.exc_text is not None
    assert_clean(record.exc_text)


def test_a_formatter_that_formats_the_exception_itself() -> None:
    class OwnTraceback(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            assert record.exc_info
            return json.dumps(
                {"msg": record.getMessage(), "exc": self.formatException(record.exc_info)}
            )

    record = _record("failed", exc_info=_exc_info(f"bearer {JWT}"))
    line = _format(record, OwnTraceback())
    assert_clean(line)
    assert "bearer eyJ…" in json.loads(line)["exc"]


def test_a_traceback_formatted_before_the_filter_ran() -> None:
    # An earlier handler (pytest's, say) may have cached the raw traceback on the record.
    record = _record("failed", exc_info=_exc_info(f"key {API_KEY}"))
    record.exc_text = logging.Formatter().formatException(record.exc_info)  # type: ignore[arg-type]
    assert API_KEY in record.exc_text
    assert_clean(_format(record))


def test_stack_info_and_extra_fields() -> None:
    stack = "Stack (most recent call last):\n" + "".join(traceback.format_stack())
    record = _record("look", stack_info=f"{stack}  token = {TOKEN!r}\n")
    record.authorization = f"Bearer {JWT}"
    line = _format(record, logging.Formatter(LOG_FORMAT + " %(authorization)s"))
    assert_clean(line)
    assert "Stack (most recent call last)" in line


def test_records_without_secrets_are_left_alone() -> None:
    record = _record("relayed %d outbox rows for %s", (3, "queue"))
    assert _format(record).endswith("relayed 3 outbox rows for queue")
    assert record.args == (3, "queue")


# --- the handlers Usher configures ------------------------------------------------------


def test_every_uvicorn_handler_redacts() -> None:
    config = uvicorn_log_config()
    assert config["root"]["handlers"] == ["root"]
    assert {"default", "access", "root"} <= set(config["handlers"])
    assert all(h["filters"] == ["redact_secrets"] for h in config["handlers"].values())
    assert config["filters"]["redact_secrets"]["()"] is RedactSecrets


def test_uvicorn_configuration_redacts_in_a_fresh_process() -> None:
    # Each `usher serve --workers N` process configures logging from this dictionary alone.
    script = f"""
import logging, logging.config
from app.log import uvicorn_log_config
logging.config.dictConfig(uvicorn_log_config())
logging.getLogger("strawberry.execution").error("query {TOKEN}")
logging.getLogger("uvicorn.error").error("header {JWT}")
logging.getLogger("uvicorn.access").info(
    '%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", "/accept?token={TOKEN}", "1.1", 200
)
try:
    raise RuntimeError("key {API_KEY}")
except RuntimeError:
    logging.getLogger("arq.worker").exception("job failed")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    out = done.stdout + done.stderr
    assert_clean(out)
    for expected in ("query inv_…", "header eyJ…", "/accept?token=inv_…", "key usk_…"):
        assert expected in out, out


def test_the_usher_command_redacts_its_root_handler() -> None:
    root = logging.getLogger()
    saved, saved_level = root.handlers[:], root.level
    root.handlers = []
    try:
        configure_logging()
        assert root.handlers
        assert all(any(isinstance(f, RedactSecrets) for f in h.filters) for h in root.handlers)
    finally:
        root.handlers, root.level = saved, saved_level


# --- real requests, production mode ------------------------------------------------------

PRODUCTION = Settings(
    env="production",
    allow_sqlite=True,
    mail_dir="./outbox",
    secret_key="log-tests-secret-key-of-at-least-32-chars",
    jwt_secret="log-tests-jwt-secret-of-at-least-32-chars",
    database_url="sqlite://:memory:",
    redis_url=None,
    accept_url="https://app.example.com/signup?invitation={token}",
)


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Everything logged during the test, through a handler set up as Usher sets up its own."""
    stream = io.StringIO()
    handler = redacting(logging.StreamHandler(stream))
    handler.setFormatter(DefaultFormatter(LOG_FORMAT, use_colors=False))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)  # as Usher's own setup: a client's errors are at INFO
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
async def production() -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the app in production mode."""
    app = create_app(PRODUCTION, run_jobs=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://usher.test"
    ) as http:
        yield http


async def _post(
    http: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None, *, auth: str
) -> dict[str, Any]:
    response = await http.post(
        "/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {auth}"},
    )
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def _genuine_token(http: httpx.AsyncClient, api_key: str) -> str:
    group = {"type": "org", "externalId": "acme", "name": "Acme"}
    await _post(http, CREATE_GROUP, {"input": group}, auth=api_key)
    invitees = [{"email": "ben@example.com"}]
    invite = {"groupType": "org", "groupId": "acme", "invitees": invitees, "sendEmail": False}
    body = await _post(http, INVITE, {"input": invite}, auth=api_key)
    return token_of(body["data"]["invite"]["invitations"][0]["inviteUrl"])


async def test_errors_that_quote_the_query_are_logged_without_secrets(
    production: httpx.AsyncClient, api_key: str, log_output: io.StringIO
) -> None:
    token = await _genuine_token(production, api_key)
    jwt = make_dev_jwt(PRODUCTION, sub="u1", email="u1@example.com")
    dotted = f"{token[:20]}.x{token[20:]}"
    documents = [
        # Validation errors: Strawberry logs the GraphQLError, whose str() quotes the line.
        *(_bad_preview(secret) for secret in (token, dotted, jwt, api_key)),
        # A syntax error, whose str() quotes the document up to where it broke off.
        _bad_preview(token).removesuffix(" nosuchfield } }"),
    ]
    for document in documents:
        body = await _post(production, document, auth=api_key)
        assert body["errors"], body
    text = log_output.getvalue()
    # Each error is logged with where it is in the document, not an excerpt of it.
    assert text.count("strawberry.execution") == len(documents), text
    assert "GraphQL request" not in text and "(at 1:" in text
    assert "nosuchfield" in text
    assert_clean(text, token, dotted, jwt, api_key)


async def test_unexpected_errors_are_logged_without_secrets(
    production: httpx.AsyncClient,
    api_key: str,
    log_output: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = await _genuine_token(production, api_key)

    async def broken(settings: Settings, given: str) -> None:
        raise RuntimeError(f"cannot read {given} for {api_key}")

    monkeypatch.setattr("app.services.preview.preview", broken)
    query = "query($t: String!) { invitationByToken(token: $t) { status } }"
    body = await _post(production, query, {"t": token}, auth=api_key)
    assert body["errors"][0]["message"] == "Unexpected error."
    text = log_output.getvalue()
    assert "Traceback (most recent call last)" in text
    assert "RuntimeError: cannot read inv_… for usk_…" in text
    assert_clean(text, token, api_key)


def _escaped(secret: str) -> str:
    """`secret` with its first letter written as a GraphQL unicode escape."""
    return f"\\u{ord(secret[0]):04x}{secret[1:]}"


async def test_secrets_written_with_escapes_are_logged_without_them(
    production: httpx.AsyncClient, api_key: str, log_output: io.StringIO
) -> None:
    token = await _genuine_token(production, api_key)
    jwt = make_dev_jwt(PRODUCTION, sub="u1", email="u1@example.com")
    # The escaped token is the token: it opens the invitation.
    preview = '{ invitationByToken(token: "TOKEN") { status } }'.replace("TOKEN", _escaped(token))
    body = await _post(production, preview, auth=api_key)
    assert body["data"]["invitationByToken"]["status"] == "PENDING"
    braced = "\\u{69}" + token[1:]
    for written in (_escaped(token), braced, _escaped(api_key), _escaped(jwt)):
        body = await _post(production, _bad_preview(written), auth=api_key)
        assert body["errors"], body
    text = log_output.getvalue()
    assert text.count("nosuchfield") >= 4, text
    assert_clean(text, token, api_key, jwt)


async def test_secrets_broken_by_a_space_or_a_line_are_logged_without_either_part(
    production: httpx.AsyncClient, api_key: str, log_output: io.StringIO
) -> None:
    token = await _genuine_token(production, api_key)
    half = len(token) // 2
    documents = [
        _bad_preview(f"{token[:half]} {token[half:]}"),
        # A block string may hold a line break.
        _bad_preview(f'""{token[:half]}\n{token[half:]}""'),
        # A line break in a plain string is a syntax error, quoting the line after it.
        _bad_preview(f"{token[:half]}\n{token[half:]}"),
        _bad_preview(f"{token[:half]}\n{token[half:]}").replace("status nosuchfield", "status"),
    ]
    for document in documents:
        body = await _post(production, document, auth=api_key)
        assert body["errors"], body
    text = log_output.getvalue()
    for piece in (token[4:half], token[half:], token[-16:]):
        assert piece not in text, f"{piece!r} leaked into:\n{text}"

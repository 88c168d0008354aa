"""Errors in the log by kind: what a client did wrong at INFO without a traceback (it is an
answer, not a fault), a bug at ERROR with its traceback."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.conftest import GQL, INVITE

RESEND = """
mutation($id: ID!) { resendInvitation(id: $id) { errors { code } } }"""


def records(caplog: pytest.LogCaptureFixture, logger: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger]


def assert_expected(caplog: pytest.LogCaptureFixture, logger: str, *words: str) -> None:
    """Logged by `logger` at INFO, once, naming `words`; nothing at WARNING or above."""
    (record,) = records(caplog, logger)
    assert record.levelno == logging.INFO
    assert record.exc_info is None and record.exc_text is None
    assert all(word in record.getMessage() for word in words), record.getMessage()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_a_top_level_forbidden_is_logged_at_info(
    gql: GQL, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        body = await gql.raw("{ events { totalCount } }", auth=gql.token())
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert_expected(caplog, "strawberry.execution", "Only API keys")


async def test_a_malformed_document_is_logged_at_info(
    gql: GQL, api_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        body = await gql.raw("{ nosuchfield }", auth=api_key)
    assert body["errors"]
    assert_expected(caplog, "strawberry.execution", "nosuchfield")


async def test_a_not_found_in_a_payload_is_logged_at_info(
    gql: GQL, api_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    invite = {"groupType": "org", "groupId": "nowhere", "invitees": [{"email": "a@example.com"}]}
    with caplog.at_level(logging.INFO):
        data = await gql(INVITE, {"input": invite}, auth=api_key)
    assert [e["code"] for e in data["invite"]["errors"]] == ["NOT_FOUND"]
    assert_expected(caplog, "usher.graphql", "invite answered NOT_FOUND")


async def test_a_rate_limit_is_logged_at_info(
    gql: GQL, api_key: str, make_group: Any, caplog: pytest.LogCaptureFixture
) -> None:
    await make_group(api_key)
    invite = {"groupType": "org", "groupId": "acme", "invitees": [{"email": "a@example.com"}]}
    made = await gql(INVITE, {"input": invite}, auth=api_key)
    invitation = made["invite"]["invitations"][0]["id"]
    with caplog.at_level(logging.INFO):
        data = await gql(RESEND, {"id": invitation}, auth=api_key)
    assert [e["code"] for e in data["resendInvitation"]["errors"]] == ["RATE_LIMITED"]
    assert_expected(caplog, "usher.graphql", "resendInvitation answered RATE_LIMITED")


async def test_a_bug_is_logged_at_error_with_its_traceback(
    gql: GQL, api_key: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug in the preview")

    monkeypatch.setattr("app.services.preview.preview", broken)
    with caplog.at_level(logging.INFO):
        body = await gql.raw('{ invitationByToken(token: "inv_x") { status } }', auth=api_key)
    assert body["errors"]
    (record,) = records(caplog, "strawberry.execution")
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)
    assert "a bug in the preview" in str(record.exc_info[1])

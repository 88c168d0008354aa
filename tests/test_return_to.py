"""`returnTo` is a path on the app or an https URL on an allowed origin: nothing an
invitation's author could use to send its invitee elsewhere."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from app.config import Settings
from tests.conftest import GQL, INVITE
from tests.lifecycle_helpers import CREATE_LINK, UPDATE, invite_one, only_error, stored

MakeGroup = Callable[..., Awaitable[dict[str, Any]]]

ALLOWED = [
    "/welcome",
    "/projects/42?tab=members#top",
    "/",
    "https://app.example.com/projects/42",
    "https://APP.Example.com:443/x",
    "https://app.example.com",
    "https://admin.example.com/settings",  # listed in USHER_RETURN_TO_ORIGINS below
]
REFUSED = [
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "//evil.example/",
    "/\\evil.example/",
    "/path\\..\\evil",
    "http://app.example.com/projects",
    "https://app.example.com.evil.example/",
    "https://app.example.com@evil.example/",
    "https://user:pass@app.example.com/",
    "https://evil.example/?next=https://app.example.com",
    "https://app.example.com:8443/",
    "https:\\\\evil.example",
    "https:/evil.example",
    "welcome",
    " /welcome",
    "",
    "/a\tb",
    "/\n/evil.example",
    "ftp://app.example.com/",
]


@pytest.fixture
def settings() -> Settings:
    """Test settings allowing one origin besides the app's."""
    return Settings(
        database_url="sqlite://:memory:",
        redis_url=None,
        accept_url="https://app.example.com/signup?invitation={token}",
        return_to_origins="https://app.example.com, https://admin.example.com/",
    )


async def _invite(gql: GQL, auth: str, return_to: str) -> dict[str, Any]:
    data = await gql(
        INVITE,
        {
            "input": {
                "groupType": "org",
                "groupId": "acme",
                "invitees": [{"email": "ben@example.com"}],
                "returnTo": return_to,
            }
        },
        auth=auth,
    )
    payload: dict[str, Any] = data["invite"]
    return payload


async def _link(gql: GQL, auth: str, return_to: str) -> dict[str, Any]:
    data = await gql(
        CREATE_LINK,
        {"input": {"groupType": "org", "groupId": "acme", "returnTo": return_to}},
        auth=auth,
    )
    payload: dict[str, Any] = data["createInviteLink"]
    return payload


@pytest.mark.parametrize("value", ALLOWED)
async def test_paths_and_allowed_origins_are_kept(
    gql: GQL, make_group: MakeGroup, value: str
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    invited = await _invite(gql, owner, value)
    assert invited["errors"] == []
    assert invited["invitations"][0]["returnTo"] == value
    link = await _link(gql, owner, value)
    assert link["errors"] == []


@pytest.mark.parametrize("value", REFUSED)
async def test_anything_else_is_invalid_input_everywhere(
    gql: GQL, make_group: MakeGroup, value: str
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    draft = await invite_one(gql, owner, "carol@example.com", draft=True, returnTo="/home")

    invited = await _invite(gql, owner, value)
    link = await _link(gql, owner, value)
    updated = await gql(UPDATE, {"id": draft["id"], "input": {"returnTo": value}}, auth=owner)

    for payload in (invited, link, updated["updateInvitation"]):
        error = only_error(payload)
        assert (error["code"], error["field"]) == ("INVALID_INPUT", ["returnTo"])
    assert invited["invitations"] == []
    assert link["invitation"] is None
    assert (await stored(draft["id"])).return_to == "/home"


async def test_the_default_origin_is_the_accept_urls(
    gql: GQL, make_group: MakeGroup, settings: Settings
) -> None:
    settings.return_to_origins = ""
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    assert (await _invite(gql, owner, "https://app.example.com/x"))["errors"] == []
    refused = only_error(await _link(gql, owner, "https://admin.example.com/x"))
    assert refused["field"] == ["returnTo"]
    assert "https://app.example.com" in refused["message"]


def test_malformed_origins_are_refused_at_start() -> None:
    for bad in ("app.example.com", "http://app.example.com", "https://app.example.com/path"):
        with pytest.raises(ValueError, match="USHER_RETURN_TO_ORIGINS") as raised:
            Settings(return_to_origins=f"https://ok.example.com,{bad}").check()
        assert "\n" not in str(raised.value)
    assert Settings(return_to_origins="https://a.example:8443").allowed_return_origins == {
        "https://a.example:8443"
    }

"""Invitation tokens have exactly one spelling: the one `make_token` writes."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from app.services.tokens import make_token, read_token
from tests.conftest import GQL
from tests.lifecycle_helpers import ACCEPT, PREVIEW, invite_one, only_error, token_of

SECRET = "token-tests-secret-of-a-decent-length"
INVITATION_ID = uuid.UUID("6f1c1f7e-2b1d-4a53-9d63-0c6a3b1f2e10")


def _token_with_both_url_safe_characters() -> tuple[str, int]:
    """A token whose body has a `-` and a `_`, so the `+`/`/` spelling differs from it."""
    for version in range(1, 10_000):
        token = make_token(SECRET, INVITATION_ID, version)
        if "-" in token[4:] and "_" in token[4:]:
            return token, version
    raise AssertionError("no such token")


def _insert(at: int, text: str) -> Callable[[str], str]:
    return lambda t: t[:at] + text + t[at:]


# Every way a decoder might forgive: each must read as no token at all.
VARIANTS: dict[str, Callable[[str], str]] = {
    "dot inside": _insert(20, "."),
    "junk inside": _insert(10, "!"),
    "NUL inside": _insert(30, "\x00"),
    "non-ASCII inside": _insert(12, "é"),
    "space inside": _insert(25, " "),
    "standard alphabet": lambda t: t[:4] + t[4:].replace("-", "+").replace("_", "/"),
    "one = of padding": lambda t: t + "=",
    "two = of padding": lambda t: t + "==",
    "leading space": lambda t: " " + t,
    "trailing space": lambda t: t + " ",
    "trailing newline": lambda t: t + "\n",
    "trailing tab": lambda t: t + "\t",
    "upper-case prefix": lambda t: "INV_" + t[4:],
    "capitalised prefix": lambda t: "Inv_" + t[4:],
    "no prefix": lambda t: t[4:],
    "trailing character": lambda t: t + "A",
    "four trailing characters": lambda t: t + "AAAA",
    "truncated": lambda t: t[:-1],
    "last character changed": lambda t: t[:-1] + ("B" if t[-1] != "B" else "C"),
}


def test_the_genuine_token_verifies_under_every_configured_secret() -> None:
    token, version = _token_with_both_url_safe_characters()
    assert read_token([SECRET], token) == (INVITATION_ID, version)
    assert read_token(["a-newer-secret-of-a-decent-length!", SECRET], token) == (
        INVITATION_ID,
        version,
    )
    assert read_token(["some-other-secret-of-a-decent-length"], token) is None


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=VARIANTS.keys())
def test_every_other_spelling_reads_as_no_token(variant: Callable[[str], str]) -> None:
    token, _ = _token_with_both_url_safe_characters()
    spelled = variant(token)
    assert spelled != token
    assert read_token([SECRET], spelled) is None


async def test_other_spellings_open_nothing_over_graphql(
    gql: GQL, api_key: str, make_group
) -> None:
    await make_group(api_key)
    token = token_of((await invite_one(gql, api_key))["inviteUrl"])
    genuine = await gql(PREVIEW, {"token": token})
    assert genuine["invitationByToken"]["status"] == "PENDING"
    invitee = gql.token(email="ben@example.com")
    for name, variant in VARIANTS.items():
        spelled = variant(token)
        if spelled == token:  # this token has no `-` or `_` to respell
            continue
        preview = await gql(PREVIEW, {"token": spelled})
        assert preview["invitationByToken"] is None, name
        accepted = await gql(ACCEPT, {"token": spelled}, auth=invitee)
        assert only_error(accepted["acceptInvitation"])["code"] == "NOT_FOUND", name
    # The genuine token still works after all that.
    accepted = await gql(ACCEPT, {"token": token}, auth=invitee)
    assert accepted["acceptInvitation"]["errors"] == []

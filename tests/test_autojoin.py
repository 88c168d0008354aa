"""Autojoin: setting domains (normalised, webmail refused), joining, and listing groups."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from app.models import JoinMethod, Membership
from tests.conftest import GQL
from tests.lifecycle_helpers import JOIN, OPEN, SET_AUTOJOIN, only_error

MakeGroup = Callable[..., Awaitable[dict[str, Any]]]


async def _set(gql: GQL, auth: str, domains: list[str], role: str | None = None) -> dict[str, Any]:
    data = await gql(SET_AUTOJOIN, {"domains": domains, "role": role}, auth=auth)
    payload: dict[str, Any] = data["setAutojoinDomains"]
    return payload


async def test_domains_are_normalised_and_deduplicated(gql: GQL, make_group: MakeGroup) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    payload = await _set(gql, owner, [" Acme.COM ", "@acme.com", "EU.Acme.com.", "acme.com"])
    assert payload["errors"] == []
    # Olivia's own domain is verified by her email; the subdomain waits for its DNS record.
    assert payload["group"] == {
        "autojoinDomains": ["acme.com"],
        "autojoinRole": "member",
        "domains": [
            {"domain": "acme.com", "verified": True},
            {"domain": "eu.acme.com", "verified": False},
        ],
    }

    payload = await _set(gql, owner, ["acme.com"], role="admin")
    assert payload["group"]["autojoinDomains"] == ["acme.com"]
    assert payload["group"]["autojoinRole"] == "admin"
    # Without a role the current one is kept.
    payload = await _set(gql, owner, ["acme.com", "acme.io"])
    assert [d["domain"] for d in payload["group"]["domains"]] == ["acme.com", "acme.io"]
    assert payload["group"]["autojoinRole"] == "admin"


async def test_webmail_and_disposable_domains_are_refused_as_a_whole(
    gql: GQL, make_group: MakeGroup
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    assert (await _set(gql, owner, ["acme.com"]))["errors"] == []

    payload = await _set(
        gql, owner, ["acme.io", "GMAIL.com", "outlook.com", "mailinator.com", "mail.yahoo.com"]
    )

    assert payload["group"] is None
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [
        ("WEBMAIL_DOMAIN", ["domains", "gmail.com"]),
        ("WEBMAIL_DOMAIN", ["domains", "outlook.com"]),
        ("WEBMAIL_DOMAIN", ["domains", "mailinator.com"]),
        ("WEBMAIL_DOMAIN", ["domains", "mail.yahoo.com"]),
    ]
    assert "gmail.com" in payload["errors"][0]["message"]
    group = await gql(
        '{ group(groupType: "org", groupId: "acme") { autojoinDomains } }', auth=owner
    )
    assert group["group"]["autojoinDomains"] == ["acme.com"]


@pytest.mark.parametrize("bad", ["not a domain", "localhost", "ben@acme.com", ""])
async def test_malformed_domains_are_invalid_input(
    gql: GQL, make_group: MakeGroup, bad: str
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    payload = await _set(gql, owner, ["acme.com", bad])
    assert only_error(payload)["code"] == "INVALID_INPUT"
    assert only_error(payload)["field"] == ["domains", "1"]


async def test_empty_list_turns_autojoin_off(gql: GQL, make_group: MakeGroup) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    await _set(gql, owner, ["acme.com"])
    payload = await _set(gql, owner, [])
    assert payload["group"] == {"autojoinDomains": [], "autojoinRole": None, "domains": []}
    ben = gql.token("ben", "ben@acme.com")
    assert only_error((await gql(JOIN, auth=ben))["joinGroup"])["code"] == "NOT_FOUND"
    open_ = await gql(OPEN, {"email": "ben@acme.com"}, auth=ben)
    assert open_["invitations"]["autojoinGroups"] == []


async def test_verified_user_of_the_domain_joins_with_the_role(
    gql: GQL, make_group: MakeGroup
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    await _set(gql, owner, ["acme.com"], role="admin")
    ben = gql.token("ben", "Ben@ACME.com")

    listed = await gql(OPEN, {"email": "ben@acme.com"}, auth=ben)
    assert listed["invitations"]["autojoinGroups"] == [{"externalId": "acme", "name": "Acme"}]

    payload = (await gql(JOIN, auth=ben))["joinGroup"]
    assert payload["errors"] == []
    assert payload["invitations"] == []
    assert payload["memberships"] == [
        {
            "role": "admin",
            "permissions": [],
            "user": {"externalId": "ben"},
            "group": {"externalId": "acme"},
        }
    ]
    membership = await Membership.get(user__external_id="ben")
    assert membership.joined_via == JoinMethod.AUTOJOIN

    again = (await gql(JOIN, auth=ben))["joinGroup"]
    assert only_error(again)["code"] == "ALREADY_MEMBER"
    listed = await gql(OPEN, {"email": "ben@acme.com"}, auth=ben)
    assert listed["invitations"]["autojoinGroups"] == []


async def test_join_refusals(gql: GQL, api_key: str, make_group: MakeGroup) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    await _set(gql, owner, ["acme.com"])

    unverified = gql.token("ben", "ben@acme.com", verified=False)
    assert only_error((await gql(JOIN, auth=unverified))["joinGroup"])["code"] == (
        "EMAIL_NOT_VERIFIED"
    )
    # Another domain, or a group that does not exist: the same answer.
    other = gql.token("carol", "carol@globex.com")
    not_allowed = only_error((await gql(JOIN, auth=other))["joinGroup"])
    missing = only_error((await gql(JOIN, {"groupId": "nope"}, auth=other))["joinGroup"])
    assert not_allowed == missing
    assert not_allowed["code"] == "NOT_FOUND"
    assert only_error((await gql(JOIN, auth=api_key))["joinGroup"])["code"] == "FORBIDDEN"
    # A lookalike domain is not the domain.
    lookalike = gql.token("eve", "eve@evilacme.com")
    assert only_error((await gql(JOIN, auth=lookalike))["joinGroup"])["code"] == "NOT_FOUND"
    sub = gql.token("sam", "sam@eu.acme.com")
    assert only_error((await gql(JOIN, auth=sub))["joinGroup"])["code"] == "NOT_FOUND"
    assert await Membership.all().count() == 1  # only the owner


async def test_autojoin_groups_for_an_api_key_listing(
    gql: GQL, api_key: str, make_group: MakeGroup
) -> None:
    await make_group(api_key, "acme", "Acme")
    await make_group(api_key, "globex", "Globex")
    await gql(SET_AUTOJOIN, {"domains": ["acme.com"]}, auth=api_key)
    await gql(SET_AUTOJOIN, {"domains": ["globex.com"], "groupId": "globex"}, auth=api_key)
    listed = await gql(OPEN, {"email": "ben@acme.com"}, auth=api_key)
    assert listed["invitations"]["autojoinGroups"] == [{"externalId": "acme", "name": "Acme"}]

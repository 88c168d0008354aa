"""Autojoin domains offer nothing until verified: by the caller's own credentials, or by a
DNS TXT record looked up on a real DNS server (tests/dnsserver.py)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Awaitable, Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from app.models import AutojoinDomain, Event, Membership
from tests.conftest import GQL
from tests.dnsserver import DNSServer, dns_server, dns_server_session
from tests.lifecycle_helpers import ACCEPT, CREATE_LINK, ERRORS, JOIN, OPEN, only_error, token_of

__all__ = ["dns_server", "dns_server_session"]

MakeGroup = Callable[..., Awaitable[dict[str, Any]]]

DOMAINS = "domains { domain verified verificationRecord } autojoinDomains"
SET = f"""mutation($domains: [String!]!, $groupId: String! = "acme") {{
  setAutojoinDomains(groupType: "org", groupId: $groupId, domains: $domains) {{
    group {{ {DOMAINS} }} {ERRORS} }} }}"""
VERIFY = f"""mutation($domain: String!, $groupId: String! = "acme") {{
  verifyAutojoinDomain(groupType: "org", groupId: $groupId, domain: $domain) {{
    group {{ {DOMAINS} }} {ERRORS} }} }}"""
GROUP = f"""query($groupId: String! = "acme") {{
  group(groupType: "org", groupId: $groupId) {{ {DOMAINS} }} }}"""


@pytest.fixture
def settings(dns_server_session: DNSServer) -> Settings:
    """Test settings whose DNS lookups go to the test DNS server."""
    return Settings(
        database_url="sqlite://:memory:",
        redis_url=None,
        accept_url="https://app.example.com/signup?invitation={token}",
        dns_nameservers=dns_server_session.address,
        dns_timeout_seconds=2.0,
    )


async def _set(gql: GQL, auth: str, domains: list[str], group_id: str = "acme") -> dict[str, Any]:
    data = await gql(SET, {"domains": domains, "groupId": group_id}, auth=auth)
    payload: dict[str, Any] = data["setAutojoinDomains"]
    assert payload["errors"] == [], payload["errors"]
    return payload


async def _verify(gql: GQL, auth: str, domain: str, group_id: str = "acme") -> dict[str, Any]:
    data = await gql(VERIFY, {"domain": domain, "groupId": group_id}, auth=auth)
    payload: dict[str, Any] = data["verifyAutojoinDomain"]
    return payload


def _record(group: dict[str, Any], domain: str) -> str:
    """The TXT record a group is asked to publish for `domain`."""
    [row] = [d for d in group["domains"] if d["domain"] == domain]
    record: str = row["verificationRecord"]
    return record


def _publish(dns: DNSServer, record: str) -> None:
    """Publish `_usher.x TXT "usher-verification=…"` as the domain's owner would."""
    name, kind, text = record.split(" ", 2)
    assert kind == "TXT"
    dns.publish(name, text.strip('"'))


async def _offered(gql: GQL, auth: str, email: str) -> list[str]:
    data = await gql(OPEN, {"email": email}, auth=auth)
    return [g["externalId"] for g in data["invitations"]["autojoinGroups"]]


async def test_a_domain_claimed_by_another_company_offers_nothing_until_verified_by_dns(
    gql: GQL, make_group: MakeGroup, dns_server: DNSServer
) -> None:
    mallory = gql.token("mallory", "mallory@evil-corp.com")
    await make_group(mallory, "acme", "Totally Victim Corp")
    group = (await _set(gql, mallory, ["victim-corp.com"]))["group"]

    record = _record(group, "victim-corp.com")
    assert record.startswith('_usher.victim-corp.com TXT "usher-verification=')
    assert group["domains"] == [
        {"domain": "victim-corp.com", "verified": False, "verificationRecord": record}
    ]
    assert group["autojoinDomains"] == []

    victim = gql.token("vic", "vic@victim-corp.com")
    assert await _offered(gql, victim, "vic@victim-corp.com") == []
    assert only_error((await gql(JOIN, auth=victim))["joinGroup"])["code"] == "NOT_FOUND"

    refused = only_error(await _verify(gql, mallory, "victim-corp.com"))
    assert (refused["code"], refused["field"]) == ("INVALID_INPUT", ["domain"])
    assert "_usher.victim-corp.com" in refused["message"]
    assert "does not exist" in refused["message"]
    assert dns_server.queries == ["_usher.victim-corp.com"]
    assert await _offered(gql, victim, "vic@victim-corp.com") == []

    # Whoever controls victim-corp.com's DNS publishes the record: now it is verified.
    _publish(dns_server, record)
    payload = await _verify(gql, mallory, "victim-corp.com")
    assert payload["errors"] == []
    assert payload["group"]["domains"] == [
        {"domain": "victim-corp.com", "verified": True, "verificationRecord": None}
    ]
    assert payload["group"]["autojoinDomains"] == ["victim-corp.com"]
    assert await _offered(gql, victim, "vic@victim-corp.com") == ["acme"]
    joined = (await gql(JOIN, auth=victim))["joinGroup"]
    assert joined["errors"] == []
    assert joined["memberships"][0]["group"] == {"externalId": "acme"}


async def test_a_wrong_record_is_refused_saying_what_was_found(
    gql: GQL, make_group: MakeGroup, dns_server: DNSServer
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    record = _record((await _set(gql, owner, ["acme.io"]))["group"], "acme.io")

    dns_server.publish("_usher.acme.io")  # the name exists, with no TXT record
    refused = only_error(await _verify(gql, owner, "acme.io"))
    assert refused["code"] == "INVALID_INPUT"
    assert "there is none" in refused["message"]

    dns_server.publish("_usher.acme.io", "v=spf1 -all", "usher-verification=wrong")
    refused = only_error(await _verify(gql, owner, "acme.io"))
    assert (refused["code"], refused["field"]) == ("INVALID_INPUT", ["domain"])
    expected = record.split(" ", 2)[2]
    assert expected in refused["message"]
    assert '"v=spf1 -all", "usher-verification=wrong"' in refused["message"]

    # The domain's other records may stay beside it.
    dns_server.publish("_usher.acme.io", "v=spf1 -all", expected.strip('"'))
    assert (await _verify(gql, owner, "acme.io"))["group"]["autojoinDomains"] == ["acme.io"]


async def test_one_groups_record_does_not_verify_another_group(
    gql: GQL, make_group: MakeGroup, dns_server: DNSServer
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    mallory = gql.token("mallory", "mallory@evil-corp.com")
    await make_group(owner, "acme", "Acme")
    await make_group(mallory, "evil", "Evil")
    acme_record = _record((await _set(gql, owner, ["acme.io"]))["group"], "acme.io")
    evil_record = _record((await _set(gql, mallory, ["acme.io"], "evil"))["group"], "acme.io")
    assert acme_record != evil_record

    _publish(dns_server, acme_record)
    assert only_error(await _verify(gql, mallory, "acme.io", "evil"))["code"] == "INVALID_INPUT"
    assert (await _verify(gql, owner, "acme.io"))["errors"] == []
    ben = gql.token("ben", "ben@acme.io")
    assert await _offered(gql, ben, "ben@acme.io") == ["acme"]


async def test_verification_lasts_while_the_domain_stays_listed(
    gql: GQL, make_group: MakeGroup, dns_server: DNSServer
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    first = _record((await _set(gql, owner, ["acme.io", "acme.dev"]))["group"], "acme.io")
    # The token is stable: listing the domain again asks for the same record.
    again = (await _set(gql, owner, ["acme.dev", "acme.io"]))["group"]
    assert _record(again, "acme.io") == first

    _publish(dns_server, first)
    assert (await _verify(gql, owner, "acme.io"))["errors"] == []
    dns_server.reset()  # once verified, the record may go
    kept = (await _set(gql, owner, ["acme.io", "acme.net"]))["group"]
    assert kept["autojoinDomains"] == ["acme.io"]
    assert [d["domain"] for d in kept["domains"]] == ["acme.io", "acme.net"]

    # Removed and listed again, it is a new claim: a new token, verified again.
    await _set(gql, owner, ["acme.net"])
    back = (await _set(gql, owner, ["acme.io"]))["group"]
    assert back["autojoinDomains"] == []
    assert _record(back, "acme.io") != first


async def test_api_keys_and_users_at_exactly_the_domain_need_no_record(
    gql: GQL, api_key: str, make_group: MakeGroup, dns_server: DNSServer
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    group = (await _set(gql, owner, ["acme.com", "eu.acme.com", "globex.com"]))["group"]
    # A subdomain, or another domain, of the caller's email is not the caller's domain.
    assert group["autojoinDomains"] == ["acme.com"]

    payload = await _verify(gql, api_key, "globex.com")
    assert payload["group"]["autojoinDomains"] == ["acme.com", "globex.com"]
    gina = gql.token("gina", "gina@eu.acme.com")
    link = await gql(
        CREATE_LINK, {"input": {"groupType": "org", "groupId": "acme", "role": "admin"}}, auth=owner
    )
    url = link["createInviteLink"]["invitation"]["inviteUrl"]
    assert (await gql(ACCEPT, {"token": token_of(url)}, auth=gina))["acceptInvitation"][
        "errors"
    ] == []
    payload = await _verify(gql, gina, "eu.acme.com")
    assert payload["group"]["autojoinDomains"] == ["acme.com", "eu.acme.com", "globex.com"]

    keyed = (await _set(gql, api_key, ["acme.org"], "acme"))["group"]
    assert keyed["autojoinDomains"] == ["acme.org"]
    assert dns_server.queries == []


async def test_verify_refusals(
    gql: GQL, api_key: str, make_group: MakeGroup, dns_server: DNSServer
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    await _set(gql, owner, ["acme.io"])

    missing = only_error(await _verify(gql, owner, "acme.dev"))
    assert (missing["code"], missing["field"]) == ("NOT_FOUND", ["domain"])
    malformed = only_error(await _verify(gql, owner, "not a domain"))
    assert (malformed["code"], malformed["field"]) == ("INVALID_INPUT", ["domain"])
    stranger = gql.token("sam", "sam@acme.io")
    assert only_error(await _verify(gql, stranger, "acme.io"))["code"] == "NOT_FOUND"
    unverified = gql.token("olivia", "olivia@acme.com", verified=False)
    assert only_error(await _verify(gql, unverified, "acme.io"))["code"] == "EMAIL_NOT_VERIFIED"
    anonymous = await gql.raw(VERIFY, {"domain": "acme.io"})
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert dns_server.queries == []
    assert await AutojoinDomain.filter(verified_at__isnull=False).count() == 0


async def test_members_see_the_records_others_see_nothing(
    gql: GQL, api_key: str, make_group: MakeGroup, dns_server: DNSServer
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    await _set(gql, owner, ["acme.com", "acme.io"])
    link = await gql(CREATE_LINK, {"input": {"groupType": "org", "groupId": "acme"}}, auth=owner)
    url = link["createInviteLink"]["invitation"]["inviteUrl"]
    mia = gql.token("mia", "mia@example.com")
    assert (await gql(ACCEPT, {"token": token_of(url)}, auth=mia))["acceptInvitation"][
        "errors"
    ] == []

    as_member = (await gql(GROUP, auth=mia))["group"]
    as_key = (await gql(GROUP, auth=api_key))["group"]
    assert as_member == as_key
    assert [d["verified"] for d in as_member["domains"]] == [True, False]
    assert as_member["domains"][1]["verificationRecord"].startswith("_usher.acme.io TXT")
    # A member may see the settings, not change them.
    assert only_error(await _verify(gql, mia, "acme.io"))["code"] == "FORBIDDEN"

    # Someone offered the group sees its name, not its domains or their records.
    ben = gql.token("ben", "ben@acme.com")
    query = OPEN.replace("autojoinGroups { externalId name }", f"autojoinGroups {{ {DOMAINS} }}")
    data = await gql(query, {"email": "ben@acme.com"}, auth=ben)
    assert data["invitations"]["autojoinGroups"] == [{"domains": [], "autojoinDomains": []}]


async def test_only_the_verified_domain_of_a_group_offers_autojoin(
    gql: GQL, make_group: MakeGroup, dns_server: DNSServer
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    await _set(gql, owner, ["acme.com", "acme.io"])
    ivan = gql.token("ivan", "ivan@acme.io")
    assert await _offered(gql, ivan, "ivan@acme.io") == []
    assert only_error((await gql(JOIN, auth=ivan))["joinGroup"])["code"] == "NOT_FOUND"
    carl = gql.token("carl", "carl@acme.com")
    assert await _offered(gql, carl, "carl@acme.com") == ["acme"]


async def test_verifying_publishes_the_domains_once(
    gql: GQL, make_group: MakeGroup, dns_server: DNSServer
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    record = _record((await _set(gql, owner, ["acme.com", "acme.io"]))["group"], "acme.io")
    _publish(dns_server, record)
    assert (await _verify(gql, owner, "acme.io"))["errors"] == []
    assert (await _verify(gql, owner, "ACME.io."))["errors"] == []  # already verified

    events = await Event.filter(type="group.domains_updated").order_by("created_at")
    assert [(e.data["domains"], e.data["verifiedDomains"]) for e in events] == [
        (["acme.com", "acme.io"], ["acme.com"]),
        (["acme.com", "acme.io"], ["acme.com", "acme.io"]),
    ]
    assert dns_server.queries == ["_usher.acme.io"]


async def test_a_silent_dns_server_is_a_clear_error(
    gql: GQL, make_group: MakeGroup, dns_server: DNSServer, settings: Settings
) -> None:
    settings.dns_timeout_seconds = 0.3
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    _publish(dns_server, _record((await _set(gql, owner, ["acme.io"]))["group"], "acme.io"))
    dns_server.silent = True
    refused = only_error(await _verify(gql, owner, "acme.io"))
    assert refused["code"] == "INVALID_INPUT"
    assert "no answer in time" in refused["message"]
    assert await Membership.all().count() == 1


def test_nameservers_setting() -> None:
    settings = Settings(dns_nameservers="127.0.0.1:5353, [::1]:53 ,10.0.0.2")
    assert settings.dns_servers == [("127.0.0.1", 5353), ("::1", 53), ("10.0.0.2", 53)]
    assert Settings().dns_servers == []
    for bad in ("dns.example:53", "127.0.0.1:0", "127.0.0.1:x", "127.0.0.1:99999"):
        with pytest.raises(ValueError, match="USHER_DNS_NAMESERVERS"):
            Settings(dns_nameservers=bad).check()


def test_domains_listed_before_verification_stay_unverified_with_tokens(tmp_path: Path) -> None:
    db = tmp_path / "upgrade.db"
    env = {**os.environ, "DATABASE_URL": f"sqlite://{db}"}

    def tortoise(*args: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "tortoise", *args], env=env, check=True, capture_output=True
        )

    tortoise("migrate", "models", "0002_events_and_webhooks")
    group = "11111111-1111-1111-1111-111111111111"
    with closing(sqlite3.connect(db)) as conn:
        conn.execute(
            "INSERT INTO groups (id, type, external_id, name, created_at) "
            "VALUES (?, 'org', 'acme', 'Acme', '2026-01-01')",
            (group,),
        )
        conn.executemany(
            "INSERT INTO autojoin_domains (group_id, domain) VALUES (?, ?)",
            [(group, "acme.com"), (group, "acme.io")],
        )
        conn.commit()
    tortoise("migrate")
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT domain, verification_token, verified_at FROM autojoin_domains ORDER BY domain"
        ).fetchall()
        assert [(d, v) for d, _, v in rows] == [("acme.com", None), ("acme.io", None)]
        tokens = {t for _, t, _ in rows}
        assert len(tokens) == 2 and all(len(t) >= 32 for t in tokens)
        # The table was rebuilt: its unique key on (group, domain) must have survived.
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(
                "INSERT INTO autojoin_domains (group_id, domain, verification_token) "
                "VALUES (?, 'acme.com', 'x')",
                (group,),
            )

"""A model of an invitation's life, run against the API: hypothesis picks a sequence of
invites, accepts, declines, revokes, resends, renews, link uses and moments passing; after
every step the database must agree with the model and keep the lifecycle's invariants.

Hypothesis drives the steps from a thread of its own; each step runs on the test's event
loop (where the app and its database connections live) and the thread waits for it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID, uuid4

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from tortoise import connections

from app.models import Invitation, InvitationStatus, InvitationUse, Membership, TargetType
from app.services.invitations import effective_status
from tests.conftest import GQL, INVITE, TABLES
from tests.lifecycle_helpers import (
    ACCEPT,
    CREATE_LINK,
    DECLINE,
    RENEW,
    RESEND,
    REVOKE,
    age,
    invite_one,
    overdue,
    token_of,
)

T = TypeVar("T")
PEOPLE = {"ann": "ann@example.com", "bob": "bob@example.com", "cy": "cy@example.com"}
FINAL = {"ACCEPTED", "DECLINED", "REVOKED"}
URL = "query($id: ID!) { invitation(id: $id) { inviteUrl } }"
MAKE_GROUP = (
    'mutation { createGroup(input: {type: "org", externalId: "acme", name: "Acme"}) '
    "{ errors { code field message } } }"
)


def pick(data: st.DataObject, items: list[str]) -> str:
    """One of `items` (kept in the order they were made: ids are random, so a replay must not
    sort them), drawn the same way whatever their number."""
    return items[data.draw(st.integers(min_value=0, max_value=63)) % len(items)]


def outcome(payload: dict[str, Any]) -> str:
    return str(payload["errors"][0]["code"]) if payload["errors"] else "ok"


class Lifecycle(RuleBasedStateMachine):
    """The API against a model of one group's invitations."""

    gql: GQL
    loop: asyncio.AbstractEventLoop

    def __init__(self) -> None:
        super().__init__()
        # Subjects of this example's own: the app remembers the users of the JWTs it has
        # seen, and the tables are emptied between examples.
        self.tag = uuid4().hex[:8]
        self.owner = self.gql.token(f"olivia-{self.tag}", "olivia@acme.com")
        self.users = {
            sub: self.gql.token(f"{sub}-{self.tag}", email) for sub, email in PEOPLE.items()
        }
        self.status: dict[str, str] = {}  # the model: invitation id → status
        self.email: dict[str, str] = {}  # email invitations → the invitee's sub
        self.links: dict[str, int] = {}  # link → max uses
        self.members: set[str] = set()
        self.run(self.reset())

    def run(self, step: Awaitable[T]) -> T:
        """Run `step` on the test's loop and wait for it."""

        async def awaited() -> T:
            return await step

        return asyncio.run_coroutine_threadsafe(awaited(), self.loop).result(timeout=120)

    async def reset(self) -> None:
        conn = connections.get("default")
        if conn.capabilities.dialect == "postgres":
            await conn.execute_script(f"TRUNCATE {', '.join(TABLES)} CASCADE")
        else:
            await conn.execute_script("".join(f"DELETE FROM {t};" for t in TABLES))
        made = await self.gql(MAKE_GROUP, auth=self.owner)
        assert made["createGroup"]["errors"] == [], made

    def ask(self, query: str, variables: dict[str, Any], field: str, auth: str) -> dict[str, Any]:
        data = self.run(self.gql(query, variables, auth=auth))
        payload: dict[str, Any] = data[field]
        return payload

    def open_for(self, sub: str) -> list[str]:
        return [i for i, s in self.email.items() if s == sub and self.status[i] == "PENDING"]

    def token(self, invitation_id: str) -> str:
        url = self.run(self.gql(URL, {"id": invitation_id}, auth=self.owner))
        return token_of(url["invitation"]["inviteUrl"])

    # --- steps ---------------------------------------------------------------------------

    @rule(sub=st.sampled_from(sorted(PEOPLE)))
    def invite(self, sub: str) -> None:
        variables = {
            "input": {"groupType": "org", "groupId": "acme", "invitees": [{"email": PEOPLE[sub]}]}
        }
        payload = self.ask(INVITE, variables, "invite", self.owner)
        if sub in self.members:
            expected = "ALREADY_MEMBER"
        elif self.open_for(sub):
            expected = "ALREADY_INVITED"
        else:
            expected = "ok"
        assert outcome(payload) == expected, payload
        if expected == "ok":
            [made] = payload["invitations"]
            self.status[made["id"]] = "PENDING"
            self.email[made["id"]] = sub

    @precondition(lambda self: self.email)
    @rule(data=st.data())
    def accept(self, data: st.DataObject) -> None:
        invitation_id = pick(data, list(self.email))
        sub = self.email[invitation_id]
        token = self.token(invitation_id)
        payload = self.ask(ACCEPT, {"token": token}, "acceptInvitation", self.users[sub])
        pending = self.status[invitation_id] == "PENDING"
        assert (outcome(payload) == "ok") == pending, (self.status[invitation_id], payload)
        if pending:
            self.status[invitation_id] = "ACCEPTED"
            self.members.add(sub)

    @precondition(lambda self: self.email)
    @rule(data=st.data())
    def decline(self, data: st.DataObject) -> None:
        invitation_id = pick(data, list(self.email))
        sub = self.email[invitation_id]
        payload = self.ask(DECLINE, {"id": invitation_id}, "declineInvitation", self.users[sub])
        pending = self.status[invitation_id] == "PENDING"
        assert (outcome(payload) == "ok") == pending, (self.status[invitation_id], payload)
        if pending:
            self.status[invitation_id] = "DECLINED"

    @precondition(lambda self: self.status)
    @rule(data=st.data())
    def revoke(self, data: st.DataObject) -> None:
        invitation_id = pick(data, list(self.status))
        payload = self.ask(REVOKE, {"id": invitation_id}, "revokeInvitation", self.owner)
        revocable = self.status[invitation_id] in {"PENDING", "EXPIRED"}
        assert (outcome(payload) == "ok") == revocable, (self.status[invitation_id], payload)
        if revocable:
            self.status[invitation_id] = "REVOKED"

    @precondition(lambda self: self.email)
    @rule(data=st.data(), cooled=st.booleans())
    def resend(self, data: st.DataObject, cooled: bool) -> None:
        invitation_id = pick(data, list(self.email))
        if cooled:
            self.run(age(invitation_id))
        payload = self.ask(RESEND, {"id": invitation_id}, "resendInvitation", self.owner)
        if self.status[invitation_id] != "PENDING":
            assert outcome(payload) != "ok", payload
        else:  # the cool-down (or the day's cap) may say not yet; nothing else may
            assert outcome(payload) in ({"ok", "RATE_LIMITED"} if not cooled else {"ok"}), payload

    @precondition(lambda self: self.email)
    @rule(data=st.data(), days=st.integers(min_value=1, max_value=30))
    def renew(self, data: st.DataObject, days: int) -> None:
        invitation_id = pick(data, list(self.email))
        sub = self.email[invitation_id]
        payload = self.ask(
            RENEW, {"id": invitation_id, "days": days}, "renewInvitation", self.owner
        )
        was = self.status[invitation_id]
        reopens = was == "EXPIRED" and not self.open_for(sub) and sub not in self.members
        if was == "PENDING" or reopens:
            assert outcome(payload) == "ok", payload
        elif was == "EXPIRED":  # the address has another open invitation, or joined since
            assert outcome(payload) != "ok" or sub in self.members, payload
        else:
            assert outcome(payload) != "ok", (was, payload)
        if outcome(payload) == "ok":
            self.status[invitation_id] = "PENDING"

    @precondition(lambda self: any(s == "PENDING" for s in self.status.values()))
    @rule(data=st.data(), swept=st.booleans())
    def time_passes(self, data: st.DataObject, swept: bool) -> None:
        """One PENDING invitation reaches its expiry (and the sweep stores it, or not yet)."""
        pending = [i for i, s in self.status.items() if s == "PENDING"]
        invitation_id = pick(data, pending)
        self.run(overdue(invitation_id, flip=swept))
        self.status[invitation_id] = "EXPIRED"

    @rule(uses=st.integers(min_value=1, max_value=2))
    def create_link(self, uses: int) -> None:
        variables = {"input": {"groupType": "org", "groupId": "acme", "maxUses": uses}}
        payload = self.ask(CREATE_LINK, variables, "createInviteLink", self.owner)
        assert outcome(payload) == "ok", payload
        link = payload["invitation"]
        self.status[link["id"]] = "PENDING"
        self.links[link["id"]] = uses

    @precondition(lambda self: self.links)
    @rule(data=st.data(), sub=st.sampled_from(sorted(PEOPLE)))
    def use_link(self, data: st.DataObject, sub: str) -> None:
        link_id = pick(data, list(self.links))
        payload = self.ask(
            ACCEPT, {"token": self.token(link_id)}, "acceptInvitation", self.users[sub]
        )
        if self.status[link_id] != "PENDING":
            assert outcome(payload) != "ok", payload
        if outcome(payload) == "ok":
            self.members.add(sub)
            uses = self.run(InvitationUse.filter(invitation_id=UUID(link_id)).count())
            if uses >= self.links[link_id]:
                self.status[link_id] = "ACCEPTED"  # used up

    # --- invariants ----------------------------------------------------------------------

    @invariant()
    def the_database_agrees(self) -> None:
        self.run(self.check())

    async def check(self) -> None:
        now = datetime.now(UTC)
        rows = {str(i.id): i for i in await Invitation.all()}
        assert set(rows) == set(self.status)
        for invitation_id, expected in self.status.items():
            row = rows[invitation_id]
            seen = effective_status(row, now).value.upper()
            if invitation_id in self.links and expected == "ACCEPTED":
                assert row.use_count == self.links[invitation_id]
            else:
                assert seen == expected, (invitation_id, seen, expected)
        # One open invitation per address.
        open_keys = Counter(r.open_key for r in rows.values() if r.open_key is not None)
        assert all(n == 1 for n in open_keys.values()), open_keys
        members = {
            m.user.external_id.removesuffix(f"-{self.tag}"): m
            for m in await Membership.all().prefetch_related("user")
        }
        assert set(members) == self.members | {"olivia"}
        for row in rows.values():
            if row.target_type == TargetType.LINK:
                uses = await InvitationUse.filter(invitation_id=row.id).count()
                assert uses == row.use_count <= (row.max_uses or uses)
            elif row.status == InvitationStatus.ACCEPTED:
                # Accepted means a membership, and never after the expiry.
                assert self.email[str(row.id)] in members
                assert row.accepted_at is not None and row.accepted_at <= row.expires_at


async def test_the_lifecycle_keeps_its_invariants(gql: GQL) -> None:
    Lifecycle.gql = gql
    Lifecycle.loop = asyncio.get_running_loop()
    machine = settings(
        max_examples=25,
        stateful_step_count=20,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )(Lifecycle).TestCase
    await asyncio.get_running_loop().run_in_executor(None, machine().runTest)


async def test_renewing_is_not_blocked_by_an_invitation_past_its_expiry(gql: GQL) -> None:
    """Found by the machine: reopening an expired invitation was ALREADY_INVITED while a
    later invitation to the address had passed its expiry but the sweep had not stored it."""
    owner = gql.token("olivia", "olivia@acme.com")
    assert (await gql(MAKE_GROUP, auth=owner))["createGroup"]["errors"] == []
    first = await invite_one(gql, owner, "cy@example.com")
    await overdue(first["id"], flip=True)
    second = await invite_one(gql, owner, "cy@example.com")
    await overdue(second["id"], flip=False)
    renewed = await gql(RENEW, {"id": first["id"], "days": 3}, auth=owner)
    assert renewed["renewInvitation"]["errors"] == []
    assert renewed["renewInvitation"]["invitation"]["status"] == "PENDING"

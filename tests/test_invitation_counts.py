"""`totalCount` of a group's invitations reads counts kept by database triggers: after
every path that changes an invitation's status, each count matches the rows, and the
migration that adds them counts the rows already there."""

from __future__ import annotations

import sqlite3
from collections import Counter
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from tortoise import connections

from app.config import Settings
from app.jobs.expiry import sweep_expired
from app.models import Group, Invitation, InvitationCount, InvitationStatus
from app.services.invitations import effective_status
from tests.conftest import GQL, INVITE, QueryLog
from tests.lifecycle_helpers import (
    ACCEPT,
    DECLINE,
    RENEW,
    REVOKE,
    current_token,
    overdue,
)
from tests.redis_helpers import job_ctx, job_settings
from tests.test_migrations import _build, fresh_urls  # noqa: F401 (a fixture)

COUNT = """query($group: String!, $status: [InvitationStatus!]) {
  invitationsByGroup(groupType: "org", groupId: $group, status: $status, first: 1) {
    totalCount } }"""
FILTERS: list[list[str] | None] = [
    None,
    *([status.name] for status in InvitationStatus),
    ["PENDING", "EXPIRED"],
    ["PENDING", "ACCEPTED"],
    ["EXPIRED", "REVOKED"],
]


async def _check(gql: GQL, auth: str, group: str = "acme") -> None:
    """Every count the API gives, and every kept count, equals a count of the rows."""
    counts = await InvitationCount.all().values_list("group_id", "status", "n")
    kept = {(str(group_id), status): n for group_id, status, n in counts if n != 0}
    rows = await Invitation.all().select_related("group")
    assert kept == dict(Counter((str(r.group.id), r.status) for r in rows))
    now = datetime.now(UTC)
    mine = [effective_status(r, now).name for r in rows if r.group.external_id == group]
    for wanted in FILTERS:
        data = await gql(COUNT, {"group": group, "status": wanted}, auth=auth)
        expected = len([s for s in mine if wanted is None or s in wanted])
        assert data["invitationsByGroup"]["totalCount"] == expected, wanted


async def _invite(gql: GQL, auth: str, emails: list[str], **terms: Any) -> list[str]:
    data = await gql(
        INVITE,
        {
            "input": {
                "groupType": "org",
                "groupId": "acme",
                "invitees": [{"email": e} for e in emails],
                **terms,
            }
        },
        auth=auth,
    )
    assert data["invite"]["errors"] == [], data["invite"]["errors"]
    return [i["id"] for i in data["invite"]["invitations"]]


async def test_counts_stay_exact_through_every_status_change(
    gql: GQL, make_group: Any, settings: Settings
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    await make_group(owner, "other", "Other")
    await _check(gql, owner)

    ben = gql.token("ben", "ben@example.com")
    await gql("{ __typename }", auth=ben)  # signed up before he is invited
    ids = await _invite(gql, owner, [f"p{i}@example.com" for i in range(8)])
    await _invite(gql, owner, ["ben@example.com"])
    await _check(gql, owner)

    [ben_id] = [str(i.id) for i in await Invitation.filter(email_key="ben@example.com")]
    token = await current_token(gql.settings, ben_id)
    assert (await gql(ACCEPT, {"token": token}, auth=ben))["acceptInvitation"]["errors"] == []
    await _check(gql, owner)

    dan = gql.token("dan", "p0@example.com")
    assert (await gql(DECLINE, {"id": ids[0]}, auth=dan))["declineInvitation"]["errors"] == []
    assert (await gql(REVOKE, {"id": ids[1]}, auth=owner))["revokeInvitation"]["errors"] == []
    await _check(gql, owner)

    # Past their expiry but not swept: EXPIRED to readers, PENDING as stored.
    for iid in ids[2:5]:
        await overdue(iid)
    await _check(gql, owner)
    assert await sweep_expired(job_ctx(job_settings(settings))) == 3
    await _check(gql, owner)

    renewed = await gql(RENEW, {"id": ids[2], "days": 5}, auth=owner)
    assert renewed["renewInvitation"]["errors"] == []
    await _check(gql, owner)

    # Set-based SQL, as the sweeps and the migrations write it, is counted too.
    await Invitation.filter(id__in=[UUID(i) for i in ids[5:7]]).update(
        status=InvitationStatus.REVOKED
    )
    await Invitation.filter(id=UUID(ids[7])).delete()
    await _check(gql, owner)

    # Moving rows between groups, and deleting a group with its invitations.
    other = await Group.get(external_id="other")
    await Invitation.filter(id=UUID(ids[3])).update(group_id=other.id)
    await _check(gql, owner)
    await _check(gql, owner, "other")
    await connections.get("default").execute_query("DELETE FROM groups WHERE external_id = 'other'")
    await _check(gql, owner)


async def test_total_count_is_one_statement_whatever_the_filter(
    gql: GQL, make_group: Any, queries: QueryLog
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    ids = await _invite(gql, owner, [f"p{i}@example.com" for i in range(3)])
    await overdue(ids[0])
    for wanted, expected in ((None, 3), (["PENDING"], 2), (["EXPIRED"], 1)):
        queries.statements.clear()
        data = await gql(COUNT, {"group": "acme", "status": wanted}, auth=owner)
        assert data["invitationsByGroup"]["totalCount"] == expected
        counts = [
            s for s in queries.statements if "COUNT(" in s.upper() or "invitation_counts" in s
        ]
        # One statement on the kept counts; the rows themselves only for the overdue ones.
        assert len(counts) == 1, counts
        assert "invitation_counts" in counts[0]


async def test_the_migration_counts_the_invitations_already_there(
    fresh_urls: list[str],  # noqa: F811 (the fixture imported above)
) -> None:
    url = fresh_urls[0]
    _build(url, "migrate", "models.0007_branding")
    group = "'00000000-0000-0000-0000-00000000000a'"
    rows = [(i, "pending" if i < 3 else "revoked") for i in range(5)]
    statements = [
        "INSERT INTO groups (id, type, external_id, name, created_at) "
        f"VALUES ({group}, 'org', 'acme', 'Acme', '2026-01-01T00:00:00+00:00')",
        *(
            "INSERT INTO invitations (id, target_type, role, permissions, status, expires_at, "
            "created_at, updated_at, send_email, delivery_status, send_count, token_version, "
            f"use_count, group_id) VALUES ('00000000-0000-0000-0000-00000000010{i}', 'email', "
            f"'member', '[]', '{status}', '2099-01-01T00:00:00+00:00', "
            "'2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00', true, 'sent', 1, 1, 0, "
            f"{group})"
            for i, status in rows
        ),
    ]
    counted = "SELECT status, n FROM invitation_counts ORDER BY status"
    if url.startswith("postgres"):
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            for statement in statements:
                await conn.execute(statement)
            _build(url, "migrate")
            found = [tuple(r) for r in await conn.fetch(counted)]
        finally:
            await conn.close()
    else:
        path = url.removeprefix("sqlite://")
        with sqlite3.connect(path) as db:
            for statement in statements:
                db.execute(statement)
        _build(url, "migrate")
        with sqlite3.connect(path) as db:
            found = db.execute(counted).fetchall()
    assert found == [("pending", 3), ("revoked", 2)]


async def test_open_slots_leave_out_overdue_invitations_not_swept_yet(
    gql: GQL, make_group: Any, settings: Settings
) -> None:
    settings.quota_pending_per_group = 2
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    ids = await _invite(gql, owner, ["a@example.com", "b@example.com"], draft=True)
    full = await gql(
        INVITE,
        {"input": {"groupType": "org", "groupId": "acme", "invitees": [{"email": "c@x.org"}]}},
        auth=owner,
    )
    assert [e["code"] for e in full["invite"]["errors"]] == ["RATE_LIMITED"]
    # A draft sent becomes PENDING; past its expiry it no longer holds a slot.
    await Invitation.filter(id=UUID(ids[0])).update(status=InvitationStatus.PENDING)
    await overdue(ids[0])
    await _invite(gql, owner, ["c@x.org"])
    assert await Invitation.filter(id=UUID(ids[0]), status=InvitationStatus.PENDING).exists()

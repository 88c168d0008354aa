"""Every (status, operation) pair of DESIGN.md's lifecycle, then each operation's details."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from app.config import Settings
from app.models import Invitation, InvitationEvent, MessageKind, OutboxMessage, User
from tests.conftest import GQL
from tests.lifecycle_helpers import (
    ACCEPT,
    DECLINE,
    INVITATION,
    PREVIEW,
    RENEW,
    RESEND,
    REVOKE,
    SEND,
    UPDATE,
    age,
    current_token,
    invite_one,
    only_error,
    overdue,
    stored,
    stored_status,
)

MakeGroup = Callable[..., Awaitable[dict[str, Any]]]
BEN = "ben@example.com"

OK = "ok"
STATUSES = ["DRAFT", "PENDING", "EXPIRED", "EXPIRED_BY_CLOCK", "ACCEPTED", "DECLINED", "REVOKED"]
OPERATIONS = ["send", "update", "revoke", "resend", "renew", "accept", "decline"]

# What each operation does from each status: OK, or the error code it must give.
TABLE: dict[str, dict[str, str]] = {
    "DRAFT": {
        "send": OK,
        "update": OK,
        "revoke": OK,
        "resend": "INVALID_STATUS",
        "renew": "INVALID_STATUS",
        "accept": "INVALID_STATUS",
        "decline": "INVALID_STATUS",
    },
    "PENDING": {
        "send": "INVALID_STATUS",
        "update": OK,
        "revoke": OK,
        "resend": OK,
        "renew": OK,
        "accept": OK,
        "decline": OK,
    },
    **{
        expired: {
            "send": "EXPIRED",
            "update": "EXPIRED",
            "revoke": OK,
            "resend": "EXPIRED",
            "renew": OK,
            "accept": "EXPIRED",
            "decline": "EXPIRED",
        }
        for expired in ("EXPIRED", "EXPIRED_BY_CLOCK")
    },
    **{
        final: dict.fromkeys(OPERATIONS, "INVALID_STATUS")
        for final in ("ACCEPTED", "DECLINED", "REVOKED")
    },
}

# The status each successful operation leads to (None: unchanged).
LEADS_TO = {
    "send": "PENDING",
    "update": None,
    "revoke": "REVOKED",
    "resend": "PENDING",
    "renew": "PENDING",
    "accept": "ACCEPTED",
    "decline": "DECLINED",
}
# The messages each successful operation queues in the outbox.
MESSAGES = {
    "send": [MessageKind.INVITATION],
    "update": [],
    "revoke": [],
    "resend": [MessageKind.RESEND],
    "renew": [],
    "accept": [MessageKind.ACCEPTED_NOTICE],
    "decline": [],
}
EVENT = {
    "send": "SENT",
    "update": "UPDATED",
    "revoke": "REVOKED",
    "resend": "RESENT",
    "renew": "RENEWED",
    "accept": "ACCEPTED",
    "decline": "DECLINED",
}


async def _in_status(gql: GQL, owner: str, ben: str, status: str) -> dict[str, Any]:
    """A fresh invitation to Ben, brought into `status` through the API where it can be."""
    invitation = await invite_one(gql, owner, BEN, draft=status == "DRAFT")
    await age(invitation["id"])
    iid = {"id": invitation["id"]}
    if status == "EXPIRED":
        await overdue(invitation["id"], flip=True)
    elif status == "EXPIRED_BY_CLOCK":
        await overdue(invitation["id"])
    elif status == "ACCEPTED":
        token = await current_token(gql.settings, invitation["id"])
        assert (await gql(ACCEPT, {"token": token}, auth=ben))["acceptInvitation"]["errors"] == []
    elif status == "DECLINED":
        assert (await gql(DECLINE, iid, auth=ben))["declineInvitation"]["errors"] == []
    elif status == "REVOKED":
        assert (await gql(REVOKE, iid, auth=owner))["revokeInvitation"]["errors"] == []
    return invitation


async def _run(
    gql: GQL, owner: str, ben: str, operation: str, invitation_id: str
) -> dict[str, Any]:
    """Perform `operation` as the caller allowed to; returns its payload."""
    iid: dict[str, Any] = {"id": invitation_id}
    calls: dict[str, tuple[str, str, dict[str, Any], str]] = {
        "send": (SEND, "sendInvitation", iid, owner),
        "update": (UPDATE, "updateInvitation", {**iid, "input": {"message": "Hi"}}, owner),
        "revoke": (REVOKE, "revokeInvitation", iid, owner),
        "resend": (RESEND, "resendInvitation", iid, owner),
        "renew": (RENEW, "renewInvitation", {**iid, "days": 10}, owner),
        "decline": (DECLINE, "declineInvitation", iid, ben),
    }
    if operation == "accept":
        token = await current_token(gql.settings, invitation_id)
        accepted: dict[str, Any] = (await gql(ACCEPT, {"token": token}, auth=ben))[
            "acceptInvitation"
        ]
        invitations = accepted["invitations"]
        return {"invitation": invitations[0] if invitations else None, **accepted}
    query, name, variables, auth = calls[operation]
    payload: dict[str, Any] = (await gql(query, variables, auth=auth))[name]
    return payload


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("status", STATUSES)
async def test_status_operation_table(
    gql: GQL, make_group: MakeGroup, status: str, operation: str
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    ben = gql.token("ben", BEN)
    await make_group(owner)
    invitation = await _in_status(gql, owner, ben, status)
    before = await stored(invitation["id"])
    events_before = await InvitationEvent.filter(invitation_id=before.id).count()
    outbox_before = set(
        await OutboxMessage.filter(invitation_id=before.id).values_list("id", flat=True)
    )

    payload = await _run(gql, owner, ben, operation, invitation["id"])

    expected = TABLE[status][operation]
    after = await stored(invitation["id"])
    events_after = await InvitationEvent.filter(invitation_id=before.id).count()
    queued = [
        m.kind
        for m in await OutboxMessage.filter(invitation_id=before.id)
        if m.id not in outbox_before
    ]
    if expected == OK:
        assert payload["errors"] == []
        assert payload["invitation"]["id"] == invitation["id"]
        assert payload["invitation"]["status"] == (LEADS_TO[operation] or status)
        assert after.status.upper() == (LEADS_TO[operation] or status)
        if operation in ("accept", "decline"):
            # The invitee is not shown the audit trail: its actors are the group's people.
            assert payload["invitation"]["events"] == []
        else:
            assert payload["invitation"]["events"][-1]["type"] == EVENT[operation]
        last = await InvitationEvent.filter(invitation_id=before.id).order_by("-created_at")
        assert last[0].type.name == EVENT[operation]
        assert events_after == events_before + 1
        assert queued == MESSAGES[operation]
        # One open invitation per address: open_key is set exactly while DRAFT/PENDING.
        open_now = after.status in ("draft", "pending")
        assert after.open_key == (BEN if open_now else None)
    else:
        error = only_error(payload)
        assert error["code"] == expected, error
        assert error["field"] == (["token"] if operation == "accept" else ["id"])
        assert payload["invitation"] is None
        # Nothing changed: not the row, not the trail.
        assert after.status == before.status
        assert after.token_version == before.token_version
        assert after.expires_at == before.expires_at
        assert events_after == events_before
        assert queued == []


# --- drafts ------------------------------------------------------------------------------


async def test_draft_is_sent_later_with_its_validity_from_then(
    gql: GQL, make_group: MakeGroup
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    draft = await invite_one(gql, owner, BEN, draft=True, expiresInDays=3)
    assert draft["status"] == "DRAFT"
    assert draft["deliveryStatus"] == "NOT_SENT"
    assert await OutboxMessage.filter(invitation_id=UUID(draft["id"])).count() == 0
    # Made two days ago: both its creation and its provisional expiry move back.
    row = await stored(draft["id"])
    await Invitation.filter(id=row.id).update(
        created_at=row.created_at - timedelta(days=2), expires_at=row.expires_at - timedelta(days=2)
    )

    payload = (await gql(SEND, {"id": draft["id"]}, auth=owner))["sendInvitation"]

    assert payload["errors"] == []
    sent = payload["invitation"]
    assert sent["status"] == "PENDING"
    assert sent["deliveryStatus"] == "QUEUED"
    expires = datetime.fromisoformat(sent["expiresAt"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=3))) < timedelta(minutes=1)
    messages = await OutboxMessage.filter(invitation_id=UUID(draft["id"]))
    assert [(m.kind, m.token_version) for m in messages] == [(MessageKind.INVITATION, 1)]


async def test_draft_without_email_is_sent_without_a_message(
    gql: GQL, make_group: MakeGroup
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    draft = await invite_one(gql, owner, BEN, draft=True, sendEmail=False)
    payload = (await gql(SEND, {"id": draft["id"]}, auth=owner))["sendInvitation"]
    assert payload["invitation"]["status"] == "PENDING"
    assert payload["invitation"]["deliveryStatus"] == "DISABLED"
    assert await OutboxMessage.filter(invitation_id=UUID(draft["id"])).count() == 0


async def test_update_changes_only_given_fields_and_null_clears(
    gql: GQL, make_group: MakeGroup
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    draft = await invite_one(
        gql, owner, BEN, draft=True, message="Hi", metadata={"plan": "pro"}, returnTo="/home"
    )
    variables = {
        "id": draft["id"],
        "input": {
            "role": "admin",
            "firstName": "Ben",
            "lastName": "Ng",
            "message": None,
            "permissions": ["billing"],
            "metadata": {"plan": "team"},
        },
    }
    payload = (await gql(UPDATE, variables, auth=owner))["updateInvitation"]
    assert payload["errors"] == []
    updated = payload["invitation"]
    assert (updated["role"], updated["firstName"], updated["lastName"]) == ("admin", "Ben", "Ng")
    assert updated["message"] is None
    assert updated["permissions"] == ["billing"]
    assert updated["metadata"] == {"plan": "team"}
    assert updated["returnTo"] == "/home"  # not given: unchanged
    event = await InvitationEvent.filter(invitation_id=UUID(draft["id"]), type="updated").get()
    assert event.detail == {
        "fields": ["firstName", "lastName", "message", "metadata", "permissions", "role"]
    }


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"role": "emperor"}, "INVALID_INPUT", ["role"]),
        ({"role": None}, "INVALID_INPUT", ["role"]),
        ({"message": "x" * 2001}, "INVALID_INPUT", ["message"]),
        ({"firstName": "x" * 256}, "INVALID_INPUT", ["firstName"]),
        ({"permissions": [""]}, "INVALID_INPUT", ["permissions"]),
        ({}, "INVALID_INPUT", None),
    ],
)
async def test_update_validates(
    gql: GQL, make_group: MakeGroup, changes: dict[str, Any], code: str, field: list[str] | None
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    invitation = await invite_one(gql, owner, BEN)
    payload = (await gql(UPDATE, {"id": invitation["id"], "input": changes}, auth=owner))[
        "updateInvitation"
    ]
    assert only_error(payload)["code"] == code
    assert only_error(payload)["field"] == field
    assert (await stored(invitation["id"])).role == "member"


# --- resend ------------------------------------------------------------------------------


async def test_resend_rotates_the_token_and_queues_a_resend(
    gql: GQL, make_group: MakeGroup
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    invitation = await invite_one(gql, owner, BEN)
    old_token = await current_token(gql.settings, invitation["id"])
    await age(invitation["id"])

    payload = (await gql(RESEND, {"id": invitation["id"]}, auth=owner))["resendInvitation"]

    assert payload["errors"] == []
    new_token = await current_token(gql.settings, invitation["id"])
    assert new_token != old_token
    assert payload["invitation"]["inviteUrl"].endswith(new_token)
    assert payload["invitation"]["deliveryStatus"] == "QUEUED"
    # The old link is dead everywhere: preview and accept say the same as for any bad token.
    assert (await gql(PREVIEW, {"token": old_token}))["invitationByToken"] is None
    assert (await gql(PREVIEW, {"token": new_token}))["invitationByToken"]["status"] == "PENDING"
    ben = gql.token("ben", BEN)
    dead = (await gql(ACCEPT, {"token": old_token}, auth=ben))["acceptInvitation"]
    assert only_error(dead)["code"] == "NOT_FOUND"
    messages = await OutboxMessage.filter(invitation_id=UUID(invitation["id"])).order_by(
        "created_at"
    )
    assert [(m.kind, m.token_version) for m in messages] == [
        (MessageKind.INVITATION, 1),
        (MessageKind.RESEND, 2),
    ]
    ok = (await gql(ACCEPT, {"token": new_token}, auth=ben))["acceptInvitation"]
    assert ok["errors"] == []


async def test_resend_cool_down_says_when_to_retry(gql: GQL, make_group: MakeGroup) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    invitation = await invite_one(gql, owner, BEN)
    # Just invited: the first email went out moments ago.
    payload = (await gql(RESEND, {"id": invitation["id"]}, auth=owner))["resendInvitation"]
    error = only_error(payload)
    assert error["code"] == "RATE_LIMITED"
    assert error["field"] == ["id"]
    retry = datetime.fromisoformat(error["retryAfter"])
    assert datetime.now(UTC) < retry <= datetime.now(UTC) + timedelta(seconds=60)
    assert retry.isoformat(timespec="seconds") in error["message"]
    assert (await stored(invitation["id"])).token_version == 1

    await age(invitation["id"])
    first = (await gql(RESEND, {"id": invitation["id"]}, auth=owner))["resendInvitation"]
    assert first["errors"] == []
    second = (await gql(RESEND, {"id": invitation["id"]}, auth=owner))["resendInvitation"]
    assert only_error(second)["code"] == "RATE_LIMITED"
    assert (await stored(invitation["id"])).token_version == 2


async def test_resend_daily_cap(gql: GQL, make_group: MakeGroup, settings: Settings) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    invitation = await invite_one(gql, owner, BEN)
    for _ in range(settings.resend_daily_cap):
        await age(invitation["id"])
        payload = (await gql(RESEND, {"id": invitation["id"]}, auth=owner))["resendInvitation"]
        assert payload["errors"] == []
    await age(invitation["id"])
    capped = (await gql(RESEND, {"id": invitation["id"]}, auth=owner))["resendInvitation"]
    error = only_error(capped)
    assert error["code"] == "RATE_LIMITED"
    assert "resends of this invitation today" in error["message"]
    # The cap counts per day (UTC): it lifts at the next midnight.
    retry = datetime.fromisoformat(error["retryAfter"])
    midnight = (datetime.now(UTC) + timedelta(days=1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    assert retry == midnight
    assert (await stored(invitation["id"])).token_version == settings.resend_daily_cap + 1


async def test_links_cannot_be_resent(gql: GQL, make_group: MakeGroup) -> None:
    from tests.lifecycle_helpers import CREATE_LINK

    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    link = (await gql(CREATE_LINK, {"input": {"groupType": "org", "groupId": "acme"}}, auth=owner))[
        "createInviteLink"
    ]["invitation"]
    payload = (await gql(RESEND, {"id": link["id"]}, auth=owner))["resendInvitation"]
    assert only_error(payload)["code"] == "INVALID_INPUT"


# --- renew -------------------------------------------------------------------------------


async def test_renew_reopens_an_expired_invitation_with_the_same_id_and_link(
    gql: GQL, make_group: MakeGroup
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    invitation = await invite_one(gql, owner, BEN)
    token = await current_token(gql.settings, invitation["id"])
    await overdue(invitation["id"], flip=True)
    assert (await stored(invitation["id"])).open_key is None
    await Invitation.filter(id=UUID(invitation["id"])).update(reminder_sent_at=datetime.now(UTC))

    payload = (await gql(RENEW, {"id": invitation["id"], "days": 30}, auth=owner))[
        "renewInvitation"
    ]

    assert payload["errors"] == []
    renewed = payload["invitation"]
    assert renewed["id"] == invitation["id"]
    assert renewed["status"] == "PENDING"
    expires = datetime.fromisoformat(renewed["expiresAt"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=1)
    row = await stored(invitation["id"])
    assert row.open_key == BEN
    # Reopening without a new email keeps the reminder spent: else expiring and reopening
    # in a loop would mail the invitee each time.
    assert row.reminder_sent_at is not None
    # Without `resend` the token is unchanged, so the link in the first email works again.
    ben = gql.token("ben", BEN)
    accepted = (await gql(ACCEPT, {"token": token}, auth=ben))["acceptInvitation"]
    assert accepted["errors"] == []


async def test_renew_with_resend_rotates_and_queues(gql: GQL, make_group: MakeGroup) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    invitation = await invite_one(gql, owner, BEN)
    await age(invitation["id"])
    await overdue(invitation["id"])
    payload = (await gql(RENEW, {"id": invitation["id"], "resend": True}, auth=owner))[
        "renewInvitation"
    ]
    assert payload["errors"] == []
    row = await stored(invitation["id"])
    assert row.token_version == 2
    kinds = sorted(m.kind for m in await OutboxMessage.filter(invitation_id=row.id))
    assert kinds == [MessageKind.INVITATION, MessageKind.RESEND]
    types = [e["type"] for e in payload["invitation"]["events"]]
    assert types[-2:] == ["RENEWED", "RESENT"]


async def test_pushing_back_a_pending_invitation_does_not_rearm_its_reminder(
    gql: GQL, make_group: MakeGroup
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    invitation = await invite_one(gql, owner, BEN)
    reminded = datetime.now(UTC) - timedelta(hours=1)
    await Invitation.filter(id=UUID(invitation["id"])).update(reminder_sent_at=reminded)
    for _ in range(3):  # renewing in a loop must not mail the invitee each time
        payload = await gql(RENEW, {"id": invitation["id"], "days": 1}, auth=owner)
        assert payload["renewInvitation"]["errors"] == []
        assert (await stored(invitation["id"])).reminder_sent_at == reminded
    # A renew that sends a new email earns the new expiry its reminder.
    await age(invitation["id"])
    payload = await gql(RENEW, {"id": invitation["id"], "resend": True}, auth=owner)
    assert payload["renewInvitation"]["errors"] == []
    assert (await stored(invitation["id"])).reminder_sent_at is None


async def test_renew_refuses_when_the_address_was_invited_again(
    gql: GQL, make_group: MakeGroup
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    old = await invite_one(gql, owner, BEN)
    await overdue(old["id"], flip=True)
    new = await invite_one(gql, owner, BEN)
    payload = (await gql(RENEW, {"id": old["id"]}, auth=owner))["renewInvitation"]
    assert only_error(payload) == {
        "code": "ALREADY_INVITED",
        "field": ["id"],
        "message": "ben@example.com has another open invitation to this group.",
        "retryAfter": None,
    }
    assert await stored_status(old["id"]) == "expired"
    assert await stored_status(new["id"]) == "pending"


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"days": 0}, ["expiresInDays"]),
        ({"days": 91}, ["expiresInDays"]),
        ({"at": "2001-01-01T00:00:00+00:00"}, ["expiresAt"]),
        ({"days": 3, "at": "2001-01-01T00:00:00+00:00"}, ["expiresAt"]),
    ],
)
async def test_renew_validity_bounds(
    gql: GQL, make_group: MakeGroup, variables: dict[str, Any], field: list[str]
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    invitation = await invite_one(gql, owner, BEN)
    payload = (await gql(RENEW, {"id": invitation["id"], **variables}, auth=owner))[
        "renewInvitation"
    ]
    assert only_error(payload)["code"] == "INVALID_INPUT"
    assert only_error(payload)["field"] == field


async def test_renew_accepts_an_exact_expiry(gql: GQL, make_group: MakeGroup) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    invitation = await invite_one(gql, owner, BEN)
    at = (datetime.now(UTC) + timedelta(days=90) - timedelta(minutes=1)).replace(microsecond=0)
    payload = (await gql(RENEW, {"id": invitation["id"], "at": at.isoformat()}, auth=owner))[
        "renewInvitation"
    ]
    assert payload["errors"] == []
    assert datetime.fromisoformat(payload["invitation"]["expiresAt"]) == at


# --- revoke and the audit trail ----------------------------------------------------------


async def test_revoke_frees_the_address_and_records_the_actor(
    gql: GQL, make_group: MakeGroup
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    invitation = await invite_one(gql, owner, BEN)
    query = f"""mutation($id: ID!) {{ revokeInvitation(id: $id) {{
      invitation {{ {INVITATION} }} errors {{ code }} }} }}"""
    await gql(query, {"id": invitation["id"]}, auth=owner)
    event = await InvitationEvent.filter(invitation_id=UUID(invitation["id"]), type="revoked").get()
    olivia = await User.get(external_id="olivia")
    assert (event.actor_user_id, event.actor_api_key_id) == (olivia.id, None)  # type: ignore[attr-defined]
    # A new invitation to the same address may now be made.
    again = await invite_one(gql, owner, BEN)
    assert again["id"] != invitation["id"]


async def test_unknown_and_malformed_ids_are_not_found(gql: GQL, make_group: MakeGroup) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    for bad in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        for query, name in ((REVOKE, "revokeInvitation"), (SEND, "sendInvitation")):
            payload = (await gql(query, {"id": bad}, auth=owner))[name]
            assert only_error(payload)["code"] == "NOT_FOUND"
            assert only_error(payload)["field"] == ["id"]


async def test_renew_with_resend_honours_the_cool_down(gql: GQL, make_group: MakeGroup) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    invitation = await invite_one(gql, owner, BEN)
    payload = (await gql(RENEW, {"id": invitation["id"], "resend": True}, auth=owner))[
        "renewInvitation"
    ]
    assert only_error(payload)["code"] == "RATE_LIMITED"
    assert only_error(payload)["retryAfter"] is not None
    # Nothing changed, not even the expiry.
    row = await stored(invitation["id"])
    assert (row.token_version, row.expires_at.isoformat()) == (
        1,
        datetime.fromisoformat(invitation["expiresAt"]).isoformat(),
    )
    plain = (await gql(RENEW, {"id": invitation["id"]}, auth=owner))["renewInvitation"]
    assert plain["errors"] == []


async def test_resend_of_an_unmailed_invitation_emails_it_and_keeps_the_link(
    gql: GQL, make_group: MakeGroup
) -> None:
    owner = gql.token("olivia", "olivia@acme.com")
    await make_group(owner)
    invitation = await invite_one(gql, owner, BEN, sendEmail=False)
    assert invitation["deliveryStatus"] == "DISABLED"
    # No cool-down for the first email: the host asks for it right away.
    payload = (await gql(RESEND, {"id": invitation["id"]}, auth=owner))["resendInvitation"]
    assert payload["errors"] == []
    assert payload["invitation"]["deliveryStatus"] == "QUEUED"
    # The link the host already shared still opens it.
    assert payload["invitation"]["inviteUrl"] == invitation["inviteUrl"]
    [row] = await OutboxMessage.filter(invitation_id=UUID(invitation["id"]))
    assert row.kind == MessageKind.INVITATION
    events = [e["type"] for e in payload["invitation"]["events"]]
    assert events[-1] == "RESENT"
    # From now on it is an emailed invitation: the next resend rotates, after the cool-down.
    again = (await gql(RESEND, {"id": invitation["id"]}, auth=owner))["resendInvitation"]
    assert again["errors"][0]["code"] == "RATE_LIMITED"
    await age(invitation["id"])
    third = (await gql(RESEND, {"id": invitation["id"]}, auth=owner))["resendInvitation"]
    assert third["errors"] == []
    assert third["invitation"]["inviteUrl"] != invitation["inviteUrl"]

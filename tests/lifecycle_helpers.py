"""Operations and helpers shared by the lifecycle, accept, autojoin, authorization and
concurrency tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse
from uuid import UUID

from app.config import Settings
from app.models import Invitation, InvitationStatus
from app.services.invitations import expire_overdue, token_for
from tests.conftest import GQL, INVITE

ERRORS = "errors { code field message }"
INVITATION = (
    "id status email role firstName lastName message metadata permissions returnTo "
    "expiresAt sendCount deliveryStatus maxUses useCount inviteUrl targetType "
    "acceptedBy { externalId } events { type }"
)
MEMBERSHIP = "role permissions user { externalId } group { externalId }"

SEND = f"""mutation($id: ID!) {{ sendInvitation(id: $id) {{ invitation {{ {INVITATION} }} {ERRORS} }} }}"""
UPDATE = f"""mutation($id: ID!, $input: UpdateInvitationInput!) {{
  updateInvitation(id: $id, input: $input) {{ invitation {{ {INVITATION} }} {ERRORS} }} }}"""
REVOKE = f"""mutation($id: ID!) {{ revokeInvitation(id: $id) {{ invitation {{ {INVITATION} }} {ERRORS} }} }}"""
RESEND = f"""mutation($id: ID!) {{ resendInvitation(id: $id) {{
  invitation {{ {INVITATION} }} errors {{ code field message retryAfter }} }} }}"""
RENEW = f"""mutation($id: ID!, $days: Int, $at: DateTime, $resend: Boolean! = false) {{
  renewInvitation(id: $id, expiresInDays: $days, expiresAt: $at, resend: $resend) {{
    invitation {{ {INVITATION} }} errors {{ code field message retryAfter }} }} }}"""
DECLINE = f"""mutation($id: ID!) {{ declineInvitation(id: $id) {{ invitation {{ {INVITATION} }} {ERRORS} }} }}"""
ACCEPT = f"""mutation($token: String!) {{ acceptInvitation(token: $token) {{
  invitations {{ {INVITATION} }} memberships {{ {MEMBERSHIP} }} {ERRORS} }} }}"""
ACCEPT_IDS = f"""mutation($ids: [ID!]!) {{ acceptInvitations(ids: $ids) {{
  invitations {{ {INVITATION} }} memberships {{ {MEMBERSHIP} }} {ERRORS} }} }}"""
CREATE_LINK = f"""mutation($input: CreateInviteLinkInput!) {{
  createInviteLink(input: $input) {{ invitation {{ {INVITATION} }} {ERRORS} }} }}"""
SET_AUTOJOIN = f"""mutation($domains: [String!]!, $role: String, $groupId: String! = "acme") {{
  setAutojoinDomains(groupType: "org", groupId: $groupId, domains: $domains, role: $role) {{
    group {{ autojoinDomains autojoinRole domains {{ domain verified }} }} {ERRORS} }} }}"""
JOIN = f"""mutation($groupId: String! = "acme") {{ joinGroup(groupType: "org", groupId: $groupId) {{
  invitations {{ id }} memberships {{ {MEMBERSHIP} }} {ERRORS} }} }}"""
OPEN = """query($email: String!) { invitations(targetType: EMAIL, targetValue: $email) {
  invitations { id email } autojoinGroups { externalId name } } }"""
PREVIEW = """query($token: String!) { invitationByToken(token: $token) { status groupName } }"""
MEMBERS = """{ group(groupType: "org", groupId: "acme") {
  members { totalCount edges { node { role permissions user { externalId } } } } } }"""


def token_of(invite_url: str) -> str:
    """The token in an invitation link."""
    return parse_qs(urlparse(invite_url).query)["invitation"][0]


async def current_token(settings: Settings, invitation_id: str) -> str:
    """The token a link would carry now (what the worker puts in the email)."""
    return token_for(settings, await Invitation.get(id=UUID(invitation_id)))


async def invite_one(
    gql: GQL, auth: str, email: str = "ben@example.com", **overrides: Any
) -> dict[str, Any]:
    """Invite one address into `acme`; returns the invitation (must succeed)."""
    data = await gql(
        INVITE,
        {
            "input": {
                "groupType": "org",
                "groupId": "acme",
                "invitees": [{"email": email}],
                **overrides,
            }
        },
        auth=auth,
    )
    assert data["invite"]["errors"] == [], data["invite"]["errors"]
    invitation: dict[str, Any] = data["invite"]["invitations"][0]
    return invitation


async def age(invitation_id: str, *, hours: float = 2) -> None:
    """Pretend the invitation was created and last sent `hours` ago (past the cool-down)."""
    then = datetime.now(UTC) - timedelta(hours=hours)
    await Invitation.filter(id=UUID(invitation_id)).update(created_at=then, last_sent_at=None)


async def overdue(invitation_id: str, *, flip: bool = False) -> None:
    """Move the expiry into the past; with `flip`, also let the sweep store EXPIRED."""
    past = datetime.now(UTC) - timedelta(minutes=5)
    await Invitation.filter(id=UUID(invitation_id)).update(expires_at=past)
    if flip:
        assert await expire_overdue(now=datetime.now(UTC), invitation_id=UUID(invitation_id)) == 1


async def stored(invitation_id: str) -> Invitation:
    """The invitation as stored."""
    return await Invitation.get(id=UUID(invitation_id))


async def stored_status(invitation_id: str) -> InvitationStatus:
    """The stored status."""
    return InvitationStatus((await stored(invitation_id)).status)


def only_error(payload: dict[str, Any]) -> dict[str, Any]:
    """The single error of a payload."""
    assert len(payload["errors"]) == 1, payload["errors"]
    error: dict[str, Any] = payload["errors"][0]
    return error

"""The operations the benchmarks send, as GraphQL documents and JSON bodies.

Usher and the floor app (`bench.floor`) get the very same bodies; the floor dispatches on
`operationName`.
"""

from __future__ import annotations

import json
from typing import Any

from app.config import Settings
from app.services.auth import make_dev_jwt
from app.services.tokens import make_token
from bench.seed import ACME, INVITEE, OWNER, invitation_id

LIST = (
    "query ListInvitations($after: String, $status: [InvitationStatus!]) { "
    f'invitationsByGroup(groupType: "{ACME[0]}", groupId: "{ACME[1]}", first: 50, after: $after, '
    "status: $status) { totalCount edges { cursor node { id email status expiresAt inviteUrl "
    "group { name } inviter { name } events { type createdAt } } } "
    "pageInfo { hasNextPage endCursor } } }"
)

PREVIEW = (
    "query Preview($token: String!) { invitationByToken(token: $token) "
    "{ status groupName inviterName expiresAt targetType } }"
)

OPEN = (
    "query OpenInvitations($email: String!) { invitations(targetType: EMAIL, targetValue: $email) "
    "{ invitations { id status expiresAt group { name } inviter { name } } "
    "autojoinGroups { name } } }"
)

INVITE = (
    "mutation Invite($input: InviteInput!) { invite(input: $input) "
    "{ invitations { id email status inviteUrl } errors { code field message } } }"
)


def body(operation: str, query: str, variables: dict[str, Any]) -> str:
    """The JSON body of one request."""
    return json.dumps({"operationName": operation, "query": query, "variables": variables})


def list_body(*, after: str | None = None, status: list[str] | None = None) -> str:
    """A page of 50 of acme's invitations, with group, inviter and audit trail."""
    variables: dict[str, Any] = {}
    if after is not None:
        variables["after"] = after
    if status is not None:
        variables["status"] = status
    return body("ListInvitations", LIST, variables)


def preview_body(token: str) -> str:
    """The public preview of the invitation a token opens."""
    return body("Preview", PREVIEW, {"token": token})


def open_body() -> str:
    """ben's open invitations and autojoin groups (as ben, whose email is verified)."""
    return body("OpenInvitations", OPEN, {"email": INVITEE["email"]})


def invite_body(emails: list[str]) -> str:
    """`invite` into acme, one invitee per address."""
    invitees = [{"email": e, "firstName": "Bench"} for e in emails]
    variables = {"input": {"groupType": ACME[0], "groupId": ACME[1], "invitees": invitees}}
    return body("Invite", INVITE, variables)


def token_of(settings: Settings, i: int) -> str:
    """The current token of seeded invitation i."""
    return make_token(settings.secret_keys[0], invitation_id(i), 1)


def owner_jwt(settings: Settings) -> str:
    """A development JWT of acme's owner (valid for a day)."""
    return make_dev_jwt(settings, sub=OWNER["sub"], email=OWNER["email"], name=OWNER["name"])


def invitee_jwt(settings: Settings) -> str:
    """A development JWT of ben, the invitee."""
    return make_dev_jwt(settings, sub=INVITEE["sub"], email=INVITEE["email"], name=INVITEE["name"])

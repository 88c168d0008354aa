"""The generated Python client (clients/python, from clients/operations) against a running
`usher serve`: what an SPA's backend would do, typed end to end."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from usher_client import (
    CreateGroupInput,
    DeliveryStatus,
    InvitationStatus,
    InviteeInput,
    InviteInput,
    UsherClient,
)

from app.config import Settings
from app.services.auth import make_dev_jwt
from tests.test_worker_e2e import JWT_SECRET, Service


@pytest.fixture
async def usher(tmp_path: Path) -> AsyncIterator[str]:
    """A running `usher serve` on its own SQLite file; its GraphQL URL."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "USHER_REDIS_URL")}
    env.update(
        DATABASE_URL=f"sqlite://{tmp_path / 'usher.db'}",
        USHER_ENV="development",
        USHER_JWT_SECRET=JWT_SECRET,
        USHER_ACCEPT_URL="https://app.example.com/signup?invitation={token}",
        USHER_MAIL_DIR=str(tmp_path / "mail"),
        PYTHONUNBUFFERED="1",
    )
    service = Service(tmp_path, env)
    try:
        await service.serve()
        yield f"http://127.0.0.1:{service.port}/graphql"
    finally:
        await service.stop()


@pytest.fixture
async def clients(usher: str) -> AsyncIterator[Callable[[str | None], UsherClient]]:
    """Clients of the running service, each signed in as a `sub` (its address at example.com,
    verified) or anonymous (None); closed after the test."""
    async with contextlib.AsyncExitStack() as stack:

        def client(sub: str | None) -> UsherClient:
            headers = {}
            if sub is not None:
                jwt = make_dev_jwt(
                    Settings(jwt_secret=JWT_SECRET),
                    sub=sub,
                    email=f"{sub}@example.com",
                    name=sub.title(),
                )
                headers["Authorization"] = f"Bearer {jwt}"
            made = UsherClient(usher, headers=headers)
            stack.push_async_callback(made.http_client.aclose)
            return made

        yield client


async def test_invite_preview_accept_and_list_through_the_generated_client(
    clients: Callable[[str | None], UsherClient],
) -> None:
    olivia, bob = clients("olivia"), clients("bob")

    made = await olivia.create_group(CreateGroupInput(type_="org", external_id="acme", name="Acme"))
    assert made.create_group.errors == []

    invited = await olivia.invite(
        InviteInput(
            group_type="org", group_id="acme", invitees=[InviteeInput(email="bob@example.com")]
        )
    )
    assert invited.invite.errors == []
    (invitation,) = invited.invite.invitations
    assert invitation.status is InvitationStatus.PENDING
    assert invitation.delivery_status is DeliveryStatus.QUEUED
    assert isinstance(invitation.expires_at, datetime) and invitation.expires_at.tzinfo
    assert invitation.invite_url is not None
    token = parse_qs(urlsplit(invitation.invite_url).query)["invitation"][0]

    preview = (await clients(None).signup_preview(token=token)).invitation_by_token
    assert preview is not None
    assert (preview.group_name, preview.inviter_name, preview.status) == (
        "Acme",
        "Olivia",
        InvitationStatus.PENDING,
    )
    assert preview.expires_at == invitation.expires_at

    accepted = (await bob.accept_invitation(token=token)).accept_invitation
    assert accepted.errors == []
    assert [m.group.name for m in accepted.memberships] == ["Acme"]

    group = (await olivia.group_members(group_type="org", group_id="acme", first=None)).group
    assert group is not None
    members = group.members
    assert members.total_count == 2
    assert {e.node.user.email for e in members.edges} == {"olivia@example.com", "bob@example.com"}
    assert members.page_info.has_next_page is False
    assert members.page_info.start_cursor == members.edges[0].cursor

    # A refusal comes back typed, in the payload.
    again = (await bob.accept_invitation(token=token)).accept_invitation
    assert [e.code.value for e in again.errors] == ["INVALID_STATUS"]

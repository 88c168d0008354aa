"""What the busiest requests cost in SQL statements: the preview one, a page of a group's
invitations a fixed number whatever its size, and a signed-in user's request nothing to
sync them while their claims stay the same."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.models import Invitation, InvitationStatus
from app.services import preview
from app.services.invitations import effective_status
from tests.conftest import GQL, QueryLog
from tests.lifecycle_helpers import token_of
from tests.test_queries import PREVIEW, invite_many


def _on(queries: QueryLog, table: str) -> list[str]:
    return [s for s in queries.statements if f'"{table}"' in s]


async def test_the_preview_is_one_statement(gql: GQL, make_group, queries: QueryLog) -> None:
    olivia = gql.token("olivia", "olivia@acme.com", name="Olivia")
    await make_group(olivia)
    [made] = await invite_many(gql, olivia, ["ben@example.com"])
    token = token_of(made["inviteUrl"])
    queries.statements.clear()
    data = await gql(PREVIEW, {"token": token})
    assert data["invitationByToken"]["inviterName"] == "Olivia"
    assert len(queries.statements) == 1, queries.statements
    # A token that does not verify costs none.
    queries.statements.clear()
    assert (await gql(PREVIEW, {"token": token[:-2] + "xx"}))["invitationByToken"] is None
    assert queries.statements == []


async def test_an_invitation_by_link_previews_without_an_inviter(
    gql: GQL, api_key: str, make_group
) -> None:
    await make_group(api_key)
    link = await gql(
        'mutation { createInviteLink(input: {groupType: "org", groupId: "acme"}) '
        "{ invitation { inviteUrl } } }",
        auth=api_key,
    )
    token = token_of(link["createInviteLink"]["invitation"]["inviteUrl"])
    data = (await gql(PREVIEW, {"token": token}))["invitationByToken"]
    assert data["inviterName"] is None and data["targetType"] == "LINK"
    assert data["groupName"] == "Acme" and data["status"] == "PENDING"


@pytest.mark.parametrize("stored", list(InvitationStatus))
@pytest.mark.parametrize("hours", [-1, 1])
def test_the_preview_reads_the_status_as_every_reader_does(
    stored: InvitationStatus, hours: int
) -> None:
    expires_at = datetime.now(UTC) + timedelta(hours=hours)
    model = Invitation(status=stored, expires_at=expires_at)
    assert preview.status_at(stored, expires_at) == effective_status(model)

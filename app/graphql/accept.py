"""The invitee's mutations: accept (by token or by ids) and decline."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.graphql.args import InvitationIdArg
from app.graphql.context import Info
from app.graphql.errors import UserError
from app.graphql.types import AcceptPayload, Invitation, InvitationPayload
from app.graphql.types import Membership as MembershipType
from app.services import accept
from app.services.errors import DomainError


def _accept_payload(done: list[accept.Accepted], errors: list[DomainError]) -> AcceptPayload:
    return AcceptPayload(
        invitations=[Invitation.of(a.invitation) for a in done],
        memberships=[MembershipType.of(a.membership) for a in done],
        errors=[UserError.from_error(e) for e in errors],
    )


@strawberry.type
class AcceptMutation:
    @strawberry.mutation(
        description="Accept the invitation a token opens, as the signed-in user (verified "
        "email matching, except for links). Any token that does not verify gives NOT_FOUND."
    )
    async def accept_invitation(
        self,
        info: Info,
        token: Annotated[
            str, strawberry.argument(description="The token from the invitation link.")
        ],
    ) -> AcceptPayload:
        ctx = info.context
        done = await accept.accept_by_token(ctx.settings, ctx.require_auth(), token=token)
        return _accept_payload([done], [])

    @strawberry.mutation(
        description="Accept the signed-in user's own invitations by id; each item succeeds "
        'or fails alone, errors naming it as ["ids", "<index>"].'
    )
    async def accept_invitations(
        self,
        info: Info,
        ids: Annotated[
            list[strawberry.ID],
            strawberry.argument(
                description="Ids of invitations to the user's verified email (1 to 100)."
            ),
        ],
    ) -> AcceptPayload:
        ctx = info.context
        done, errors = await accept.accept_by_ids(
            ctx.settings, ctx.require_auth(), ids=[str(i) for i in ids]
        )
        return _accept_payload(done, errors)

    @strawberry.mutation(description="Decline an invitation to the signed-in user's email.")
    async def decline_invitation(
        self,
        info: Info,
        id: InvitationIdArg,
    ) -> InvitationPayload:
        ctx = info.context
        m = await accept.decline_invitation(ctx.settings, ctx.require_auth(), invitation_id=str(id))
        return InvitationPayload(invitation=Invitation.of(m))

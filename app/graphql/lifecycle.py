"""The managers' mutations: links, drafts, updates, revoke, resend, renew."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON

from app import models
from app.graphql.args import InvitationIdArg
from app.graphql.context import Info
from app.graphql.invitations import InvitationTermsInput
from app.graphql.types import Invitation, InvitationPayload
from app.services import lifecycle


@strawberry.input(
    description="A link anyone holding it may accept, optionally a limited number of times."
)
class CreateInviteLinkInput(InvitationTermsInput):
    max_uses: int | None = strawberry.field(
        default=None,
        description="How many different people may accept (1 to 10000); null: no limit.",
    )


@strawberry.input(
    description="Changes to a DRAFT or PENDING invitation; fields left out stay as they are, "
    "null clears them."
)
class UpdateInvitationInput:
    email: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="A new address, for a DRAFT or a PENDING invitation whose email FAILED: "
        "the token rotates and a PENDING one is emailed again.",
    )
    role: str | None = strawberry.field(
        default=strawberry.UNSET, description="The role the membership will get."
    )
    first_name: str | None = strawberry.field(
        default=strawberry.UNSET, description="The invitee's first name."
    )
    last_name: str | None = strawberry.field(
        default=strawberry.UNSET, description="The invitee's last name."
    )
    message: str | None = strawberry.field(
        default=strawberry.UNSET, description="A personal note for the email."
    )
    permissions: list[str] | None = strawberry.field(
        default=strawberry.UNSET, description="Extra permissions it will get (null: none)."
    )
    metadata: JSON | None = strawberry.field(
        default=strawberry.UNSET, description="Free JSON carried to the membership."
    )
    return_to: str | None = strawberry.field(
        default=strawberry.UNSET, description="Where the app goes after accepting."
    )

    def changes(self) -> dict[str, Any]:
        """The fields the client gave, by model field name."""
        return {
            name: value
            for name in lifecycle.UPDATABLE
            if (value := getattr(self, name)) is not strawberry.UNSET
        }


async def _invitation_payload(work: Awaitable[models.Invitation]) -> InvitationPayload:
    return InvitationPayload(invitation=Invitation.of(await work))


@strawberry.type
class LifecycleMutation:
    @strawberry.mutation(description="Create a LINK invitation; its `inviteUrl` is the link.")
    async def create_invite_link(
        self,
        info: Info,
        input: Annotated[
            CreateInviteLinkInput, strawberry.argument(description="The link to create.")
        ],
    ) -> InvitationPayload:
        ctx = info.context
        return await _invitation_payload(
            lifecycle.create_invite_link(
                ctx.settings,
                ctx.require_auth(),
                max_uses=input.max_uses,
                **input.terms(),
            )
        )

    @strawberry.mutation(description="Send a DRAFT: it becomes PENDING and its email is queued.")
    async def send_invitation(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The draft's id.")],
    ) -> InvitationPayload:
        ctx = info.context
        return await _invitation_payload(
            lifecycle.send_invitation(ctx.settings, ctx.require_auth(), invitation_id=str(id))
        )

    @strawberry.mutation(description="Change what a DRAFT or PENDING invitation carries.")
    async def update_invitation(
        self,
        info: Info,
        id: InvitationIdArg,
        input: Annotated[UpdateInvitationInput, strawberry.argument(description="The changes.")],
    ) -> InvitationPayload:
        ctx = info.context
        return await _invitation_payload(
            lifecycle.update_invitation(
                ctx.settings, ctx.require_auth(), invitation_id=str(id), changes=input.changes()
            )
        )

    @strawberry.mutation(description="Revoke a DRAFT, PENDING or EXPIRED invitation, for good.")
    async def revoke_invitation(
        self,
        info: Info,
        id: InvitationIdArg,
    ) -> InvitationPayload:
        ctx = info.context
        return await _invitation_payload(
            lifecycle.revoke_invitation(ctx.settings, ctx.require_auth(), invitation_id=str(id))
        )

    @strawberry.mutation(
        description="Send a PENDING invitation's email again with a new token (the old link "
        "stops working). A cool-down and a daily cap apply: RATE_LIMITED says when to retry."
    )
    async def resend_invitation(
        self,
        info: Info,
        id: InvitationIdArg,
    ) -> InvitationPayload:
        ctx = info.context
        return await _invitation_payload(
            lifecycle.resend_invitation(ctx.settings, ctx.require_auth(), invitation_id=str(id))
        )

    @strawberry.mutation(
        description="Give a PENDING or EXPIRED invitation a new expiry (default 7 days); an "
        "EXPIRED one becomes PENDING again, with the same id."
    )
    async def renew_invitation(
        self,
        info: Info,
        id: InvitationIdArg,
        expires_in_days: Annotated[
            int | None,
            strawberry.argument(description="Days until the new expiry, 1 to 90 (default 7)."),
        ] = None,
        expires_at: Annotated[
            datetime | None,
            strawberry.argument(description="Exact new expiry instead, at most 90 days ahead."),
        ] = None,
        resend: Annotated[
            bool,
            strawberry.argument(
                description="Also resend the email with a new token (cool-down and cap apply)."
            ),
        ] = False,
    ) -> InvitationPayload:
        ctx = info.context
        return await _invitation_payload(
            lifecycle.renew_invitation(
                ctx.settings,
                ctx.require_auth(),
                invitation_id=str(id),
                expires_in_days=expires_in_days,
                expires_at=expires_at,
                resend=resend,
            )
        )

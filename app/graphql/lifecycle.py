"""The lifecycle mutations: links, drafts, accept/decline, revoke/resend/renew, autojoin."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON

from app import models
from app.graphql.args import GroupIdArg, GroupTypeArg, InvitationIdArg
from app.graphql.context import Info
from app.graphql.errors import UserError
from app.graphql.invitations import InvitationTermsInput
from app.graphql.types import AcceptPayload, Group, GroupPayload, Invitation, InvitationPayload
from app.graphql.types import Membership as MembershipType
from app.services import accept, autojoin, lifecycle
from app.services.errors import DomainError


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


def _accept_payload(done: list[accept.Accepted], errors: list[DomainError]) -> AcceptPayload:
    return AcceptPayload(
        invitations=[Invitation.of(a.invitation) for a in done],
        memberships=[MembershipType.of(a.membership) for a in done],
        errors=[UserError.from_error(e) for e in errors],
    )


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
        return await _invitation_payload(
            accept.decline_invitation(ctx.settings, ctx.require_auth(), invitation_id=str(id))
        )

    @strawberry.mutation(
        description="Join a group whose autojoin domains include the signed-in user's "
        "verified email domain."
    )
    async def join_group(
        self,
        info: Info,
        group_type: GroupTypeArg,
        group_id: GroupIdArg,
    ) -> AcceptPayload:
        ctx = info.context
        m = await autojoin.join_group(
            ctx.settings, ctx.require_auth(), group_type=group_type, group_id=group_id
        )
        return AcceptPayload(memberships=[MembershipType.of(m)])

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

    @strawberry.mutation(
        description="Replace a group's autojoin domains (an empty list turns autojoin off). "
        'Webmail and disposable domains are refused, each as WEBMAIL_DOMAIN on ["domains", '
        '"<domain>"], and nothing changes.'
    )
    async def set_autojoin_domains(
        self,
        info: Info,
        group_type: GroupTypeArg,
        group_id: GroupIdArg,
        domains: Annotated[
            list[str],
            strawberry.argument(
                description="Email domains whose verified users may join (at most 100)."
            ),
        ],
        role: Annotated[
            str | None,
            strawberry.argument(
                description="Role to give those who join; default the current one, else the lowest."
            ),
        ] = None,
    ) -> GroupPayload:
        ctx = info.context
        m = await autojoin.set_autojoin_domains(
            ctx.settings,
            ctx.require_auth(),
            group_type=group_type,
            group_id=group_id,
            domains=domains,
            role=role,
        )
        return GroupPayload(group=Group.of(m))

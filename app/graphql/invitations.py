"""Invitations: `invite` and the queries that read invitations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON

from app import models
from app.graphql.args import (
    AfterArg,
    FirstArg,
    GroupIdArg,
    GroupTypeArg,
    InvitationIdArg,
    StatusArg,
)
from app.graphql.context import Info
from app.graphql.errors import UserError
from app.graphql.types import (
    AUTOJOIN_SHOWN,
    OPEN_SHOWN,
    Connection,
    Group,
    Invitation,
    InvitationPreview,
    InvitePayload,
    OpenInvitations,
    invitation_connection,
)
from app.models import TargetType
from app.services import autojoin, preview
from app.services import invitations as service
from app.services.pages import Window


@strawberry.input(description="One person to invite.")
class InviteeInput:
    email: str = strawberry.field(description="Their email address.")
    first_name: str | None = strawberry.field(default=None, description="Their first name.")
    last_name: str | None = strawberry.field(default=None, description="Their last name.")
    role: str | None = strawberry.field(
        default=None, description="A role for this person instead of the invitation's."
    )


@strawberry.input(description="What an invitation offers, and where: shared by invites and links.")
class InvitationTermsInput:
    group_type: str = strawberry.field(description="The group's type.")
    group_id: str = strawberry.field(description="The group's external id.")
    role: str | None = strawberry.field(
        default=None, description="Role to give; default the lowest configured role."
    )
    permissions: list[str] | None = strawberry.field(
        default=None, description="Extra permissions (security profiles) to give."
    )
    message: str | None = strawberry.field(
        default=None, description="A personal note, shown in the email or with the link."
    )
    expires_in_days: int | None = strawberry.field(
        default=None, description="Days until expiry, 1 to 90 (default 7)."
    )
    expires_at: datetime | None = strawberry.field(
        default=None, description="Exact expiry instead: in the future, at most 90 days ahead."
    )
    metadata: JSON | None = strawberry.field(
        default=None, description="Free JSON carried to the membership."
    )
    return_to: str | None = strawberry.field(
        default=None, description="Where the app should send the user after accepting."
    )

    def terms(self) -> dict[str, Any]:
        """The shared fields as keyword arguments for the services."""
        return {
            "group_type": self.group_type,
            "group_id": self.group_id,
            "role": self.role,
            "permissions": self.permissions,
            "message": self.message,
            "expires_in_days": self.expires_in_days,
            "expires_at": self.expires_at,
            "metadata": self.metadata,
            "return_to": self.return_to,
        }


@strawberry.input(description="The user an API key invites on behalf of.")
class InvitedByInput:
    external_id: str = strawberry.field(description="The user's id in the host app (JWT `sub`).")
    email: str | None = strawberry.field(
        default=None,
        description="Their address, as the host app has verified it: acceptance notices go there.",
    )
    name: str | None = strawberry.field(default=None, description="Their name, for the emails.")


@strawberry.input(description="Invite 1 to 100 people into a group.")
class InviteInput(InvitationTermsInput):
    invitees: list[InviteeInput] = strawberry.field(description="Whom to invite (1 to 100).")
    send_email: bool = strawberry.field(default=True, description="False: Usher sends no email.")
    draft: bool = strawberry.field(default=False, description="True: keep as DRAFT until sent.")
    locale: str | None = strawberry.field(
        default=None,
        description="The language of the emails (a BCP 47 tag such as nl or de-AT); "
        "default the group's language.",
    )
    subject: str | None = strawberry.field(
        default=None,
        description="A subject for the invitee's emails instead of the template's (one line, "
        "at most 255 characters).",
    )
    invited_by: InvitedByInput | None = strawberry.field(
        default=None,
        description="API keys only: the user the invitation is from, named as the inviter in "
        "its emails, preview and acceptance notice (made on first sight).",
    )


@strawberry.type
class InvitationQuery:
    @strawberry.field(description="An invitation, for those who may manage it and its invitee.")
    async def invitation(self, info: Info, id: InvitationIdArg) -> Invitation | None:
        ctx = info.context
        m = await service.get_invitation(ctx.settings, ctx.require_auth(), str(id))
        return Invitation.of(m) if m else None

    @strawberry.field(
        description="Public preview of the invitation a token opens; null for any token "
        "that does not verify. Changes nothing."
    )
    async def invitation_by_token(
        self,
        info: Info,
        token: Annotated[str, strawberry.argument(description="The token from the link.")],
    ) -> InvitationPreview | None:
        info.context.public()
        found = await preview.preview(info.context.settings, token)
        return InvitationPreview.of(found) if found else None

    @strawberry.field(
        description="Open invitations for an email address, and the groups its domain may "
        "autojoin: for the verified owner of the address and API keys."
    )
    async def invitations(
        self,
        info: Info,
        target_value: Annotated[
            str, strawberry.argument(description="The email address (for EMAIL).")
        ],
        target_type: Annotated[
            TargetType, strawberry.argument(description="What `targetValue` is.")
        ] = models.TargetType.EMAIL,
    ) -> OpenInvitations:
        principal = info.context.require_auth()
        rows = await service.open_invitations(
            principal, target_type=target_type, target_value=target_value
        )
        groups = await autojoin.autojoin_groups(principal, email=target_value)
        # The services return whole lists; cut here until they take a limit.
        return OpenInvitations(
            invitations=[Invitation.of(m) for m in rows[:OPEN_SHOWN]],
            autojoin_groups=[Group.of(g) for g in groups[:AUTOJOIN_SHOWN]],
        )

    @strawberry.field(description="A page of a group's invitations (admins and API keys).")
    async def invitations_by_group(
        self,
        info: Info,
        group_type: GroupTypeArg,
        group_id: GroupIdArg,
        status: StatusArg = None,
        first: FirstArg = 50,
        after: AfterArg = None,
    ) -> Connection[Invitation]:
        ctx = info.context
        key, page = await service.invitations_by_group(
            ctx.settings,
            ctx.require_auth(),
            group_type=group_type,
            group_id=group_id,
            statuses=status,
            window=Window.of(first, after),
            pages=ctx.loaders.invitation_page.load,
        )
        return invitation_connection(ctx, key, page)


@strawberry.type
class InvitationMutation:
    @strawberry.mutation(description="Invite people by email; valid invitees go through.")
    async def invite(
        self,
        info: Info,
        input: Annotated[InviteInput, strawberry.argument(description="Whom and how to invite.")],
    ) -> InvitePayload:
        ctx = info.context
        created, errors = await service.invite(
            ctx.settings,
            ctx.require_auth(),
            invitees=[
                service.InviteeSpec(
                    email=i.email, first_name=i.first_name, last_name=i.last_name, role=i.role
                )
                for i in input.invitees
            ],
            send_email=input.send_email,
            draft=input.draft,
            locale=input.locale,
            subject=input.subject,
            invited_by=service.InvitedBy(
                input.invited_by.external_id, input.invited_by.email, input.invited_by.name
            )
            if input.invited_by
            else None,
            **input.terms(),
        )
        return InvitePayload(
            invitations=[Invitation.of(m) for m in created],
            errors=[UserError.from_error(e) for e in errors],
        )

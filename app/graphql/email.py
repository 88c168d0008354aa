"""Branded email: a group's templates (`setEmailTemplate`) and `emailPreview`."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.graphql.context import Info
from app.graphql.scalars import described_enum
from app.graphql.types import Group, GroupPayload
from app.models import EmailKind
from app.services import templates

described_enum(
    EmailKind,
    "The emails a group may brand: the invitation, a resend (new link), the reminder before "
    "expiry, and the notice to the inviter that it was accepted.",
    {
        EmailKind.INVITATION: "The first email to the invitee, with the link.",
        EmailKind.RESEND: "The invitation sent again; earlier links no longer work.",
        EmailKind.REMINDER: "A reminder to the invitee before the invitation expires.",
        EmailKind.ACCEPTED_NOTICE: "To the inviter: the invitation was accepted.",
    },
)


@strawberry.input(
    description="A group's template for one kind of email in one language. Jinja2 syntax in "
    "a sandbox: `{{ name }}`, `{% if %}` and a few filters (`default`, `upper`, `lower`, "
    "`title`, `capitalize`, `trim`, `truncate`, `length`, `striptags`, `escape`); no loops, "
    "variables, calls or includes. The names it sees are listed in the README (`group_name`, "
    "`inviter_name`, `first_name`, `accept_url`…). Checked when saved (syntax, and a "
    "render against sample data); INVALID_INPUT names the field at fault. Leave out "
    "`subject`, `html` and `text` (or make them null or empty) to remove the template."
)
class EmailTemplateInput:
    group_type: str = strawberry.field(description="The group's type, e.g. `org`.")
    group_id: str = strawberry.field(description="The group's external id.")
    kind: EmailKind = strawberry.field(description="Which email.")
    locale: str | None = strawberry.field(
        default=None,
        description="The language it is for, a BCP 47 tag (`nl`, `de-AT`); null or empty: "
        "any language the group has no template of its own for.",
    )
    subject: str | None = strawberry.field(
        default=None, description="The subject, folded onto one line (at most 255 characters)."
    )
    html: str | None = strawberry.field(
        default=None,
        description="The HTML part (at most 100,000 characters); every value is escaped. "
        "INVITATION, RESEND and REMINDER must show `{{ accept_url }}`.",
    )
    text: str | None = strawberry.field(
        default=None,
        description="The plain-text part (at most 20,000 characters). INVITATION, RESEND and "
        "REMINDER must show `{{ accept_url }}`.",
    )


@strawberry.type(description="An email as Usher would send it now.")
class EmailPreview:
    subject: str = strawberry.field(description="The subject line.")
    text: str = strawberry.field(description="The plain-text part.")
    html: str = strawberry.field(description="The HTML part.")


@strawberry.type
class EmailQuery:
    @strawberry.field(
        description="An invitation's email exactly as it would be sent now (template, "
        "language, subject, link), for those who may manage the invitation; null for anyone "
        "else, as for an invitation that does not exist."
    )
    async def email_preview(
        self,
        info: Info,
        invitation_id: Annotated[
            strawberry.ID, strawberry.argument(description="The invitation's id.")
        ],
        kind: Annotated[
            EmailKind | None, strawberry.argument(description="Which email; null: INVITATION.")
        ] = EmailKind.INVITATION,
    ) -> EmailPreview | None:
        ctx = info.context
        rendered = await templates.email_preview(
            ctx.settings,
            ctx.require_auth(),
            invitation_id=str(invitation_id),
            kind=kind or EmailKind.INVITATION,
        )
        if rendered is None:
            return None
        return EmailPreview(subject=rendered.subject, text=rendered.text, html=rendered.html)


@strawberry.type
class EmailMutation:
    @strawberry.mutation(
        description="Set or remove a group's template for one kind of email and language. "
        "Emails use, in this order: the group's template for the language, the group's for "
        "any language, the built-in one for the language (English, Dutch, German), the "
        "built-in English one."
    )
    async def set_email_template(
        self,
        info: Info,
        input: Annotated[EmailTemplateInput, strawberry.argument(description="The template.")],
    ) -> GroupPayload:
        ctx = info.context
        m = await templates.set_email_template(
            ctx.settings,
            ctx.require_auth(),
            group_type=input.group_type,
            group_id=input.group_id,
            kind=input.kind,
            locale=input.locale,
            subject=input.subject,
            html=input.html,
            text=input.text,
        )
        return GroupPayload(group=Group.of(m))

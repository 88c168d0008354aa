from datetime import datetime
from typing import Optional

from pydantic import Field, JsonValue

from .base_model import BaseModel
from .enums import EmailKind


class CreateGroupInput(BaseModel):
    """A new group."""

    type_: str = Field(alias="type")
    "The host app's kind of group, e.g. `workspace`."
    external_id: str = Field(alias="externalId")
    "The host app's id for it."
    name: str
    "Display name, shown in emails."


class CreateInviteLinkInput(BaseModel):
    """A link anyone holding it may accept, optionally a limited number of times."""

    group_type: str = Field(alias="groupType")
    "The group's type."
    group_id: str = Field(alias="groupId")
    "The group's external id."
    role: Optional[str] = None
    "Role to give; default the lowest configured role."
    permissions: Optional[list[str]] = None
    "Extra permissions (security profiles) to give."
    message: Optional[str] = None
    "A personal note, shown in the email or with the link."
    expires_in_days: Optional[int] = Field(alias="expiresInDays", default=None)
    "Days until expiry, 1 to 90 (default 7)."
    expires_at: Optional[datetime] = Field(alias="expiresAt", default=None)
    "Exact expiry instead: in the future, at most 90 days ahead."
    metadata: Optional[JsonValue] = None
    "Free JSON carried to the membership."
    return_to: Optional[str] = Field(alias="returnTo", default=None)
    "Where the app should send the user after accepting."
    max_uses: Optional[int] = Field(alias="maxUses", default=None)
    "How many different people may accept (1 to 10000); null: no limit."


class EmailTemplateInput(BaseModel):
    """A group's template for one kind of email in one language. Jinja2 syntax in a sandbox: `{{ name }}`, `{% if %}` and a few filters (`default`, `upper`, `lower`, `title`, `capitalize`, `trim`, `truncate`, `length`, `striptags`, `escape`); no loops, variables, calls or includes. The names it sees are listed in the README (`group_name`, `inviter_name`, `first_name`, `accept_url`…). Checked when saved (syntax, and a render against sample data); INVALID_INPUT names the field at fault. Leave out `subject`, `html` and `text` (or make them null or empty) to remove the template."""

    group_type: str = Field(alias="groupType")
    "The group's type, e.g. `org`."
    group_id: str = Field(alias="groupId")
    "The group's external id."
    kind: EmailKind
    "Which email."
    locale: Optional[str] = None
    "The language it is for, a BCP 47 tag (`nl`, `de-AT`); null or empty: any language the group has no template of its own for."
    subject: Optional[str] = None
    "The subject, folded onto one line (at most 255 characters)."
    html: Optional[str] = None
    "The HTML part (at most 100,000 characters); every value is escaped. INVITATION, RESEND and REMINDER must show `{{ accept_url }}`."
    text: Optional[str] = None
    "The plain-text part (at most 20,000 characters). INVITATION, RESEND and REMINDER must show `{{ accept_url }}`."


class InviteInput(BaseModel):
    """Invite 1 to 100 people into a group."""

    group_type: str = Field(alias="groupType")
    "The group's type."
    group_id: str = Field(alias="groupId")
    "The group's external id."
    role: Optional[str] = None
    "Role to give; default the lowest configured role."
    permissions: Optional[list[str]] = None
    "Extra permissions (security profiles) to give."
    message: Optional[str] = None
    "A personal note, shown in the email or with the link."
    expires_in_days: Optional[int] = Field(alias="expiresInDays", default=None)
    "Days until expiry, 1 to 90 (default 7)."
    expires_at: Optional[datetime] = Field(alias="expiresAt", default=None)
    "Exact expiry instead: in the future, at most 90 days ahead."
    metadata: Optional[JsonValue] = None
    "Free JSON carried to the membership."
    return_to: Optional[str] = Field(alias="returnTo", default=None)
    "Where the app should send the user after accepting."
    invitees: list["InviteeInput"]
    "Whom to invite (1 to 100)."
    send_email: bool = Field(alias="sendEmail", default=True)
    "False: Usher sends no email."
    draft: bool = False
    "True: keep as DRAFT until sent."
    locale: Optional[str] = None
    "The language of the emails (a BCP 47 tag such as nl or de-AT); default the group's language."
    subject: Optional[str] = None
    "A subject for the invitee's emails instead of the template's (one line, at most 255 characters)."
    invited_by: Optional["InvitedByInput"] = Field(alias="invitedBy", default=None)
    "API keys only: the user the invitation is from, named as the inviter in its emails, preview and acceptance notice (made on first sight)."


class InvitedByInput(BaseModel):
    """The user an API key invites on behalf of."""

    external_id: str = Field(alias="externalId")
    "The user's id in the host app (JWT `sub`)."
    email: Optional[str] = None
    "Their address, as the host app has verified it: acceptance notices go there."
    name: Optional[str] = None
    "Their name, for the emails."


class InviteeInput(BaseModel):
    """One person to invite."""

    email: str
    "Their email address."
    first_name: Optional[str] = Field(alias="firstName", default=None)
    "Their first name."
    last_name: Optional[str] = Field(alias="lastName", default=None)
    "Their last name."
    role: Optional[str] = None
    "A role for this person instead of the invitation's."


class UpdateGroupInput(BaseModel):
    """Changes to a group. A field left out stays as it is; null clears `mailFromName`, `replyTo` and `locale`."""

    group_type: str = Field(alias="groupType")
    "The group's type, e.g. `org`."
    group_id: str = Field(alias="groupId")
    "The group's external id."
    name: Optional[str] = None
    "Display name, shown in emails."
    mail_from_name: Optional[str] = Field(alias="mailFromName", default=None)
    "The sender's display name in the group's emails (at most 100 characters, one line); the address stays Usher's `USHER_MAIL_FROM`."
    reply_to: Optional[str] = Field(alias="replyTo", default=None)
    "Where replies to the group's emails go (Reply-To)."
    locale: Optional[str] = None
    "The default language of the group's emails, a BCP 47 tag (`en`, `nl`, `de`, `de-AT`…); an invitation's own `locale` comes first."


class UpdateInvitationInput(BaseModel):
    """Changes to a DRAFT or PENDING invitation; fields left out stay as they are, null clears them."""

    email: Optional[str] = None
    "A new address, for a DRAFT or a PENDING invitation whose email FAILED: the token rotates and a PENDING one is emailed again."
    role: Optional[str] = None
    "The role the membership will get."
    first_name: Optional[str] = Field(alias="firstName", default=None)
    "The invitee's first name."
    last_name: Optional[str] = Field(alias="lastName", default=None)
    "The invitee's last name."
    message: Optional[str] = None
    "A personal note for the email."
    permissions: Optional[list[str]] = None
    "Extra permissions it will get (null: none)."
    metadata: Optional[JsonValue] = None
    "Free JSON carried to the membership."
    return_to: Optional[str] = Field(alias="returnTo", default=None)
    "Where the app goes after accepting."


class WebhookEndpointInput(BaseModel):
    """An endpoint's settings."""

    url: str
    "An absolute URL; in production `https`, on a public address."
    events: Optional[list[str]] = None
    "Event types to post; empty or null: all. Left out on update: unchanged."
    description: Optional[str] = None
    "A note for people, at most 500 characters. Left out on update: unchanged."
    enabled: Optional[bool] = None
    "False stops posting; true turns a disabled endpoint back on. Default true; left out on update: unchanged."


InviteInput.model_rebuild()

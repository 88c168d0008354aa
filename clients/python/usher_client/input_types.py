from datetime import datetime
from typing import Optional

from pydantic import Field, JsonValue

from .base_model import BaseModel


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


class UpdateInvitationInput(BaseModel):
    """Changes to a DRAFT or PENDING invitation; fields left out stay as they are, null clears them."""

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

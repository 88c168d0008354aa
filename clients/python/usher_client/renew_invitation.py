from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .fragments import InvitationFields, UserErrorFields


class RenewInvitation(BaseModel):
    renew_invitation: "RenewInvitationRenewInvitation" = Field(alias="renewInvitation")


class RenewInvitationRenewInvitation(BaseModel):
    invitation: Optional["RenewInvitationRenewInvitationInvitation"]
    errors: list["RenewInvitationRenewInvitationErrors"]


RenewInvitationRenewInvitationInvitation = InvitationFields
RenewInvitationRenewInvitationErrors = UserErrorFields
RenewInvitation.model_rebuild()
RenewInvitationRenewInvitation.model_rebuild()

from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .fragments import InvitationFields, UserErrorFields


class RevokeInvitation(BaseModel):
    revoke_invitation: "RevokeInvitationRevokeInvitation" = Field(
        alias="revokeInvitation"
    )


class RevokeInvitationRevokeInvitation(BaseModel):
    invitation: Optional["RevokeInvitationRevokeInvitationInvitation"]
    errors: list["RevokeInvitationRevokeInvitationErrors"]


RevokeInvitationRevokeInvitationInvitation = InvitationFields
RevokeInvitationRevokeInvitationErrors = UserErrorFields
RevokeInvitation.model_rebuild()
RevokeInvitationRevokeInvitation.model_rebuild()

from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .fragments import InvitationFields, UserErrorFields


class ResendInvitation(BaseModel):
    resend_invitation: "ResendInvitationResendInvitation" = Field(
        alias="resendInvitation"
    )


class ResendInvitationResendInvitation(BaseModel):
    invitation: Optional["ResendInvitationResendInvitationInvitation"]
    errors: list["ResendInvitationResendInvitationErrors"]


ResendInvitationResendInvitationInvitation = InvitationFields
ResendInvitationResendInvitationErrors = UserErrorFields
ResendInvitation.model_rebuild()
ResendInvitationResendInvitation.model_rebuild()

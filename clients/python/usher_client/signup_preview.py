from datetime import datetime
from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .enums import InvitationStatus, TargetType


class SignupPreview(BaseModel):
    invitation_by_token: Optional["SignupPreviewInvitationByToken"] = Field(
        alias="invitationByToken"
    )


class SignupPreviewInvitationByToken(BaseModel):
    status: InvitationStatus
    target_type: TargetType = Field(alias="targetType")
    group_name: str = Field(alias="groupName")
    inviter_name: Optional[str] = Field(alias="inviterName")
    expires_at: datetime = Field(alias="expiresAt")


SignupPreview.model_rebuild()

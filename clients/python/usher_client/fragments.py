from datetime import datetime
from typing import Optional

from pydantic import Field, JsonValue

from .base_model import BaseModel
from .enums import DeliveryStatus, ErrorCode, InvitationStatus, TargetType


class InvitationFields(BaseModel):
    id: str
    target_type: TargetType = Field(alias="targetType")
    email: Optional[str]
    role: str
    status: InvitationStatus
    delivery_status: DeliveryStatus = Field(alias="deliveryStatus")
    expires_at: datetime = Field(alias="expiresAt")
    created_at: datetime = Field(alias="createdAt")
    send_count: int = Field(alias="sendCount")
    invite_url: Optional[str] = Field(alias="inviteUrl")
    metadata: Optional[JsonValue]


class UserErrorFields(BaseModel):
    code: ErrorCode
    message: str
    field: Optional[list[str]]
    retry_after: Optional[datetime] = Field(alias="retryAfter")


InvitationFields.model_rebuild()
UserErrorFields.model_rebuild()

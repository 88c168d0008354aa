from datetime import datetime

from pydantic import Field

from .base_model import BaseModel
from .fragments import UserErrorFields


class AcceptInvitation(BaseModel):
    accept_invitation: "AcceptInvitationAcceptInvitation" = Field(
        alias="acceptInvitation"
    )


class AcceptInvitationAcceptInvitation(BaseModel):
    memberships: list["AcceptInvitationAcceptInvitationMemberships"]
    errors: list["AcceptInvitationAcceptInvitationErrors"]


class AcceptInvitationAcceptInvitationMemberships(BaseModel):
    id: str
    role: str
    permissions: list[str]
    joined_at: datetime = Field(alias="joinedAt")
    group: "AcceptInvitationAcceptInvitationMembershipsGroup"


class AcceptInvitationAcceptInvitationMembershipsGroup(BaseModel):
    id: str
    type_: str = Field(alias="type")
    external_id: str = Field(alias="externalId")
    name: str


AcceptInvitationAcceptInvitationErrors = UserErrorFields
AcceptInvitation.model_rebuild()
AcceptInvitationAcceptInvitation.model_rebuild()
AcceptInvitationAcceptInvitationMemberships.model_rebuild()

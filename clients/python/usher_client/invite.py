from .base_model import BaseModel
from .fragments import InvitationFields, UserErrorFields


class Invite(BaseModel):
    invite: "InviteInvite"


class InviteInvite(BaseModel):
    invitations: list["InviteInviteInvitations"]
    errors: list["InviteInviteErrors"]


InviteInviteInvitations = InvitationFields
InviteInviteErrors = UserErrorFields
Invite.model_rebuild()
InviteInvite.model_rebuild()

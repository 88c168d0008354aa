from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .fragments import InvitationFields


class GroupInvitations(BaseModel):
    invitations_by_group: "GroupInvitationsInvitationsByGroup" = Field(
        alias="invitationsByGroup"
    )


class GroupInvitationsInvitationsByGroup(BaseModel):
    total_count: int = Field(alias="totalCount")
    page_info: "GroupInvitationsInvitationsByGroupPageInfo" = Field(alias="pageInfo")
    edges: list["GroupInvitationsInvitationsByGroupEdges"]


class GroupInvitationsInvitationsByGroupPageInfo(BaseModel):
    has_next_page: bool = Field(alias="hasNextPage")
    end_cursor: Optional[str] = Field(alias="endCursor")


class GroupInvitationsInvitationsByGroupEdges(BaseModel):
    node: "GroupInvitationsInvitationsByGroupEdgesNode"


GroupInvitationsInvitationsByGroupEdgesNode = InvitationFields
GroupInvitations.model_rebuild()
GroupInvitationsInvitationsByGroup.model_rebuild()
GroupInvitationsInvitationsByGroupEdges.model_rebuild()

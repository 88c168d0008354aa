from datetime import datetime
from typing import Optional

from pydantic import Field

from .base_model import BaseModel


class GroupMembers(BaseModel):
    group: Optional["GroupMembersGroup"]


class GroupMembersGroup(BaseModel):
    id: str
    name: str
    viewer_role: Optional[str] = Field(alias="viewerRole")
    members: "GroupMembersGroupMembers"


class GroupMembersGroupMembers(BaseModel):
    total_count: int = Field(alias="totalCount")
    page_info: "GroupMembersGroupMembersPageInfo" = Field(alias="pageInfo")
    edges: list["GroupMembersGroupMembersEdges"]


class GroupMembersGroupMembersPageInfo(BaseModel):
    has_next_page: bool = Field(alias="hasNextPage")
    has_previous_page: bool = Field(alias="hasPreviousPage")
    start_cursor: Optional[str] = Field(alias="startCursor")
    end_cursor: Optional[str] = Field(alias="endCursor")


class GroupMembersGroupMembersEdges(BaseModel):
    cursor: str
    node: "GroupMembersGroupMembersEdgesNode"


class GroupMembersGroupMembersEdgesNode(BaseModel):
    id: str
    role: str
    permissions: list[str]
    joined_at: datetime = Field(alias="joinedAt")
    user: "GroupMembersGroupMembersEdgesNodeUser"


class GroupMembersGroupMembersEdgesNodeUser(BaseModel):
    id: str
    name: Optional[str]
    email: Optional[str]


GroupMembers.model_rebuild()
GroupMembersGroup.model_rebuild()
GroupMembersGroupMembers.model_rebuild()
GroupMembersGroupMembersEdges.model_rebuild()
GroupMembersGroupMembersEdgesNode.model_rebuild()

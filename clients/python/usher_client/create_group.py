from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .fragments import UserErrorFields


class CreateGroup(BaseModel):
    create_group: "CreateGroupCreateGroup" = Field(alias="createGroup")


class CreateGroupCreateGroup(BaseModel):
    group: Optional["CreateGroupCreateGroupGroup"]
    errors: list["CreateGroupCreateGroupErrors"]


class CreateGroupCreateGroupGroup(BaseModel):
    id: str
    type_: str = Field(alias="type")
    external_id: str = Field(alias="externalId")
    name: str


CreateGroupCreateGroupErrors = UserErrorFields
CreateGroup.model_rebuild()
CreateGroupCreateGroup.model_rebuild()

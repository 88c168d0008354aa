from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .fragments import UserErrorFields


class SetAutojoinDomains(BaseModel):
    set_autojoin_domains: "SetAutojoinDomainsSetAutojoinDomains" = Field(
        alias="setAutojoinDomains"
    )


class SetAutojoinDomainsSetAutojoinDomains(BaseModel):
    group: Optional["SetAutojoinDomainsSetAutojoinDomainsGroup"]
    errors: list["SetAutojoinDomainsSetAutojoinDomainsErrors"]


class SetAutojoinDomainsSetAutojoinDomainsGroup(BaseModel):
    id: str
    autojoin_role: Optional[str] = Field(alias="autojoinRole")
    domains: list["SetAutojoinDomainsSetAutojoinDomainsGroupDomains"]


class SetAutojoinDomainsSetAutojoinDomainsGroupDomains(BaseModel):
    domain: str
    verified: bool
    verification_record: Optional[str] = Field(alias="verificationRecord")


SetAutojoinDomainsSetAutojoinDomainsErrors = UserErrorFields
SetAutojoinDomains.model_rebuild()
SetAutojoinDomainsSetAutojoinDomains.model_rebuild()
SetAutojoinDomainsSetAutojoinDomainsGroup.model_rebuild()

from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .fragments import UserErrorFields


class VerifyAutojoinDomain(BaseModel):
    verify_autojoin_domain: "VerifyAutojoinDomainVerifyAutojoinDomain" = Field(
        alias="verifyAutojoinDomain"
    )


class VerifyAutojoinDomainVerifyAutojoinDomain(BaseModel):
    group: Optional["VerifyAutojoinDomainVerifyAutojoinDomainGroup"]
    errors: list["VerifyAutojoinDomainVerifyAutojoinDomainErrors"]


class VerifyAutojoinDomainVerifyAutojoinDomainGroup(BaseModel):
    id: str
    domains: list["VerifyAutojoinDomainVerifyAutojoinDomainGroupDomains"]


class VerifyAutojoinDomainVerifyAutojoinDomainGroupDomains(BaseModel):
    domain: str
    verified: bool


VerifyAutojoinDomainVerifyAutojoinDomainErrors = UserErrorFields
VerifyAutojoinDomain.model_rebuild()
VerifyAutojoinDomainVerifyAutojoinDomain.model_rebuild()
VerifyAutojoinDomainVerifyAutojoinDomainGroup.model_rebuild()

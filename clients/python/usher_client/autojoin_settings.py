from typing import Optional

from pydantic import Field

from .base_model import BaseModel


class AutojoinSettings(BaseModel):
    group: Optional["AutojoinSettingsGroup"]


class AutojoinSettingsGroup(BaseModel):
    id: str
    autojoin_role: Optional[str] = Field(alias="autojoinRole")
    domains: list["AutojoinSettingsGroupDomains"]


class AutojoinSettingsGroupDomains(BaseModel):
    domain: str
    verified: bool
    verification_record: Optional[str] = Field(alias="verificationRecord")


AutojoinSettings.model_rebuild()
AutojoinSettingsGroup.model_rebuild()

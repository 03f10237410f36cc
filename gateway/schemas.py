"""Gateway API shapes."""

import uuid
from datetime import datetime

from pydantic import BaseModel, Field, field_validator, model_validator

from services.common.auth import Jurisdiction
from services.common.locations import is_commune, is_province, province_of
from services.common.permissions import ROLE_AGENCY, ROLE_JURISDICTION_LEVELS, Agency, Role


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    refresh_token: str | None = None
    scope: str | None = None


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=20, max_length=200)


class JurisdictionIn(Jurisdiction):
    @model_validator(mode="after")
    def _official_codes(self) -> "JurisdictionIn":
        if self.level == "national":
            self.province = self.commune = None
        elif self.level == "province":
            if not self.province or not is_province(self.province):
                raise ValueError("province must be an official province code")
            self.commune = None
        else:
            if not self.commune or not is_commune(self.commune):
                raise ValueError("commune must be an official commune code")
            self.province = province_of(self.commune)
        return self


def _printable(value: str | None) -> str | None:
    if value is not None and any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("control characters are not allowed")
    return value


class UserBase(BaseModel):
    model_config = {"extra": "forbid"}

    display_name: str = Field(min_length=1, max_length=200)
    _display_name = field_validator("display_name")(_printable)
    role: Role
    agency: Agency | None = Field(None, description="Defaults to the role's agency")
    jurisdiction: JurisdictionIn

    @model_validator(mode="after")
    def _role_fits(self) -> "UserBase":
        if self.role == Role.SERVICE:
            raise ValueError("service accounts are configured, not created here")
        if self.jurisdiction.level not in ROLE_JURISDICTION_LEVELS[self.role]:
            raise ValueError(f"a {self.role.value} works at {', '.join(ROLE_JURISDICTION_LEVELS[self.role])} level")
        self.agency = self.agency or ROLE_AGENCY[self.role]
        return self


class UserCreate(UserBase):
    username: str = Field(min_length=3, max_length=100, pattern=r"^[a-z0-9._-]+$")
    password: str = Field(min_length=12, max_length=200)


class UserUpdate(BaseModel):
    display_name: str | None = Field(None, min_length=1, max_length=200)
    _display_name = field_validator("display_name")(_printable)
    role: Role | None = None
    agency: Agency | None = None
    jurisdiction: JurisdictionIn | None = None
    active: bool | None = None
    password: str | None = Field(None, min_length=12, max_length=200)

    model_config = {"extra": "forbid"}


class UserRead(BaseModel):
    id: uuid.UUID
    username: str
    display_name: str
    agency: Agency
    role: Role
    jurisdiction: Jurisdiction
    active: bool
    locked_until: datetime | None
    created_at: datetime
    updated_at: datetime


class Me(BaseModel):
    id: str
    name: str
    role: Role
    agency: Agency
    jurisdiction: Jurisdiction
    permissions: dict[str, str]

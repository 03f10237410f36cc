"""Gateway API shapes."""

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from gateway.text import normalise_display_name, normalise_username
from services.common.auth import Jurisdiction
from services.common.locations import is_commune, is_province, province_of
from services.common.permissions import ROLE_JURISDICTION_LEVELS, Agency, Role, allowed_agencies


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    refresh_token: str | None = None
    id_token: str | None = Field(None, description="OpenID Connect ID token, when `openid` was in the scope")
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


def _display_name(value: str | None) -> str | None:
    return None if value is None else normalise_display_name(value)


def _password(value: str | None) -> str | None:
    if value is not None and any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("control characters are not allowed")
    return value


class UserBase(BaseModel):
    model_config = {"extra": "forbid"}

    display_name: str = Field(min_length=1, max_length=200)
    _display_name = field_validator("display_name")(_display_name)
    role: Role
    agency: Agency | None = Field(None, description="One of the role's agencies (docs/permissions.md); defaults "
                                                    "to its first")
    jurisdiction: JurisdictionIn

    @model_validator(mode="after")
    def _role_fits(self) -> "UserBase":
        if self.role == Role.SERVICE:
            raise ValueError("service accounts are configured, not created here")
        if self.jurisdiction.level not in ROLE_JURISDICTION_LEVELS[self.role]:
            raise ValueError(f"a {self.role.value} works at {', '.join(ROLE_JURISDICTION_LEVELS[self.role])} level")
        agencies = allowed_agencies(self.role)
        self.agency = self.agency or agencies[0]
        if self.agency not in agencies:
            raise ValueError(f"a {self.role.value} belongs to {', '.join(a.value for a in agencies)}")
        return self


class UserCreate(UserBase):
    username: str = Field(min_length=3, max_length=100,
                          description="Letters a-z, digits, `.`, `_`, `-`; compared in lower case")
    password: str = Field(min_length=12, max_length=200)
    _password = field_validator("password")(_password)

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        name = normalise_username(value)
        if name is None:
            raise ValueError("a username has 3-100 of the letters a-z, digits, '.', '_' and '-'")
        return name


class UserUpdate(BaseModel):
    model_config = {"extra": "forbid"}

    display_name: str | None = Field(None, min_length=1, max_length=200)
    _display_name = field_validator("display_name")(_display_name)
    role: Role | None = None
    agency: Agency | None = None
    jurisdiction: JurisdictionIn | None = None
    active: bool | None = None
    password: str | None = Field(None, min_length=12, max_length=200)
    _password = field_validator("password")(_password)


class UserRead(BaseModel):
    id: uuid.UUID
    username: str
    display_name: str
    agency: Agency
    role: Role
    jurisdiction: Jurisdiction
    active: bool
    locked_until: datetime | None = Field(description="Set while repeated failed sign-ins lock the account")
    mfa_enrolled: bool = Field(description="Whether the user has enrolled a second factor")
    created_at: datetime
    updated_at: datetime


class Me(BaseModel):
    id: str
    name: str
    role: Role
    agency: Agency
    jurisdiction: Jurisdiction
    permissions: dict[str, str]


class UserInfo(BaseModel):
    """OpenID Connect UserInfo (Core 1.0 section 5.3), with this system's role, agency and jurisdiction."""

    sub: str
    name: str
    preferred_username: str | None = None
    role: Role
    agency: Agency
    jurisdiction: Jurisdiction
    amr: list[str] | None = None


class RotatedKey(BaseModel):
    kid: str
    published: list[str] = Field(description="Key ids the JWKS publishes now: the new key and every key whose "
                                             "tokens can still be valid")


class Revocations(BaseModel):
    sessions: list[str] = Field(description="Ids (`sid`) of sign-in sessions ended before their tokens expire")


def as_dict(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(exclude_none=True)

"""Registry API shapes."""

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from services.common.locations import is_commune

Sex = Literal["male", "female"]


class ChildBase(BaseModel):
    full_name: str = Field(min_length=1, max_length=200)
    sex: Sex
    date_of_birth: date
    commune_code: str = Field(pattern=r"^\d{5}$", description="Official commune/ward code of residence")

    @field_validator("commune_code")
    @classmethod
    def _official(cls, value: str) -> str:
        if not is_commune(value):
            raise ValueError("not an official commune/ward code")
        return value


class ChildCreate(ChildBase):
    model_config = {"extra": "forbid"}


class ChildRead(ChildBase):
    id: uuid.UUID
    province_code: str
    created_at: datetime
    updated_at: datetime
    version: int

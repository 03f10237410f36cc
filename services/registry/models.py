"""Registry tables."""

import uuid
from datetime import UTC, date, datetime

from sqlalchemy import Column, DateTime
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from services.common.audit import AuditLog
from services.common.db import new_metadata
from services.common.outbox import Outbox


def utcnow() -> datetime:
    return datetime.now(UTC)


class RegistryTable(SQLModel, registry=registry(metadata=new_metadata())):
    pass


metadata = RegistryTable.metadata
outbox = Outbox(metadata, source="registry")
audit = AuditLog(metadata)


class Child(RegistryTable, table=True):
    """A child the commune follows (tre em, Law on Children 2016 Art. 1: a person under 16)."""

    __tablename__ = "child"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    full_name: str = Field(max_length=200)
    sex: str = Field(max_length=10)
    date_of_birth: date
    province_code: str = Field(max_length=2, index=True)
    commune_code: str = Field(max_length=5, index=True)
    created_by: str = Field(max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))
    version: int = 1

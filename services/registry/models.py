"""Registry tables."""

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Identity, Index, String, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from services.common.audit import AuditLog
from services.common.clock import utcnow
from services.common.db import new_metadata
from services.common.outbox import Outbox
from services.common.sync import SyncLog


class RegistryTable(SQLModel, registry=registry(metadata=new_metadata())):
    pass


metadata = RegistryTable.metadata
outbox = Outbox(metadata, source="registry")
audit = AuditLog(metadata)
sync_log = SyncLog(metadata)  # written by a trigger on `child` (migration 9e4b2d7a1c3f)

ACTIVE = text("merged_into_id IS NULL")


class Child(RegistryTable, table=True):
    """A child the commune follows (tre em, Law on Children 2016 Art. 1: a person under 16).

    Nested parts of the record (guardians, special-circumstance groups) are JSONB lists validated by the API
    schemas; the columns that search and filters need are plain, indexed columns.
    """

    __tablename__ = "child"
    __table_args__ = (
        # Diacritics-free name prefix search, name-ordered lists and the duplicate check, by commune and by
        # province. `name_search` has the "C" collation, so one btree serves both LIKE 'prefix%' and ORDER BY.
        Index("ix_child_commune_name", "commune_code", "name_search", "id", postgresql_where=ACTIVE),
        Index("ix_child_province_name", "province_code", "name_search", "id", postgresql_where=ACTIVE),
        Index("ix_child_name", "name_search", "id", postgresql_where=ACTIVE),
        Index("ix_child_personal_id", "personal_id", unique=True, postgresql_where=ACTIVE),
        # The same child registered twice at once is refused by the database, not only by the check before the
        # insert: one record per name, date of birth and commune unless an officer confirmed they are two children.
        Index("ix_child_same_person", "commune_code", "name_search", "date_of_birth", unique=True,
              postgresql_where=text("merged_into_id IS NULL AND NOT confirmed_distinct")),
        # The hotline's match: the whole given name and a birth-date range, within a commune or a province.
        Index("ix_child_match_commune", "commune_code", "given_name_search", "date_of_birth", postgresql_where=ACTIVE),
        Index("ix_child_match_province", "province_code", "given_name_search", "date_of_birth",
              postgresql_where=ACTIVE),
        # The aged-out check looks only at active records born on or before a date.
        Index("ix_child_aging", "date_of_birth", postgresql_where=text("merged_into_id IS NULL AND status = 'active'")),
        Index("ix_child_merged_into", "merged_into_id", postgresql_where=text("merged_into_id IS NOT NULL")),
        Index("ix_child_guardian_phones", "guardian_phones", postgresql_using="gin"),
        Index("ix_child_special_groups", "special_groups", postgresql_using="gin",
              postgresql_ops={"special_groups": "jsonb_path_ops"}),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    revision: int = 1
    # Identity (nhan than)
    full_name: str = Field(max_length=200)
    name_search: str = Field(sa_column=Column(String(200, collation="C"), nullable=False))
    given_name_search: str = Field(sa_column=Column(String(200, collation="C"), nullable=False))
    sex: str = Field(max_length=10)
    date_of_birth: date
    date_of_birth_estimated: bool = False
    ethnicity: str | None = Field(default=None, max_length=2)
    nationality: str = Field(default="VN", max_length=2)
    personal_id: str | None = Field(default=None, max_length=12)
    # Residence (noi cu tru)
    province_code: str = Field(max_length=2)
    commune_code: str = Field(max_length=5)
    address: str | None = Field(default=None, max_length=300)
    # Birth registration (dang ky khai sinh, Law on Civil Status 2014)
    birth_registered: bool = False
    birth_registered_on: date | None = None
    birth_registration_commune_code: str | None = Field(default=None, max_length=5)
    birth_certificate_number: str | None = Field(default=None, max_length=50)
    # Guardians and household (cha me, nguoi cham soc)
    guardians: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    guardian_phones: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(String(20)), nullable=False))
    # School (truong hoc)
    school_name: str | None = Field(default=None, max_length=200)
    school_level: str | None = Field(default=None, max_length=20)
    school_grade: int | None = None
    school_status: str | None = Field(default=None, max_length=20)
    # Health (the bao hiem y te, khuyet tat)
    health_insurance_number: str | None = Field(default=None, max_length=15)
    health_insurance_valid_from: date | None = None
    health_insurance_valid_until: date | None = None
    disability: bool = False
    disability_level: str | None = Field(default=None, max_length=30)
    # Protection (tre em co hoan canh dac biet, Law Art. 10; nguy co)
    special_groups: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    at_risk_flags: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(String(40)), nullable=False))
    # Status
    status: str = Field(default="active", max_length=20)
    status_date: date | None = None
    merged_into_id: uuid.UUID | None = Field(default=None, foreign_key="child.id")
    # True when an officer registered this child knowing that a record with the same name, date of birth and
    # commune exists (confirm_not_duplicate): it stays out of the unique index of the same person.
    confirmed_distinct: bool = False
    created_by: str = Field(max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_by: str = Field(max_length=100)
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


class ChildRevision(RegistryTable, table=True):
    """One change of a child record: who, when, which fields, old and new values (lich su thay doi)."""

    __tablename__ = "child_revision"
    __table_args__ = (Index("ix_child_revision_child", "child_id", "revision", unique=True),)

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True))
    child_id: uuid.UUID = Field(foreign_key="child.id")
    revision: int
    at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))
    actor_id: str = Field(max_length=100)
    actor_role: str = Field(max_length=50)
    actor_agency: str = Field(max_length=50)
    change: str = Field(max_length=20, description="create, update, merge, merged_into, import")
    changes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))


class CreationRequest(RegistryTable, table=True):
    """A child creation made with an `Idempotency-Key`: a retry with the same key answers the child it created.

    The primary key settles two requests with the same key at the same moment: the second waits for the first's
    transaction and then finds its row. `request_hash` tells a replay from a different body sent under the same key.
    """

    __tablename__ = "creation_request"

    created_by: str = Field(max_length=100, primary_key=True)
    idempotency_key: str = Field(max_length=200, primary_key=True)
    request_hash: str = Field(max_length=64)
    child_id: uuid.UUID = Field(sa_column=Column(
        ForeignKey("child.id", deferrable=True, initially="DEFERRED"), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


class MatchQuota(RegistryTable, table=True):
    """How many match searches one hotline operator made in one window: the limit holds across replicas."""

    __tablename__ = "match_quota"

    subject_id: str = Field(max_length=100, primary_key=True)
    window_start: datetime = Field(sa_column=Column(DateTime(timezone=True), primary_key=True))
    count: int = 0


class ImportJob(RegistryTable, table=True):
    """A bulk import of a commune's list from CSV or XLSX, run in the background."""

    __tablename__ = "import_job"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    created_by: str = Field(max_length=100, index=True)
    actor_role: str = Field(max_length=50)
    actor_agency: str = Field(max_length=50)
    jurisdiction: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    file_format: str = Field(max_length=10)
    file_sha256: str = Field(max_length=64)
    file_size: int
    mode: str = Field(max_length=20)
    mapping: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    status: str = Field(default="queued", max_length=20)
    total_rows: int | None = None
    rows_done: int = 0
    created_count: int = 0
    duplicate_count: int = 0
    error_count: int = 0
    failure: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class ImportRowError(RegistryTable, table=True):
    """One problem with one row of an import: the row number, the field and what is wrong (never the value)."""

    __tablename__ = "import_row_error"

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True))
    job_id: uuid.UUID = Field(sa_column=Column(ForeignKey("import_job.id", ondelete="CASCADE"), nullable=False,
                                               index=True))
    row_number: int
    field: str = Field(max_length=100)
    message: str = Field(max_length=300)


class ImportRow(RegistryTable, table=True):
    """A validated row waiting to be applied: staged by COPY, applied by one INSERT ... SELECT.

    Unlogged: staged rows are transient (a crash fails the job anyway), so they skip the write-ahead log.
    """

    __tablename__ = "import_row"
    __table_args__ = {"prefixes": ["UNLOGGED"]}

    job_id: uuid.UUID = Field(sa_column=Column(ForeignKey("import_job.id", ondelete="CASCADE"), primary_key=True))
    row_number: int = Field(primary_key=True)
    child_id: uuid.UUID
    personal_id: str | None = Field(default=None, max_length=12)
    commune_code: str = Field(max_length=5)
    name_search: str = Field(sa_column=Column(String(200, collation="C"), nullable=False))
    date_of_birth: date
    record: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    snapshot: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))

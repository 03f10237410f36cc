"""Cases tables.

`case_record` holds the current state and its `version` (the ETag, and the `revision` of event snapshots);
`case_history` holds one row per version, so the history can be checked for gaps. Personal data (reporter, child
details, free text) stays in these tables and never leaves in events or logs.
"""

import copy
import uuid
from datetime import date, datetime
from functools import cache, partial
from typing import Any, TypeVar

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from services.common.audit import AuditLog
from services.common.db import new_metadata
from services.common.outbox import Outbox
from services.common.sync import SyncLog


class CasesTable(SQLModel, registry=registry(metadata=new_metadata())):
    pass


metadata = CasesTable.metadata
outbox = Outbox(metadata, source="cases")
audit = AuditLog(metadata)
sync_log = SyncLog(metadata)  # written by triggers (migration 6a1f3c2e9b7d): a case, its tasks and notes
Model = TypeVar("Model", bound=CasesTable)


def as_written(model: type[Model], values: dict[str, Any]) -> Model:
    """An instance holding rows this request writes by its own statement, made as the ORM makes one from a row it
    read: the values set at once, fields not given at their defaults. The constructor validates and tracks each
    field one by one (a case has 41): on intake that was the largest CPU cost of the cases service. The instance is
    for reading back (the answer, the event), never for adding to a session."""
    required, defaults, factories = _field_defaults(model)
    if missing := required - values.keys():
        raise TypeError(f"{model.__name__}: no value for {', '.join(sorted(missing))}")
    instance = model.__mapper__.class_manager.new_instance()  # type: ignore[attr-defined]
    instance.__dict__.update(defaults)
    instance.__dict__.update({name: factory() for name, factory in factories.items() if name not in values})
    instance.__dict__.update(values)
    return instance


@cache
def _field_defaults(model: type[CasesTable]) -> tuple[frozenset[str], dict[str, Any], dict[str, Any]]:
    required, defaults, factories = set(), {}, {}
    for name, field in model.model_fields.items():
        if field.default_factory is not None:
            factories[name] = field.default_factory
        elif isinstance(field.default, list | dict | set):  # each instance its own, as the constructor gives
            factories[name] = partial(copy.deepcopy, field.default)
        elif field.is_required():
            required.add(name)
        else:
            defaults[name] = field.default
    return frozenset(required), defaults, factories


def _case_fk() -> Any:
    return Field(sa_column=Column(UUID(as_uuid=True), ForeignKey("case_record.id"), nullable=False, index=True))


class Case(CasesTable, table=True):
    """Hồ sơ vụ việc: a report about a child abused, at risk or in special circumstances, and everything done about
    it (Decree 56 Arts. 25-33). `commune_code` is the commune that leads the case now (Law Art. 52(2)): the commune
    where it happened until it hands the case to the commune where the child lives."""

    __tablename__ = "case_record"
    __table_args__ = (
        UniqueConstraint("created_by", "idempotency_key", name="uq_case_record_idempotency"),
        # INCLUDE: the work lists and the involvement test find case ids without visiting the wide rows.
        Index("ix_case_record_commune_state", "commune_code", "state", postgresql_include=["id", "intake_agency"]),
        Index("ix_case_record_province_state", "province_code", "state",
              postgresql_include=["id", "commune_code", "intake_agency"]),
        Index("ix_case_record_created_by", "created_by", "received_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    state: str = Field(max_length=30)
    version: int = 1
    province_code: str = Field(max_length=2)
    commune_code: str = Field(max_length=5, description="The commune that leads the case now")
    incident_commune_code: str = Field(max_length=5)
    residence_commune_code: str | None = Field(default=None, max_length=5)
    received_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    incident_date: date | None = None
    intake_agency: str = Field(max_length=50)
    created_by: str = Field(max_length=100)
    idempotency_key: str | None = Field(default=None, max_length=200)
    # The intake body's digest: the same key with another body is refused (422), not answered with this case.
    idempotency_digest: str | None = Field(default=None, max_length=64)

    reporter_anonymous: bool = True
    reporter: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))

    # Set only when the leading commune links the child (link-child): a registry id given at intake is a hint it
    # confirms, never a link, so filing a report cannot open a child's record (trust finding 1).
    child_id: uuid.UUID | None = None
    child_id_hint: uuid.UUID | None = None
    child_first_name: str | None = Field(default=None, max_length=100)
    child_age_years: int | None = None
    child_sex: str = Field(max_length=10)
    child_age_group: str = Field(max_length=10)
    child_place: str | None = Field(default=None, max_length=200)

    category: str = Field(max_length=30, sa_column_kwargs={"server_default": "abused"})
    channel: str | None = Field(default=None, max_length=30)
    abuse_forms: list[str] = Field(sa_column=Column(ARRAY(String(30)), nullable=False))
    risk_forms: list[str] = Field(default_factory=list, sa_column=Column(
        ARRAY(String(30)), nullable=False, server_default="{}"))
    special_groups: list[str] = Field(default_factory=list, sa_column=Column(
        ARRAY(String(2)), nullable=False, server_default="{}"))
    environment: str | None = Field(default=None, max_length=30)
    perpetrator_relationship: str = Field(max_length=30)
    # Người bị nghi là thủ phạm: which of the linked child's guardians is the alleged perpetrator (the registry
    # guardian id, or only the relationship when the guardian is not registered). Held on the case, never on the
    # registry record: an allegation is part of the case file (Decree 56 Art. 27(1)(h): parents' views are not
    # asked of a parent who is the alleged abuser).
    perpetrator_guardian_id: uuid.UUID | None = None
    perpetrator_guardian_relationship: str | None = Field(default=None, max_length=30)
    description: str = Field(sa_column=Column(Text, nullable=False))
    danger_indicators: list[str] = Field(sa_column=Column(ARRAY(String(40)), nullable=False))
    # The rest of Form 01 (names, parents, carer, places, what was done): shown to the managers, never in events.
    intake_details: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))

    emergency: bool | None = None
    emergency_measure_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True),
                                                                                nullable=True))
    emergency_measure_agency: str | None = Field(default=None, max_length=30)
    child_views_taken: bool | None = None
    parent_views: str | None = Field(default=None, max_length=30)
    plan_cycle: int = 0
    plan_approved_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    closure_kind: str | None = Field(default=None, max_length=10)
    closure_reason: str | None = Field(default=None, max_length=30)
    closed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class CaseHistory(CasesTable, table=True):
    """Quá trình xử lý: one row per version of the case (who, agency, when, what, from which state to which).

    `commune_code` is the commune that led the case when the row was written: after a handover, the commune that
    gave the case away still reads the rows of its own time (its read-only trace)."""

    __tablename__ = "case_history"
    __table_args__ = (UniqueConstraint("case_id", "version", name="uq_case_history_version"),
                      Index("ix_case_history_commune", "commune_code", "case_id"))

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True))
    case_id: uuid.UUID = _case_fk()
    version: int
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    actor_id: str = Field(max_length=100)
    actor_role: str = Field(max_length=50)
    agency: str = Field(max_length=50)
    action: str = Field(max_length=50)
    from_state: str | None = Field(default=None, max_length=30)
    to_state: str = Field(max_length=30)
    data: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    commune_code: str | None = Field(default=None, max_length=5)


class CaseDeadline(CasesTable, table=True):
    """A statutory or configured deadline one step started; met, cancelled (case closed) or missed."""

    __tablename__ = "case_deadline"
    __table_args__ = (
        Index("ix_case_deadline_due_open", "due_at",
              postgresql_where=text("met_at IS NULL AND cancelled_at IS NULL AND missed_at IS NULL")),
        Index("ix_case_deadline_running", "case_id", "due_at",
              postgresql_where=text("met_at IS NULL AND cancelled_at IS NULL")),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    case_id: uuid.UUID = _case_fk()
    name: str = Field(max_length=40)
    started_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    due_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    met_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    cancelled_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    missed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))

    @property
    def running(self) -> bool:
        return self.met_at is None and self.cancelled_at is None

    @property
    def missed(self) -> bool:
        return self.missed_at is not None or (self.met_at is not None and self.met_at > self.due_at)


class CasePlan(CasesTable, table=True):
    """Kế hoạch hỗ trợ, can thiệp (Form 04) and the chairman's decision on it (Form 05). `tasks` are the proposed
    tasks the chairman reads before deciding; approval turns them into `CaseTask` rows of the plan's cycle."""

    __tablename__ = "case_plan"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    case_id: uuid.UUID = _case_fk()
    cycle: int
    status: str = Field(max_length=20)  # submitted, approved, returned, superseded
    objectives: str = Field(sa_column=Column(Text, nullable=False))
    measures: list[dict[str, Any]] = Field(sa_column=Column(JSONB, nullable=False))
    tasks: list[dict[str, Any]] = Field(sa_column=Column(JSONB, nullable=False))
    submitted_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    submitted_by: str = Field(max_length=100)
    decided_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    decided_by: str | None = Field(default=None, max_length=100)
    decision_number: str | None = Field(default=None, max_length=200)
    return_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class CaseTask(CasesTable, table=True):
    """A task for one agency: a plan task of a plan cycle (Decree 56 Art. 28(3), 29(2)) or a referral (sexual abuse:
    Joint Circular 01/2022). `due_date` is the expected end."""

    __tablename__ = "case_task"
    __table_args__ = (
        Index("ix_case_task_agency_status_due", "agency", "status", "due_date"),
        Index("ix_case_task_case_agency", "case_id", "agency"),
        # The work list finds the open tasks assigned to a person without reading the others.
        Index("ix_case_task_assignee_open", "assignee_id",
              postgresql_where=text("status IN ('open', 'in_progress') AND assignee_id IS NOT NULL")),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    case_id: uuid.UUID = Field(sa_column=Column(UUID(as_uuid=True), ForeignKey("case_record.id"), nullable=False))
    plan_id: uuid.UUID | None = Field(default=None, foreign_key="case_plan.id")
    kind: str = Field(max_length=20)  # plan, referral
    agency: str = Field(max_length=30)
    assignee_id: str | None = Field(default=None, max_length=200)
    title: str = Field(max_length=200)
    cycle: int | None = None
    start_date: date | None = None
    due_date: date
    provider: str | None = Field(default=None, max_length=200)
    budget_vnd: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    status: str = Field(max_length=20)
    status_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    notes: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    version: int = 1
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class CaseSeparation(CasesTable, table=True):
    """Tạm thời cách ly trẻ em khỏi cha, mẹ, người chăm sóc (Form 07; Decree 56 Art. 32): one decision, its
    extensions and its end. Place and carer are personal data: they stay here, never in events."""

    __tablename__ = "case_separation"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    case_id: uuid.UUID = _case_fk()
    decided_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    decided_by: str = Field(max_length=100)
    decision_number: str = Field(max_length=200)
    ground: str = Field(max_length=40)
    duration_days: int
    ends_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    extended_days: int = 0
    authority_name: str | None = Field(default=None, max_length=200)
    authority_document: str | None = Field(default=None, max_length=200)
    place: str = Field(max_length=200)
    alternative_carer: str = Field(max_length=200)
    ended_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    end_kind: str | None = Field(default=None, max_length=30)


class CaseConsent(CasesTable, table=True):
    """Sự đồng ý: consent to disclose a child's private information (Law on Children Art. 6(11), 21; Decree 56
    Art. 33, 36; Personal Data Protection Law 2025 Art. 24). The child from 7 years old and a parent or guardian
    each give their own; an officer records it; it can be withdrawn, never deleted."""

    __tablename__ = "case_consent"
    __table_args__ = (Index("ix_case_consent_case", "case_id", "given_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    case_id: uuid.UUID = Field(sa_column=Column(UUID(as_uuid=True), ForeignKey("case_record.id"), nullable=False))
    given_by: str = Field(max_length=20)  # child, parent, guardian
    giver_name: str | None = Field(default=None, max_length=200)
    guardian_id: uuid.UUID | None = None
    child_age_years: int | None = None
    purpose: str = Field(max_length=40)
    scope: str = Field(sa_column=Column(Text, nullable=False))
    recipient: str | None = Field(default=None, max_length=200)
    given_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    recorded_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    recorded_by: str = Field(max_length=100)
    withdrawn_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    withdrawn_by: str | None = Field(default=None, max_length=100)
    withdrawal_note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    version: int = 1


class CaseDisclosure(CasesTable, table=True):
    """Cung cấp thông tin: information of a case given outside the plan's bodies, on the consents it rests on or
    on a legal basis named (for example a competent authority's request, Law on Children Art. 6(7))."""

    __tablename__ = "case_disclosure"
    __table_args__ = (Index("ix_case_disclosure_case", "case_id", "disclosed_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    case_id: uuid.UUID = Field(sa_column=Column(UUID(as_uuid=True), ForeignKey("case_record.id"), nullable=False))
    recipient: str = Field(max_length=200)
    purpose: str = Field(max_length=40)
    information: str = Field(sa_column=Column(Text, nullable=False))
    basis: str = Field(max_length=40)
    consent_ids: list[uuid.UUID] = Field(default_factory=list,
                                         sa_column=Column(ARRAY(UUID(as_uuid=True)), nullable=False))
    legal_reference: str | None = Field(default=None, max_length=300)
    disclosed_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    disclosed_by: str = Field(max_length=100)
    agency: str = Field(max_length=50)


class CaseNote(CasesTable, table=True):
    """A case note, visible to the case managers only or to every participant."""

    __tablename__ = "case_note"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    case_id: uuid.UUID = _case_fk()
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    author_id: str = Field(max_length=100)
    author_role: str = Field(max_length=50)
    agency: str = Field(max_length=50)
    visibility: str = Field(max_length=20)
    text: str = Field(sa_column=Column(Text, nullable=False))


class Attachment(CasesTable, table=True):
    """Tai lieu kem theo ho so: a file on a case (photo of an injury, medical certificate, police record, the scan of
    a signed decision). The bytes are in the object store, encrypted (`object_key`); this row is what makes them
    exist: an object without a row is an orphan, removed by the sweeper."""

    __tablename__ = "attachment"
    __table_args__ = (
        Index("ix_attachment_case", "case_id", "uploaded_at"),
        Index("ix_attachment_purge_due", "deleted_at",
              postgresql_where=text("purged_at IS NULL AND deleted_at IS NOT NULL")),
        Index("ix_attachment_key_id", "key_id", postgresql_where=text("purged_at IS NULL")),
        UniqueConstraint("object_key", name="uq_attachment_object_key"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    case_id: uuid.UUID = Field(sa_column=Column(UUID(as_uuid=True), ForeignKey("case_record.id"), nullable=False))
    kind: str = Field(max_length=30)
    form_number: str | None = Field(default=None, max_length=10)
    caption: str = Field(default="", sa_column=Column(Text, nullable=False))
    visibility: str = Field(max_length=20)
    filename: str | None = Field(default=None, max_length=200)
    media_type: str = Field(max_length=100)
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    sha256: str = Field(max_length=64)
    object_key: str = Field(max_length=300)
    key_id: str = Field(max_length=64)
    uploaded_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    uploaded_by: str = Field(max_length=100)
    uploader_role: str = Field(max_length=50)
    uploader_agency: str = Field(max_length=50)
    deleted_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    deleted_by: str | None = Field(default=None, max_length=100)
    delete_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    legal_hold: bool = False
    hold_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    hold_changed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    hold_changed_by: str | None = Field(default=None, max_length=100)
    purged_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    version: int = 1


class AttachmentUpload(CasesTable, table=True):
    """A resumable upload in progress: parts arrive over a broken connection until one call finishes it. The parts
    wait in the object store under `staging_key` (an S3 multipart upload, `token`)."""

    __tablename__ = "attachment_upload"
    __table_args__ = (Index("ix_attachment_upload_expires", "expires_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    case_id: uuid.UUID = Field(sa_column=Column(UUID(as_uuid=True), ForeignKey("case_record.id"), nullable=False))
    created_by: str = Field(max_length=100)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    kind: str = Field(max_length=30)
    form_number: str | None = Field(default=None, max_length=10)
    caption: str = Field(default="", sa_column=Column(Text, nullable=False))
    visibility: str = Field(max_length=20)
    filename: str | None = Field(default=None, max_length=200)
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    part_size: int
    staging_key: str = Field(max_length=300)
    token: str = Field(sa_column=Column(Text, nullable=False))


class ObjectSweep(CasesTable, table=True):
    """How far the orphan sweeper has looked: object keys start with their time, so each round lists only the keys
    written since the last one (minus the grace period)."""

    __tablename__ = "object_sweep"

    name: str = Field(primary_key=True, max_length=50)
    swept_until: str = Field(max_length=100)
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class DocumentSequence(CasesTable, table=True):
    """So dang ky van ban: the last number given in one series (an issuing body's papers of one kind in one year).

    The row is locked by the upsert that takes the next number, in the transaction that registers the paper, so
    numbers are gapless: a rolled-back step gives its number back.
    """

    __tablename__ = "document_sequence"

    issuer: str = Field(primary_key=True, max_length=60)  # a commune code, or an agency (and its commune)
    year: int = Field(primary_key=True)
    series: str = Field(primary_key=True, max_length=20)
    last_number: int


class CaseDocument(CasesTable, table=True):
    """Van ban cua ho so: one Decree 56 paper of a case (Mau 01-07, the needs-meeting minutes), numbered when its
    step was taken. Its renderings are `CaseDocumentVersion` rows."""

    __tablename__ = "case_document"
    __table_args__ = (
        UniqueConstraint("case_id", "paper", "step_version", name="uq_case_document_step"),
        UniqueConstraint("issuer", "year", "series", "number", name="uq_case_document_number"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    case_id: uuid.UUID = _case_fk()
    paper: str = Field(max_length=20)  # "01".."07", "03-minutes"
    step_version: int  # the case version the step made (1: the intake)
    action: str = Field(max_length=50)
    issuer: str = Field(max_length=60)
    issuer_agency: str = Field(max_length=50)
    issuer_commune_code: str | None = Field(default=None, max_length=5)
    year: int
    series: str = Field(max_length=20)
    number: int
    reference: str = Field(max_length=100)  # number and symbol, "05/QĐ-UBND"
    issued_on: date
    signer_name: str = Field(default="", max_length=200)
    registered_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class CaseDocumentVersion(CasesTable, table=True):
    """A rendering of a paper from one case version, kept for good: the PDF and the DOCX, with their SHA-256.

    `audience` is empty for the whole paper, or the agency an extract was made for (its part of a plan)."""

    __tablename__ = "case_document_version"
    __table_args__ = (
        UniqueConstraint("document_id", "audience", "case_version", name="uq_case_document_version"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    document_id: uuid.UUID = Field(sa_column=Column(UUID(as_uuid=True), ForeignKey("case_document.id"),
                                                    nullable=False))
    audience: str = Field(default="", max_length=30)
    case_version: int
    pdf: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    pdf_sha256: str = Field(max_length=64)
    docx: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    docx_sha256: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))

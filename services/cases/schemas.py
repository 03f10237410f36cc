"""Cases API shapes: the intake (Form 01), what each caller may read back, tasks, notes and the work list."""

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from services.cases import forms
from services.cases.consent import ConsentGiver, DisclosureBasis, DisclosurePurpose
from services.cases.forms import LongText, PlainText, Reporter, ShortText
from services.cases.vocabulary import NoteVisibility, TaskStatus
from services.common.guardians import Relationship as GuardianRelationship
from services.common.locations import is_commune
from services.common.sync import SyncItem, SyncPage


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CaseCreate(forms.IntakeReport):
    """Báo cáo tiếp nhận thông tin trẻ em (Form 01): the intake's body. Its fields live with the other forms
    (`forms.IntakeReport`); this name is the API's."""


def _official_commune(value: str) -> str:
    if not is_commune(value):
        raise ValueError("not an official commune/ward code")
    return value


class DeadlineRead(BaseModel):
    name: str
    started_at: datetime
    due_at: datetime
    met_at: datetime | None
    missed: bool
    running: bool


class TaskRead(BaseModel):
    id: uuid.UUID
    case_id: uuid.UUID
    kind: str
    agency: str
    assignee_id: str | None
    title: str
    cycle: int | None = Field(description="The plan cycle the task belongs to; null for a referral.")
    start_date: date | None
    due_date: date = Field(description="Expected end.")
    provider: str | None
    budget_vnd: int | None
    status: str
    status_reason: str | None
    notes: list[dict[str, Any]]
    version: int


class PlanRead(BaseModel):
    id: uuid.UUID
    cycle: int
    status: str
    objectives: str
    measures: list[dict[str, Any]]
    tasks: list[dict[str, Any]] = Field(description="The proposed tasks (Form 04): agency, what, start, expected "
                                        "end, provider, budget; the chairman reads them before deciding.")
    submitted_at: datetime
    decided_at: datetime | None
    decision_number: str | None = Field(description="The approval decision's number and symbol (Form 05), from the "
                                        "commune's register")
    return_reason: str | None


class SeparationRead(BaseModel):
    """A temporary separation (Form 07), shown to the case managers."""

    id: uuid.UUID
    decided_at: datetime
    decision_number: str = Field(description="The separation decision's number and symbol (Form 07), from the "
                                 "commune's register")
    ground: str
    duration_days: int
    ends_at: datetime
    extended_days: int
    authority_name: str | None
    authority_document: str | None
    place: str
    alternative_carer: str
    ended_at: datetime | None
    end_kind: str | None


class EmergencyMeasureRead(BaseModel):
    taken_at: datetime
    agency: str | None


class ChildRead(BaseModel):
    child_id: uuid.UUID | None = Field(description="The registry child the leading commune linked")
    child_id_hint: uuid.UUID | None = Field(None, description="A registry id named at intake, not yet confirmed by "
                                            "a link; shown to the case managers only")
    first_name: str | None
    approximate_age: int | None
    sex: str
    age_group: str
    place: str | None


class AllegedPerpetratorRead(BaseModel):
    guardian_id: uuid.UUID | None
    relationship: str | None


class CaseRead(BaseModel):
    """A case as this caller may see it: `reporter` is null unless the caller may see who reported."""

    id: uuid.UUID
    state: str
    version: int
    province_code: str
    commune_code: str = Field(description="The commune that leads the case now (Law Art. 52(2)).")
    incident_commune_code: str
    residence_commune_code: str | None
    received_at: datetime
    updated_at: datetime
    incident_date: date | None
    intake_agency: str
    category: str
    channel: str | None
    reporter_anonymous: bool
    reporter: Reporter | None
    child: ChildRead
    abuse_forms: list[str]
    risk_forms: list[str]
    special_groups: list[str]
    environment: str | None
    perpetrator_relationship: str
    alleged_perpetrator: AllegedPerpetratorRead | None = Field(
        description="Which guardian is the alleged perpetrator; shown to the case managers and the police only")
    description: str | None = Field(description="Null for oversight readers (no free text)")
    danger_indicators: list[str]
    intake_details: dict[str, Any] | None = Field(description="The rest of Form 01 (names, parents, carer, places); "
                                                  "shown to the case managers only.")
    emergency: bool | None
    emergency_measure: EmergencyMeasureRead | None
    separations: list[SeparationRead] = Field(description="Shown to the case managers only.")
    child_views_taken: bool | None
    parent_views: str | None
    plan_cycle: int
    plan_approved_at: datetime | None
    closure_kind: str | None
    closure_reason: str | None
    closed_at: datetime | None
    overdue: bool
    deadlines: list[DeadlineRead]
    tasks: list[TaskRead]
    plan: PlanRead | None
    allowed_actions: list[str] = Field(description="Workflow actions this caller may take now.")


class CaseSummary(BaseModel):
    """A row of the case list: the codes, and what a list screen shows (labels, the child's first name and age,
    the next due time). The child's name is null for oversight readers."""

    id: uuid.UUID
    state: str
    state_label: str = Field(description="Nhãn trạng thái (tiếng Việt)")
    version: int
    province_code: str
    commune_code: str
    commune_name: str | None
    received_at: datetime
    category: str
    child_first_name: str | None
    child_age_years: int | None
    abuse_forms: list[str]
    environment: str | None
    emergency: bool | None
    overdue: bool
    next_due_at: datetime | None = Field(description="The earliest running deadline of the case")


class HistoryEntry(BaseModel):
    version: int
    at: datetime
    actor_id: str
    actor_role: str
    agency: str
    action: str
    from_state: str | None
    to_state: str
    commune_code: str | None = Field(description="The commune that led the case when this was done.")
    data: dict[str, Any] | None = Field(description="The form recorded; shown to the case managers only.")


class NoteCreate(Strict):
    text: LongText
    visibility: NoteVisibility = NoteVisibility.MANAGERS


class NoteRead(BaseModel):
    id: uuid.UUID
    at: datetime
    author_id: str
    author_role: str
    agency: str
    visibility: str
    text: str


class TaskUpdate(Strict):
    """A task's progress: open → in_progress → done, or cannot_be_done with a reason; the case officer reopens or
    waives with a reason."""

    status: TaskStatus | None = None
    reason: Annotated[str, Field(min_length=1, max_length=2000), PlainText] | None = None
    assignee_id: ShortText | None = None
    note: Annotated[str, Field(min_length=1, max_length=4000), PlainText] | None = None

    @field_validator("status")
    @classmethod
    def _not_cancelled(cls, value: TaskStatus | None) -> TaskStatus | None:
        if value == TaskStatus.CANCELLED:
            raise ValueError("a task is cancelled only by closing the case or approving a new plan")
        return value

    @model_validator(mode="after")
    def _something(self) -> "TaskUpdate":
        if self.status is None and self.assignee_id is None and self.note is None:
            raise ValueError("nothing to change")
        return self


class ChildRegistration(Strict):
    full_name: ShortText
    sex: str = Field(pattern=r"^(male|female)$")
    date_of_birth: date
    commune_code: str = Field(pattern=r"^\d{5}$")

    _commune = field_validator("commune_code")(_official_commune)


class LinkChild(Strict):
    """Link to a child already in the registry, or register the child there first."""

    child_id: uuid.UUID | None = None
    new_child: ChildRegistration | None = Field(None, description="Register this child first, then link it.")

    @model_validator(mode="after")
    def _exactly_one(self) -> "LinkChild":
        if (self.child_id is None) == (self.new_child is None):
            raise ValueError("give either child_id or new_child")
        return self


class WorkItem(BaseModel):
    """One thing waiting for the caller, with what a list screen shows of its case.

    - `deadline`: a running deadline of a case the caller leads (`name` is the deadline);
    - `decision`: a case waiting for a decision the caller's role takes (`actions` are the steps it may take, from
      the workflow table);
    - `task`: a task of the caller's agency (or assigned to the caller) still open.
    """

    kind: Literal["deadline", "decision", "task"]
    id: str = Field(description="The deadline's, task's or case's id (for a decision)")
    case_id: uuid.UUID
    name: str = Field(description="The deadline's name, the task's title, or the first of `actions`")
    actions: list[str]
    due_at: datetime | None
    overdue: bool
    state: str
    state_label: str
    step: str | None = Field(description="The workflow action this row asks for (see GET /v1/workflow); null for a "
                             "task")
    commune_code: str
    commune_name: str | None
    child_first_name: str | None
    child_age_years: int | None
    task_status: str | None = None
    task_version: int | None = None


class ConsentCreate(Strict):
    """Sự đồng ý: who consented to what, when (Law on Children Art. 6(11), 21; Decree 56 Art. 33, 36)."""

    given_by: ConsentGiver
    giver_name: ShortText | None = None
    guardian_id: uuid.UUID | None = Field(None, description="The registry guardian who consented, when registered")
    child_age_years: int | None = Field(None, ge=0, le=17, description="The child's age when it consented")
    purpose: DisclosurePurpose
    scope: LongText = Field(description="What information, in what form, may be disclosed")
    recipient: ShortText | None = None
    given_at: AwareDatetime

    @field_validator("given_at")
    @classmethod
    def _plausible(cls, value: datetime) -> datetime:
        if value.year < 2016:
            raise ValueError("before the Law on Children")
        return value


class ConsentRead(BaseModel):
    id: uuid.UUID
    case_id: uuid.UUID
    given_by: str
    giver_name: str | None
    guardian_id: uuid.UUID | None
    child_age_years: int | None
    purpose: str
    scope: str
    recipient: str | None
    given_at: datetime
    recorded_at: datetime
    recorded_by: str
    withdrawn_at: datetime | None
    withdrawn_by: str | None
    withdrawal_note: str | None


class ConsentWithdrawal(Strict):
    note: LongText | None = None


class DisclosureCreate(Strict):
    """Information given outside the plan's bodies, on consents or on a named legal exception."""

    recipient: ShortText
    purpose: DisclosurePurpose
    information: LongText = Field(description="What was given")
    basis: DisclosureBasis
    consent_ids: list[uuid.UUID] = Field(default_factory=list, max_length=10)
    legal_reference: ShortText | None = Field(None, description="For a legal exception: the request's number and "
                                              "the article")


class DisclosureRead(BaseModel):
    id: uuid.UUID
    case_id: uuid.UUID
    recipient: str
    purpose: str
    information: str
    basis: str
    consent_ids: list[uuid.UUID]
    legal_reference: str | None
    disclosed_at: datetime
    disclosed_by: str
    agency: str


class AllegedPerpetrator(Strict):
    """Người bị nghi là thủ phạm, among the child's guardians: the registry guardian's id (the child must be
    linked), or only the relationship when the guardian is not registered. Held on the case, never in the
    registry."""

    guardian_id: uuid.UUID | None = None
    relationship: GuardianRelationship | None = None

    @model_validator(mode="after")
    def _one(self) -> "AllegedPerpetrator":
        if (self.guardian_id is None) == (self.relationship is None):
            raise ValueError("give either guardian_id or relationship")
        return self



class StepRead(BaseModel):
    action: str
    sources: list[str]
    target: str | None
    permission: str
    roles: list[str]
    form: dict[str, Any]
    starts: list[str]
    stops: list[str]
    legal_step: str


class DocumentVersionRead(BaseModel):
    """One rendition of a paper, kept for good: made from `case_version` of the case."""

    case_version: int
    pdf_sha256: str
    docx_sha256: str
    created_at: datetime


class DocumentRead(BaseModel):
    """Văn bản của hồ sơ: a Decree 56 paper of the case (Mẫu số 01-07, the needs-meeting minutes), as the caller
    may see it."""

    id: uuid.UUID
    case_id: uuid.UUID
    paper: str = Field(description='"01" ... "07", or "03-minutes"')
    title: str = Field(description="Tên văn bản")
    reference: str = Field(description="Số, ký hiệu văn bản: 05/QĐ-UBND")
    issued_on: date
    step_version: int = Field(description="The case version the step that made the paper wrote")
    action: str
    extract_for: str | None = Field(None, description="The agency this extract of the plan is addressed to")
    versions: list[DocumentVersionRead] = Field(description="Renditions kept so far, oldest first; fetching the "
                                                "paper makes one from the case as it stands if its text changed")
    pdf_url: str
    docx_url: str


class CaseReplica(BaseModel):
    """A case as a phone keeps it (offline sync): the case as `GET /v1/cases/{id}` answers it to you, with its
    tasks, and the notes you see."""

    case: CaseRead
    notes: list[NoteRead]


class CaseChange(SyncItem[CaseReplica]):
    """A case that changed: its replica, or a tombstone when it left your reach."""


class CaseChangePage(SyncPage[CaseChange]):
    """Changes of the cases you can see, in the order they were made."""

"""Cases API shapes: the intake (Form 01), what each caller may read back, tasks, notes and the work list."""

import uuid
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.cases import forms
from services.cases.forms import LongText, PlainText, Reporter, ShortText
from services.cases.vocabulary import NoteVisibility, TaskStatus
from services.common.locations import is_commune


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
    decision_number: str | None
    return_reason: str | None


class SeparationRead(BaseModel):
    """A temporary separation (Form 07), shown to the case managers."""

    id: uuid.UUID
    decided_at: datetime
    decision_number: str
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
    child_id: uuid.UUID | None
    first_name: str | None
    approximate_age: int | None
    sex: str
    age_group: str
    place: str | None


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
    description: str
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
    id: uuid.UUID
    state: str
    version: int
    province_code: str
    commune_code: str
    received_at: datetime
    category: str
    abuse_forms: list[str]
    environment: str | None
    emergency: bool | None
    overdue: bool


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


class DeadlineDue(BaseModel):
    case_id: uuid.UUID
    commune_code: str
    state: str
    deadline: str
    due_at: datetime
    missed: bool


class Work(BaseModel):
    """What waits for the caller."""

    tasks: list[TaskRead]
    approvals: list[CaseSummary]
    deadlines: list[DeadlineDue]


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

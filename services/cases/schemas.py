"""Cases API shapes: the intake (Form 01), what each caller may read back, tasks, notes and the work list."""

import uuid
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.cases.forms import LongText, PlainText, ShortText
from services.cases.vocabulary import (
    AbuseForm,
    ChildSex,
    DangerIndicator,
    Environment,
    NoteVisibility,
    PerpetratorRelationship,
    TaskStatus,
)
from services.common.clock import utcnow
from services.common.locations import is_commune
from services.common.sync import SyncItem, SyncPage


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Reporter(Strict):
    """Who reported. Visible only to the intake's own agency and the case managers."""

    anonymous: bool = True
    name: ShortText | None = None
    phone: str | None = Field(None, pattern=r"^\+?[0-9 ]{3,20}$")
    relationship: ShortText | None = Field(None, description="To the child: neighbour, teacher, parent, ...")

    @model_validator(mode="after")
    def _anonymous_means_unnamed(self) -> "Reporter":
        if self.anonymous and (self.name or self.phone):
            raise ValueError("an anonymous reporter has no name or phone")
        return self


class ChildKnown(Strict):
    """What the reporter knows of the child: often only a first name, an age, a place; or a registry id."""

    child_id: uuid.UUID | None = Field(None, description="The child's registry id, when known.")
    first_name: ShortText | None = None
    approximate_age: int | None = Field(None, ge=0, le=17)
    sex: ChildSex = ChildSex.UNKNOWN
    place: ShortText | None = Field(None, description="Where the child can be found (village, school, ...)")


def _official_commune(value: str) -> str:
    if not is_commune(value):
        raise ValueError("not an official commune/ward code")
    return value


class CaseCreate(Strict):
    """Bao cao tiep nhan thong tin (Form 01)."""

    reporter: Reporter = Field(default_factory=Reporter)
    child: ChildKnown = Field(default_factory=ChildKnown)
    incident_date: date | None = None
    incident_commune_code: str = Field(pattern=r"^\d{5}$", description="Official code of the commune where it "
                                       "happened: it becomes the responsible commune.")
    abuse_forms: list[AbuseForm] = Field(min_length=1, max_length=len(AbuseForm))
    environment: Environment
    perpetrator_relationship: PerpetratorRelationship = PerpetratorRelationship.UNKNOWN
    description: LongText
    danger_indicators: list[DangerIndicator] = Field(default_factory=list, max_length=len(DangerIndicator))

    _commune = field_validator("incident_commune_code")(_official_commune)

    @field_validator("abuse_forms", "danger_indicators")
    @classmethod
    def _distinct(cls, values: list[str]) -> list[str]:
        if len(set(values)) != len(values):
            raise ValueError("values must not repeat")
        return values

    @field_validator("incident_date")
    @classmethod
    def _not_future(cls, value: date | None) -> date | None:
        if value is not None and value > utcnow().date():
            raise ValueError("the incident date is in the future")
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
    due_date: date
    status: str
    notes: list[dict[str, Any]]
    version: int


class PlanRead(BaseModel):
    id: uuid.UUID
    cycle: int
    status: str
    objectives: str
    measures: list[dict[str, Any]]
    submitted_at: datetime
    decided_at: datetime | None
    decision_number: str | None
    return_reason: str | None


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
    commune_code: str
    incident_commune_code: str
    received_at: datetime
    updated_at: datetime
    incident_date: date | None
    intake_agency: str
    reporter_anonymous: bool
    reporter: Reporter | None
    child: ChildRead
    abuse_forms: list[str]
    environment: str
    perpetrator_relationship: str
    description: str
    danger_indicators: list[str]
    emergency: bool | None
    plan_cycle: int
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
    abuse_forms: list[str]
    environment: str
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
    status: TaskStatus | None = None
    assignee_id: ShortText | None = None
    note: Annotated[str, Field(min_length=1, max_length=4000), PlainText] | None = None

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


class CaseReplica(BaseModel):
    """A case as a phone keeps it (offline sync): the case as `GET /v1/cases/{id}` answers it to you, with its
    tasks, and the notes you see."""

    case: CaseRead
    notes: list[NoteRead]


class CaseChange(SyncItem[CaseReplica]):
    """A case that changed: its replica, or a tombstone when it left your reach."""


class CaseChangePage(SyncPage[CaseChange]):
    """Changes of the cases you can see, in the order they were made."""

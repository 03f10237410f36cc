"""Cases API shapes: the intake (Form 01), what each caller may read back, tasks, notes and the work list."""

import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from services.cases.consent import ConsentGiver, DisclosureBasis, DisclosurePurpose
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
from services.common.guardians import Relationship as GuardianRelationship
from services.common.locations import is_commune


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
        if value is not None and value > datetime.now(UTC).date():
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
    alleged_perpetrator: AllegedPerpetratorRead | None = Field(
        description="Which guardian is the alleged perpetrator; shown to the case managers and the police only")
    description: str | None = Field(description="Null for oversight readers (no free text)")
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
    child_first_name: str | None
    child_age_years: int | None
    abuse_forms: list[str]
    environment: str
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

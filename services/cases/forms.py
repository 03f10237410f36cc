"""The data each workflow step requires: the Decree 56 forms (Mau 01-07) as validated shapes.

Free text is bounded; codes are checked against the official lists. These shapes are referenced by the workflow
table (`workflow.py`), so the API, the docs and the tests all read the required data from one place.
"""

import re
from datetime import date
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from services.cases.vocabulary import ClosureReason, DangerIndicator, Measure, RiskRating, TaskAgency
from services.common.locations import is_commune

# C0 control characters other than tab, line feed and carriage return: PostgreSQL cannot store NUL, and no form
# text holds the others.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _plain_text(value: str) -> str:
    if CONTROL_CHARACTERS.search(value):
        raise ValueError("must not contain control characters")
    return value


PlainText = AfterValidator(_plain_text)
ShortText = Annotated[str, Field(min_length=1, max_length=200), PlainText]
LongText = Annotated[str, Field(min_length=1, max_length=8000), PlainText]


class Form(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoData(Form):
    """A step that records only who took it and when."""


class InitialAssessment(Form):
    """Bao cao danh gia ban dau (Form 02): the first look at the child's safety."""

    findings: LongText
    child_seen: bool
    danger_indicators: list[DangerIndicator] = Field(default_factory=list, max_length=len(DangerIndicator))


class EmergencyMeasures(Form):
    """Bien phap bao ve khan cap: the chairman's decision on emergency protection, without separation."""

    decision_number: ShortText
    measures: list[Measure] = Field(min_length=1, max_length=len(Measure))


class SeparationDecision(EmergencyMeasures):
    """Quyet dinh tam thoi cach ly tre em khoi cha me, nguoi cham soc (Form 07): at most 15 days unless extended."""

    placement: ShortText = Field(description="Where the child is placed while separated (kept off events).")


class SeparationExtension(Form):
    """A competent authority's decision extending a temporary separation beyond 15 days."""

    decision_number: ShortText
    until: date


class SeparationEnd(Form):
    reason: ShortText


class SpecificAssessment(Form):
    """Bao cao danh gia chi tiet (Form 03) and the minutes of the needs meeting (bien ban hop)."""

    findings: LongText
    needs: list[ShortText] = Field(min_length=1, max_length=50)
    meeting_date: date
    meeting_participants: list[ShortText] = Field(min_length=1, max_length=50)
    minutes: LongText


class PlannedMeasure(Form):
    measure: Measure
    description: ShortText


class PlannedTask(Form):
    """A task of the plan, for one agency and optionally one person of it."""

    agency: TaskAgency
    assignee_id: ShortText | None = None
    title: ShortText
    due_date: date


class PlanSubmission(Form):
    """Ke hoach ho tro, can thiep (Form 04)."""

    objectives: LongText
    measures: list[PlannedMeasure] = Field(min_length=1, max_length=50)
    tasks: list[PlannedTask] = Field(default_factory=list, max_length=100)


class PlanApproval(Form):
    """Quyet dinh phe duyet ke hoach (Form 05), by the commune chairman."""

    decision_number: ShortText
    decided_on: date


class PlanReturn(Form):
    reason: LongText


class ReviewItem(Form):
    item: ShortText
    rating: RiskRating


class Review(Form):
    """Bao cao danh gia qua trinh thuc hien ke hoach (Form 06): risk items rated high / medium / low."""

    items: list[ReviewItem] = Field(min_length=1, max_length=50)
    summary: LongText


class Closure(Form):
    """Ket thuc ke hoach / dong ho so: after a review, for any reason."""

    reason: ClosureReason
    summary: LongText


class EarlyClosure(Closure):
    """Closing before any review: a child cannot be found safe and stable without one (Form 06)."""

    @field_validator("reason")
    @classmethod
    def _not_without_review(cls, value: ClosureReason) -> ClosureReason:
        if value == ClosureReason.SAFE_AND_STABLE:
            raise ValueError("safe_and_stable needs a review first (Form 06)")
        return value


class Transfer(Form):
    """The child moved: the commune where the child now lives takes the case over, with its whole history."""

    to_commune_code: str = Field(pattern=r"^\d{5}$")
    reason: ShortText

    @field_validator("to_commune_code")
    @classmethod
    def _official(cls, value: str) -> str:
        if not is_commune(value):
            raise ValueError("not an official commune/ward code")
        return value

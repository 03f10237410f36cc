"""The data each workflow step requires: the Decree 56 forms (Mẫu số 01-07) as validated shapes.

Free text is bounded; codes are checked against the official lists. These shapes are referenced by the workflow
table (`workflow.py`), so the API, the docs, the printed papers and the tests all read the required data from one
place. A class that is one of the decree's papers says which in `paper` ("01" ... "07"; the needs-meeting minutes of
Art. 27(2) are "03-minutes"). The official annex could not be read (see shared/law/nghi-dinh-56-mau-01-07.md): the
fields follow the articles that list each form's content, and Form 01 and Form 06 as far as their text is known.
"""

import re
import uuid
from datetime import date, datetime, timedelta
from typing import Annotated, Any, ClassVar
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from services.cases.vocabulary import (
    AbuseForm,
    CaseCategory,
    Channel,
    ChildSex,
    ClosureReason,
    DangerIndicator,
    Environment,
    Measure,
    ParentViews,
    PerpetratorRelationship,
    RecipientKind,
    ReviewItem,
    RiskForm,
    RiskRating,
    SeparationEndKind,
    SeparationGround,
    TaskAgency,
)
from services.common.clock import utcnow
from services.common.locations import is_commune
from services.common.terms import SpecialGroup

# C0 control characters other than tab, line feed and carriage return: PostgreSQL cannot store NUL, and no form
# text holds the others.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")  # dates on the forms are Vietnamese calendar days
# How far back Form 01 may say the information came in: a report written up later keeps its legal clock, but a
# case cannot be slipped into a period whose statistics are long published.
REPORT_BACKDATE_DAYS = 7
# The longest separation the decree allows without a competent authority's request (Art. 32(3)).
SEPARATION_MAX_DAYS = 15


def _plain_text(value: str) -> str:
    if CONTROL_CHARACTERS.search(value):
        raise ValueError("must not contain control characters")
    return value


def _official_commune(value: str) -> str:
    if not is_commune(value):
        raise ValueError("not an official commune/ward code")
    return value


def _not_future(value: datetime) -> datetime:
    # A minute of slack for clocks of devices that run a little ahead.
    if value > utcnow() + timedelta(minutes=1):
        raise ValueError("is in the future")
    return value


PlainText = AfterValidator(_plain_text)
ShortText = Annotated[str, Field(min_length=1, max_length=200), PlainText]
LongText = Annotated[str, Field(min_length=1, max_length=8000), PlainText]
CommuneCode = Annotated[str, Field(pattern=r"^\d{5}$"), AfterValidator(_official_commune)]
PastMoment = Annotated[AwareDatetime, AfterValidator(_not_future)]
Phone = Annotated[str, Field(pattern=r"^\+?[0-9 ]{3,20}$")]


def _distinct(values: list[Any]) -> list[Any]:
    if len(set(values)) != len(values):
        raise ValueError("values must not repeat")
    return values


class Form(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoData(Form):
    """A step that records only who took it and when."""


# ---------------------------------------------------------------------------------------------------- Form 01


class Reporter(Form):
    """Thông tin về người cung cấp thông tin (Form 01, A.3, "nếu đồng ý cung cấp"): every field optional, none for
    an anonymous report. Shown only to the intake's own agency and the case managers."""

    anonymous: bool = True
    name: ShortText | None = None
    phone: Phone | None = None
    address: ShortText | None = None
    relationship: ShortText | None = Field(None, description="To the child: neighbour, teacher, parent, ...")
    note: ShortText | None = Field(None, description="Ghi thêm")

    @model_validator(mode="after")
    def _anonymous_means_unnamed(self) -> "Reporter":
        if self.anonymous and (self.name or self.phone or self.address):
            raise ValueError("an anonymous reporter has no name, phone or address")
        return self


class ChildKnown(Form):
    """Thông tin về trẻ em (Form 01, A.2): often only a first name, an age, a place; or a registry id."""

    child_id: uuid.UUID | None = Field(None, description="The child's registry id, when known.")
    full_name: ShortText | None = Field(None, description="Họ và tên trẻ em, if known.")
    first_name: ShortText | None = Field(None, description="The given name (tên), shown in work lists.")
    date_of_birth: date | None = None
    approximate_age: int | None = Field(None, ge=0, le=17, description="Ước lượng tuổi, when the birth date is not "
                                        "known.")
    sex: ChildSex = ChildSex.UNKNOWN
    place: ShortText | None = Field(None, description="Where the child is now (village, school, ...).")
    condition: LongText | None = Field(None, description="Tình trạng hiện tại của trẻ em.")
    likely_consequences: LongText | None = Field(None, description="Phỏng đoán hậu quả nếu không được hỗ trợ, "
                                                 "can thiệp.")

    @field_validator("date_of_birth")
    @classmethod
    def _born(cls, value: date | None) -> date | None:
        if value is not None and value > utcnow().astimezone(VIETNAM).date():
            raise ValueError("the date of birth is in the future")
        return value


class ParentKnown(Form):
    """Họ và tên cha / mẹ, tuổi, nghề nghiệp (Form 01, A.2)."""

    full_name: ShortText | None = None
    age: int | None = Field(None, ge=10, le=120)
    occupation: ShortText | None = None


class IntakeReport(Form):
    """Báo cáo tiếp nhận thông tin trẻ em (Form 01; Decree 56 Art. 25(1)).

    `category` says who the child is (Form 01 note (4)); abuse forms are asked only for an abused child, risk forms
    only for a child at risk, and the Law Art. 10 groups for a child in special circumstances. The report goes to
    the commune where it happened (Art. 26(1)); the commune where the child lives, when known, takes the case over
    after the initial assessment and any emergency protection (Law Art. 52(2)).
    """

    paper: ClassVar[str] = "01"

    category: CaseCategory = Field(CaseCategory.ABUSED, description="bị xâm hại / có nguy cơ / hoàn cảnh đặc biệt")
    channel: Channel | None = Field(None, description="Thông qua: điện thoại, gặp trực tiếp, người khác báo.")
    reported_at: PastMoment | None = Field(None, description="Hour and date the information came in (Form 01, "
                                           "A.1): the legal clocks run from it. Defaults to now; at most "
                                           f"{REPORT_BACKDATE_DAYS} days back.")
    received_place: ShortText | None = Field(None, description="Where the information was received.")
    receiving_officer: ShortText | None = Field(None, description="Cán bộ tiếp nhận thông tin (name, as signed).")
    reporter: Reporter = Field(default_factory=Reporter)
    child: ChildKnown = Field(default_factory=ChildKnown)
    father: ParentKnown | None = None
    mother: ParentKnown | None = None
    family_circumstances: LongText | None = Field(None, description="Hoàn cảnh gia đình.")
    current_carer: ShortText | None = Field(None, description="Người đang chăm sóc trẻ em, if known.")
    actions_taken: LongText | None = Field(None, description="Support or intervention already given before the "
                                           "report.")
    incident_date: date | None = None
    incident_place: ShortText | None = Field(None, description="Địa điểm xảy ra vụ việc.")
    incident_commune_code: CommuneCode = Field(description="Commune where it happened: it does the initial "
                                               "assessment and leads while the residence is unknown.")
    residence_commune_code: CommuneCode | None = Field(None, description="Commune where the child lives, when "
                                                       "known: it leads the plan (Law Art. 52(2)).")
    abuse_forms: list[AbuseForm] = Field(default_factory=list, max_length=len(AbuseForm))
    risk_forms: list[RiskForm] = Field(default_factory=list, max_length=len(RiskForm))
    special_groups: list[SpecialGroup] = Field(default_factory=list, max_length=len(SpecialGroup))
    environment: Environment | None = None
    perpetrator_relationship: PerpetratorRelationship = PerpetratorRelationship.UNKNOWN
    description: LongText
    danger_indicators: list[DangerIndicator] = Field(default_factory=list, max_length=len(DangerIndicator))

    @field_validator("abuse_forms", "risk_forms", "special_groups", "danger_indicators")
    @classmethod
    def _distinct_values(cls, values: list[Any]) -> list[Any]:
        return _distinct(values)

    @field_validator("incident_date")
    @classmethod
    def _not_future(cls, value: date | None) -> date | None:
        if value is not None and value > utcnow().astimezone(VIETNAM).date():
            raise ValueError("the incident date is in the future")
        return value

    @field_validator("reported_at")
    @classmethod
    def _recent(cls, value: datetime | None) -> datetime | None:
        if value is not None and value < utcnow() - timedelta(days=REPORT_BACKDATE_DAYS):
            raise ValueError(f"is more than {REPORT_BACKDATE_DAYS} days ago")
        return value

    @model_validator(mode="after")
    def _category_fields(self) -> "IntakeReport":
        match self.category:
            case CaseCategory.ABUSED:
                if not self.abuse_forms:
                    raise ValueError("an abused child's report names at least one form of abuse (Law Art. 4)")
                if self.environment is None:
                    raise ValueError("an abused child's report names where it happened (environment)")
                if self.risk_forms:
                    raise ValueError("risk_forms are for a child at risk; name the abuse in abuse_forms")
            case CaseCategory.AT_RISK:
                if not self.risk_forms:
                    raise ValueError("an at-risk child's report names the risk: violence, exploitation, abandonment")
                if self.abuse_forms:
                    raise ValueError("abuse_forms are for an abused child (category abused)")
            case CaseCategory.SPECIAL_CIRCUMSTANCES:
                if not self.special_groups:
                    raise ValueError("a child in special circumstances belongs to at least one group of Law Art. 10")
                if self.abuse_forms or self.risk_forms:
                    raise ValueError("abuse and risk forms are for the other categories")
        return self


# ---------------------------------------------------------------------------------------------------- Form 02


class InitialAssessment(Form):
    """Đánh giá nguy cơ ban đầu, mức độ tổn hại của trẻ em (Form 02; Decree 56 Art. 26(2)): the first look at the
    child's safety, on which the emergency test rests."""

    paper: ClassVar[str] = "02"

    findings: LongText
    child_seen: bool
    danger_indicators: list[DangerIndicator] = Field(default_factory=list, max_length=len(DangerIndicator))
    residence_commune_code: CommuneCode | None = Field(None, description="Where the child lives, if learnt now.")


# ---------------------------------------------------------------------------------------------------- emergency


class EmergencyMeasures(Form):
    """Biện pháp can thiệp khẩn cấp (Decree 56 Art. 26(3), 31): the chairman's decision, without separation."""

    decision_number: ShortText | None = None
    measures: list[Measure] = Field(min_length=1, max_length=len(Measure))
    taken_at: PastMoment | None = Field(None, description="When the measures were taken; defaults to now. The "
                                        "12-hour clock is met at this time.")


class EmergencyMeasureRecord(Form):
    """An emergency measure another competent body took (Decree 56 Art. 26(3): "cơ quan, tổ chức, cá nhân có thẩm
    quyền"; Art. 31(4): the police stop the harm), recorded by that body or by the commune officer."""

    agency: TaskAgency | None = Field(None, description="The body that acted; defaults to the caller's agency.")
    measures: list[Measure] = Field(min_length=1, max_length=len(Measure))
    description: LongText
    document_number: ShortText | None = Field(None, description="The body's record or decision, if any.")
    taken_at: PastMoment | None = Field(None, description="When the measure was taken; defaults to now.")


class SeparationDecision(Form):
    """Quyết định tạm thời cách ly trẻ em khỏi cha, mẹ, người chăm sóc trẻ em (Form 07; Decree 56 Art. 32). Its
    number is the next of the commune's register (Decree 30/2020/NĐ-CP Art. 15), given when the step is taken,
    printed on the paper and answered as the separation's `decision_number`."""

    paper: ClassVar[str] = "07"

    ground: SeparationGround
    duration_days: int = Field(ge=1, le=SEPARATION_MAX_DAYS, description="Set from the child's needs and safety "
                               "(Art. 32(3)); at most 15 days.")
    place: ShortText = Field(description="Nơi tạm trú an toàn (Law Art. 50(2)(b)). Kept off events.")
    alternative_carer: ShortText = Field(description="Who cares for the child meanwhile (Law Art. 52(3); Decree 56 "
                                         "Art. 32(4)). Kept off events.")
    measures: list[Measure] = Field(default_factory=list, max_length=len(Measure))
    taken_at: PastMoment | None = Field(None, description="When the decision was made; defaults to now.")


class CompetentAuthority(Form):
    """The competent authority that requires a separation longer than 15 days (Art. 32(3)), with its document."""

    name: ShortText
    document_number: ShortText


class SeparationExtension(Form):
    """Gia hạn tạm thời cách ly (Decree 56 Art. 32(3)): the whole separation stays within 15 days unless a competent
    authority requires longer."""

    decision_number: ShortText
    days: int = Field(ge=1, le=3650)
    competent_authority: CompetentAuthority | None = None


class SafetyReassessment(Form):
    """A new specific assessment (Form 03) of whether the parents or carer now keep the child safe (Art. 32(3))."""

    paper: ClassVar[str] = "03"

    assessed_on: date
    findings: LongText
    parents_ensure_safety: bool


class SeparationEnd(Form):
    """Hủy bỏ quyết định tạm thời cách ly (Decree 56 Art. 32(3)): after a Form 03 finds the parents safe, or on a
    competent authority's decision."""

    kind: SeparationEndKind
    reassessment: SafetyReassessment | None = None
    authority: CompetentAuthority | None = None

    @model_validator(mode="after")
    def _grounds(self) -> "SeparationEnd":
        if self.kind == SeparationEndKind.PARENTS_SAFE:
            if self.reassessment is None or not self.reassessment.parents_ensure_safety:
                raise ValueError("a separation ends when a new assessment (Form 03) finds the parents safe")
        elif self.authority is None:
            raise ValueError("name the competent authority and its document")
        return self


# ---------------------------------------------------------------------------------------------------- Form 03


class MeetingAttendee(Form):
    name: ShortText
    role: ShortText = Field(description="Body or relation: police, school, parent, village head, ...")


class NeedsMeeting(Form):
    """Biên bản cuộc họp xác định nhu cầu cần hỗ trợ, can thiệp (Decree 56 Art. 27(2), 28(2)(b)): chaired by the
    commune chairman, with the bodies responsible, the residents' representative, and the parents or carer."""

    paper: ClassVar[str] = "03-minutes"

    held_on: date
    chaired_by: ShortText = Field(description="The chairman (or the vice-chairman acting for them).")
    attendees: list[MeetingAttendee] = Field(min_length=1, max_length=50)
    parents_or_carer_attended: bool
    measures_agreed: list[Measure] = Field(min_length=1, max_length=len(Measure))
    minutes: LongText


class SpecificAssessment(Form):
    """Thu thập thông tin, đánh giá nguy cơ cụ thể (Form 03; Decree 56 Art. 27(1), items a-h) and the needs meeting
    (Art. 27(2))."""

    paper: ClassVar[str] = "03"

    physical_and_emotional_state: LongText = Field(description="a) Tình trạng thể chất, tâm lý, tình cảm.")
    family_and_protective_capacity: LongText = Field(description="b) Hoàn cảnh gia đình, năng lực bảo vệ của cha, "
                                                     "mẹ, các thành viên.")
    risk_factors: LongText = Field(description="c) Các yếu tố làm trẻ em có thể bị xâm hại hoặc tiếp tục bị xâm "
                                   "hại.")
    learning_and_self_protection: LongText = Field(description="d) Điều kiện, khả năng học tập và tự bảo vệ.")
    community_safety_and_support: LongText = Field(description="đ) Mức độ an toàn, khả năng hỗ trợ của cộng đồng.")
    needs: list[ShortText] = Field(min_length=1, max_length=50, description="e) Nhu cầu y tế, trợ giúp xã hội, "
                                   "giáo dục, pháp lý, tư vấn, trị liệu tâm lý ...")
    child_views: LongText | None = Field(None, description="g) Ý kiến, nguyện vọng của trẻ em.")
    child_views_not_taken_reason: ShortText | None = Field(None, description="Why the child's views could not be "
                                                           "heard (age, condition).")
    parent_views: ParentViews
    parent_views_text: LongText | None = Field(None, description="h) Ý kiến, nguyện vọng của cha, mẹ, người chăm "
                                               "sóc, unless they caused the harm.")
    needs_meeting: NeedsMeeting

    @model_validator(mode="after")
    def _views(self) -> "SpecificAssessment":
        if (self.child_views is None) == (self.child_views_not_taken_reason is None):
            raise ValueError("give the child's views (item g), or why they could not be heard, not both")
        if (self.parent_views == ParentViews.TAKEN) != (self.parent_views_text is not None):
            raise ValueError("parent_views_text is given exactly when parent_views is 'taken' (item h)")
        return self


# ---------------------------------------------------------------------------------------------------- Form 04, 05


class PlannedMeasure(Form):
    measure: Measure
    description: ShortText


class PlannedTask(Form):
    """One service or task of the plan (Decree 56 Art. 28(3)): what, from when to when, who is responsible, the
    service provider called on, and its budget."""

    agency: TaskAgency = Field(description="The body responsible (Art. 28(3)(b)).")
    assignee_id: ShortText | None = None
    title: ShortText = Field(description="The service or task (Art. 28(3)(a)).")
    start_date: date
    end_date: date = Field(description="Expected end (dự kiến kết thúc).")
    provider: ShortText | None = Field(None, description="Child-protection service provider called on "
                                       "(Art. 28(3)(c)).")
    budget_vnd: int = Field(ge=0, le=10**12, description="Estimated cost in VND (Art. 28(3)(d)); 0 if none.")

    @model_validator(mode="after")
    def _order(self) -> "PlannedTask":
        if self.end_date < self.start_date:
            raise ValueError("a task ends on or after its start")
        return self


class PlanSubmission(Form):
    """Kế hoạch hỗ trợ, can thiệp (Form 04; Decree 56 Art. 28(1), (3))."""

    paper: ClassVar[str] = "04"

    objectives: LongText
    measures: list[PlannedMeasure] = Field(min_length=1, max_length=50)
    tasks: list[PlannedTask] = Field(min_length=1, max_length=100)

    @property
    def budget_vnd(self) -> int:
        return sum(task.budget_vnd for task in self.tasks)


class Recipient(Form):
    kind: RecipientKind
    name: ShortText


class PlanApproval(Form):
    """Quyết định phê duyệt kế hoạch hỗ trợ, can thiệp (Form 05; Decree 56 Art. 28(4), (5)): sent to the bodies that
    carry it out and to the parents or carer. Its number is the next of the commune's register (Decree 30/2020/NĐ-CP
    Art. 15), given when the step is taken, printed on the paper and answered as the plan's `decision_number`."""

    paper: ClassVar[str] = "05"

    decided_on: date
    recipients: list[Recipient] = Field(min_length=2, max_length=50)

    @field_validator("recipients")
    @classmethod
    def _both_kinds(cls, values: list[Recipient]) -> list[Recipient]:
        if {r.kind for r in values} != set(RecipientKind):
            raise ValueError("the decision goes to the implementing bodies and to the parents or carer "
                             "(Art. 28(5))")
        return values


class PlanReturn(Form):
    reason: LongText


# ---------------------------------------------------------------------------------------------------- Form 06


class ReviewRating(Form):
    item: ReviewItem
    rating: RiskRating = Field(description="Cao / Trung bình / Thấp, with the form's definitions.")
    note: ShortText | None = None


class Review(Form):
    """Rà soát, đánh giá tình trạng của trẻ em sau khi thực hiện kế hoạch hỗ trợ, can thiệp (Form 06; Decree 56
    Art. 30): each fixed item rated once; the child's condition and the safety of their environment (Art. 30(1)(a)).

    Ratings (Form 06): harm_severity Cao = still very serious, Trung bình = less serious, Thấp = no longer serious;
    abuser_access Cao = regular access, Trung bình = occasional, Thấp = little or none; care_environment_obstacles
    Cao = many significant obstacles, Trung bình = a few, Thấp = few or none; self_protection_recovery (table 1b)
    rated as a risk the same way: Cao = the child cannot yet protect itself or recover, Thấp = it can.
    """

    paper: ClassVar[str] = "06"

    reviewed_on: date
    ratings: list[ReviewRating] = Field(min_length=len(ReviewItem), max_length=len(ReviewItem))
    child_condition: LongText = Field(description="Tình trạng trẻ em after the measures.")
    environment_safety: LongText = Field(description="Mức độ an toàn của môi trường trẻ em đang sinh sống.")
    summary: LongText

    @field_validator("ratings")
    @classmethod
    def _every_item_once(cls, values: list[ReviewRating]) -> list[ReviewRating]:
        if sorted(r.item for r in values) != sorted(ReviewItem):
            raise ValueError(f"rate each item of Form 06 once: {', '.join(ReviewItem)}")
        return values

    def tally(self) -> dict[RiskRating, int]:
        """The form's "Tổng số" row: how many items at each level."""
        return {level: sum(r.rating == level for r in self.ratings) for level in RiskRating}


class ClosureProposal(Review):
    """Form 06 with the officer's proposal to end the plan (Art. 30(1)(b)): no item may still be rated Cao."""

    @field_validator("ratings")
    @classmethod
    def _no_high_risk(cls, values: list[ReviewRating]) -> list[ReviewRating]:
        high = [r.item.value for r in values if r.rating == RiskRating.HIGH]
        if high:
            raise ValueError(f"the plan cannot end while items are rated Cao: {', '.join(high)} (Art. 30(1)(c))")
        return values


class ClosureDecision(Form):
    """The chairman's decision ending the plan (kết thúc kế hoạch hỗ trợ, can thiệp; Decree 56 Art. 30(1)(b))."""

    decision_number: ShortText | None = None
    decided_on: date
    summary: LongText


class ClosureRefusal(Form):
    """The chairman does not end the plan: the review goes on to a new or continued plan (Art. 30(1)(c))."""

    reason: LongText


class EarlyClosure(Form):
    """Closing without a plan's end: unfounded, duplicate, the child died, moved abroad, turned 16 (đóng hồ sơ)."""

    reason: ClosureReason
    summary: LongText
    duplicate_of: uuid.UUID | None = None

    @field_validator("reason")
    @classmethod
    def _not_without_review(cls, value: ClosureReason) -> ClosureReason:
        if value in (ClosureReason.SAFE_AND_STABLE, ClosureReason.TRANSFERRED):
            raise ValueError(f"{value.value} is not an early closure: safe_and_stable needs a review (Form 06) and "
                             "the chairman's decision; a moved child's case is transferred, not closed")
        return value


# ---------------------------------------------------------------------------------------------------- who leads


class HandOver(Form):
    """Bàn giao: the commune where it happened hands the case to the commune where the child lives, after the
    initial assessment and any emergency protection (Law Art. 52(2); Decree 56 Art. 26). History and running
    deadlines go with the case."""

    residence_commune_code: CommuneCode | None = Field(None, description="Defaults to the residence recorded at "
                                                       "intake or in Form 02.")
    note: ShortText | None = None


class Transfer(Form):
    """The child moved: the commune where the child now lives takes the case over, with its whole history."""

    to_commune_code: CommuneCode
    reason: ShortText


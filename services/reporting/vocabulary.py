"""The closed lists of the reporting service, with their Vietnamese and English labels (`GET /v1/vocabularies`).

The categories of every breakdown a report can contain are here, including `unknown` (a case event that did not say)
and `16+` (a case about someone found to be 16 or over). The case lists mirror the cases service's own
(docs/events.md); a value the producers add later is still counted and shown with its code until it is labelled here.
"""

from enum import StrEnum

from services.common.terms import (
    ABUSE_FORM_LABELS,
    CASE_CATEGORY_LABELS,
    CHANNEL_LABELS,
    CLOSURE_KIND_LABELS,
    CLOSURE_REASON_LABELS,
    DEADLINE_LABELS,
    ENVIRONMENT_LABELS,
    PERPETRATOR_LABELS,
    RISK_FORM_LABELS,
    SEX_LABELS,
    UNKNOWN,
    SpecialGroup,
    special_group_headings,
)
from services.common.vocabulary import Vocabulary, from_enum


class Sex(StrEnum):
    MALE = "male"
    FEMALE = "female"
    UNKNOWN = "unknown"


class AgeGroup(StrEnum):
    """Age groups of the statistics (services/common/age.py); `16+` and `unknown` occur in case figures only."""

    UNDER_6 = "0-5"
    FROM_6 = "6-10"
    FROM_11 = "11-15"
    FROM_16 = "16+"
    UNKNOWN = "unknown"


class AgeYears(StrEnum):
    """Whole years of age of a child under 5 (birth registration of children under 5)."""

    ZERO = "0"
    ONE = "1"
    TWO = "2"
    THREE = "3"
    FOUR = "4"


class AbuseForm(StrEnum):
    VIOLENCE = "violence"
    EXPLOITATION = "exploitation"
    SEXUAL_ABUSE = "sexual_abuse"
    TRAFFICKING = "trafficking"
    ABANDONMENT = "abandonment"
    NEGLECT = "neglect"
    OTHER = "other"


class RiskForm(StrEnum):
    VIOLENCE = "violence"
    EXPLOITATION = "exploitation"
    ABANDONMENT = "abandonment"


class Environment(StrEnum):
    HOME = "home"
    SCHOOL = "school"
    COMMUNITY = "community"
    ONLINE = "online"
    WORKPLACE = "workplace"
    OTHER = "other"
    UNKNOWN = "unknown"


class CaseCategory(StrEnum):
    ABUSED = "abused"
    AT_RISK = "at_risk"
    SPECIAL_CIRCUMSTANCES = "special_circumstances"
    UNKNOWN = "unknown"


class Channel(StrEnum):
    PHONE = "phone"
    IN_PERSON = "in_person"
    THROUGH_ANOTHER_PERSON = "through_another_person"
    OTHER = "other"
    UNKNOWN = "unknown"


class IntakeAgency(StrEnum):
    HOTLINE = "hotline"
    PEOPLES_COMMITTEE = "peoples_committee"
    POLICE = "police"
    HEALTH = "health"
    EDUCATION = "education"
    JUSTICE = "justice"
    SOCIAL_SERVICES = "social_services"
    UNKNOWN = "unknown"


class Perpetrator(StrEnum):
    PARENT = "parent"
    STEP_PARENT = "step_parent"
    RELATIVE = "relative"
    CAREGIVER = "caregiver"
    TEACHER = "teacher"
    ACQUAINTANCE = "acquaintance"
    STRANGER = "stranger"
    OTHER_CHILD = "other_child"
    UNKNOWN = "unknown"


class ClosureReason(StrEnum):
    SAFE_AND_STABLE = "safe_and_stable"
    UNFOUNDED = "unfounded"
    DUPLICATE = "duplicate"
    AGED_OUT = "aged_out"
    DECEASED = "deceased"
    MOVED_ABROAD = "moved_abroad"
    TRANSFERRED = "transferred"
    UNKNOWN = "unknown"


class ClosureKind(StrEnum):
    REVIEW = "review"
    EARLY = "early"
    UNKNOWN = "unknown"


class DeadlineName(StrEnum):
    ASSESSMENT = "assessment"
    EMERGENCY_PROTECTION = "emergency_protection"
    SEPARATION = "separation"
    SPECIFIC_ASSESSMENT = "specific_assessment"
    PLAN_DRAFTED = "plan_drafted"
    PLAN_APPROVAL = "plan_approval"
    PLAN_REVISION = "plan_revision"
    REVIEW = "review"
    CLOSURE_DECISION = "closure_decision"


class SeparationDuration(StrEnum):
    WITHIN_15_DAYS = "within_15_days"
    OVER_15_DAYS = "over_15_days"
    ONGOING = "ongoing"


class SeparationExtension(StrEnum):
    NOT_EXTENDED = "not_extended"
    EXTENDED = "extended"
    AUTHORITY_REQUEST = "authority_request"


class Breakdown(StrEnum):
    """The breakdowns (phan to) of the indicators."""

    SEX = "sex"
    AGE_GROUP = "age_group"
    AGE_YEARS = "age_years"
    SPECIAL_GROUP = "special_group"
    ABUSE_FORM = "abuse_form"
    RISK_FORM = "risk_form"
    ENVIRONMENT = "environment"
    CATEGORY = "category"
    CHANNEL = "channel"
    INTAKE_AGENCY = "intake_agency"
    PERPETRATOR = "perpetrator"
    CLOSURE_REASON = "closure_reason"
    CLOSURE_KIND = "closure_kind"
    DEADLINE = "deadline"
    DURATION = "duration"
    EXTENSION = "extension"
    LOCALITY = "locality"


SEX = from_enum("report_sex", Sex, {**SEX_LABELS, "unknown": UNKNOWN}, vi="Giới tính", en="Sex")
AGE_GROUP = from_enum("report_age_group", AgeGroup, {
    "0-5": ("0-5 tuổi", "0-5 years"), "6-10": ("6-10 tuổi", "6-10 years"), "11-15": ("11-15 tuổi", "11-15 years"),
    "16+": ("Từ 16 tuổi", "16 and over"), "unknown": UNKNOWN,
}, vi="Nhóm tuổi", en="Age group", source="Law on Children 2016, Art. 1 (a child is under 16)")
AGE_YEARS = from_enum("report_age_years", AgeYears, {
    "0": ("Dưới 1 tuổi", "Under 1"), "1": ("1 tuổi", "1 year"), "2": ("2 tuổi", "2 years"),
    "3": ("3 tuổi", "3 years"), "4": ("4 tuổi", "4 years"),
}, vi="Tuổi", en="Age in years")
SPECIAL_GROUPS = from_enum("report_special_group", SpecialGroup, special_group_headings(),
                           vi="Nhóm trẻ em có hoàn cảnh đặc biệt", en="Group of children in special circumstances",
                           source="Law on Children 2016, Art. 10")
ABUSE_FORMS = from_enum("report_abuse_form", AbuseForm, ABUSE_FORM_LABELS, vi="Hình thức xâm hại",
                        en="Form of abuse", source="Law on Children 2016, Art. 4")
RISK_FORMS = from_enum("report_risk_form", RiskForm, RISK_FORM_LABELS, vi="Nguy cơ", en="Risk",
                       source="Law on Children 2016, Art. 49; Decree 56/2017 Art. 25")
ENVIRONMENTS = from_enum("report_environment", Environment, {**ENVIRONMENT_LABELS, "unknown": UNKNOWN},
                         vi="Môi trường xâm hại", en="Environment of abuse",
                         source="Circular 13/2021/TT-BLĐTBXH, annex IV, 0101")
CATEGORIES = from_enum("report_case_category", CaseCategory, {
    **CASE_CATEGORY_LABELS, "unknown": ("Không rõ (tin báo trước năm 2026)", "Unknown (reports before 2026)"),
}, vi="Loại trường hợp", en="Kind of case", source="Decree 56/2017/NĐ-CP, Arts. 25-30")
CHANNELS = from_enum("report_channel", Channel, {
    **CHANNEL_LABELS, "other": ("Khác", "Other"), "unknown": UNKNOWN,
}, vi="Hình thức tiếp nhận", en="Intake channel", source="Decree 56/2017/NĐ-CP, Form 01")
INTAKE_AGENCIES = from_enum("report_intake_agency", IntakeAgency, {
    "hotline": ("Tổng đài 111", "Hotline 111"), "peoples_committee": ("UBND cấp xã", "Commune People's Committee"),
    "police": ("Công an", "Police"), "health": ("Cơ quan y tế", "Health"), "education": ("Giáo dục", "Education"),
    "justice": ("Tư pháp", "Justice"), "social_services": ("Cơ sở cung cấp dịch vụ", "Social services"),
    "unknown": UNKNOWN,
}, vi="Nơi tiếp nhận", en="Receiving body", source="Decree 56/2017/NĐ-CP, Art. 25(1)")
PERPETRATORS = from_enum("report_perpetrator", Perpetrator, PERPETRATOR_LABELS,
                         vi="Quan hệ của người gây hại với trẻ em", en="Relationship of the perpetrator to the child")
CLOSURE_REASONS = from_enum("report_closure_reason", ClosureReason, {**CLOSURE_REASON_LABELS, "unknown": UNKNOWN},
                            vi="Lý do kết thúc", en="Closure reason", source="Decree 56/2017/NĐ-CP, Art. 30")
CLOSURE_KINDS = from_enum("report_closure_kind", ClosureKind, {**CLOSURE_KIND_LABELS, "unknown": UNKNOWN},
                          vi="Cách kết thúc", en="How the case ended", source="Decree 56/2017/NĐ-CP, Art. 30")
DEADLINES = from_enum("report_deadline", DeadlineName, DEADLINE_LABELS, vi="Bước xử lý", en="Workflow step",
                      source="Decree 56/2017/NĐ-CP, Arts. 26-32")
DURATIONS = from_enum("report_separation_duration", SeparationDuration, {
    "within_15_days": ("Kết thúc trong 15 ngày", "Ended within 15 days"),
    "over_15_days": ("Kết thúc sau hơn 15 ngày", "Ended after more than 15 days"),
    "ongoing": ("Đang cách ly", "Ongoing"),
}, vi="Thời gian cách ly", en="Duration of the separation", source="Decree 56/2017/NĐ-CP, Art. 32(3)")
EXTENSIONS = from_enum("report_separation_extension", SeparationExtension, {
    "not_extended": ("Không gia hạn", "Not extended"), "extended": ("Có gia hạn", "Extended"),
    "authority_request": ("Tiếp tục cách ly theo yêu cầu của cơ quan có thẩm quyền",
                          "Kept at a competent authority's request"),
}, vi="Gia hạn cách ly", en="Extension of the separation", source="Decree 56/2017/NĐ-CP, Art. 32(3)")
BREAKDOWNS = from_enum("report_breakdown", Breakdown, {
    "sex": ("Giới tính", "Sex"), "age_group": ("Nhóm tuổi", "Age group"), "age_years": ("Tuổi", "Age in years"),
    "special_group": ("Nhóm hoàn cảnh đặc biệt", "Group of special circumstances"),
    "abuse_form": ("Hình thức xâm hại", "Form of abuse"), "risk_form": ("Nguy cơ", "Risk"),
    "environment": ("Môi trường xâm hại", "Environment"), "category": ("Loại trường hợp", "Kind of case"),
    "channel": ("Hình thức tiếp nhận", "Intake channel"), "intake_agency": ("Nơi tiếp nhận", "Receiving body"),
    "perpetrator": ("Quan hệ của người gây hại", "Perpetrator's relationship"),
    "closure_reason": ("Lý do kết thúc", "Closure reason"), "closure_kind": ("Cách kết thúc", "How it ended"),
    "deadline": ("Bước quá hạn", "Overdue step"), "duration": ("Thời gian cách ly", "Duration"),
    "extension": ("Gia hạn cách ly", "Extension"), "locality": ("Địa bàn", "Locality"),
}, vi="Phân tổ", en="Breakdown")

# The categories of each breakdown, by breakdown code (the locality breakdown lists places, not a closed list).
CATEGORY_LISTS: dict[str, Vocabulary] = {
    "sex": SEX, "age_group": AGE_GROUP, "age_years": AGE_YEARS, "special_group": SPECIAL_GROUPS,
    "abuse_form": ABUSE_FORMS, "risk_form": RISK_FORMS, "environment": ENVIRONMENTS, "category": CATEGORIES,
    "channel": CHANNELS, "intake_agency": INTAKE_AGENCIES, "perpetrator": PERPETRATORS,
    "closure_reason": CLOSURE_REASONS, "closure_kind": CLOSURE_KINDS, "deadline": DEADLINES,
    "duration": DURATIONS, "extension": EXTENSIONS,
}
VOCABULARIES: list[Vocabulary] = [BREAKDOWNS, *CATEGORY_LISTS.values()]


def label(breakdown: str, category: str, language: str = "vi") -> str:
    vocabulary = CATEGORY_LISTS.get(breakdown)
    return vocabulary.label(category, language) if vocabulary else category

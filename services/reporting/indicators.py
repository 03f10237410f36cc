"""The indicator catalogue (he thong chi tieu thong ke): codes, names, definitions, units, breakdowns, legal sources.

Codes. Circular 13/2021/TT-BLĐTBXH numbers its indicators with four digits (two for the group, two for the place in
the group; annex II/IV, the child-abuse set, has its own numbering). Where the circular defines an indicator this
system computes, the catalogue uses the circular's code: `0101` (annex IV, "Số trẻ em bị xâm hại"). The sources we
hold (`shared/law/thong-tu-13-2021-chi-tieu-tre-em.md`) confirm no other code of an indicator computed here; the
circular names some of them (children in special circumstances, those helped, children of 7 and over consulted)
without the code being found, and each such indicator cites the circular's name and says the code was not found.
Every other code is this system's own and starts with `HT-` (hệ thống), so it can never be mistaken for a code of
the circular.

Figures are stored as integer counts under keys `code|breakdown|category` (the total has an empty breakdown and
category); a ratio (a percentage, or a mean) stores its numerator and denominator under the same key with `|n` and
`|d` appended.
"""

from dataclasses import dataclass, field
from typing import Any

from services.reporting.vocabulary import (
    ABUSE_FORMS,
    AGE_YEARS,
    BREAKDOWNS,
    CATEGORIES,
    CHANNELS,
    CLOSURE_KINDS,
    CLOSURE_REASONS,
    DEADLINES,
    DURATIONS,
    ENVIRONMENTS,
    EXTENSIONS,
    INTAKE_AGENCIES,
    PERPETRATORS,
    RISK_FORMS,
    SPECIAL_GROUPS,
    Vocabulary,
)

LOCAL_PREFIX = "HT-"
CHILD_AGE_GROUPS = ("0-5", "6-10", "11-15")
CASE_AGE_GROUPS = (*CHILD_AGE_GROUPS, "16+", "unknown")
CHILD_SEXES = ("male", "female")
CASE_SEXES = ("male", "female", "unknown")
# Child-friendly commune criterion 6 (Decision 06/QĐ-TTg): these cases must all have a plan approved in time.
CRITERION_6_FORMS = ("sexual_abuse", "abandonment", "trafficking")
# A case counts as intervened once emergency protection was taken or a plan was approved (Law Art. 50).
INTERVENTION_DEADLINES = ("emergency_protection", "plan_approval")
INTERVENTION_STATES = ("emergency_protection", "implementing", "reviewing")
LOCALITY = "locality"


def _codes(vocabulary: Vocabulary) -> tuple[str, ...]:
    return tuple(term.code for term in vocabulary.terms)


@dataclass(frozen=True)
class Breakdown:
    """A breakdown (phân tổ) of one indicator. Additive: the categories sum to the total (for a ratio: numerators
    and denominators both do), so suppression protects the row as well as the column."""

    code: str
    categories: tuple[str, ...]
    additive: bool


@dataclass(frozen=True)
class CircularReference:
    """Where Circular 13/2021/TT-BLĐTBXH defines the indicator (or the nearest one it defines)."""

    annex: str
    group: str
    name: str
    code: str | None  # None: the circular numbers it, but the code was not found in the sources we hold
    relation: str  # "same" or "related" (the circular's indicator is broader or measured differently)

    def describe(self) -> dict[str, Any]:
        return {"document": "Thông tư 13/2021/TT-BLĐTBXH", "annex": self.annex, "group": self.group,
                "name": self.name, "code": self.code, "relation": self.relation,
                "code_status": "confirmed" if self.code else "not found in the sources held"}


@dataclass(frozen=True)
class Indicator:
    code: str
    group: str  # the table (sheet) it is published in: see GROUPS
    name_vi: str
    name_en: str
    definition: str
    unit: str  # children, cases, steps, separations (counts); percent, days (ratios)
    source: str  # which feed
    legal: str  # the legal basis, article by article
    breakdowns: tuple[Breakdown, ...] = field(default_factory=tuple)
    circular: CircularReference | None = None
    stock: bool = False  # counted on the last day of the period; otherwise a flow within the period
    additive_over_time: bool = False  # a flow whose counts of two adjoining periods add up (not distinct children)
    # Suppression: another indicator whose cells equal this ratio's numerators or denominators (same breakdown).
    numerator_same_as: str | None = None
    denominator_same_as: str | None = None
    targets: tuple[str, ...] = ()  # the seed plans' targets this indicator measures

    @property
    def is_ratio(self) -> bool:
        return self.unit in ("percent", "days")

    @property
    def is_rate(self) -> bool:
        return self.is_ratio

    def breakdown(self, code: str) -> Breakdown | None:
        return next((b for b in self.breakdowns if b.code == code), None)

    def describe(self) -> dict[str, Any]:
        return {"code": self.code, "group": self.group, "name_vi": self.name_vi, "name_en": self.name_en,
                "definition": self.definition, "unit": self.unit, "source": self.source, "legal": self.legal,
                "counted": "stock on the last day of the period" if self.stock else "flow within the period",
                "circular_13_2021": self.circular.describe() if self.circular else None,
                "targets": list(self.targets),
                "breakdowns": [{"code": b.code, "name_vi": BREAKDOWNS.label(b.code, "vi"),
                                "name_en": BREAKDOWNS.label(b.code, "en"), "categories": list(b.categories),
                                "additive": b.additive} for b in self.breakdowns]}


GROUPS: dict[str, tuple[str, str]] = {
    "children": ("Tình hình trẻ em", "Children"),
    "abuse": ("Tình hình xâm hại trẻ em và tin báo", "Child abuse and reports"),
    "support": ("Hỗ trợ, can thiệp", "Support and intervention"),
    "timeliness": ("Thời hạn xử lý theo Nghị định 56/2017", "Timeliness under Decree 56/2017"),
    "separation": ("Tạm thời cách ly trẻ em", "Temporary separation"),
}

REGISTRY = "Registry events (child snapshots)"
CASES = "Cases events (case snapshots)"
REGISTRY_AND_CASES = "Cases events (numerator) and registry events (denominator)"
AS_OF = ("Counted on the last day of the period, from each child's latest record: born and followed by then, "
         "under 16 then, and not moved away, deceased or aged out by then.")
SPECIAL_CIRCUMSTANCES_13 = CircularReference(
    "I/III", "Bảo vệ trẻ em", "Số lượng, tỷ lệ trẻ em có hoàn cảnh đặc biệt", None, "same")
SUPPORTED_13 = CircularReference(
    "I/III", "Bảo vệ trẻ em", "Số lượng, tỷ lệ trẻ em có hoàn cảnh đặc biệt được trợ giúp", None, "same")
VIEWS_13 = CircularReference(
    "I/III", "Trẻ em tham gia vào các vấn đề trẻ em",
    "Tỷ lệ trẻ em từ 7 tuổi trở lên được lấy ý kiến về các vấn đề của trẻ em", None, "related")
CHILD_POPULATION_13 = CircularReference("I/III", "Chỉ tiêu chung về trẻ em", "Dân số trẻ em", None, "related")

SEXES_CHILD = Breakdown("sex", CHILD_SEXES, True)
AGES_CHILD = Breakdown("age_group", CHILD_AGE_GROUPS, True)
SEXES_CASE = Breakdown("sex", CASE_SEXES, True)
AGES_CASE = Breakdown("age_group", CASE_AGE_GROUPS, True)
FORMS = Breakdown("abuse_form", _codes(ABUSE_FORMS), False)
GROUPS_14 = Breakdown("special_group", _codes(SPECIAL_GROUPS), False)

INDICATORS: tuple[Indicator, ...] = (
    # --- children (registry, stocks) ---
    Indicator("HT-TE01", "children", "Số trẻ em được theo dõi", "Children followed", AS_OF, "children", REGISTRY,
              "Law on Children 2016, Art. 1 (a child is under 16)", (SEXES_CHILD, AGES_CHILD),
              CHILD_POPULATION_13, stock=True),
    Indicator("HT-TE02", "children", "Số trẻ em có hoàn cảnh đặc biệt", "Children in special circumstances",
              "Children followed (HT-TE01) who are, on the last day of the period, in at least one of the 14 groups "
              "of Law on Children Art. 10; by group, a child in several groups counts in each.",
              "children", REGISTRY, "Law on Children 2016, Art. 10; Decree 56/2017/NĐ-CP, Arts. 3-16",
              (GROUPS_14, SEXES_CHILD, AGES_CHILD), SPECIAL_CIRCUMSTANCES_13, stock=True),
    Indicator("HT-TE03", "children", "Tỷ lệ trẻ em có hoàn cảnh đặc biệt được trợ giúp",
              "Share of children in special circumstances receiving support",
              "Children of HT-TE02 receiving support for at least one of their circumstances, divided by HT-TE02; "
              "by group, the children of that group supported for it.", "percent", REGISTRY,
              "Law on Children 2016, Arts. 10, 49; Decision 06/QĐ-TTg (2019), criterion 6 (at least 95%)",
              (GROUPS_14,), SUPPORTED_13, stock=True, denominator_same_as="HT-TE02",
              targets=("000: 100% trẻ em có hoàn cảnh đặc biệt được trợ giúp kịp thời",
                       "001: ít nhất 98% trẻ em có hoàn cảnh đặc biệt được chăm sóc, nuôi dưỡng, trợ giúp (2025)",
                       "003: tiêu chí 6 — từ 95% trở lên")),
    Indicator("HT-TE04", "children", "Tỷ lệ trẻ em được đăng ký khai sinh", "Birth registration rate",
              "Children followed (HT-TE01) whose birth was registered by the last day of the period, divided by "
              "HT-TE01.", "percent", REGISTRY,
              "Law on Children 2016, Art. 13; Law on Civil Status 2014, Art. 15; Decision 06/QĐ-TTg, criterion 2",
              (SEXES_CHILD, AGES_CHILD), stock=True, denominator_same_as="HT-TE01",
              targets=("003: 100% trẻ em sinh ra được đăng ký khai sinh đúng quy định",)),
    Indicator("HT-TE05", "children", "Tỷ lệ trẻ em dưới 6 tuổi có thẻ bảo hiểm y tế",
              "Health insurance (BHYT) coverage of children under 6",
              "Children followed aged 0-5 whose health insurance is valid on the last day of the period, divided "
              "by the children followed aged 0-5.", "percent", REGISTRY,
              "Law on Health Insurance, Art. 12(3)(b) (children under 6 are insured by the State budget)",
              (SEXES_CHILD,), stock=True,
              targets=("000: duy trì 100% trẻ em dưới 6 tuổi được cấp thẻ bảo hiểm y tế",)),
    Indicator("HT-TE06", "children", "Tỷ lệ trẻ em dưới 5 tuổi được đăng ký khai sinh",
              "Birth registration of children under 5",
              "Children followed aged under 5 on the last day of the period whose birth was registered by then, "
              "divided by the children followed aged under 5 (the provincial statistical indicator's definition: "
              "Tổng cục Thống kê, 'Tỷ lệ trẻ em dưới 05 tuổi đã được đăng ký khai sinh').", "percent", REGISTRY,
              "Law on Civil Status 2014, Art. 15; provincial statistical indicator system (GSO)",
              (SEXES_CHILD, Breakdown("age_years", _codes(AGE_YEARS), True)), stock=True,
              targets=("004: tỷ lệ trẻ em dưới 5 tuổi được đăng ký khai sinh đạt 99% vào năm 2025",)),
    Indicator("HT-TE07", "children", "Tỷ lệ trẻ em khuyết tật được tiếp cận dịch vụ",
              "Share of children with disabilities receiving services",
              "Children followed who have a disability (the registry's flag, or group d of Law Art. 10) on the last "
              "day of the period, and of them those supported in group d (receiving health, rehabilitation or "
              "inclusive-education services), as a percentage.", "percent", REGISTRY,
              "Law on Children 2016, Art. 10(d); Law on Persons with Disabilities 2010", (SEXES_CHILD,), stock=True,
              targets=("000: 95% trẻ khuyết tật được tiếp cận các dịch vụ chăm sóc sức khỏe, phục hồi chức năng "
                       "và giáo dục hòa nhập",)),
    Indicator("HT-TE08", "children", "Tỷ lệ trẻ em có hoàn cảnh đặc biệt trên tổng số trẻ em",
              "Share of children in special circumstances",
              "HT-TE02 divided by HT-TE01, on the last day of the period.", "percent", REGISTRY,
              "Law on Children 2016, Art. 10", (), SPECIAL_CIRCUMSTANCES_13, stock=True,
              numerator_same_as="HT-TE02", denominator_same_as="HT-TE01",
              targets=("001: giảm tỷ lệ trẻ em có hoàn cảnh đặc biệt xuống dưới 1,1% vào năm 2025",)),
    # --- abuse and reports (cases, flows) ---
    Indicator("0101", "abuse", "Số trẻ em bị xâm hại", "Abused children",
              "Distinct children (the linked child record, or the case when no child is linked) with at least one "
              "abuse case (category `abused`; for events before 2026, a case with a form of abuse) received in the "
              "period and not closed as unfounded or duplicate. A child is counted once, in the commune of its "
              "latest such case, so communes add up to provinces and the nation; sex, age group and the "
              "perpetrator's relationship come from that case; a child counts once in each form and environment "
              "of its cases.", "children", CASES,
              "Circular 13/2021/TT-BLĐTBXH, annex IV, 0101; Law on Children 2016, Art. 4",
              (SEXES_CASE, AGES_CASE, FORMS, Breakdown("environment", _codes(ENVIRONMENTS), False),
               Breakdown("perpetrator", _codes(PERPETRATORS), True), Breakdown(LOCALITY, (), True)),
              CircularReference("IV", "I. Tình hình xâm hại trẻ em", "Số trẻ em bị xâm hại", "0101", "same"),
              targets=("Decision 06/QĐ-TTg criterion 3: tỷ suất trẻ em bị xâm hại",)),
    Indicator("HT-VV01", "abuse", "Số tin báo, vụ việc được tiếp nhận", "Reports received",
              "Reports (cases) whose intake was recorded in the period, whatever they turned out to be; by kind "
              "of case, intake channel, receiving body (hotline 111 apart), the child's sex and age group, form of "
              "abuse, environment and the perpetrator's relationship.", "cases", CASES,
              "Decree 56/2017/NĐ-CP, Art. 25 and Form 01; Decree 56/2017 Art. 22 (hotline 111)",
              (Breakdown("category", _codes(CATEGORIES), True), Breakdown("channel", _codes(CHANNELS), True),
               Breakdown("intake_agency", _codes(INTAKE_AGENCIES), True), SEXES_CASE, AGES_CASE, FORMS,
               Breakdown("environment", _codes(ENVIRONMENTS), True),
               Breakdown("perpetrator", _codes(PERPETRATORS), True)),
              additive_over_time=True),
    Indicator("HT-VV02", "support", "Số vụ việc được can thiệp", "Cases intervened",
              "Cases received in the period in which emergency protection was taken or an intervention plan was "
              "approved (Law on Children Art. 50): that step done, or the case now in emergency protection, "
              "implementing or reviewing.", "cases", CASES, "Law on Children 2016, Art. 50; Decree 56/2017 Art. 28",
              (FORMS,), additive_over_time=True),
    Indicator("HT-VV03", "support", "Số vụ việc kết thúc", "Cases closed",
              "Cases closed in the period, by closure reason and by how they ended (after a review with Form 06, "
              "or early).", "cases", CASES, "Decree 56/2017/NĐ-CP, Art. 30 and Form 06",
              (Breakdown("closure_reason", _codes(CLOSURE_REASONS), True),
               Breakdown("closure_kind", _codes(CLOSURE_KINDS), True)), additive_over_time=True),
    Indicator("HT-VV04", "support", "Số trẻ em có nguy cơ bị bạo lực, bóc lột, bỏ rơi được hỗ trợ",
              "Children at risk supported",
              "Distinct children (linked, else the case) with a case of category `at_risk` received in the period "
              "that was supported (a plan approved or the case intervened), in the commune of the case; by risk.",
              "children", CASES, "Law on Children 2016, Art. 49; Decree 56/2017/NĐ-CP, Arts. 25-29",
              (Breakdown("risk_form", _codes(RISK_FORMS), False),)),
    Indicator("HT-VV05", "support", "Tỷ lệ trẻ em có nguy cơ được can thiệp, hỗ trợ trên tổng số trẻ em",
              "At-risk children supported, per 100 children followed",
              "HT-VV04 divided by the children followed (HT-TE01) on the last day of the period.", "percent",
              REGISTRY_AND_CASES, "Law on Children 2016, Art. 49", (), stock=False,
              numerator_same_as="HT-VV04", denominator_same_as="HT-TE01",
              targets=("001: 0,4-0,7% trẻ em có nguy cơ cao rơi vào hoàn cảnh đặc biệt được can thiệp, hỗ trợ",)),
    Indicator("HT-VV06", "support", "Số trẻ em có hoàn cảnh đặc biệt được hỗ trợ theo vụ việc",
              "Children in special circumstances supported through a case",
              "Distinct children (linked, else the case) with a case of category `special_circumstances` received "
              "in the period that was supported, in the commune of the case; by group of Law Art. 10 (a child in "
              "several groups counts in each).", "children", CASES,
              "Law on Children 2016, Arts. 10, 49; Decree 56/2017/NĐ-CP, Arts. 25-29", (GROUPS_14,),
              SUPPORTED_13),
    # --- timeliness (cases, flows) ---
    Indicator("HT-KT01", "timeliness", "Tỷ lệ vụ việc được bảo vệ khẩn cấp trong 12 giờ",
              "Share of emergency intakes protected within 12 hours",
              "Cases received in the period that needed emergency protection and whose protection is settled: the "
              "share protected within 12 hours of receiving the information (from the measure's time when the "
              "event carries it, else the producer's deadline).", "percent", CASES,
              "Decree 56/2017/NĐ-CP, Art. 26(3)", (), additive_over_time=True),
    Indicator("HT-KT02", "timeliness", "Tỷ lệ kế hoạch can thiệp được xây dựng trong 5 ngày làm việc",
              "Share of intervention plans drafted within 5 working days",
              "Cases received in the period whose plan-drafting deadline is settled: the share drafted within 5 "
              "working days of the initial assessment.", "percent", CASES, "Decree 56/2017/NĐ-CP, Art. 28(1)",
              (), additive_over_time=True),
    Indicator("HT-KT03", "timeliness",
              "Tỷ lệ vụ xâm hại tình dục, bỏ rơi, mua bán có kế hoạch được phê duyệt kịp thời",
              "Share of sexual-abuse, abandonment and trafficking cases with a plan approved in time",
              "Cases received in the period with sexual abuse, abandonment or trafficking among their forms whose "
              "plan-approval deadline is settled: the share approved within 2 working days of the plan's "
              "submission.", "percent", CASES,
              "Decree 56/2017/NĐ-CP, Art. 28(4); Decision 06/QĐ-TTg (2019), criterion 6 (100%)",
              (Breakdown("abuse_form", CRITERION_6_FORMS, False),), additive_over_time=True),
    Indicator("HT-KT04", "timeliness", "Số bước xử lý quá hạn", "Overdue steps",
              "Workflow deadlines falling due in the period that were missed or met late.", "steps", CASES,
              "Decree 56/2017/NĐ-CP, Arts. 26-32", (Breakdown("deadline", _codes(DEADLINES), True),),
              additive_over_time=True),
    Indicator("HT-KT05", "timeliness", "Tỷ lệ trẻ em bị xâm hại được can thiệp kịp thời",
              "Share of abused children given timely intervention",
              "Abused children (as in 0101) whose intervention is settled: the share whose every settled case got "
              "emergency protection within 12 hours when it needed it, and a plan drafted within 5 working days "
              "of the initial assessment and approved within 2 more.", "percent", CASES,
              "Decree 56/2017/NĐ-CP, Arts. 26(3), 28(1), 28(4)", (),
              targets=("000: 100% trẻ em bị xâm hại, bạo lực được can thiệp, trợ giúp kịp thời",
                       "001: 100% trẻ em bị xâm hại, lạm dụng, bóc lột khi phát hiện được can thiệp, hỗ trợ "
                       "kịp thời")),
    Indicator("HT-KT06", "timeliness", "Tỷ lệ trẻ em từ 7 tuổi trở lên được lấy ý kiến trong vụ việc",
              "Share of children aged 7 and over whose views were taken in their case",
              "Cases received in the period about a child aged 7 or over whose specific assessment (Form 03) is "
              "recorded: the share in which the child's views were taken (Form 03, item g).", "percent", CASES,
              "Decree 56/2017/NĐ-CP, Art. 27(1)(g) and Form 03; Law on Children 2016, Art. 34",
              (SEXES_CASE,), VIEWS_13, additive_over_time=True,
              targets=("001: 50% trẻ em từ 07 tuổi trở lên được hỏi ý kiến về các vấn đề của trẻ em (2025)",)),
    # --- temporary separation (cases, flows) ---
    Indicator("HT-CL01", "separation", "Số lượt tạm thời cách ly trẻ em", "Temporary separations decided",
              "Separations of a child from its parents or carers decided in the period, by how long they lasted "
              "(at most 15 days unless a competent authority asks for more) and whether they were extended.",
              "separations", CASES, "Decree 56/2017/NĐ-CP, Art. 32(2)-(3) and Form 07",
              (Breakdown("duration", _codes(DURATIONS), True), Breakdown("extension", _codes(EXTENSIONS), True)),
              additive_over_time=True),
    Indicator("HT-CL02", "separation", "Số ngày cách ly bình quân", "Mean length of separations (days)",
              "Separations that ended in the period: calendar days from the decision to the end, on average.",
              "days", CASES, "Decree 56/2017/NĐ-CP, Art. 32(3)", (), additive_over_time=True),
)
BY_CODE = {indicator.code: indicator for indicator in INDICATORS}


def key(code: str, breakdown: str = "", category: str = "") -> str:
    return f"{code}|{breakdown}|{category}"

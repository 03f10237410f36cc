"""The indicator catalogue (he thong chi tieu thong ke): codes, names, definitions, units, breakdowns, sources.

`0101` is the code of Circular 13/2021/TT-BLDTBXH ("so tre em bi xam hai"); the other codes are this system's own
(TE = children, VV = cases, KT = timeliness), because the circular does not number them. The values of the case
breakdowns are the cases service's closed lists (docs/events.md, services/cases/vocabulary.py); a value the
producers add later is reported as it arrives.

Figures are stored as integer counts under keys `code|breakdown|category` (the total has an empty breakdown and
category); a rate stores its numerator and denominator under the same key with `|n` and `|d` appended.
"""

from dataclasses import dataclass, field

from services.common.age import AGE_GROUPS

CHILD_AGE_GROUPS = tuple(name for name, _, high in AGE_GROUPS if high < 16)
CASE_AGE_GROUPS = (*CHILD_AGE_GROUPS, "16+", "unknown")
CHILD_SEXES = ("male", "female")
CASE_SEXES = ("male", "female", "unknown")
SPECIAL_GROUPS = ("a", "b", "c", "d", "dd", "e", "g", "h", "i", "k", "l", "m", "n", "o")
ABUSE_FORMS = ("violence", "exploitation", "sexual_abuse", "trafficking", "abandonment", "neglect", "other")
ENVIRONMENTS = ("home", "school", "community", "online", "workplace", "other")
CLOSURE_REASONS = ("safe_and_stable", "unfounded", "aged_out", "deceased", "transferred", "duplicate", "unknown")
DEADLINES = ("assessment", "emergency_protection", "separation", "specific_assessment", "plan_drafted",
             "plan_approval", "plan_revision", "review")
# Child-friendly commune criterion 6 (Decision 06/QD-TTg): these cases must all have a plan approved in time.
CRITERION_6_FORMS = ("sexual_abuse", "abandonment", "trafficking")
# A case counts as intervened once emergency protection was taken or a plan was approved (Law Art. 50).
INTERVENTION_DEADLINES = ("emergency_protection", "plan_approval")
INTERVENTION_STATES = ("emergency_protection", "implementing", "reviewing")

LABELS_VI: dict[str, dict[str, str]] = {
    "sex": {"male": "Nam", "female": "Nữ", "unknown": "Không rõ"},
    "age_group": {"0-5": "0-5 tuổi", "6-10": "6-10 tuổi", "11-15": "11-15 tuổi", "16+": "Từ 16 tuổi",
                  "unknown": "Không rõ"},
    "special_group": {
        "a": "a. Mồ côi cả cha và mẹ", "b": "b. Bị bỏ rơi", "c": "c. Không nơi nương tựa", "d": "d. Khuyết tật",
        "dd": "đ. Nhiễm HIV/AIDS", "e": "e. Vi phạm pháp luật", "g": "g. Nghiện ma túy",
        "h": "h. Bỏ học kiếm sống", "i": "i. Bị tổn hại nghiêm trọng về thể chất và tinh thần do bạo lực",
        "k": "k. Bị bóc lột", "l": "l. Bị xâm hại tình dục", "m": "m. Bị mua bán",
        "n": "n. Mắc bệnh hiểm nghèo hoặc phải điều trị dài ngày thuộc hộ nghèo, cận nghèo",
        "o": "o. Di cư, lánh nạn, tị nạn chưa xác định cha mẹ hoặc người chăm sóc",
    },
    "abuse_form": {"violence": "Bạo lực", "exploitation": "Bóc lột", "sexual_abuse": "Xâm hại tình dục",
                   "trafficking": "Mua bán", "abandonment": "Bỏ rơi", "neglect": "Bỏ mặc", "other": "Khác"},
    "environment": {"home": "Gia đình", "school": "Trường học", "community": "Cộng đồng",
                    "online": "Môi trường mạng", "workplace": "Nơi làm việc", "other": "Khác"},
    "closure_reason": {"safe_and_stable": "An toàn, ổn định", "unfounded": "Không có căn cứ",
                       "aged_out": "Đủ 16 tuổi", "deceased": "Đã mất", "transferred": "Chuyển nơi khác",
                       "duplicate": "Trùng lặp", "unknown": "Không rõ"},
    "deadline": {"assessment": "Đánh giá ban đầu", "emergency_protection": "Bảo vệ khẩn cấp",
                 "separation": "Cách ly tạm thời", "specific_assessment": "Đánh giá chi tiết",
                 "plan_drafted": "Xây dựng kế hoạch", "plan_approval": "Phê duyệt kế hoạch",
                 "plan_revision": "Điều chỉnh kế hoạch", "review": "Rà soát, đánh giá"},
}
BREAKDOWN_NAMES: dict[str, tuple[str, str]] = {
    "sex": ("Giới tính", "Sex"),
    "age_group": ("Nhóm tuổi", "Age group"),
    "special_group": ("Nhóm hoàn cảnh đặc biệt", "Group of special circumstances"),
    "abuse_form": ("Hình thức xâm hại", "Form of abuse"),
    "environment": ("Môi trường xảy ra", "Environment"),
    "closure_reason": ("Lý do kết thúc", "Closure reason"),
    "deadline": ("Bước quá hạn", "Overdue step"),
    "locality": ("Địa bàn", "Locality"),
}
LOCALITY = "locality"


@dataclass(frozen=True)
class Breakdown:
    """A breakdown (phan to) of one indicator. Additive: the categories sum to the total, so suppression must
    protect the row as well as the column."""

    code: str
    categories: tuple[str, ...]
    additive: bool


@dataclass(frozen=True)
class Indicator:
    code: str
    name_vi: str
    name_en: str
    definition: str
    unit: str  # "children", "cases", "steps" or "percent"
    source: str
    breakdowns: tuple[Breakdown, ...] = field(default_factory=tuple)

    @property
    def is_rate(self) -> bool:
        return self.unit == "percent"

    def breakdown(self, code: str) -> Breakdown | None:
        return next((b for b in self.breakdowns if b.code == code), None)

    def describe(self) -> dict[str, object]:
        return {"code": self.code, "name_vi": self.name_vi, "name_en": self.name_en,
                "definition": self.definition, "unit": self.unit, "source": self.source,
                "breakdowns": [{"code": b.code, "name_vi": BREAKDOWN_NAMES[b.code][0],
                                "name_en": BREAKDOWN_NAMES[b.code][1], "categories": list(b.categories),
                                "additive": b.additive} for b in self.breakdowns]}


REGISTRY = "Registry events (child snapshots)"
CASES = "Cases events (case snapshots)"
AS_OF = ("Counted on the last day of the period, from each child's latest record: born and followed by then, "
         "under 16 then, and not moved away, deceased or aged out by then.")

INDICATORS: tuple[Indicator, ...] = (
    Indicator("TE01", "Số trẻ em được theo dõi", "Children followed",
              AS_OF, "children", REGISTRY,
              (Breakdown("sex", CHILD_SEXES, True), Breakdown("age_group", CHILD_AGE_GROUPS, True))),
    Indicator("TE02", "Số trẻ em có hoàn cảnh đặc biệt", "Children in special circumstances",
              "Children followed (TE01) who are, on the last day of the period, in at least one of the 14 groups "
              "of Law on Children Art. 10; by group, a child in several groups counts in each.",
              "children", REGISTRY,
              (Breakdown("special_group", SPECIAL_GROUPS, False), Breakdown("sex", CHILD_SEXES, True),
               Breakdown("age_group", CHILD_AGE_GROUPS, True))),
    Indicator("TE03", "Tỷ lệ trẻ em có hoàn cảnh đặc biệt được hỗ trợ",
              "Share of children in special circumstances receiving support",
              "Children of TE02 receiving support for at least one of their circumstances, divided by TE02; by "
              "group, the children of that group supported for it (child-friendly criterion 6: at least 95%).",
              "percent", REGISTRY, (Breakdown("special_group", SPECIAL_GROUPS, False),)),
    Indicator("TE04", "Tỷ lệ trẻ em được đăng ký khai sinh", "Birth registration rate",
              "Children followed (TE01) whose birth was registered by the last day of the period, divided by TE01.",
              "percent", REGISTRY, (Breakdown("sex", CHILD_SEXES, False),)),
    Indicator("TE05", "Tỷ lệ trẻ em dưới 6 tuổi có thẻ bảo hiểm y tế",
              "Health insurance (BHYT) coverage of children under 6",
              "Children followed aged 0-5 whose health insurance is valid on the last day of the period, divided "
              "by the children followed aged 0-5.", "percent", REGISTRY, (Breakdown("sex", CHILD_SEXES, False),)),
    Indicator("0101", "Số trẻ em bị xâm hại", "Abused children",
              "Distinct children (the linked child record, or the case when no child is linked) of cases received "
              "in the period with at least one form of abuse, counted in the commune handling the case. Sex and "
              "age group come from the child's latest case; a child counts once in each form and environment of "
              "its cases.", "children", CASES,
              (Breakdown("sex", CASE_SEXES, True), Breakdown("age_group", CASE_AGE_GROUPS, True),
               Breakdown("abuse_form", ABUSE_FORMS, False), Breakdown("environment", ENVIRONMENTS, False),
               Breakdown(LOCALITY, (), True))),
    Indicator("VV01", "Số vụ việc được tiếp nhận", "Cases received",
              "Cases whose intake was recorded in the period.", "cases", CASES,
              (Breakdown("sex", CASE_SEXES, True), Breakdown("age_group", CASE_AGE_GROUPS, True),
               Breakdown("abuse_form", ABUSE_FORMS, False), Breakdown("environment", ENVIRONMENTS, True))),
    Indicator("VV02", "Số vụ việc được can thiệp", "Cases intervened",
              "Cases received in the period in which emergency protection was taken or an intervention plan was "
              "approved (Law on Children Art. 50): that deadline met, or the case now in emergency protection, "
              "implementing or reviewing.", "cases", CASES,
              (Breakdown("abuse_form", ABUSE_FORMS, False),)),
    Indicator("VV03", "Số vụ việc kết thúc", "Cases closed",
              "Cases closed in the period, by closure reason.", "cases", CASES,
              (Breakdown("closure_reason", CLOSURE_REASONS, True),)),
    Indicator("KT01", "Tỷ lệ vụ việc được bảo vệ khẩn cấp trong 12 giờ",
              "Share of emergency intakes protected within 12 hours",
              "Cases received in the period that needed emergency protection and whose emergency-protection "
              "deadline is settled (met or missed): the share met by the deadline (Decree 56 Art. 26: 12 hours).",
              "percent", CASES),
    Indicator("KT02", "Tỷ lệ kế hoạch can thiệp được xây dựng trong 5 ngày làm việc",
              "Share of intervention plans drafted within 5 working days",
              "Cases received in the period whose plan-drafting deadline is settled: the share met by the deadline "
              "(Decree 56 Art. 29).", "percent", CASES),
    Indicator("KT03", "Tỷ lệ vụ xâm hại tình dục, bỏ rơi, mua bán có kế hoạch được phê duyệt kịp thời",
              "Share of sexual-abuse, abandonment and trafficking cases with a plan approved in time",
              "Cases received in the period with sexual abuse, abandonment or trafficking among their forms whose "
              "plan-approval deadline is settled: the share met by the deadline (child-friendly criterion 6: "
              "100%).", "percent", CASES, (Breakdown("abuse_form", CRITERION_6_FORMS, False),)),
    Indicator("KT04", "Số bước xử lý quá hạn", "Overdue steps",
              "Workflow deadlines falling due in the period that were missed or met late.", "steps", CASES,
              (Breakdown("deadline", DEADLINES, True),)),
)
BY_CODE = {indicator.code: indicator for indicator in INDICATORS}


def key(code: str, breakdown: str = "", category: str = "") -> str:
    return f"{code}|{breakdown}|{category}"

"""The closed lists of the cases service (states, abuse forms, environments, deadlines, closure reasons, ...) and
their Vietnamese and English labels, served at `GET /v1/vocabularies`.

These values travel in events and statistics (docs/events.md), so they are part of the contract: add values,
never rename them.
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
)
from services.common.vocabulary import Vocabulary, from_enum


class State(StrEnum):
    """Where a case stands in the intervention workflow (Decree 56/2017/NĐ-CP, Arts. 25-32)."""

    RECEIVED = "received"
    ASSESSING = "assessing"
    EMERGENCY_PROTECTION = "emergency_protection"
    SPECIFIC_ASSESSMENT = "specific_assessment"
    PLAN_DRAFTING = "plan_drafting"
    AWAITING_APPROVAL = "awaiting_approval"
    PLAN_RETURNED = "plan_returned"
    IMPLEMENTING = "implementing"
    REVIEWING = "reviewing"
    AWAITING_CLOSURE = "awaiting_closure"
    CLOSED = "closed"


class CaseCategory(StrEnum):
    """Đối tượng trẻ em của vụ việc (Decree 56 Arts. 25-30; Form 01 note (4)): who the case is about."""

    ABUSED = "abused"  # trẻ em bị xâm hại
    AT_RISK = "at_risk"  # trẻ em có nguy cơ bị bạo lực, bóc lột, bỏ rơi
    SPECIAL_CIRCUMSTANCES = "special_circumstances"  # trẻ em có hoàn cảnh đặc biệt (Law Art. 10)


class RiskForm(StrEnum):
    """Nguy cơ: what an at-risk child is at risk of (Law Art. 49(1); Decree 56 Art. 25)."""

    VIOLENCE = "violence"  # bạo lực
    EXPLOITATION = "exploitation"  # bóc lột
    ABANDONMENT = "abandonment"  # bỏ rơi



class Channel(StrEnum):
    """Nguồn nhận thông tin, "thông qua" (Form 01, A.1): how the report came in."""

    PHONE = "phone"  # điện thoại
    IN_PERSON = "in_person"  # gặp trực tiếp
    THROUGH_ANOTHER_PERSON = "through_another_person"  # người khác báo


class AbuseForm(StrEnum):
    """Hình thức xâm hại trẻ em (Law on Children 2016, Art. 4)."""

    VIOLENCE = "violence"
    EXPLOITATION = "exploitation"
    SEXUAL_ABUSE = "sexual_abuse"
    TRAFFICKING = "trafficking"
    ABANDONMENT = "abandonment"
    NEGLECT = "neglect"
    OTHER = "other"


class Environment(StrEnum):
    """Môi trường xảy ra xâm hại (Circular 13/2021 indicator 0101 breakdown)."""

    HOME = "home"
    SCHOOL = "school"
    COMMUNITY = "community"
    ONLINE = "online"
    WORKPLACE = "workplace"
    OTHER = "other"


class PerpetratorRelationship(StrEnum):
    PARENT = "parent"
    STEP_PARENT = "step_parent"
    RELATIVE = "relative"
    CAREGIVER = "caregiver"
    TEACHER = "teacher"
    ACQUAINTANCE = "acquaintance"
    STRANGER = "stranger"
    OTHER_CHILD = "other_child"
    UNKNOWN = "unknown"


class DangerIndicator(StrEnum):
    """Signs that the child's life, health or dignity is seriously at risk: the emergency test looks at these."""

    LIFE_THREATENED = "life_threatened"
    SERIOUS_INJURY = "serious_injury"
    ONGOING_SEXUAL_ABUSE = "ongoing_sexual_abuse"
    ABUSER_HAS_ACCESS = "abuser_has_access"
    CHILD_ALONE = "child_alone"
    TRAFFICKING_IN_PROGRESS = "trafficking_in_progress"
    SELF_HARM_RISK = "self_harm_risk"


class ChildSex(StrEnum):
    MALE = "male"
    FEMALE = "female"
    UNKNOWN = "unknown"


class ClosureReason(StrEnum):
    """Why a case ends. `safe_and_stable` only after a review with Form 06 and the chairman's decision (Decree 56
    Art. 30(1)(b)); the others close early, without a plan's end (lý do đóng hồ sơ sớm)."""

    SAFE_AND_STABLE = "safe_and_stable"
    UNFOUNDED = "unfounded"
    AGED_OUT = "aged_out"
    DECEASED = "deceased"
    TRANSFERRED = "transferred"
    DUPLICATE = "duplicate"
    MOVED_ABROAD = "moved_abroad"


class ClosureKind(StrEnum):
    """How a case ended: on a review (Form 06) and the chairman's decision, or early."""

    REVIEW = "review"
    EARLY = "early"


class ParentViews(StrEnum):
    """Ý kiến, nguyện vọng của cha, mẹ, người chăm sóc (Decree 56 Art. 27(1)(h))."""

    TAKEN = "taken"
    NOT_ASKED_ALLEGED_ABUSER = "not_asked_alleged_abuser"  # "trừ trường hợp ... là người gây tổn hại"
    UNAVAILABLE = "unavailable"  # no parent or carer could be reached


class SeparationGround(StrEnum):
    """Why a child is separated from parents or carer (Decree 56 Art. 32(1); Art. 26(3))."""

    EMERGENCY = "emergency"  # cần bảo vệ khẩn cấp (Art. 26(3), 31)
    PARENTS_REFUSE_PLAN = "parents_refuse_plan"  # cha, mẹ ... từ chối thực hiện kế hoạch
    CONTINUED_RISK_FROM_PARENTS = "continued_risk_from_parents"  # nguy cơ tiếp tục bị xâm hại bởi cha, mẹ ...


class SeparationEndKind(StrEnum):
    """How a separation ends (Decree 56 Art. 32(3))."""

    PARENTS_SAFE = "parents_safe"  # a new Form 03 finds the parents or carer ensure the child's safety
    COMPETENT_AUTHORITY = "competent_authority"  # a court or other competent body decided otherwise


class ReviewItem(StrEnum):
    """The fixed items of Form 06 (Rà soát, đánh giá tình trạng của trẻ em sau khi thực hiện kế hoạch), each rated
    Cao / Trung bình / Thấp."""

    HARM_SEVERITY = "harm_severity"  # 1a.1 Mức độ tổn hại của trẻ em có còn nghiêm trọng không
    ABUSER_ACCESS = "abuser_access"  # 1a.2 Khả năng tiếp cận trẻ em của đối tượng xâm hại
    CARE_ENVIRONMENT_OBSTACLES = "care_environment_obstacles"  # 1a.3 Những trở ngại trong môi trường chăm sóc
    SELF_PROTECTION_RECOVERY = "self_protection_recovery"  # 1b Khả năng tự bảo vệ, phục hồi của trẻ em


class RecipientKind(StrEnum):
    """Who receives the plan and its approval decision (Decree 56 Art. 28(5))."""

    IMPLEMENTING_BODY = "implementing_body"  # cơ quan, tổ chức, cá nhân có trách nhiệm thực hiện
    PARENT_OR_CARER = "parent_or_carer"  # cha, mẹ hoặc người chăm sóc trẻ em


class Deadline(StrEnum):
    """Named deadlines a workflow step starts and a later step stops."""

    ASSESSMENT = "assessment"
    EMERGENCY_PROTECTION = "emergency_protection"
    SEPARATION = "separation"
    SPECIFIC_ASSESSMENT = "specific_assessment"
    PLAN_DRAFTED = "plan_drafted"
    PLAN_APPROVAL = "plan_approval"
    PLAN_REVISION = "plan_revision"
    REVIEW = "review"
    CLOSURE_DECISION = "closure_decision"


class TaskAgency(StrEnum):
    """Bodies that carry out tasks of an approved plan (Decree 56 Art. 29(2))."""

    POLICE = "police"
    HEALTH = "health"
    EDUCATION = "education"
    JUSTICE = "justice"
    SOCIAL_SERVICES = "social_services"


class TaskStatus(StrEnum):
    """A plan task's status: open → in_progress → done, or cannot_be_done (with a reason); the case officer reopens
    (with a reason) or waives (with a reason); `cancelled` when the case closes or a new plan replaces it."""

    OPEN = "open"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    CANNOT_BE_DONE = "cannot_be_done"
    WAIVED = "waived"
    CANCELLED = "cancelled"


# Statuses that let a cycle's review start (Decree 56 Art. 30(1): the review follows the plan's implementation).
FINISHED_TASK_STATUSES = frozenset({TaskStatus.DONE, TaskStatus.WAIVED, TaskStatus.CANCELLED})


class Measure(StrEnum):
    """Biện pháp can thiệp (Law on Children Art. 50(2))."""

    MEDICAL_AND_PSYCHOLOGICAL_CARE = "medical_and_psychological_care"
    SAFE_SHELTER_AND_SEPARATION = "safe_shelter_and_separation"
    ALTERNATIVE_CARE = "alternative_care"
    FAMILY_REUNIFICATION = "family_reunification"
    COUNSELLING = "counselling"
    LEGAL_AID = "legal_aid"
    OTHER = "other"


class RiskRating(StrEnum):
    """Mức độ on the review form (Form 06): Cao / Trung bình / Thấp."""

    HIGH = "high"  # Cao
    MEDIUM = "medium"  # Trung bình
    LOW = "low"  # Thấp




class NoteVisibility(StrEnum):
    MANAGERS = "managers"
    PARTICIPANTS = "participants"


DECREE_56 = "Nghị định 56/2017/NĐ-CP"

# The labels every list of the cases service shows (`GET /v1/vocabularies`). The 14 groups of Law Art. 10 a case
# records (`special_groups`) are the registry's `special_group` list: one list, one owner.
STATES = from_enum("case_state", State, {
    "received": ("Đã tiếp nhận", "Received"),
    "assessing": ("Đang đánh giá ban đầu", "Initial assessment"),
    "emergency_protection": ("Bảo vệ khẩn cấp", "Emergency protection"),
    "specific_assessment": ("Đang đánh giá chi tiết", "Specific assessment"),
    "plan_drafting": ("Đang xây dựng kế hoạch", "Drafting the plan"),
    "awaiting_approval": ("Chờ phê duyệt kế hoạch", "Plan awaiting approval"),
    "plan_returned": ("Kế hoạch bị trả lại", "Plan returned"),
    "implementing": ("Đang thực hiện kế hoạch", "Plan in progress"),
    "reviewing": ("Đang rà soát, đánh giá", "Review"),
    "awaiting_closure": ("Chờ quyết định kết thúc", "Awaiting the closure decision"),
    "closed": ("Đã kết thúc", "Closed"),
}, vi="Trạng thái hồ sơ", en="Case state", source=f"{DECREE_56}, Điều 25-30")

VOCABULARIES: list[Vocabulary] = [
    STATES,
    from_enum("case_category", CaseCategory, CASE_CATEGORY_LABELS, vi="Đối tượng trẻ em của vụ việc",
              en="Who the case is about", source=f"{DECREE_56}, Điều 25-30; Mẫu số 01"),
    from_enum("risk_form", RiskForm, RISK_FORM_LABELS, vi="Nguy cơ", en="Risk",
              source="Luật Trẻ em 2016, Điều 49(1); Nghị định 56/2017/NĐ-CP, Điều 25"),
    from_enum("intake_channel", Channel, CHANNEL_LABELS, vi="Nguồn nhận thông tin", en="How the report came in",
              source=f"{DECREE_56}, Mẫu số 01"),
    from_enum("abuse_form", AbuseForm, ABUSE_FORM_LABELS, vi="Hình thức xâm hại", en="Form of abuse",
              source="Luật Trẻ em 2016, Điều 4"),
    from_enum("environment", Environment, ENVIRONMENT_LABELS, vi="Môi trường xảy ra xâm hại",
              en="Where the harm happened", source="Thông tư 13/2021/TT-BLĐTBXH, chỉ tiêu 0101"),
    from_enum("perpetrator_relationship", PerpetratorRelationship, PERPETRATOR_LABELS,
              vi="Quan hệ của người bị nghi gây tổn hại với trẻ em",
              en="Relationship of the alleged perpetrator to the child"),
    from_enum("danger_indicator", DangerIndicator, {
        "life_threatened": ("Tính mạng của trẻ em bị đe dọa", "The child's life is threatened"),
        "serious_injury": ("Trẻ em bị tổn hại nghiêm trọng về thân thể", "Serious physical injury"),
        "ongoing_sexual_abuse": ("Xâm hại tình dục đang tiếp diễn", "Sexual abuse is ongoing"),
        "abuser_has_access": ("Đối tượng xâm hại vẫn tiếp cận được trẻ em", "The abuser can still reach the child"),
        "child_alone": ("Trẻ em không có người chăm sóc", "No one is caring for the child"),
        "trafficking_in_progress": ("Trẻ em đang bị mua bán", "Trafficking in progress"),
        "self_harm_risk": ("Nguy cơ trẻ em tự gây tổn hại", "Risk of self-harm"),
    }, vi="Dấu hiệu nguy hiểm", en="Signs of danger", source=f"{DECREE_56}, Điều 26(3); Mẫu số 02"),
    from_enum("child_sex", ChildSex, {**SEX_LABELS, "unknown": UNKNOWN}, vi="Giới tính của trẻ em",
              en="The child's sex"),
    from_enum("closure_reason", ClosureReason, CLOSURE_REASON_LABELS, vi="Lý do kết thúc", en="Closure reason",
              source=f"{DECREE_56}, Điều 30"),
    from_enum("closure_kind", ClosureKind, CLOSURE_KIND_LABELS, vi="Cách kết thúc", en="How the case ended",
              source=f"{DECREE_56}, Điều 30"),
    from_enum("parent_views", ParentViews, {
        "taken": ("Đã lấy ý kiến", "Views taken"),
        "not_asked_alleged_abuser": ("Không lấy ý kiến vì cha, mẹ, người chăm sóc là người gây tổn hại cho trẻ em",
                                     "Not asked: the parent or carer is the alleged abuser"),
        "unavailable": ("Không liên hệ được cha, mẹ, người chăm sóc trẻ em", "No parent or carer could be reached"),
    }, vi="Ý kiến của cha, mẹ, người chăm sóc trẻ em", en="Views of the parents or carer",
        source=f"{DECREE_56}, Điều 27(1)(h)"),
    from_enum("separation_ground", SeparationGround, {
        "emergency": ("Trẻ em cần được bảo vệ khẩn cấp", "The child needs emergency protection"),
        "parents_refuse_plan": ("Cha, mẹ, người chăm sóc trẻ em từ chối thực hiện kế hoạch hỗ trợ, can thiệp",
                                "The parents or carer refuse the support plan"),
        "continued_risk_from_parents": ("Trẻ em có nguy cơ tiếp tục bị xâm hại bởi chính cha, mẹ, người chăm sóc",
                                        "Risk of further abuse by the parents or carer"),
    }, vi="Căn cứ tạm thời cách ly", en="Ground for the separation", source=f"{DECREE_56}, Điều 32(1)"),
    from_enum("separation_end_kind", SeparationEndKind, {
        "parents_safe": ("Cha, mẹ, người chăm sóc bảo đảm an toàn cho trẻ em (đánh giá lại theo Mẫu số 03)",
                         "The parents or carer keep the child safe (reassessed on Form 03)"),
        "competent_authority": ("Theo quyết định của cơ quan có thẩm quyền", "A competent authority decided"),
    }, vi="Cách kết thúc tạm thời cách ly", en="How the separation ended", source=f"{DECREE_56}, Điều 32(3)"),
    from_enum("review_item", ReviewItem, {
        "harm_severity": ("Mức độ tổn hại của trẻ em có còn nghiêm trọng không", "Is the harm still serious"),
        "abuser_access": ("Khả năng tiếp cận trẻ em của đối tượng xâm hại", "Can the abuser reach the child"),
        "care_environment_obstacles": (
            "Những trở ngại trong môi trường chăm sóc trẻ em đối với việc bảo đảm an toàn cho trẻ em",
            "Obstacles to the child's safety in the care environment"),
        "self_protection_recovery": ("Khả năng tự bảo vệ, phục hồi của trẻ em",
                                     "The child's ability to protect themself and recover"),
    }, vi="Nội dung rà soát, đánh giá", en="Review item", source=f"{DECREE_56}, Điều 30; Mẫu số 06"),
    from_enum("risk_rating", RiskRating, {
        "high": ("Cao", "High"), "medium": ("Trung bình", "Medium"), "low": ("Thấp", "Low"),
    }, vi="Mức độ", en="Rating", source=f"{DECREE_56}, Mẫu số 06"),
    from_enum("recipient_kind", RecipientKind, {
        "implementing_body": ("Cơ quan, tổ chức, cá nhân thực hiện", "Body that carries it out"),
        "parent_or_carer": ("Cha, mẹ, người chăm sóc trẻ em", "Parent or carer"),
    }, vi="Nơi nhận", en="Recipient", source=f"{DECREE_56}, Điều 28(5)"),
    from_enum("deadline", Deadline, DEADLINE_LABELS, vi="Thời hạn", en="Deadline",
              source=f"{DECREE_56}, Điều 26-32"),
    from_enum("task_agency", TaskAgency, {
        "police": ("Công an", "Police"), "health": ("Y tế", "Health"), "education": ("Giáo dục", "Education"),
        "justice": ("Tư pháp", "Justice"), "social_services": ("Cơ sở trợ giúp xã hội", "Social services"),
    }, vi="Cơ quan thực hiện", en="Implementing body", source=f"{DECREE_56}, Điều 29(2)"),
    from_enum("task_status", TaskStatus, {
        "open": ("Chưa thực hiện", "Open"), "in_progress": ("Đang thực hiện", "In progress"),
        "done": ("Đã hoàn thành", "Done"), "cannot_be_done": ("Không thực hiện được", "Cannot be done"),
        "waived": ("Không cần thực hiện nữa", "Waived"), "cancelled": ("Đã hủy", "Cancelled"),
    }, vi="Tình trạng nhiệm vụ", en="Task status"),
    from_enum("measure", Measure, {
        "medical_and_psychological_care": ("Chăm sóc y tế, trị liệu tâm lý", "Medical and psychological care"),
        "safe_shelter_and_separation": (
            "Bố trí nơi tạm trú an toàn, cách ly trẻ em khỏi môi trường, đối tượng xâm hại",
            "Safe shelter, separation from the place or person of harm"),
        "alternative_care": ("Chăm sóc thay thế", "Alternative care"),
        "family_reunification": ("Đoàn tụ gia đình, hòa nhập cộng đồng", "Family reunification"),
        "counselling": ("Tư vấn, giáo dục kiến thức, kỹ năng cho trẻ em và gia đình", "Counselling"),
        "legal_aid": ("Trợ giúp pháp lý", "Legal aid"),
        "other": ("Biện pháp khác", "Other measure"),
    }, vi="Biện pháp hỗ trợ, can thiệp", en="Measure", source="Luật Trẻ em 2016, Điều 50(2)"),
    from_enum("note_visibility", NoteVisibility, {
        "managers": ("Chỉ người quản lý hồ sơ", "Case managers only"),
        "participants": ("Mọi cơ quan tham gia", "Every body taking part"),
    }, vi="Ai đọc được ghi chú", en="Who reads the note"),
]

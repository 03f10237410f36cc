"""The closed lists of the cases service: states, abuse forms, environments, deadlines, closure reasons.

These values travel in events and statistics (docs/events.md), so they are part of the contract: add values,
never rename them.
"""

from enum import StrEnum


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


class SpecialGroupLetter(StrEnum):
    """Nhóm trẻ em có hoàn cảnh đặc biệt (Law on Children Art. 10), by the letter of the law (đ written `dd`)."""

    A = "a"
    B = "b"
    C = "c"
    D = "d"
    DD = "dd"
    E = "e"
    G = "g"
    H = "h"
    I = "i"  # noqa: E741  (the law's own letter)
    K = "k"
    L = "l"
    M = "m"
    N = "n"
    O = "o"  # noqa: E741


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


RISK_RATING_LABELS = {RiskRating.HIGH: "Cao", RiskRating.MEDIUM: "Trung bình", RiskRating.LOW: "Thấp"}


class NoteVisibility(StrEnum):
    MANAGERS = "managers"
    PARTICIPANTS = "participants"

"""The closed lists of the cases service: states, abuse forms, environments, deadlines, closure reasons.

These values travel in events and statistics (docs/events.md), so they are part of the contract: add values,
never rename them.
"""

from enum import StrEnum


class State(StrEnum):
    """Where a case stands in the intervention workflow (Decree 56/2017/ND-CP, Arts. 25-32)."""

    RECEIVED = "received"
    ASSESSING = "assessing"
    EMERGENCY_PROTECTION = "emergency_protection"
    SPECIFIC_ASSESSMENT = "specific_assessment"
    PLAN_DRAFTING = "plan_drafting"
    AWAITING_APPROVAL = "awaiting_approval"
    PLAN_RETURNED = "plan_returned"
    IMPLEMENTING = "implementing"
    REVIEWING = "reviewing"
    CLOSED = "closed"


class AbuseForm(StrEnum):
    """Hinh thuc xam hai tre em (Law on Children 2016, Art. 4)."""

    VIOLENCE = "violence"
    EXPLOITATION = "exploitation"
    SEXUAL_ABUSE = "sexual_abuse"
    TRAFFICKING = "trafficking"
    ABANDONMENT = "abandonment"
    NEGLECT = "neglect"
    OTHER = "other"


class Environment(StrEnum):
    """Moi truong xay ra xam hai (Circular 13/2021 indicator 0101 breakdown)."""

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
    """Why a case ends (Decree 56 Art. 32: the plan ends when the child is safe and stable)."""

    SAFE_AND_STABLE = "safe_and_stable"
    UNFOUNDED = "unfounded"
    AGED_OUT = "aged_out"
    DECEASED = "deceased"
    TRANSFERRED = "transferred"
    DUPLICATE = "duplicate"


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


class TaskAgency(StrEnum):
    """Bodies that carry out tasks of an approved plan (Decree 56 Art. 31)."""

    POLICE = "police"
    HEALTH = "health"
    EDUCATION = "education"
    JUSTICE = "justice"
    SOCIAL_SERVICES = "social_services"


class TaskStatus(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    CANCELLED = "cancelled"


class Measure(StrEnum):
    """Bien phap can thiep (Law on Children Art. 50(2))."""

    MEDICAL_AND_PSYCHOLOGICAL_CARE = "medical_and_psychological_care"
    SAFE_SHELTER_AND_SEPARATION = "safe_shelter_and_separation"
    ALTERNATIVE_CARE = "alternative_care"
    FAMILY_REUNIFICATION = "family_reunification"
    COUNSELLING = "counselling"
    LEGAL_AID = "legal_aid"
    OTHER = "other"


class RiskRating(StrEnum):
    """Muc do nguy co on the review form (Form 06)."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class NoteVisibility(StrEnum):
    MANAGERS = "managers"
    PARTICIPANTS = "participants"

"""Valid data for every workflow action and for an intake, shared by the API, end-to-end and property tests."""

from datetime import date, timedelta
from typing import Any

from tests.helpers import DEMO_COMMUNE, OTHER_COMMUNE

TODAY = date.today()


def intake(commune: str = DEMO_COMMUNE, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "reporter": {"anonymous": False, "name": "Nguyễn Văn Báo", "phone": "0912345678",
                     "relationship": "neighbour"},
        "child": {"first_name": "Lan", "approximate_age": 9, "sex": "female", "place": "near the market"},
        "incident_date": (TODAY - timedelta(days=1)).isoformat(),
        "incident_commune_code": commune,
        "abuse_forms": ["violence"],
        "environment": "home",
        "perpetrator_relationship": "step_parent",
        "description": "Neighbours hear the child crying and being beaten every night.",
        "danger_indicators": ["abuser_has_access"],
    }
    body.update(changes)
    return body


PLAN = {
    "objectives": "Keep the child safe at school and at home; counselling for the family.",
    "measures": [{"measure": "counselling", "description": "Weekly family counselling"},
                 {"measure": "medical_and_psychological_care", "description": "Psychological therapy"}],
    "tasks": [{"agency": "police", "title": "Investigate the step-parent", "start_date": TODAY.isoformat(),
               "end_date": (TODAY + timedelta(days=10)).isoformat(), "budget_vnd": 0},
              {"agency": "health", "title": "Therapy sessions", "start_date": TODAY.isoformat(),
               "end_date": (TODAY + timedelta(days=20)).isoformat(), "provider": "Trung tâm công tác xã hội",
               "budget_vnd": 2_000_000}],
}


def review(**ratings: str) -> dict[str, Any]:
    """Form 06 with every item rated (low unless given)."""
    items = ("harm_severity", "abuser_access", "care_environment_obstacles", "self_protection_recovery")
    return {"reviewed_on": TODAY.isoformat(),
            "ratings": [{"item": item, "rating": ratings.get(item, "low")} for item in items],
            "child_condition": "The child attends school and sleeps well.",
            "environment_safety": "The step-parent has left the home.",
            "summary": "The child is attending school; the step-parent has left the home."}


REVIEW = review(self_protection_recovery="medium")
SPECIFIC_ASSESSMENT = {
    "physical_and_emotional_state": "Bruises healing; the child is anxious at night.",
    "family_and_protective_capacity": "The mother protects the child but depends on the step-parent.",
    "risk_factors": "The step-parent drinks and still lives in the home.",
    "learning_and_self_protection": "Attends grade 4; knows to call 111.",
    "community_safety_and_support": "Neighbours are willing to alert the commune.",
    "needs": ["counselling", "therapy"],
    "child_views": "Lan wants to stay with her mother and grandmother.",
    "parent_views": "taken",
    "parent_views_text": "The mother agrees to counselling.",
    "needs_meeting": {"held_on": TODAY.isoformat(), "chaired_by": "Chủ tịch UBND phường",
                      "attendees": [{"name": "Trần Thị Hoa", "role": "commune officer"},
                                    {"name": "Lê Văn Nam", "role": "police"},
                                    {"name": "Phạm Thị Mai", "role": "mother"}],
                      "parents_or_carer_attended": True,
                      "measures_agreed": ["counselling", "medical_and_psychological_care"],
                      "minutes": "The meeting agreed on counselling and therapy."},
}

FORMS: dict[str, dict[str, Any]] = {
    "begin_assessment": {},
    "assess_emergency": {"findings": "Visible bruises; the step-parent is at home.", "child_seen": True,
                         "danger_indicators": ["serious_injury", "abuser_has_access"]},
    "assess_no_emergency": {"findings": "No immediate danger found.", "child_seen": True},
    "take_emergency_measures": {"decision_number": "12/QĐ-UBND", "measures": ["medical_and_psychological_care"]},
    "record_emergency_measure": {"measures": ["safe_shelter_and_separation"],
                                 "description": "Officers removed the step-parent from the home for the night."},
    "end_emergency_protection": {},
    "separate_child": {"ground": "continued_risk_from_parents", "duration_days": 7,
                       "place": "Grandmother's home", "alternative_carer": "The grandmother",
                       "measures": ["safe_shelter_and_separation"]},
    "extend_separation": {"decision_number": "14/QĐ-UBND", "days": 5},
    "end_separation": {"kind": "parents_safe",
                       "reassessment": {"assessed_on": TODAY.isoformat(), "parents_ensure_safety": True,
                                        "findings": "The step-parent left; the mother keeps the child safe."}},
    "complete_specific_assessment": SPECIFIC_ASSESSMENT,
    "submit_plan": PLAN,
    "approve_plan": {"decided_on": TODAY.isoformat(),
                     "recipients": [{"kind": "implementing_body", "name": "Công an phường"},
                                    {"kind": "parent_or_carer", "name": "Phạm Thị Mai (mẹ)"}]},
    "return_plan": {"reason": "Add a school task."},
    "start_review": {},
    "continue_plan": REVIEW,
    "new_plan_cycle": review(abuser_access="high"),
    "propose_closure": review(),
    "close": {"decision_number": "30/QĐ-UBND", "decided_on": TODAY.isoformat(),
              "summary": "No more risk; the child is stable."},
    "refuse_closure": {"reason": "Wait for the school term to end."},
    "close_early": {"reason": "unfounded", "summary": "The report could not be confirmed."},
    "hand_over": {"residence_commune_code": OTHER_COMMUNE},
    "transfer": {"to_commune_code": OTHER_COMMUNE, "reason": "The family moved."},
}

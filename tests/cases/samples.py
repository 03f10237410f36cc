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
    "tasks": [{"agency": "police", "title": "Investigate the step-parent", "due_date": (TODAY + timedelta(days=10))
               .isoformat()},
              {"agency": "health", "title": "Therapy sessions", "due_date": (TODAY + timedelta(days=20)).isoformat()}],
}
REVIEW = {"items": [{"item": "Safety at home", "rating": "low"}, {"item": "Schooling", "rating": "medium"}],
          "summary": "The child is attending school; the step-parent has left the home."}

FORMS: dict[str, dict[str, Any]] = {
    "begin_assessment": {},
    "assess_emergency": {"findings": "Visible bruises; the step-parent is at home.", "child_seen": True,
                         "danger_indicators": ["serious_injury", "abuser_has_access"]},
    "assess_no_emergency": {"findings": "No immediate danger found.", "child_seen": True},
    "take_emergency_measures": {"decision_number": "12/QD-UBND", "measures": ["medical_and_psychological_care"]},
    "separate_child": {"decision_number": "13/QD-UBND", "measures": ["safe_shelter_and_separation"],
                       "placement": "Grandmother's home"},
    "extend_separation": {"decision_number": "14/QD-UBND", "until": (TODAY + timedelta(days=40)).isoformat()},
    "end_separation": {"reason": "The child returned home after the step-parent left."},
    "complete_specific_assessment": {"findings": "The family needs support.", "needs": ["counselling", "therapy"],
                                     "meeting_date": TODAY.isoformat(),
                                     "meeting_participants": ["commune officer", "police", "school"],
                                     "minutes": "The meeting agreed on counselling and therapy."},
    "submit_plan": PLAN,
    "approve_plan": {"decision_number": "20/QD-UBND", "decided_on": TODAY.isoformat()},
    "return_plan": {"reason": "Add a school task."},
    "start_review": {},
    "continue_plan": REVIEW,
    "new_plan_cycle": REVIEW,
    "close": {"reason": "safe_and_stable", "summary": "No more risk; the child is stable."},
    "close_early": {"reason": "unfounded", "summary": "The report could not be confirmed."},
    "transfer": {"to_commune_code": OTHER_COMMUNE, "reason": "The family moved."},
}

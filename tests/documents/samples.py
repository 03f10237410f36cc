"""A case with every paper, built in memory from data that the real form classes validate (services/cases/forms.py):
what the rendering tests and the bench fill the templates with."""

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.cases import documents, forms, workflow
from services.cases.models import Case, CaseDocument, CaseHistory

COMMUNE = "00070"  # Phường Hoàn Kiếm, Hà Nội
RECEIVED = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)  # 08:30 in Vietnam
CHILD = "Nguyễn Thị Lan"
REPORTER = "Trần Văn Bảo"

INTAKE_DETAILS = {
    "received_place": "Tổng đài 111", "receiving_officer": "Lê Thu Hà",
    "father": {"full_name": "Nguyễn Văn Dũng", "age": 41, "occupation": "Thợ xây"},
    "mother": {"full_name": "Phạm Thị Hường", "age": 38, "occupation": "Buôn bán"},
    "family_circumstances": "Cha mẹ ly thân; trẻ ở với mẹ và cha dượng.",
    "current_carer": "Bà ngoại", "actions_taken": "Hàng xóm đưa trẻ sang nhà mình tạm lánh.",
    "incident_place": "Ngõ 12 phố Hàng Bạc",
    "child": {"full_name": CHILD, "date_of_birth": "2017-04-15", "condition": "Nhiều vết bầm tím ở tay và lưng.",
              "likely_consequences": "Trẻ tiếp tục bị đánh đập, hoảng sợ, bỏ học."},
}
STEPS: list[tuple[str, type[forms.Form], dict[str, Any]]] = [
    ("assess_emergency", forms.InitialAssessment, {
        "findings": "Trẻ có vết thương mới; cha dượng vẫn sống cùng nhà.", "child_seen": True,
        "danger_indicators": ["serious_injury", "abuser_has_access"]}),
    ("separate_child", forms.SeparationDecision, {
        "ground": "emergency", "duration_days": 10,
        "place": "Nhà bà ngoại, số 5 phố Hàng Bè", "alternative_carer": "Bà ngoại Đỗ Thị Gấm",
        "measures": ["safe_shelter_and_separation", "alternative_care"]}),
    ("complete_specific_assessment", forms.SpecificAssessment, {
        "physical_and_emotional_state": "Trẻ sợ hãi, ít nói, vết bầm đang lành.",
        "family_and_protective_capacity": "Mẹ thương con nhưng phụ thuộc kinh tế vào cha dượng.",
        "risk_factors": "Cha dượng nghiện rượu, có tiền sử bạo lực.",
        "learning_and_self_protection": "Học lớp 3, học lực khá; chưa biết cách tự bảo vệ.",
        "community_safety_and_support": "Tổ dân phố sẵn sàng hỗ trợ, giám sát.",
        "needs": ["Trị liệu tâm lý", "Tư vấn cho mẹ", "Trợ giúp pháp lý"],
        "child_views": "Cháu muốn ở với mẹ khi cha dượng không còn ở nhà.",
        "parent_views": "taken", "parent_views_text": "Mẹ đồng ý để trẻ ở với bà ngoại một thời gian.",
        "needs_meeting": {"held_on": "2026-03-05", "chaired_by": "Hoàng Minh Tuấn",
                          "attendees": [{"name": "Vũ Thị Nga", "role": "Công an phường"},
                                        {"name": "Đặng Quốc Việt", "role": "Trường tiểu học"}],
                          "parents_or_carer_attended": True, "measures_agreed": ["counselling", "legal_aid"],
                          "minutes": "Cuộc họp thống nhất các biện pháp tư vấn và trợ giúp pháp lý."}}),
    ("submit_plan", forms.PlanSubmission, {
        "objectives": "Bảo đảm an toàn cho trẻ ở nhà và ở trường; hỗ trợ tâm lý cho trẻ và gia đình.",
        "measures": [{"measure": "counselling", "description": "Tư vấn hằng tuần cho mẹ và trẻ"}],
        "tasks": [{"agency": "police", "title": "Điều tra hành vi của cha dượng", "start_date": "2026-03-09",
                   "end_date": "2026-03-30", "budget_vnd": 0},
                  {"agency": "health", "title": "Trị liệu tâm lý cho trẻ", "start_date": "2026-03-09",
                   "end_date": "2026-04-30", "provider": "Trung tâm Công tác xã hội", "budget_vnd": 1500000}]}),
    ("approve_plan", forms.PlanApproval, {
        "decided_on": "2026-03-10",
        "recipients": [{"kind": "implementing_body", "name": "Công an phường Hoàn Kiếm"},
                       {"kind": "parent_or_carer", "name": "Bà Phạm Thị Hường"}]}),
    ("propose_closure", forms.ClosureProposal, {
        "reviewed_on": "2026-04-30",
        "ratings": [{"item": "harm_severity", "rating": "low"}, {"item": "abuser_access", "rating": "low"},
                    {"item": "care_environment_obstacles", "rating": "medium", "note": "Còn khó khăn kinh tế"},
                    {"item": "self_protection_recovery", "rating": "low"}],
        "child_condition": "Trẻ đã ổn định, đi học đều.", "environment_safety": "Cha dượng đã chuyển đi nơi khác.",
        "summary": "Trẻ an toàn và ổn định."}),
]


@dataclass
class SampleCase:
    case: Case
    history: list[CaseHistory]
    documents: list[CaseDocument]

    def document(self, paper: str) -> CaseDocument:
        return next(d for d in self.documents if d.paper == paper)

    def context(self, paper: str, audience: str = "") -> dict[str, Any]:
        return documents.context(self.document(paper), audience, self.case, self.history, self.documents)


def sample_case(**changes: Any) -> SampleCase:
    """A hotline report walked to a closure proposal: one history entry per step, numbered papers."""
    case = Case(id=uuid.uuid4(), state="awaiting_closure", version=len(STEPS) + 1, province_code="01",
                commune_code=COMMUNE, incident_commune_code=COMMUNE, received_at=RECEIVED, updated_at=RECEIVED,
                incident_date=date(2026, 3, 1), intake_agency="hotline", created_by="hotline-1",
                reporter_anonymous=False, reporter={"anonymous": False, "name": REPORTER, "phone": "0912345678",
                                                    "relationship": "Hàng xóm"},
                child_first_name="Lan", child_age_years=8, child_sex="female", child_age_group="6-10",
                child_place="Nhà riêng", abuse_forms=["violence"], environment="home",
                perpetrator_relationship="step_parent", description="Hàng xóm nghe tiếng trẻ khóc và bị đánh.",
                danger_indicators=["abuser_has_access"], plan_cycle=1)
    for key, value in {"category": "abused", "channel": "phone", "intake_details": INTAKE_DETAILS,
                       "residence_commune_code": COMMUNE, **changes}.items():
        setattr(case, key, value)
    history = [CaseHistory(case_id=case.id, version=1, at=RECEIVED, actor_id="hotline-1", actor_role="hotline_operator",
                           agency="hotline", action="receive", to_state="received", data={})]
    papers: list[CaseDocument] = []
    counters: dict[str, int] = {}
    for index, (action, form, data) in enumerate(STEPS, start=2):
        at = RECEIVED + timedelta(days=index)
        entry = CaseHistory(case_id=case.id, version=index, at=at, actor_id="officer-1",
                            actor_role="child_protection_officer", agency="peoples_committee", action=action,
                            to_state=workflow.STEPS[action].target or "specific_assessment",
                            data=form.model_validate(data).model_dump(mode="json"), commune_code=COMMUNE)
        history.append(entry)
    for paper, entry in [("01", history[0])] + [(p, h) for h in history[1:] for p in documents.step_papers(h.action)]:
        series = documents.CasesSettings().document_series[paper]
        counters[series] = counters.get(series, 0) + 1
        papers.append(CaseDocument(
            id=uuid.uuid4(), case_id=case.id, paper=paper, step_version=entry.version, action=entry.action,
            issuer="hotline" if paper == "01" else COMMUNE, issuer_agency="hotline" if paper == "01"
            else "peoples_committee", issuer_commune_code=None if paper == "01" else COMMUNE, year=2026,
            series=series, number=counters[series], reference=f"{counters[series]:02d}/{series}-UBND",
            issued_on=documents._dated(paper, entry.data, entry.at), signer_name="Hoàng Minh Tuấn",
            registered_at=entry.at))
    return SampleCase(case, history, papers)

"""Reports walked through the Decree 56 workflow with real processes, real tokens and real HTTP: a hotline report of
an abused child handed over to the commune where the child lives, a police emergency measure, a separation during
implementation with extensions, a review with Form 06 and the chairman's closure, a missed deadline; and an at-risk
child's report closed early."""

import itertools
import re
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import text

from services.cases import service
from services.cases.settings import CasesSettings
from services.common.db import Database
from tests.cases.conftest import Cases
from tests.cases.samples import FORMS, intake
from tests.helpers import DEMO_COMMUNE, OTHER_COMMUNE, OTHER_PROVINCE, Api

PERSONAL = ("Nguyễn Văn Báo", "0912345678", "Lan", "near the market", "crying", "Grandmother", "Phạm Thị Mai",
            "Trần Văn Hùng")
COURT = {"name": "Tòa án nhân dân khu vực 1 - Bắc Ninh", "document_number": "07/2026/QĐ-TA"}


async def feed(api: Api, case_id: str) -> list[dict]:
    token = await api.service_token("reporting", "events:read")
    async with httpx.AsyncClient(base_url=api.stack.url("cases")) as client:
        response = await client.get("/internal/v1/events", params={"after": 0, "limit": 1000},
                                    headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return [e for e in response.json()["events"] if e["payload"].get("case_id") == case_id]


async def patch_task(api: Api, headers: dict[str, str], task: dict, body: dict) -> httpx.Response:
    return await api.client.patch(f"/cases/v1/tasks/{task['id']}", json=body,
                                  headers=headers | {"If-Match": f'"{task["version"]}"'})


async def test_abused_child_handed_over_protected_separated_reviewed_and_closed(
        api: Api, cases: Cases, cases_db: Database, cases_settings: CasesSettings) -> None:
    hotline = await api.as_demo("hotline_operator")
    officer = await api.as_demo("child_protection_officer")  # the commune where it happened
    police = await api.province_user("police_officer")
    resident_officer = await api.commune_user("child_protection_officer", OTHER_COMMUNE)
    resident_chairman = await api.commune_user("commune_chairman", OTHER_COMMUNE)
    resident_police = await api.province_user("police_officer", OTHER_PROVINCE)
    resident_health = await api.commune_user("health_officer", OTHER_COMMUNE)

    # 1. Form 01 by the hotline: sexual abuse, the residence unknown. It goes to the commune where it happened,
    #    which leads, and to the police at once (Joint Circular 01/2022).
    body = intake(abuse_forms=["sexual_abuse", "violence"], channel="phone",
                  father={"full_name": "Trần Văn Hùng", "age": 38, "occupation": "driver"},
                  mother={"full_name": "Phạm Thị Mai", "age": 34}, current_carer="Phạm Thị Mai",
                  receiving_officer="Tổng đài viên 111")
    created = await cases.create(hotline, body, key="e2e-hotline-1")
    assert created.status_code == 201, created.text
    case = created.json()
    case_id = case["id"]
    assert case["commune_code"] == DEMO_COMMUNE and case["residence_commune_code"] is None
    assert case["category"] == "abused" and case["channel"] == "phone"
    retry = await cases.create(hotline, body, key="e2e-hotline-1")
    assert retry.status_code == 200 and retry.json()["id"] == case_id

    read = (await cases.get(officer, case_id)).json()
    assert read["reporter"]["name"] == "Nguyễn Văn Báo"
    assert read["intake_details"]["mother"]["full_name"] == "Phạm Thị Mai"
    assert [(t["kind"], t["agency"]) for t in read["tasks"]] == [("referral", "police")]

    # 2b. The police act on the referral before the commune's assessment and record their emergency measure.
    police_read = (await cases.get(police, case_id)).json()
    assert police_read["allowed_actions"] == ["record_emergency_measure"] and police_read["intake_details"] is None
    measured = await cases.step(police, case_id, "record_emergency_measure")
    assert measured["emergency_measure"]["agency"] == "police" and measured["state"] == "received"
    assert (await cases.act(police, case_id, "separate_child")).status_code == 403  # Form 07 is the chairman's

    # 2. Form 02 by the commune where it happened: an emergency, already met by the police; the residence learnt.
    await cases.step(officer, case_id, "begin_assessment")
    assessed = await cases.step(officer, case_id, "assess_emergency",
                                FORMS["assess_emergency"] | {"residence_commune_code": OTHER_COMMUNE})
    assert assessed["state"] == "emergency_protection" and assessed["residence_commune_code"] == OTHER_COMMUNE
    emergency = next(d for d in assessed["deadlines"] if d["name"] == "emergency_protection")
    assert emergency["met_at"] is not None and not emergency["running"] and not emergency["missed"]
    moved_on = await cases.step(officer, case_id, "end_emergency_protection")
    assert moved_on["state"] == "specific_assessment"
    assert {d["name"] for d in moved_on["deadlines"] if d["running"]} == {"plan_drafted", "specific_assessment"}

    # Handover to the commune where the child lives (Law Art. 52(2)): the target is the recorded residence.
    handed = await cases.act(officer, case_id, "hand_over", {})
    assert handed.status_code == 200, handed.text
    assert handed.json()["commune_code"] == OTHER_COMMUNE and handed.json()["province_code"] == OTHER_PROVINCE
    assert handed.json()["allowed_actions"] == []  # what the old commune no longer has is not advertised
    assert (await cases.get(officer, case_id)).status_code == 404
    trace = (await api.client.get(f"/cases/v1/cases/{case_id}/history", headers=officer)).json()["items"]
    assert [h["action"] for h in trace] == ["receive", "record_emergency_measure", "begin_assessment",
                                            "assess_emergency", "end_emergency_protection", "hand_over"]
    assert {h["commune_code"] for h in trace} == {DEMO_COMMUNE}
    led = (await cases.get(resident_officer, case_id)).json()
    assert led["state"] == "specific_assessment" and "complete_specific_assessment" in led["allowed_actions"]
    plan_clock = next(d for d in led["deadlines"] if d["name"] == "plan_drafted")
    assert plan_clock["running"] and plan_clock["due_at"] == next(
        d for d in moved_on["deadlines"] if d["name"] == "plan_drafted")["due_at"]  # the clock runs on
    listed = await api.client.get("/cases/v1/cases", headers=resident_chairman)
    assert case_id in [c["id"] for c in listed.json()["items"]]

    # 3-4. Form 03 with the needs meeting, the plan (Form 04); the chairman reads the proposed tasks, returns it,
    #      then approves (Form 05) after resubmission.
    await cases.step(resident_officer, case_id, "complete_specific_assessment")
    submitted = await cases.step(resident_officer, case_id, "submit_plan")
    proposed = (await cases.get(resident_chairman, case_id)).json()["plan"]
    assert proposed["status"] == "submitted"
    assert [(t["agency"], t["title"], t["budget_vnd"]) for t in proposed["tasks"]] == [
        ("police", "Investigate the step-parent", 0), ("health", "Therapy sessions", 2_000_000)]
    assert {"start_date", "end_date", "provider"} <= set(proposed["tasks"][1])
    approval = next(d for d in submitted["deadlines"] if d["name"] == "plan_approval")
    assert approval["running"]
    await cases.step(resident_chairman, case_id, "return_plan")
    await cases.step(resident_officer, case_id, "submit_plan")
    approved = await cases.step(resident_chairman, case_id, "approve_plan")
    assert approved["state"] == "implementing"
    assert re.fullmatch(r"\d{2,}/QĐ-UBND", approved["plan"]["decision_number"])  # the register's number (Form 05)
    assert approved["plan_approved_at"] is not None
    plan_tasks = [t for t in approved["tasks"] if t["kind"] == "plan"]
    assert {(t["agency"], t["cycle"]) for t in plan_tasks} == {("police", 1), ("health", 1)}

    # 2c. During implementation the child stays at risk from the step-parent: the chairman separates the child
    #     (Form 07), extends within 15 days, and beyond them only on a court's document.
    separated = await cases.step(resident_chairman, case_id, "separate_child",
                                 FORMS["separate_child"] | {"ground": "continued_risk_from_parents",
                                                            "duration_days": 10})
    assert separated["state"] == "implementing" and separated["separations"][0]["duration_days"] == 10
    await cases.step(resident_chairman, case_id, "extend_separation")  # 5 days: 15 in all
    too_long = await cases.act(resident_chairman, case_id, "extend_separation",
                               {"decision_number": "16/QĐ-UBND", "days": 3})
    assert too_long.status_code == 422 and "15 days" in too_long.json()["detail"]
    extended = await cases.step(resident_chairman, case_id, "extend_separation",
                                {"decision_number": "16/QĐ-UBND", "days": 3, "competent_authority": COURT})
    assert extended["separations"][0]["extended_days"] == 8
    unsafe = await cases.act(resident_chairman, case_id, "end_separation", {
        "kind": "parents_safe", "reassessment": FORMS["end_separation"]["reassessment"] | {
            "parents_ensure_safety": False}})
    assert unsafe.status_code == 422
    ended = await cases.step(resident_chairman, case_id, "end_separation")
    assert ended["separations"][0]["end_kind"] == "parents_safe"

    # 5. Tasks: the police finish theirs; health cannot do its own; the review waits until the officer waives it.
    police_task = next(t for t in (await cases.get(resident_police, case_id)).json()["tasks"] if t["kind"] == "plan")
    skipped = await patch_task(api, resident_police, police_task, {"status": "done"})
    assert skipped.status_code == 409 and skipped.json()["allowed_statuses"] == [
        "cannot_be_done", "in_progress", "waived"]
    started = await patch_task(api, resident_police, police_task, {"status": "in_progress"})
    assert started.status_code == 200, started.text
    assert (await patch_task(api, resident_police, started.json(), {"status": "done"})).status_code == 200
    health_task = next(t for t in (await cases.get(resident_health, case_id)).json()["tasks"] if t["kind"] == "plan")
    unexplained = await patch_task(api, resident_health, health_task, {"status": "cannot_be_done"})
    assert unexplained.status_code == 422
    stuck = await patch_task(api, resident_health, health_task,
                             {"status": "cannot_be_done", "reason": "No therapist in the commune this month."})
    assert stuck.status_code == 200
    assert (await patch_task(api, resident_health, stuck.json(),
                             {"status": "open", "reason": "try again"})).status_code == 403
    waiting = (await cases.get(resident_officer, case_id)).json()
    assert "start_review" not in waiting["allowed_actions"]
    blocked = await cases.act(resident_officer, case_id, "start_review")
    assert blocked.status_code == 409 and blocked.json()["waiting_tasks"] == [health_task["id"]]

    # A missed deadline: the review falls due in the past; the periodic check marks it once.
    async with cases_db.sessionmaker() as session:
        await session.execute(text("UPDATE case_deadline SET due_at = :due WHERE case_id = :id AND name = 'review' "
                                   "AND met_at IS NULL"), {"due": datetime.now(UTC) - timedelta(hours=1),
                                                           "id": case_id})
        await session.commit()
    assert await service.check_deadlines(cases_db, cases_settings) >= 1
    assert await service.check_deadlines(cases_db, cases_settings) == 0
    overdue = await api.client.get("/cases/v1/cases", params={"overdue": "true"}, headers=resident_chairman)
    assert case_id in [c["id"] for c in overdue.json()["items"]]
    # The receiving commune's chairman has the missed review in the work list; the province's oversight sees it.
    work = (await api.client.get("/cases/v1/me/work", headers=resident_chairman,
                                 params={"limit": 200})).json()["items"]
    assert any(w["case_id"] == case_id and w["kind"] == "deadline" and w["name"] == "review" and w["overdue"]
               for w in work)
    supervisor = await api.province_user("province_child_affairs", OTHER_PROVINCE)
    supervised = await api.client.get("/cases/v1/cases", params={"overdue": "true"}, headers=supervisor)
    assert case_id in [c["id"] for c in supervised.json()["items"]]

    waived = await patch_task(api, resident_officer, stuck.json(),
                              {"status": "waived", "reason": "Therapy given by the provincial centre instead."})
    assert waived.status_code == 200, waived.text
    await cases.step(resident_officer, case_id, "start_review")

    # 6. Form 06: nothing may still be rated Cao to propose the end; the chairman decides it (Art. 30).
    high = await cases.act(resident_officer, case_id, "propose_closure", FORMS["new_plan_cycle"])
    assert high.status_code == 422
    proposed_end = await cases.step(resident_officer, case_id, "propose_closure")
    assert proposed_end["state"] == "awaiting_closure" and "close" not in proposed_end["allowed_actions"]
    assert (await cases.act(resident_officer, case_id, "close")).status_code == 403
    closed = await cases.step(resident_chairman, case_id, "close")
    assert closed["state"] == "closed" and closed["closure_reason"] == "safe_and_stable"
    assert closed["closure_kind"] == "review"
    assert closed["allowed_actions"] == [] and not any(d["running"] for d in closed["deadlines"])

    # A closed case takes no notes and no task changes (409, nothing allowed).
    note = await api.client.post(f"/cases/v1/cases/{case_id}/notes", json={"text": "late note"},
                                 headers=resident_officer)
    assert note.status_code == 409 and note.json()["allowed_actions"] == []
    done_task = next(t for t in closed["tasks"] if t["agency"] == "police" and t["kind"] == "plan")
    assert (await patch_task(api, resident_police, done_task, {"note": "after"})).status_code == 409

    # The whole history, one entry per version, in order, across both communes.
    history = (await api.client.get(f"/cases/v1/cases/{case_id}/history", headers=resident_officer,
                                    params={"limit": 200})).json()["items"]
    assert [h["version"] for h in history] == list(range(1, closed["version"] + 1))
    assert {"hand_over", "separate_child", "extend_separation", "deadline_missed", "propose_closure",
            "close"} <= {h["action"] for h in history}
    for before, after in itertools.pairwise(history):
        assert after["from_state"] == before["to_state"]
    assert (await api.client.get(f"/cases/v1/cases/{case_id}/history", headers=officer)).json()["items"] == trace

    # Events: one snapshot per version, with what reporting reads (contract C3) and no personal data.
    events = await feed(api, case_id)
    assert [e["payload"]["revision"] for e in events] == list(range(1, closed["version"] + 1))
    final = events[-1]["payload"]
    assert final["state"] == "closed" and final["category"] == "abused" and final["channel"] == "phone"
    assert final["incident_commune_code"] == DEMO_COMMUNE and final["residence_commune_code"] == OTHER_COMMUNE
    assert final["commune_code"] == OTHER_COMMUNE and final["intake_agency"] == "hotline"
    assert final["emergency_measure"]["agency"] == "police"
    assert final["separations"] == [{
        "decided_at": final["separations"][0]["decided_at"], "ends_at": final["separations"][0]["ends_at"],
        "ended_at": final["separations"][0]["ended_at"], "extended_days": 8, "competent_authority_extension": True}]
    assert final["child_views_taken"] is True and final["parent_views"] == "taken"
    assert final["plan_approved_at"] is not None and final["closure_kind"] == "review"
    assert final["perpetrator_relationship"] == "step_parent" and final["child_age_years"] == 9
    assert {"emergency_protection", "plan_drafted", "plan_approval"} <= set(final["deadlines"])
    dumped = str(events)
    for secret in PERSONAL:
        assert secret not in dumped


async def test_at_risk_child_without_abuse_forms_closed_early(api: Api, cases: Cases) -> None:
    officer = await api.as_demo("child_protection_officer")
    chairman = await api.as_demo("commune_chairman")
    body = intake(category="at_risk", abuse_forms=[], risk_forms=["abandonment"], environment=None,
                  perpetrator_relationship="unknown", channel="through_another_person")
    created = await cases.create(officer, body)
    assert created.status_code == 201, created.text
    case = created.json()
    assert (case["category"], case["abuse_forms"], case["risk_forms"]) == ("at_risk", [], ["abandonment"])
    assert case["tasks"] == []  # no abuse, no referral
    await cases.step(officer, case["id"], "begin_assessment")
    await cases.step(officer, case["id"], "assess_no_emergency")
    # Nobody is named as the abuser: the parents' views must be asked (Decree 56 Art. 27(1)(h)).
    skipped = await cases.act(officer, case["id"], "complete_specific_assessment",
                              FORMS["complete_specific_assessment"] | {"parent_views": "not_asked_alleged_abuser",
                                                                       "parent_views_text": None})
    assert skipped.status_code == 422
    closed = await cases.step(chairman, case["id"], "close_early",
                              {"reason": "duplicate", "summary": "Reported twice by the school."})
    assert closed["closure_kind"] == "early" and closed["closure_reason"] == "duplicate"
    final = (await feed(api, case["id"]))[-1]["payload"]
    assert (final["category"], final["risk_forms"], final["closure_kind"], final["closure_reason"]) == (
        "at_risk", ["abandonment"], "early", "duplicate")
    assert final["channel"] == "through_another_person" and final["environment"] is None

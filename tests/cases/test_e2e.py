"""A hotline report walked through every step to closure, with real processes, real tokens and real HTTP:
an emergency with separation, a returned plan, a second plan cycle, a transfer and a missed deadline."""

import itertools
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import text

from services.cases import service
from services.cases.settings import CasesSettings
from services.common.db import Database
from tests.cases.conftest import Cases
from tests.cases.samples import intake
from tests.helpers import DEMO_COMMUNE, OTHER_COMMUNE, OTHER_PROVINCE, Api

PERSONAL = ("Nguyễn Văn Báo", "0912345678", "Lan", "near the market", "crying", "Grandmother")


async def feed(api: Api, case_id: str) -> list[dict]:
    token = await api.service_token("reporting", "events:read")
    async with httpx.AsyncClient(base_url=api.stack.url("cases")) as client:
        response = await client.get("/internal/v1/events", params={"after": 0, "limit": 1000},
                                    headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return [e for e in response.json()["events"] if e["payload"]["case_id"] == case_id]


async def test_hotline_report_to_closure(api: Api, cases: Cases, cases_db: Database,
                                         cases_settings: CasesSettings) -> None:
    hotline = await api.as_demo("hotline_operator")
    officer = await api.as_demo("child_protection_officer")
    chairman = await api.as_demo("commune_chairman")
    police = await api.province_user("police_officer")

    # 1. Intake by the hotline, sexual abuse among the forms: forwarded to the commune, referred to the police.
    body = intake(abuse_forms=["sexual_abuse", "violence"])
    created = await cases.create(hotline, body, key="e2e-hotline-1")
    assert created.status_code == 201, created.text
    case = created.json()
    case_id = case["id"]
    assert case["state"] == "received" and case["commune_code"] == DEMO_COMMUNE and case["province_code"] == "01"
    assert [t["agency"] for t in case["tasks"]] == []  # the hotline sees no tasks: none is its agency's
    retry = await cases.create(hotline, body, key="e2e-hotline-1")
    assert retry.status_code == 200 and retry.json()["id"] == case_id

    read = (await cases.get(officer, case_id)).json()
    assert read["reporter"]["name"] == "Nguyễn Văn Báo"
    assert [(t["kind"], t["agency"]) for t in read["tasks"]] == [("referral", "police")]
    assert set(read["allowed_actions"]) == {"begin_assessment", "transfer"}  # closing is the chairman's

    # 2. Initial assessment: emergency. 2c. The chairman separates the child.
    await cases.step(officer, case_id, "begin_assessment")
    assessed = await cases.step(officer, case_id, "assess_emergency")
    assert assessed["state"] == "emergency_protection" and assessed["emergency"] is True
    separated = await cases.step(chairman, case_id, "separate_child")
    assert separated["state"] == "specific_assessment"
    running = {d["name"] for d in separated["deadlines"] if d["running"]}
    assert running == {"separation", "specific_assessment"}

    # 3-4. Specific assessment, plan, returned, resubmitted, approved.
    await cases.step(officer, case_id, "complete_specific_assessment")
    await cases.step(officer, case_id, "submit_plan")
    returned = await cases.step(chairman, case_id, "return_plan")
    assert returned["state"] == "plan_returned" and returned["plan"]["status"] == "returned"
    await cases.step(officer, case_id, "submit_plan")
    approved = await cases.step(chairman, case_id, "approve_plan")
    assert approved["state"] == "implementing" and approved["plan"]["decision_number"] == "20/QD-UBND"
    assert sorted(t["agency"] for t in approved["tasks"]) == ["health", "police", "police"]

    # 5. The police see the case (their task and referral) but not the reporter; they update their task.
    police_view = (await cases.get(police, case_id)).json()
    assert police_view["reporter"] is None and police_view["plan"] is None
    assert {t["agency"] for t in police_view["tasks"]} == {"police"}
    task = next(t for t in police_view["tasks"] if t["kind"] == "plan")
    updated = await api.client.patch(f"/cases/v1/tasks/{task['id']}", json={"status": "done", "note": "Charged."},
                                     headers=police | {"If-Match": f'"{task["version"]}"'})
    assert updated.status_code == 200, updated.text

    # 6. Review: a new plan cycle, approved at once this time.
    await cases.step(officer, case_id, "start_review")
    cycle = await cases.step(officer, case_id, "new_plan_cycle")
    assert cycle["state"] == "plan_drafting" and cycle["plan_cycle"] == 2
    await cases.step(officer, case_id, "submit_plan")
    await cases.step(chairman, case_id, "approve_plan")

    # The child moves: the case goes to a commune in another province, with its whole history.
    await cases.step(officer, case_id, "transfer")
    assert (await cases.get(officer, case_id)).status_code == 404
    new_officer = await api.commune_user("child_protection_officer", OTHER_COMMUNE)
    new_chairman = await api.commune_user("commune_chairman", OTHER_COMMUNE)
    moved = (await cases.get(new_officer, case_id)).json()
    assert moved["commune_code"] == OTHER_COMMUNE and moved["province_code"] == OTHER_PROVINCE
    assert moved["state"] == "implementing" and moved["reporter"]["name"] == "Nguyễn Văn Báo"

    # A missed deadline: the review falls due in the past; the periodic check marks it once.
    async with cases_db.sessionmaker() as session:
        await session.execute(text("UPDATE case_deadline SET due_at = :due WHERE case_id = :id AND name = 'review' "
                                   "AND met_at IS NULL"), {"due": datetime.now(UTC) - timedelta(hours=1),
                                                           "id": case_id})
        await session.commit()
    assert await service.check_deadlines(cases_db, cases_settings) >= 1
    assert await service.check_deadlines(cases_db, cases_settings) == 0
    overdue = await api.client.get("/cases/v1/cases", params={"overdue": "true"}, headers=new_chairman)
    assert case_id in [c["id"] for c in overdue.json()["items"]]
    work = (await api.client.get("/cases/v1/me/work", headers=new_chairman, params={"limit": 200})).json()["items"]
    assert any(w["case_id"] == case_id and w["kind"] == "deadline" and w["name"] == "review" and w["overdue"]
               for w in work)
    supervisor = await api.province_user("province_child_affairs", OTHER_PROVINCE)
    supervised = await api.client.get("/cases/v1/cases", params={"overdue": "true"}, headers=supervisor)
    assert case_id in [c["id"] for c in supervised.json()["items"]]

    # 6. The last review closes the case: safe and stable.
    await cases.step(new_officer, case_id, "start_review")
    await cases.step(new_chairman, case_id, "end_separation")
    closed = await cases.step(new_chairman, case_id, "close")
    assert closed["state"] == "closed" and closed["closure_reason"] == "safe_and_stable"
    assert closed["allowed_actions"] == [] and not any(d["running"] for d in closed["deadlines"])
    assert (await cases.act(new_officer, case_id, "transfer")).status_code == 409

    # The whole history, one entry per version, in order, across both communes.
    history = (await api.client.get(f"/cases/v1/cases/{case_id}/history", headers=new_officer,
                                    params={"limit": 200})).json()["items"]
    assert [h["version"] for h in history] == list(range(1, closed["version"] + 1))
    actions = [h["action"] for h in history]
    assert actions[:4] == ["receive", "begin_assessment", "assess_emergency", "separate_child"]
    assert {"return_plan", "new_plan_cycle", "transfer", "deadline_missed", "close"} <= set(actions)
    for before, after in itertools.pairwise(history):
        assert after["from_state"] == before["to_state"]

    # Events: received, one change per action, the missed deadline; snapshots without personal data.
    events = await feed(api, case_id)
    types = [e["type"] for e in events]
    assert types[0] == "case.received" and "case.deadline_missed" in types
    assert [e["payload"]["revision"] for e in events] == list(range(1, closed["version"] + 1))
    missed = next(e for e in events if e["type"] == "case.deadline_missed")
    assert missed["payload"]["deadline"] == "review" and missed["payload"]["deadlines"]["review"]["missed"]
    final = events[-1]["payload"]
    assert final["state"] == "closed" and final["abuse_forms"] == ["sexual_abuse", "violence"]
    assert final["child_sex"] == "female" and final["child_age_group"] == "6-10"
    assert final["deadlines"]["emergency_protection"]["met_at"] is not None
    dumped = str(events)
    for secret in PERSONAL:
        assert secret not in dumped


"""The cases API through the gateway with real tokens: preconditions, conflicts, reach and visibility."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from services.common.db import Database
from tests.cases.conftest import Cases
from tests.cases.samples import FORMS, intake
from tests.helpers import DEMO_COMMUNE, OTHER_COMMUNE, OTHER_PROVINCE, Api


async def new_case(cases: Cases, headers: dict[str, str], **changes: object) -> dict:
    response = await cases.create(headers, intake(**changes))
    assert response.status_code == 201, response.text
    return response.json()


async def test_actions_need_a_fresh_etag_and_a_legal_state(api: Api, cases: Cases) -> None:
    officer = await api.as_demo("child_protection_officer")
    case = await new_case(cases, officer)
    url = f"/cases/v1/cases/{case['id']}/actions/begin_assessment"

    missing = await api.client.post(url, json={}, headers=officer)
    assert missing.status_code == 428
    assert missing.headers["content-type"].startswith("application/problem+json")
    stale = await api.client.post(url, json={}, headers=officer | {"If-Match": '"7"'})
    assert stale.status_code == 412 and stale.json()["current_etag"] == '"1"'

    illegal = await cases.act(officer, case["id"], "submit_plan")
    assert illegal.status_code == 409
    # The caller's own allowed actions: closing is the chairman's.
    assert illegal.json()["allowed_actions"] == ["begin_assessment", "record_emergency_measure", "transfer"]
    assert illegal.json()["state"] == "received"

    unknown = await cases.act(officer, case["id"], "teleport", {})
    assert unknown.status_code == 404
    not_theirs = await cases.act(officer, case["id"], "approve_plan")
    assert not_theirs.status_code == 403

    await cases.step(officer, case["id"], "begin_assessment")
    invalid = await cases.act(officer, case["id"], "assess_emergency", {"findings": "", "child_seen": "maybe"})
    assert invalid.status_code == 422
    assert {tuple(e["loc"]) for e in invalid.json()["errors"]} == {("findings",), ("child_seen",)}
    assert (await cases.get(officer, case["id"])).json()["version"] == 2


async def test_two_officers_acting_at_once_never_both_win(api: Api, cases: Cases) -> None:
    officer = await api.as_demo("child_protection_officer")
    other = await api.commune_user("child_protection_officer", DEMO_COMMUNE)
    case = await new_case(cases, officer)
    etag = (await cases.get(officer, case["id"])).headers["etag"]
    results = await asyncio.gather(
        cases.act(officer, case["id"], "begin_assessment", etag=etag),
        cases.act(other, case["id"], "transfer", etag=etag),
        cases.act(officer, case["id"], "begin_assessment", etag=etag),
    )
    assert sorted(r.status_code for r in results) == [200, 412, 412]
    history = (await api.client.get(f"/cases/v1/cases/{case['id']}/history", headers=officer)).json()
    assert [h["version"] for h in history] == [1, 2]


async def test_the_same_idempotency_key_returns_the_same_case_even_in_a_race(api: Api, cases: Cases) -> None:
    hotline = await api.as_demo("hotline_operator")
    key = f"race-{uuid.uuid4()}"
    results = await asyncio.gather(*(cases.create(hotline, intake(), key=key) for _ in range(8)))
    assert sorted(r.status_code for r in results) == [200] * 7 + [201]
    assert len({r.json()["id"] for r in results}) == 1
    other_key = await cases.create(hotline, intake(), key=f"{key}-2")
    assert other_key.status_code == 201 and other_key.json()["id"] != results[0].json()["id"]


async def test_intake_refuses_bad_data_and_wrong_places(api: Api, cases: Cases) -> None:
    officer = await api.as_demo("child_protection_officer")
    tomorrow = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    for bad in (intake(incident_commune_code="99999"), intake(incident_date=tomorrow), intake(abuse_forms=[]),
                intake(abuse_forms=["violence", "violence"]), intake(environment="mars"),
                intake(reporter={"anonymous": True, "name": "X"}), intake(child={"approximate_age": 30}),
                intake(unexpected="field"), intake(risk_forms=["violence"]),
                intake(category="at_risk"), intake(category="at_risk", abuse_forms=[]),
                intake(category="special_circumstances", abuse_forms=[], special_groups=["z"]),
                intake(residence_commune_code="12345"), intake(channel="pigeon"),
                intake(reported_at=(datetime.now(UTC) + timedelta(hours=2)).isoformat()),
                intake(reported_at=(datetime.now(UTC) - timedelta(days=8)).isoformat()),
                intake(received_at=datetime.now(UTC).isoformat())):  # server-owned
        response = await cases.create(officer, bad)
        assert response.status_code == 422, bad
        assert "Nguyễn" not in response.text  # submitted values are never echoed
    elsewhere = await cases.create(officer, intake(commune=OTHER_COMMUNE))
    assert elsewhere.status_code == 404
    justice = await api.province_user("justice_officer")
    assert (await cases.create(justice, intake())).status_code == 403
    bad_key = await cases.create(officer, intake(), key="has spaces")
    assert bad_key.status_code == 422


async def test_anonymous_reporter_and_partial_child(api: Api, cases: Cases) -> None:
    hotline = await api.as_demo("hotline_operator")
    case = await new_case(cases, hotline, reporter={"anonymous": True}, child={"sex": "male"},
                          incident_date=None)
    assert case["reporter"] == {"anonymous": True, "name": None, "phone": None, "address": None,
                                "relationship": None, "note": None}
    assert case["child"]["age_group"] == "unknown" and case["child"]["first_name"] is None


async def test_intake_by_category_with_the_contents_of_form_01(api: Api, cases: Cases) -> None:
    officer = await api.as_demo("child_protection_officer")
    received = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
    special = await new_case(
        cases, officer, category="special_circumstances", abuse_forms=[], special_groups=["a", "dd"],
        environment=None, channel="in_person", reported_at=received.isoformat(), residence_commune_code=OTHER_COMMUNE,
        child={"full_name": "Nguyễn Thị Lan", "date_of_birth": "2016-05-20", "sex": "female"},
        reporter={"anonymous": False, "name": "Lê Văn Tâm", "address": "Tổ 3, phường Hoàn Kiếm"},
        family_circumstances="Both parents died in 2025; the grandmother is ill.", actions_taken="None yet.")
    assert (special["category"], special["special_groups"], special["environment"]) == (
        "special_circumstances", ["a", "dd"], None)
    assert special["child"]["first_name"] == "Lan" and special["child"]["approximate_age"] is not None
    assert datetime.fromisoformat(special["received_at"]) == received  # the legal clocks run from the report
    assert special["commune_code"] == DEMO_COMMUNE and special["residence_commune_code"] == OTHER_COMMUNE
    assert special["intake_details"]["family_circumstances"].startswith("Both parents")
    assert special["intake_details"]["child"]["full_name"] == "Nguyễn Thị Lan"
    assert special["reporter"]["address"] == "Tổ 3, phường Hoàn Kiếm"
    # Before the initial assessment the commune where it happened keeps the case: no handover yet.
    assert "hand_over" not in special["allowed_actions"]
    at_risk = await new_case(cases, officer, category="at_risk", abuse_forms=[],
                             risk_forms=["exploitation"])
    assert at_risk["risk_forms"] == ["exploitation"] and at_risk["tasks"] == []


async def test_hotline_operators_read_back_only_their_own_intakes(api: Api, cases: Cases) -> None:
    hotline = await api.as_demo("hotline_operator")
    colleague = await api.user("hotline_operator", {"level": "national"})
    case = await new_case(cases, hotline, incident_commune_code=OTHER_COMMUNE)
    assert case["commune_code"] == OTHER_COMMUNE and case["province_code"] == OTHER_PROVINCE
    mine = await cases.get(hotline, case["id"])
    assert mine.status_code == 200 and mine.json()["reporter"]["name"] == "Nguyễn Văn Báo"
    assert (await cases.get(colleague, case["id"])).status_code == 404
    listed = await api.client.get("/cases/v1/cases", headers=colleague, params={"limit": 200})
    assert case["id"] not in [c["id"] for c in listed.json()["items"]]
    assert (await cases.act(hotline, case["id"], "begin_assessment")).status_code == 403


async def test_agencies_see_what_involves_them_and_only_their_part(api: Api, cases: Cases) -> None:
    officer = await api.as_demo("child_protection_officer")
    police = await api.province_user("police_officer")
    other_police = await api.province_user("police_officer", OTHER_PROVINCE)
    education = await api.province_user("education_officer")
    health = await api.province_user("health_officer")
    case = await new_case(cases, officer, abuse_forms=["sexual_abuse"])
    quiet = await new_case(cases, officer)

    notes = f"/cases/v1/cases/{case['id']}/notes"
    secret = await api.client.post(notes, json={"text": "The mother asked us not to tell the school."},
                                   headers=officer)
    shared = await api.client.post(notes, json={"text": "Interview on Monday.", "visibility": "participants"},
                                   headers=officer)
    assert secret.status_code == 201 and shared.status_code == 201

    seen = await cases.get(police, case["id"])
    assert seen.status_code == 200
    assert seen.json()["reporter"] is None and [t["kind"] for t in seen.json()["tasks"]] == ["referral"]
    police_notes = (await api.client.get(notes, headers=police)).json()
    assert [n["text"] for n in police_notes] == ["Interview on Monday."]
    own = await api.client.post(notes, json={"text": "Statement taken."}, headers=police)
    assert own.status_code == 201
    assert len((await api.client.get(notes, headers=police)).json()) == 2
    assert len((await api.client.get(notes, headers=officer)).json()) == 3

    assert (await cases.get(police, quiet["id"])).status_code == 404
    assert (await cases.get(other_police, case["id"])).status_code == 404
    assert (await cases.get(education, case["id"])).status_code == 404
    assert (await api.client.post(notes, json={"text": "x"}, headers=education)).status_code == 404

    # The provincial health department oversees every case of its province, without the reporter or tasks.
    overseen = await cases.get(health, quiet["id"])
    assert overseen.status_code == 200 and overseen.json()["reporter"] is None
    history = (await api.client.get(f"/cases/v1/cases/{case['id']}/history", headers=health)).json()
    assert history[0]["action"] == "receive" and history[0]["data"] is None


async def test_tasks_are_updated_by_their_agency_only(api: Api, cases: Cases) -> None:
    officer = await api.as_demo("child_protection_officer")
    chairman = await api.as_demo("commune_chairman")
    police = await api.province_user("police_officer")
    health = await api.commune_user("health_officer", DEMO_COMMUNE)
    case = await new_case(cases, officer)
    for action in ("begin_assessment", "assess_no_emergency", "complete_specific_assessment", "submit_plan"):
        await cases.step(officer, case["id"], action)
    approved = await cases.step(chairman, case["id"], "approve_plan")
    health_task = next(t for t in approved["tasks"] if t["agency"] == "health")
    url = f"/cases/v1/tasks/{health_task['id']}"

    assert (await api.client.patch(url, json={"status": "done"}, headers=police | {"If-Match": '"1"'})).status_code \
        == 404
    assert (await api.client.patch(url, json={"status": "done"}, headers=health)).status_code == 428
    started = await api.client.patch(url, json={"status": "in_progress", "note": "First session booked."},
                                     headers=health | {"If-Match": '"1"'})
    assert started.status_code == 200 and started.headers["etag"] == '"2"'
    assert started.json()["notes"][0]["text"] == "First session booked."
    stale = await api.client.patch(url, json={"status": "done"}, headers=health | {"If-Match": '"1"'})
    assert stale.status_code == 412
    assert (await api.client.patch(url, json={}, headers=health | {"If-Match": '"2"'})).status_code == 422

    work = (await api.client.get("/cases/v1/me/work", headers=health)).json()
    assert health_task["id"] in [t["id"] for t in work["tasks"]]
    assert all(t["agency"] == "health" for t in work["tasks"])


async def test_task_status_rules_and_the_review_guard(api: Api, cases: Cases) -> None:
    officer = await api.as_demo("child_protection_officer")
    chairman = await api.as_demo("commune_chairman")
    education = await api.province_user("education_officer")
    case = await new_case(cases, officer)
    for action in ("begin_assessment", "assess_no_emergency", "complete_specific_assessment", "submit_plan"):
        await cases.step(officer, case["id"], action)
    proposal = (await cases.get(chairman, case["id"])).json()
    assert [t["title"] for t in proposal["plan"]["tasks"]] == ["Investigate the step-parent", "Therapy sessions"]
    approved = await cases.step(chairman, case["id"], "approve_plan")
    assert "start_review" not in approved["allowed_actions"]
    police_task, health_task = sorted((t for t in approved["tasks"] if t["kind"] == "plan"),
                                      key=lambda t: t["agency"], reverse=True)

    async def patch(headers: dict[str, str], task: dict, body: dict) -> dict:
        response = await api.client.patch(f"/cases/v1/tasks/{task['id']}", json=body,
                                          headers=headers | {"If-Match": f'"{task["version"]}"'})
        assert response.status_code == 200, response.text
        return response.json()

    bad = await api.client.patch(f"/cases/v1/tasks/{police_task['id']}", json={"status": "cancelled"},
                                 headers=officer | {"If-Match": '"1"'})
    assert bad.status_code == 422
    # The officer reopens and waives, with a reason; an agency cannot.
    police_task = await patch(officer, police_task, {"status": "cannot_be_done", "reason": "Suspect left."})
    reopened = await patch(officer, police_task, {"status": "open", "reason": "The suspect is back."})
    assert reopened["status"] == "open" and reopened["status_reason"] == "The suspect is back."
    assert reopened["notes"][-1]["status"] == "open"
    no_reason = await api.client.patch(f"/cases/v1/tasks/{reopened['id']}", json={"status": "waived"},
                                       headers=officer | {"If-Match": f'"{reopened["version"]}"'})
    assert no_reason.status_code == 422
    await patch(officer, reopened, {"status": "waived", "reason": "Handled by the court."})
    await patch(officer, health_task, {"status": "waived", "reason": "Family moved to private therapy."})
    ready = (await cases.get(officer, case["id"])).json()
    assert "start_review" in ready["allowed_actions"]
    assert (await cases.get(education, case["id"])).status_code == 404
    reviewing = await cases.step(officer, case["id"], "start_review")
    assert reviewing["state"] == "reviewing"
    # A new plan cycle replaces nothing finished; its own tasks carry the new cycle.
    await cases.step(officer, case["id"], "new_plan_cycle")
    await cases.step(officer, case["id"], "submit_plan")
    second = await cases.step(chairman, case["id"], "approve_plan")
    assert sorted({t["cycle"] for t in second["tasks"] if t["kind"] == "plan"}) == [1, 2]
    assert "start_review" not in second["allowed_actions"]


async def test_my_work_lists_approvals_and_deadlines(api: Api, cases: Cases) -> None:
    officer = await api.as_demo("child_protection_officer")
    chairman = await api.commune_user("commune_chairman", DEMO_COMMUNE)
    case = await new_case(cases, officer)
    officer_work = (await api.client.get("/cases/v1/me/work", headers=officer)).json()
    assert any(d["case_id"] == case["id"] and d["deadline"] == "assessment" for d in officer_work["deadlines"])
    for action in ("begin_assessment", "assess_no_emergency", "complete_specific_assessment", "submit_plan"):
        await cases.step(officer, case["id"], action)
    chairman_work = (await api.client.get("/cases/v1/me/work", headers=chairman)).json()
    assert case["id"] in [c["id"] for c in chairman_work["approvals"]]
    hotline = await api.as_demo("hotline_operator")
    assert (await api.client.get("/cases/v1/me/work", headers=hotline)).status_code == 403


async def test_lists_page_and_filter(api: Api, cases: Cases) -> None:
    officer = await api.commune_user("child_protection_officer", OTHER_COMMUNE)
    made = [(await new_case(cases, officer, commune=OTHER_COMMUNE))["id"] for _ in range(3)]
    first = await api.client.get("/cases/v1/cases", params={"limit": 2, "state": "received"}, headers=officer)
    assert first.status_code == 200 and len(first.json()["items"]) == 2
    second = await api.client.get("/cases/v1/cases", headers=officer,
                                  params={"limit": 2, "state": "received", "cursor": first.json()["next_cursor"]})
    listed = [c["id"] for c in first.json()["items"] + second.json()["items"]]
    assert set(made) <= set(listed) and len(listed) == len(set(listed))
    bad = await api.client.get("/cases/v1/cases", params={"cursor": "nonsense"}, headers=officer)
    assert bad.status_code == 400


async def test_every_read_and_write_is_audited(api: Api, cases: Cases, cases_db: Database) -> None:
    officer = await api.as_demo("child_protection_officer")
    case = await new_case(cases, officer)
    await cases.get(officer, case["id"])
    await api.client.get(f"/cases/v1/cases/{case['id']}/history", headers=officer)
    async with cases_db.sessionmaker() as session:
        rows = (await session.execute(text(
            "SELECT action, object_type FROM audit_entry WHERE object_id = :id ORDER BY at"), {"id": case["id"]}
        )).all()
    assert [tuple(r) for r in rows] == [("create", "case"), ("read", "case"), ("read", "case_history")]


async def test_workflow_table_is_served(api: Api) -> None:
    chairman = await api.as_demo("commune_chairman")
    steps = (await api.client.get("/cases/v1/workflow", headers=chairman)).json()
    approve = next(s for s in steps if s["action"] == "approve_plan")
    assert approve["roles"] == ["commune_chairman"] and approve["target"] == "implementing"
    assert {s["action"] for s in steps} == set(FORMS)

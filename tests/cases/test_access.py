"""Who reaches a case and what of it, after the 2025 reorganisation, through the gateway with real tokens:
need-to-know for the health officers, the provincial oversight's summaries, the commune that leads a case reading
its child, consents and disclosures, the alleged perpetrator among the guardians, conditional reads and paging."""

import base64
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from services.cases import service
from services.common.permissions import PERMISSIONS, Role
from tests.cases.conftest import Cases
from tests.cases.samples import FORMS, intake
from tests.helpers import OTHER_PROVINCE, Api, letters
from tests.involvement import case_involving, linked_case
from tests.registry.conftest import next_commune


def cursor_of(values: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


async def child_in(api: Api, officer: dict[str, str], commune: str, **extra: Any) -> dict[str, Any]:
    response = await api.client.post("/registry/v1/children", headers=officer, json={
        "full_name": f"Lê Thị {letters().capitalize()}", "sex": "female", "date_of_birth": "2016-04-02",
        "commune_code": commune, **extra})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_the_provincial_oversight_reads_summaries_only(api: Api, cases: Cases) -> None:
    commune = next_commune()
    officer = await api.commune_user("child_protection_officer", commune)
    oversight = await api.province_user("province_child_affairs")
    elsewhere = await api.province_user("province_child_affairs", OTHER_PROVINCE)
    created = await cases.create(officer, intake(commune))
    assert created.status_code == 201, created.text
    case = created.json()
    shared = await api.client.post(f"/cases/v1/cases/{case['id']}/notes", headers=officer,
                                   json={"text": "Shared with every participant.", "visibility": "participants"})
    assert shared.status_code == 201

    seen = await cases.get(oversight, case["id"])
    assert seen.status_code == 200, seen.text
    body = seen.json()
    assert body["reporter"] is None and body["description"] is None and body["tasks"] == []
    assert body["child"]["first_name"] is None and body["child"]["place"] is None
    assert body["child"]["approximate_age"] == 9 and body["abuse_forms"] == ["violence"]
    assert body["allowed_actions"] == [] and body["deadlines"]
    for secret in ("Nguyễn Văn Báo", "Lan", "near the market", "crying"):
        assert secret not in seen.text
    notes = await api.client.get(f"/cases/v1/cases/{case['id']}/notes", headers=oversight)
    assert notes.status_code == 200 and notes.json()["items"] == []
    history = (await api.client.get(f"/cases/v1/cases/{case['id']}/history", headers=oversight)).json()["items"]
    assert history[0]["action"] == "receive" and history[0]["data"] is None
    listed = (await api.client.get("/cases/v1/cases", headers=oversight, params={"limit": 200})).json()["items"]
    row = next(r for r in listed if r["id"] == case["id"])
    assert row["child_first_name"] is None and row["state_label"] == "Đã tiếp nhận"

    assert (await cases.get(elsewhere, case["id"])).status_code == 404
    assert (await cases.act(oversight, case["id"], "begin_assessment")).status_code == 403
    assert (await api.client.post(f"/cases/v1/cases/{case['id']}/notes", headers=oversight,
                                  json={"text": "x"})).status_code == 403
    assert (await api.client.get("/registry/v1/children", headers=oversight)).status_code == 403


async def test_a_health_officer_reads_a_case_only_through_a_task_of_its_agency(api: Api, cases: Cases) -> None:
    commune = next_commune()
    health = await api.province_user("health_officer")
    national = await api.user("health_officer", {"level": "national"})
    quiet = await linked_case(api, await api.commune_user("child_protection_officer", commune), commune, None)
    tasked = await case_involving(api, commune, None, "health")
    for reader in (health, national):
        assert (await cases.get(reader, quiet)).status_code == 404
        seen = await cases.get(reader, tasked)
        assert seen.status_code == 200, seen.text
        assert seen.json()["reporter"] is None and {t["agency"] for t in seen.json()["tasks"]} == {"health"}
    listed = (await api.client.get("/cases/v1/cases", headers=health, params={"limit": 200})).json()["items"]
    assert tasked in [r["id"] for r in listed] and quiet not in [r["id"] for r in listed]


async def test_an_agencys_own_report_never_opens_a_child_record(api: Api, cases: Cases) -> None:
    """Trust finding 1: the registry id given at intake is a hint; only the commune's link makes it the case's
    child, and only a task or referral the commune assigns involves an agency."""
    commune = next_commune()
    officer = await api.commune_user("child_protection_officer", commune)
    child = await child_in(api, officer, commune)
    police = await api.province_user("police_officer")
    health = await api.province_user("health_officer")
    # The police's own sexual-abuse report makes a referral to the police: still no way to the child.
    filed = await cases.create(police, intake(commune, abuse_forms=["sexual_abuse"],
                                              child={"child_id": child["id"], "sex": "female"}))
    assert filed.status_code == 201, filed.text
    assert filed.json()["child"]["child_id"] is None
    purpose = {"purpose": f"case:{filed.json()['id']}"}
    assert (await api.client.get(f"/registry/v1/children/{child['id']}", params=purpose,
                                 headers=police)).status_code == 404
    # The commune sees the hint and links the child: now the referral involves the police in this child.
    managed = (await cases.get(officer, filed.json()["id"])).json()
    assert managed["child"]["child_id_hint"] == child["id"]
    linked = await api.client.post(f"/cases/v1/cases/{managed['id']}/link-child", json={"child_id": child["id"]},
                                   headers=officer | {"If-Match": f'"{managed["version"]}"'})
    assert linked.status_code == 200, linked.text
    assert (await api.client.get(f"/registry/v1/children/{child['id']}", params=purpose,
                                 headers=police)).status_code == 200
    # Health filed a report, the commune linked the child: health's own intake still does not involve it.
    own = await cases.create(health, intake(commune))
    assert own.status_code == 201
    etag = (await cases.get(officer, own.json()["id"])).headers["etag"]
    assert (await api.client.post(f"/cases/v1/cases/{own.json()['id']}/link-child", json={"child_id": child["id"]},
                                  headers=officer | {"If-Match": etag})).status_code == 200
    assert (await api.client.get(f"/registry/v1/children/{child['id']}", headers=health,
                                 params={"purpose": f"case:{own.json()['id']}"})).status_code == 404


async def test_a_commune_links_only_a_child_within_its_reach(api: Api, cases: Cases) -> None:
    """Trust finding 8: the registry reads the child with the officer's own token, not the service's."""
    commune, other = next_commune(), next_commune()
    child = await child_in(api, await api.commune_user("child_protection_officer", commune), commune)
    stranger = await api.commune_user("child_protection_officer", other)
    case = await cases.create(stranger, intake(other))
    assert case.status_code == 201
    linked = await api.client.post(f"/cases/v1/cases/{case.json()['id']}/link-child", json={"child_id": child["id"]},
                                   headers=stranger | {"If-Match": case.headers["etag"]})
    assert linked.status_code == 404, linked.text
    assert (await cases.get(stranger, case.json()["id"])).json()["child"]["child_id"] is None


async def test_the_commune_that_takes_a_case_over_sees_it_and_its_child_at_once(api: Api, cases: Cases) -> None:
    incident, residence = next_commune(), next_commune()
    officer = await api.commune_user("child_protection_officer", incident)
    child = await child_in(api, officer, incident)
    case_id = await linked_case(api, officer, incident, child["id"])
    new_officer = await api.commune_user("child_protection_officer", residence)
    new_chairman = await api.commune_user("commune_chairman", residence)
    purpose = {"purpose": f"case:{case_id}"}
    assert (await api.client.get(f"/registry/v1/children/{child['id']}", params=purpose,
                                 headers=new_officer)).status_code == 404
    await cases.step(officer, case_id, "transfer", FORMS["transfer"] | {"to_commune_code": residence})

    for reader in (new_officer, new_chairman):
        work = (await api.client.get("/cases/v1/me/work", headers=reader, params={"limit": 200})).json()["items"]
        running = [w for w in work if w["case_id"] == case_id and w["kind"] == "deadline"]
        assert [w["name"] for w in running] == ["assessment"] and running[0]["commune_code"] == residence
        read = await api.client.get(f"/registry/v1/children/{child['id']}", params=purpose, headers=reader)
        assert read.status_code == 200, read.text
        assert read.json()["full_name"] == child["full_name"]
    # The commune that handed it over no longer leads it; the case opens no other child.
    old_work = (await api.client.get("/cases/v1/me/work", headers=officer, params={"limit": 200})).json()["items"]
    assert case_id not in [w["case_id"] for w in old_work]
    other_child = await child_in(api, officer, incident)
    assert (await api.client.get(f"/registry/v1/children/{other_child['id']}", params=purpose,
                                 headers=new_officer)).status_code == 404


async def test_consent_is_needed_to_disclose_and_every_disclosure_is_audited(api: Api, cases: Cases) -> None:
    commune = next_commune()
    officer = await api.commune_user("child_protection_officer", commune)
    case_id = (await cases.create(officer, intake(commune))).json()["id"]  # a child of about 9
    consents = f"/cases/v1/cases/{case_id}/consents"
    disclosures = f"/cases/v1/cases/{case_id}/disclosures"
    now = datetime.now(UTC)
    press = {"recipient": "Báo Tuổi Trẻ", "purpose": "media", "information": "The child's story, face blurred.",
             "basis": "consent"}

    def consent(given_by: str, **extra: Any) -> dict[str, Any]:
        return {"given_by": given_by, "purpose": "media", "scope": "The story without the child's name or face.",
                "given_at": (now - timedelta(hours=1)).isoformat(), **extra}

    parent = await api.client.post(consents, headers=officer, json=consent("parent", giver_name="Nguyễn Thị Mẹ") | {
        "given_at": (now - timedelta(hours=2)).isoformat()})
    assert parent.status_code == 201, parent.text
    assert parent.json()["recorded_by"] and parent.json()["withdrawn_at"] is None
    only_parent = await api.client.post(disclosures, headers=officer, json=press | {
        "consent_ids": [parent.json()["id"]]})
    assert only_parent.status_code == 409 and only_parent.json()["missing_consents"] == ["child"]
    too_young = await api.client.post(consents, headers=officer, json=consent("child", child_age_years=6))
    assert too_young.status_code == 422
    future = await api.client.post(consents, headers=officer, json=consent("child") | {
        "given_at": (now + timedelta(days=1)).isoformat()})
    assert future.status_code == 422
    child = await api.client.post(consents, headers=officer, json=consent("child"))
    assert child.status_code == 201 and child.json()["child_age_years"] == 9
    ids = [parent.json()["id"], child.json()["id"]]
    other_purpose = await api.client.post(disclosures, headers=officer, json=press | {
        "purpose": "research", "consent_ids": ids})
    assert other_purpose.status_code == 409
    made = await api.client.post(disclosures, headers=officer, json=press | {"consent_ids": ids})
    assert made.status_code == 201, made.text
    assert sorted(made.json()["consent_ids"]) == sorted(ids)

    withdrawn = await api.client.post(f"{consents}/{child.json()['id']}/withdraw", headers=officer,
                                      json={"note": "The child changed her mind."})
    assert withdrawn.status_code == 200 and withdrawn.json()["withdrawn_at"] is not None
    assert (await api.client.post(f"{consents}/{child.json()['id']}/withdraw", headers=officer,
                                  json={})).status_code == 409
    again = await api.client.post(disclosures, headers=officer, json=press | {"consent_ids": ids})
    assert again.status_code == 409 and again.json()["missing_consents"] == ["child"]
    no_reference = await api.client.post(disclosures, headers=officer, json=press | {
        "basis": "competent_authority", "recipient": "Viện kiểm sát nhân dân"})
    assert no_reference.status_code == 422
    court = await api.client.post(disclosures, headers=officer, json=press | {
        "basis": "competent_authority", "recipient": "Viện kiểm sát nhân dân", "purpose": "other",
        "legal_reference": "Công văn 15/VKS, Luật Trẻ em Điều 6 khoản 7"})
    assert court.status_code == 201, court.text
    foreign = await api.client.post(disclosures, headers=officer, json=press | {"consent_ids": [str(uuid.uuid4())]})
    assert foreign.status_code == 404

    listed = (await api.client.get(consents, headers=officer)).json()
    assert [c["given_by"] for c in listed] == ["parent", "child"] and listed[1]["withdrawn_at"] is not None
    assert len((await api.client.get(disclosures, headers=officer)).json()) == 2
    police = await api.province_user("police_officer")
    assert (await api.client.get(consents, headers=police)).status_code == 403
    stranger = await api.commune_user("child_protection_officer", next_commune())
    assert (await api.client.get(consents, headers=stranger)).status_code == 404
    assert (await api.client.post(disclosures, headers=stranger, json=press)).status_code == 404

    connection = await asyncpg.connect(api.stack.database_url("cases").replace("postgresql+asyncpg://",
                                                                             "postgresql://"))
    try:
        audited = await connection.fetch("SELECT action, detail FROM audit_entry WHERE object_id = $1 AND action = "
                                         "'disclose' ORDER BY at", case_id)
    finally:
        await connection.close()
    assert [orjson.loads(r["detail"])["basis"] for r in audited] == ["consent", "competent_authority"]


async def test_the_alleged_perpetrator_is_named_on_the_case_never_in_the_registry(api: Api, cases: Cases) -> None:
    commune = next_commune()
    officer = await api.commune_user("child_protection_officer", commune)
    child = await child_in(api, officer, commune, guardians=[
        {"full_name": "Lê Văn Dượng", "relationship": "step_father"},
        {"full_name": "Trần Thị Mẹ", "relationship": "mother"}])
    step_father = next(g for g in child["guardians"] if g["relationship"] == "step_father")
    case_id = await case_involving(api, commune, child["id"], "police", officer)
    url = f"/cases/v1/cases/{case_id}/alleged-perpetrator"

    async def name(body: dict[str, Any]) -> Any:
        etag = (await cases.get(officer, case_id)).headers["etag"]
        return await api.client.put(url, json=body, headers=officer | {"If-Match": etag})

    assert (await api.client.put(url, json={"relationship": "step_father"}, headers=officer)).status_code == 428
    assert (await name({"guardian_id": str(uuid.uuid4())})).status_code == 422
    assert (await name({})).status_code == 422
    named = await name({"guardian_id": step_father["id"]})
    assert named.status_code == 200, named.text
    assert named.json()["alleged_perpetrator"] == {"guardian_id": step_father["id"], "relationship": "step_father"}
    police = await api.province_user("police_officer")
    assert (await cases.get(police, case_id)).json()["alleged_perpetrator"]["relationship"] == "step_father"
    registry = (await api.client.get(f"/registry/v1/children/{child['id']}", headers=officer)).json()
    assert "perpetrator" not in orjson.dumps(registry).decode()
    assert registry["revision"] == child["revision"]
    # Without a linked child only the relationship can be named; grandparents and other kin are in the list.
    unlinked = (await cases.create(officer, intake(commune))).json()
    kin = await api.client.put(f"/cases/v1/cases/{unlinked['id']}/alleged-perpetrator",
                               json={"relationship": "maternal_grandfather"},
                               headers=officer | {"If-Match": f'"{unlinked["version"]}"'})
    assert kin.status_code == 200 and kin.json()["alleged_perpetrator"]["guardian_id"] is None
    by_id = await api.client.put(f"/cases/v1/cases/{unlinked['id']}/alleged-perpetrator",
                                 json={"guardian_id": step_father["id"]},
                                 headers=officer | {"If-Match": kin.headers["etag"]})
    assert by_id.status_code == 409


async def test_a_case_answers_304_while_its_answer_is_unchanged(api: Api, cases: Cases) -> None:
    commune = next_commune()
    case_id = await case_involving(api, commune, None, "health")
    officer = await api.commune_user("child_protection_officer", commune)
    first = await cases.get(officer, case_id)
    etag = first.headers["etag"]
    unchanged = await api.client.get(f"/cases/v1/cases/{case_id}", headers=officer | {"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.content == b"" and unchanged.headers["etag"] == etag
    # A task changes without a new version of the case: the answer changed, so no 304.
    task = next(t for t in first.json()["tasks"] if t["agency"] == "health")
    health = await api.province_user("health_officer")
    assert (await api.client.patch(f"/cases/v1/tasks/{task['id']}", json={"status": "in_progress"},
                                   headers=health | {"If-Match": f'"{task["version"]}"'})).status_code == 200
    changed = await api.client.get(f"/cases/v1/cases/{case_id}", headers=officer | {"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    # The ETag of the read is good for a change: only its version part is compared.
    url = f"/cases/v1/cases/{case_id}/alleged-perpetrator"
    named = await api.client.put(url, json={"relationship": "father"},
                                 headers=officer | {"If-Match": changed.headers["etag"]})
    assert named.status_code == 200, named.text
    stale = await api.client.put(url, json={"relationship": "father"}, headers=officer | {"If-Match": etag})
    assert stale.status_code == 412 and stale.json()["current_etag"] == named.headers["etag"]


async def test_history_notes_tasks_and_work_are_paged_and_refuse_crafted_cursors(api: Api, cases: Cases) -> None:
    commune = next_commune()
    officer = await api.commune_user("child_protection_officer", commune)
    case_id = await case_involving(api, commune, None, "health", officer)
    base = f"/cases/v1/cases/{case_id}"
    for text in ("One", "Two", "Three"):
        assert (await api.client.post(f"{base}/notes", json={"text": text}, headers=officer)).status_code == 201

    async def every(path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        for _ in range(50):
            page = await api.client.get(path, headers=officer, params={"limit": 1} | (
                {"cursor": cursor} if cursor else {}))
            assert page.status_code == 200, page.text
            items += page.json()["items"]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                return items
        raise AssertionError("paging never ended")

    history = await every(f"{base}/history")
    assert [h["version"] for h in history] == list(range(1, len(history) + 1)) and len(history) > 2
    assert [n["text"] for n in await every(f"{base}/notes")] == ["One", "Two", "Three"]
    assert [t["agency"] for t in await every(f"{base}/tasks")] == ["health"]
    work = await every("/cases/v1/me/work")
    assert case_id in {w["case_id"] for w in work}
    keys = [(not w["overdue"], w["due_at"] or "9999") for w in work]
    assert keys == sorted(keys)

    crafted = ["nonsense", cursor_of(["abc"]), cursor_of([None]), cursor_of([1e30]), cursor_of([1, 2]),
               cursor_of(["2026-01-01T00:00:00+00:00\u0000", str(uuid.uuid4())])]
    for path in (f"{base}/history", f"{base}/notes", f"{base}/tasks", "/cases/v1/me/work", "/cases/v1/cases"):
        for cursor in crafted:
            response = await api.client.get(path, headers=officer, params={"cursor": cursor})
            assert response.status_code == 400, (path, cursor, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
    far = cursor_of(["275760-09-13T00:00:00+00:00", str(uuid.uuid4())])
    assert (await api.client.get("/cases/v1/cases", headers=officer, params={"cursor": far})).status_code == 400


async def test_case_list_rows_carry_what_a_list_screen_shows(api: Api, cases: Cases) -> None:
    commune = next_commune()
    officer = await api.commune_user("child_protection_officer", commune)
    case = (await cases.create(officer, intake(commune))).json()
    rows = (await api.client.get("/cases/v1/cases", headers=officer)).json()["items"]
    row = next(r for r in rows if r["id"] == case["id"])
    assessment = next(d for d in case["deadlines"] if d["name"] == "assessment")
    assert row["state_label"] == "Đã tiếp nhận" and row["commune_name"]
    assert (row["child_first_name"], row["child_age_years"]) == ("Lan", 9)
    assert datetime.fromisoformat(row["next_due_at"]) == datetime.fromisoformat(assessment["due_at"])


def test_the_decisions_waiting_for_a_role_come_from_the_workflow_table() -> None:
    chairman = frozenset(a for a in service.DECISION_PERMISSIONS if a in PERMISSIONS[Role.COMMUNE_CHAIRMAN])
    waiting = {(tuple(s.value for s in w.states), w.requires.value if w.requires else None): w.actions
               for w in service.waiting_decisions(chairman)}
    # Written out from Decree 56: the plan (Art. 28(4)), the end of the plan (Art. 30), emergency measures (Art.
    # 26(3)), and a running separation's extension or end (Art. 32).
    assert waiting[(("awaiting_approval",), None)] == ("approve_plan", "return_plan")
    assert waiting[(("awaiting_closure",), None)] == ("close", "refuse_closure")
    assert waiting[(("emergency_protection",), None)] == ("take_emergency_measures",)
    separation = next(actions for (_, requires), actions in waiting.items() if requires == "separation")
    assert separation == ("extend_separation", "end_separation")
    # An early closure is always possible, so it never waits; the officer and the police take no decision.
    assert not any("close_early" in actions for actions in waiting.values())
    officer = frozenset(a for a in service.DECISION_PERMISSIONS if a in PERMISSIONS[Role.CHILD_PROTECTION_OFFICER])
    assert service.waiting_decisions(officer) == ()
    police = frozenset(a for a in service.DECISION_PERMISSIONS if a in PERMISSIONS[Role.POLICE_OFFICER])
    assert service.waiting_decisions(police) == ()

"""OWASP API1 (broken object-level authorization): people of commune B, and agencies not involved, cannot read,
change or act on commune A's children, cases, tasks, notes, imports or exports. Each attempt answers 404, as if
the object did not exist, and leaves the object exactly as it was."""

import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from services.common.permissions import Action, Role, scope_for
from tests.cases.samples import intake
from tests.helpers import OTHER_COMMUNE, OTHER_PROVINCE, letters
from tests.security.conftest import COMMUNE_A, COMMUNE_B, SENTINEL_REPORTER, Commune, World

ACTIONS = {
    "read child": Action.CHILD_READ, "update child": Action.CHILD_UPDATE, "child history": Action.CHILD_HISTORY,
    "merge B's child into A's": Action.CHILD_MERGE, "merge A's child into B's": Action.CHILD_MERGE,
    "read import": Action.CHILD_IMPORT, "import errors": Action.CHILD_IMPORT, "export": Action.CHILD_EXPORT,
    "read case": Action.CASE_READ, "case history": Action.CASE_READ, "read notes": Action.CASE_READ,
    "add note": Action.CASE_NOTE, "read tasks": Action.CASE_READ, "review": Action.CASE_REVIEW,
    "close": Action.CASE_CLOSE, "link child": Action.CASE_LINK_CHILD, "update task": Action.TASK_UPDATE,
}


async def _state(world: World) -> dict[str, Any]:
    """What commune A's records look like to its own officer: must be unchanged after every attempt."""
    a, client = world.a, world.client
    child = (await client.get(f"/registry/v1/children/{a.child['id']}", headers=a.officer)).json()
    case = (await client.get(f"/cases/v1/cases/{a.case['id']}", headers=a.officer)).json()
    notes = (await client.get(f"/cases/v1/cases/{a.case['id']}/notes", headers=a.officer)).json()
    return {"child_revision": child["revision"], "child_address": child["address"], "case_version": case["version"],
            "case_state": case["state"], "tasks": sorted((t["id"], t["version"]) for t in case["tasks"]),
            "notes": len(notes)}
# A valid body (the chairman's closure decision): the reach check, not the body, must decide the answer.
TODAY = datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).date().isoformat()


async def _attempts(client: httpx.AsyncClient, attacker: dict[str, str], a: Commune,
                    b: Commune) -> dict[str, httpx.Response]:
    child, case, task = a.child["id"], a.case["id"], a.tasks["police"]["id"]
    guess = {"If-Match": '"1"'}
    return {
        "read child": await client.get(f"/registry/v1/children/{child}", headers=attacker),
        "update child": await client.patch(f"/registry/v1/children/{child}", json={"address": "Đã đổi"},
                                           headers=attacker | {"If-Match": f'"{a.child["revision"]}"'}),
        "child history": await client.get(f"/registry/v1/children/{child}/history", headers=attacker),
        "merge B's child into A's": await client.post(f"/registry/v1/children/{child}/merge", headers=attacker | guess,
                                                      json={"merged_child_id": b.child["id"]}),
        "merge A's child into B's": await client.post(f"/registry/v1/children/{b.child['id']}/merge",
                                                      json={"merged_child_id": child}, headers=attacker | guess),
        "read import": await client.get(f"/registry/v1/imports/{a.import_id}", headers=attacker),
        "import errors": await client.get(f"/registry/v1/imports/{a.import_id}/errors", headers=attacker),
        "export": await client.get("/registry/v1/children/export", params={"commune_code": COMMUNE_A},
                                   headers=attacker),
        "read case": await client.get(f"/cases/v1/cases/{case}", headers=attacker),
        "case history": await client.get(f"/cases/v1/cases/{case}/history", headers=attacker),
        "read notes": await client.get(f"/cases/v1/cases/{case}/notes", headers=attacker),
        "add note": await client.post(f"/cases/v1/cases/{case}/notes", json={"text": "intruder"}, headers=attacker),
        "read tasks": await client.get(f"/cases/v1/cases/{case}/tasks", headers=attacker),
        "review": await client.post(f"/cases/v1/cases/{case}/actions/start_review", json={},
                                    headers=attacker | {"If-Match": f'"{a.case["version"]}"'}),
        "close": await client.post(f"/cases/v1/cases/{case}/actions/close", headers=attacker | guess,
                                   json={"decided_on": TODAY, "summary": "x"}),
        "link child": await client.post(f"/cases/v1/cases/{case}/link-child", json={"child_id": b.child["id"]},
                                        headers=attacker | {"If-Match": f'"{a.case["version"]}"'}),
        "update task": await client.patch(f"/cases/v1/tasks/{task}", json={"status": "done"}, headers=attacker | guess),
    }


async def test_commune_b_cannot_reach_commune_a_objects(world: World) -> None:
    before = await _state(world)
    for attacker, role in ((world.b.officer, Role.CHILD_PROTECTION_OFFICER), (world.b.chairman,
                                                                              Role.COMMUNE_CHAIRMAN)):
        attempts = await _attempts(world.client, attacker, world.a, world.b)
        answered = {label: r.status_code for label, r in attempts.items()}
        # A role that may not take the action at all hears 403 before any object is looked at; a role that may
        # hears 404: the object is out of its reach, and its existence is not revealed.
        expected = {label: 404 if scope_for(role, action) else 403 for label, action in ACTIONS.items()}
        assert answered == expected, role
        assert answered["read case"] == answered["read child"] == answered["read notes"] == 404, role
        for response in attempts.values():
            assert response.headers["content-type"].startswith("application/problem+json")
            assert world.a.child["full_name"] not in response.text and SENTINEL_REPORTER not in response.text
    assert await _state(world) == before


async def test_lists_and_searches_never_show_another_communes_records(world: World) -> None:
    client, a, b = world.client, world.a, world.b
    by_commune = await client.get("/registry/v1/children", params={"commune_code": COMMUNE_A}, headers=b.officer)
    assert by_commune.status_code == 200 and by_commune.json()["items"] == []
    by_name = await client.get("/registry/v1/children", params={"q": a.child["full_name"]}, headers=b.officer)
    assert by_name.status_code == 200 and by_name.json()["items"] == []
    for headers in (b.officer, b.chairman):
        cases = (await client.get("/cases/v1/cases", params={"limit": 200}, headers=headers)).json()["items"]
        assert a.case["id"] not in {c["id"] for c in cases} and b.case["id"] in {c["id"] for c in cases}
        work = (await client.get("/cases/v1/me/work", headers=headers)).json()
        assert a.case["id"] not in str(work)
    outside = await client.get("/reporting/v1/values", params={"location": COMMUNE_A, "period": "2026"},
                               headers=b.chairman)
    assert outside.status_code == 404
    for location in (OTHER_PROVINCE, OTHER_COMMUNE, "VN"):  # the statistician of province 01 asks elsewhere
        elsewhere = await client.get("/reporting/v1/values", params={"location": location, "period": "2026"},
                                     headers=world.statistician)
        assert elsewhere.status_code == 404, location


async def test_agencies_reach_only_cases_that_involve_them_in_their_province(world: World) -> None:
    client, a = world.client, world.a
    education = await world.api.province_user("education_officer")
    for outsider in (world.other_police, education):
        assert (await client.get(f"/cases/v1/cases/{a.case['id']}", headers=outsider)).status_code == 404
        assert (await client.get(f"/cases/v1/cases/{a.case['id']}/notes", headers=outsider)).status_code == 404
        task = await client.patch(f"/cases/v1/tasks/{a.tasks['police']['id']}", json={"status": "in_progress"},
                                  headers=outsider | {"If-Match": '"1"'})
        assert task.status_code == 404
    # Another province's police cannot read the child either, whatever purpose it names.
    child = await client.get(f"/registry/v1/children/{a.child['id']}", params={"purpose": f"case:{a.case['id']}"},
                             headers=world.other_police)
    assert child.status_code == 404
    # Police reach the case through their task, but not the health department's task in it.
    health_task = await client.patch(f"/cases/v1/tasks/{a.tasks['health']['id']}", json={"status": "in_progress"},
                                     headers=world.police | {"If-Match": '"1"'})
    assert health_task.status_code == 404


async def test_hotline_reads_back_only_its_own_intakes(world: World) -> None:
    colleague = await world.api.user("hotline_operator", {"level": "national"})
    assert (await world.client.get(f"/cases/v1/cases/{world.a.case['id']}", headers=colleague)).status_code == 404
    own = await world.client.get(f"/cases/v1/cases/{world.a.case['id']}", headers=world.hotline)
    assert own.status_code == 200
    assert (await world.client.get(f"/registry/v1/children/{world.a.child['id']}",
                                   headers=world.hotline)).status_code == 404


async def test_a_case_cannot_register_a_child_in_another_commune(world: World) -> None:
    """The cases service registers a child with its own service account; the caller's reach still applies."""
    client, b = world.client, world.b
    case = await client.post("/cases/v1/cases", json=intake(COMMUNE_B), headers=b.officer)
    assert case.status_code == 201, case.text
    name = f"Lê Thị Chuyển {letters()}"
    elsewhere = await client.post(f"/cases/v1/cases/{case.json()['id']}/link-child", headers=b.officer | {
        "If-Match": case.headers["etag"]}, json={"new_child": {"full_name": name, "sex": "female",
                                                               "date_of_birth": "2016-01-01",
                                                               "commune_code": COMMUNE_A}})
    assert elsewhere.status_code == 404, elsewhere.text
    found = await client.get("/registry/v1/children", params={"q": name}, headers=world.a.officer)
    assert found.status_code == 200 and found.json()["items"] == []
    unchanged = await client.get(f"/cases/v1/cases/{case.json()['id']}", headers=b.officer)
    assert unchanged.json()["child"]["child_id"] is None and unchanged.headers["etag"] == case.headers["etag"]
    # Within its own commune the same call registers and links the child.
    own = await client.post(f"/cases/v1/cases/{case.json()['id']}/link-child", headers=b.officer | {
        "If-Match": case.headers["etag"]}, json={"new_child": {"full_name": name, "sex": "female",
                                                               "date_of_birth": "2016-01-01",
                                                               "commune_code": COMMUNE_B}})
    assert own.status_code == 200 and own.json()["child"]["child_id"], own.text


async def test_a_province_admin_cannot_reach_or_make_users_beyond_its_province(world: World) -> None:
    """User administration is scoped like everything else: no way up to the national level or across provinces."""
    client = world.client
    national_admin = await world.api.as_demo("admin")

    async def create(headers: dict[str, str], role: str, jurisdiction: dict[str, str]) -> tuple[httpx.Response, str]:
        username, password = f"sec{uuid.uuid4().hex[:10]}", f"pw-{uuid.uuid4().hex}"
        response = await client.post("/admin/v1/users", headers=headers, json={
            "username": username, "password": password, "display_name": "X", "role": role,
            "jurisdiction": jurisdiction})
        return response, password

    made, password = await create(national_admin, "admin", {"level": "province", "province": "01"})
    assert made.status_code == 201, made.text
    admin_01 = await world.api.headers(made.json()["username"], password)
    for role, jurisdiction in (("admin", {"level": "national"}), ("hotline_operator", {"level": "national"}),
                               ("province_statistician", {"level": "national"}),
                               ("police_officer", {"level": "province", "province": OTHER_PROVINCE}),
                               ("child_protection_officer", {"level": "commune", "commune": OTHER_COMMUNE})):
        assert (await create(admin_01, role, jurisdiction))[0].status_code == 404, (role, jurisdiction)
    assert (await create(admin_01, "police_officer", {"level": "province", "province": "01"}))[0].status_code == 201
    itself = await client.patch(f"/admin/v1/users/{made.json()['id']}", json={"jurisdiction": {"level": "national"}},
                                headers=admin_01)
    assert itself.status_code in (403, 404)
    everyone = (await client.get("/admin/v1/users", params={"limit": 200}, headers=national_admin)).json()["items"]
    hotline = next(u for u in everyone if u["username"] == "demo-hotline_operator")
    assert (await client.get(f"/admin/v1/users/{hotline['id']}", headers=admin_01)).status_code == 404
    deactivate = await client.patch(f"/admin/v1/users/{hotline['id']}", json={"active": False}, headers=admin_01)
    assert deactivate.status_code == 404
    listed = (await client.get("/admin/v1/users", params={"limit": 200}, headers=admin_01)).json()["items"]
    assert listed and all(u["jurisdiction"].get("province") == "01" for u in listed)

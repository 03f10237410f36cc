"""OWASP API3/API6 (mass assignment): clients cannot set what the server owns: ids, state, owner and authorship,
version or revision, timestamps, the province (derived from the commune) or the agency. Such fields are refused
with 422 and nothing is stored."""

import uuid

import pytest

from tests.cases.samples import intake
from tests.security.conftest import COMMUNE_B, World, full_child

SERVER_OWNED_CHILD = {"id": str(uuid.uuid4()), "revision": 42, "province_code": "24", "created_at":
                      "2020-01-01T00:00:00Z", "updated_at": "2020-01-01T00:00:00Z", "created_by": "someone-else",
                      "merged_into_id": str(uuid.uuid4()), "merged_ids": [str(uuid.uuid4())], "age": 3,
                      "at_risk": True, "birth_year": 2001, "health_insurance_entitled": True,
                      "resolved_from": str(uuid.uuid4())}
SERVER_OWNED_CASE = {"id": str(uuid.uuid4()), "state": "closed", "version": 9, "province_code": "24",
                     "commune_code": "07210", "created_by": "someone-else", "intake_agency": "police",
                     "received_at": "2020-01-01T00:00:00Z", "updated_at": "2020-01-01T00:00:00Z",
                     "emergency": False, "plan_cycle": 5, "closed_at": "2020-01-01T00:00:00Z", "overdue": False,
                     "tasks": [], "allowed_actions": ["close"], "reporter_anonymous": True}


async def _b_cases(world: World) -> set[str]:
    page = await world.client.get("/cases/v1/cases", params={"limit": 200}, headers=world.b.officer)
    return {c["id"] for c in page.json()["items"]}


@pytest.mark.parametrize("name", sorted(SERVER_OWNED_CHILD))
async def test_a_new_child_cannot_carry_server_owned_fields(world: World, name: str) -> None:
    body = full_child(COMMUNE_B, **{name: SERVER_OWNED_CHILD[name]})
    response = await world.client.post("/registry/v1/children", json=body, headers=world.b.officer)
    assert response.status_code == 422, response.text
    assert [tuple(e["loc"])[-1] for e in response.json()["errors"]] == [name]
    search = await world.client.get("/registry/v1/children", params={"q": body["full_name"]},
                                    headers=world.b.officer)
    assert search.json()["items"] == []


async def test_a_child_update_cannot_change_server_owned_fields(world: World) -> None:
    url = f"/registry/v1/children/{world.b.child['id']}"
    before = await world.client.get(url, headers=world.b.officer)
    for name, value in SERVER_OWNED_CHILD.items():
        response = await world.client.patch(url, json={name: value, "address": "Đổi lén"},
                                            headers=world.b.officer | {"If-Match": before.headers["etag"]})
        assert response.status_code == 422, (name, response.text)
    after = await world.client.get(url, headers=world.b.officer)
    assert after.json() == before.json() and after.headers["etag"] == before.headers["etag"]


async def test_an_intake_cannot_carry_server_owned_fields(world: World) -> None:
    existing = await _b_cases(world)
    for name, value in SERVER_OWNED_CASE.items():
        response = await world.client.post("/cases/v1/cases", json=intake(COMMUNE_B, **{name: value}),
                                           headers=world.b.officer)
        assert response.status_code == 422, (name, response.text)
    assert await _b_cases(world) == existing
    # Nested shapes are closed too: a reporter or a child cannot smuggle fields in.
    for nested in ({"reporter": {"anonymous": True, "id": "x"}}, {"child": {"sex": "female", "registered": True}}):
        response = await world.client.post("/cases/v1/cases", json=intake(COMMUNE_B, **nested),
                                           headers=world.b.officer)
        assert response.status_code == 422, nested


async def test_actions_tasks_and_notes_cannot_set_state_owner_or_version(world: World) -> None:
    client, b = world.client, world.b
    case_url = f"/cases/v1/cases/{b.case['id']}"
    before = await client.get(case_url, headers=b.officer)
    etag = {"If-Match": before.headers["etag"]}
    for smuggled in ({"state": "closed"}, {"version": 99}, {"closed_at": "2020-01-01T00:00:00Z"},
                     {"created_by": "x"}):
        action = await client.post(f"{case_url}/actions/start_review", json=smuggled, headers=b.officer | etag)
        assert action.status_code == 422, (smuggled, action.text)
    task = b.tasks["police"]
    for smuggled in ({"agency": "education"}, {"case_id": world.a.case["id"]}, {"version": 9},
                     {"due_date": "2099-01-01"}, {"kind": "referral"}, {"id": str(uuid.uuid4())}):
        update = await client.patch(f"/cases/v1/tasks/{task['id']}", json={"status": "in_progress"} | smuggled,
                                    headers=b.officer | {"If-Match": f'"{task["version"]}"'})
        assert update.status_code == 422, (smuggled, update.text)
    for smuggled in ({"author_id": "someone-else"}, {"agency": "police"}, {"at": "2020-01-01T00:00:00Z"},
                     {"author_role": "commune_chairman"}, {"id": str(uuid.uuid4())}):
        note = await client.post(f"{case_url}/notes", json={"text": "Ghi chú"} | smuggled, headers=b.officer)
        assert note.status_code == 422, (smuggled, note.text)
    after = await client.get(case_url, headers=b.officer)
    assert after.json() == before.json()
    notes = (await client.get(f"{case_url}/notes", headers=b.officer)).json()["items"]
    assert "Ghi chú" not in [n["text"] for n in notes]


async def test_a_user_cannot_be_created_with_server_owned_fields(world: World) -> None:
    """The gateway's admin API ignores unknown fields (it does not refuse them): what it stores is its own."""
    admin = await world.api.as_demo("admin")
    smuggled = {"id": str(uuid.uuid4()), "active": False, "created_at": "2020-01-01T00:00:00Z",
                "locked_until": "2099-01-01T00:00:00Z", "failed_logins": -100, "password_hash": "x"}
    body = {"username": f"sec{uuid.uuid4().hex[:10]}", "password": f"pw-{uuid.uuid4().hex}",
            "display_name": "Mass assignment", "role": "police_officer",
            "jurisdiction": {"level": "province", "province": "01"}} | smuggled
    response = await world.client.post("/admin/v1/users", json=body, headers=admin)
    assert response.status_code in (201, 422), response.text
    if response.status_code == 201:
        user = response.json()
        assert user["id"] != smuggled["id"] and user["active"] is True and user["locked_until"] is None
        assert not user["created_at"].startswith("2020")
        login = await world.client.post("/auth/token", data={"grant_type": "password", "username": body["username"],
                                                             "password": body["password"]})
        assert login.status_code == 200

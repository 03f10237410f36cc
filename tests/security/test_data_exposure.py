"""OWASP API3 (excessive data exposure / broken object property level authorization): each role's answers carry
only the fields its work needs (Decree 56 Art. 33, need-to-know). The expected field lists are written out here
from the design, not read from the code under test."""

from typing import Any

from tests.security.conftest import MANAGER_NOTE, SENTINEL_NAME, SENTINEL_REPORTER, SHARED_NOTE, World

CORE = {"id", "revision", "full_name", "sex", "date_of_birth", "date_of_birth_estimated", "age", "province_code",
        "commune_code", "status", "status_date"}
IDENTITY = {"ethnicity", "nationality", "personal_id", "address"}
FAMILY = {"guardians"}
SCHOOL = {"school_name", "school_level", "school_grade", "school_status"}
HEALTH = {"health_insurance_number", "health_insurance_valid_from", "health_insurance_valid_until",
          "health_insurance_entitled", "disability", "disability_level"}
PROTECTION = {"special_groups", "at_risk", "at_risk_flags"}
# `name` and `description` are not here: places and indicators have them.
PERSONAL_KEYS = {"full_name", "date_of_birth", "personal_id", "address", "phone", "guardians", "reporter",
                 "first_name", "child_id", "case_id"}


def keys_anywhere(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_anywhere(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys_anywhere(v)}
    return set()


async def test_the_hotline_match_view_shows_five_fields(world: World) -> None:
    child = world.a.child
    match = {"first_name": child["full_name"].split()[-1], "birth_year": 2015,
             "province_code": child["province_code"]}
    found = await world.client.get("/registry/v1/children", headers=world.hotline, params=match)
    assert found.status_code == 200
    items = found.json()["items"]
    assert [item["id"] for item in items] == [child["id"]]
    assert set(items[0]) == {"id", "full_name", "birth_year", "province_code", "commune_code"}
    # Browsing, or filters that would reveal hidden fields, are refused.
    assert (await world.client.get("/registry/v1/children", headers=world.hotline)).status_code == 400
    probing = await world.client.get("/registry/v1/children", headers=world.hotline,
                                     params=match | {"special_group": "i"})
    assert probing.status_code == 400


async def test_agencies_see_only_their_part_of_a_child(world: World) -> None:
    a = world.a
    purpose = {"purpose": f"case:{a.case['id']}"}
    url = f"/registry/v1/children/{a.child['id']}"
    police = await world.client.get(url, params=purpose, headers=world.police)
    assert police.status_code == 200
    assert set(police.json()) == CORE | IDENTITY | FAMILY
    health = await world.client.get(url, params=purpose, headers=world.health)
    assert health.status_code == 200
    assert set(health.json()) == CORE | HEALTH
    # An agency states why it reads a record (the audit log keeps it); without a purpose it reads nothing, and a
    # purpose that does not concern this child, or a case the agency is not part of, opens nothing either.
    assert (await world.client.get(url, headers=world.police)).status_code == 400
    other_case = {"purpose": f"case:{world.b.case['id']}"}
    assert (await world.client.get(url, params=other_case, headers=world.police)).status_code == 404
    education = await world.api.province_user("education_officer")
    assert (await world.client.get(url, params=purpose, headers=education)).status_code == 404
    # The commune that keeps the registry sees the whole record.
    full = (await world.client.get(url, headers=a.officer)).json()
    assert set(full) >= CORE | IDENTITY | FAMILY | SCHOOL | HEALTH | PROTECTION


async def test_police_see_a_case_without_the_reporter_or_the_managers_notes(world: World) -> None:
    case_id = world.a.case["id"]
    for agency in (world.police, world.health):
        case = await world.client.get(f"/cases/v1/cases/{case_id}", headers=agency)
        assert case.status_code == 200
        body = case.json()
        assert body["reporter"] is None and body["plan"] is None
        notes = (await world.client.get(f"/cases/v1/cases/{case_id}/notes", headers=agency)).json()["items"]
        assert SHARED_NOTE in [n["text"] for n in notes] and MANAGER_NOTE not in [n["text"] for n in notes]
        history = (await world.client.get(f"/cases/v1/cases/{case_id}/history", headers=agency)).json()["items"]
        assert history and all(entry["data"] is None for entry in history)
        tasks = (await world.client.get(f"/cases/v1/cases/{case_id}/tasks", headers=agency)).json()["items"]
        for text in (case.text, str(notes), str(history), str(tasks)):
            assert SENTINEL_REPORTER not in text and "0987654321" not in text and MANAGER_NOTE not in text
    police_case = (await world.client.get(f"/cases/v1/cases/{case_id}", headers=world.police)).json()
    assert {t["agency"] for t in police_case["tasks"]} == {"police"}
    # The managers see all of it.
    managed = (await world.client.get(f"/cases/v1/cases/{case_id}", headers=world.a.officer)).json()
    assert managed["reporter"]["name"] == SENTINEL_REPORTER and managed["plan"] is not None


async def test_the_hotline_sees_its_intake_but_not_the_communes_work(world: World) -> None:
    case_id = world.a.case["id"]
    own = (await world.client.get(f"/cases/v1/cases/{case_id}", headers=world.hotline)).json()
    assert own["reporter"]["name"] == SENTINEL_REPORTER  # its own intake's reporter
    assert own["plan"] is None and own["tasks"] == []
    notes = (await world.client.get(f"/cases/v1/cases/{case_id}/notes", headers=world.hotline)).json()["items"]
    assert MANAGER_NOTE not in [n["text"] for n in notes]


async def test_the_statistician_never_receives_personal_data(world: World) -> None:
    client, headers = world.client, world.statistician
    for path in ("/registry/v1/children", f"/registry/v1/children/{world.a.child['id']}", "/cases/v1/cases",
                 f"/cases/v1/cases/{world.a.case['id']}", "/cases/v1/me/work"):
        assert (await client.get(path, headers=headers)).status_code == 403, path
    answers = [await client.get("/reporting/v1/values", headers=headers, params={"period": "2026"}),
               await client.get("/reporting/v1/reports/2026", headers=headers),
               await client.get("/reporting/v1/reports/2026", headers=headers, params={"format": "csv"}),
               await client.get("/reporting/v1/reports/2026", headers=headers, params={"format": "dhis2"})]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        for secret in (SENTINEL_NAME, SENTINEL_REPORTER, world.a.child["id"], world.a.case["id"], "0987654321",
                       world.a.child["personal_id"]):
            assert secret not in answer.text
        if answer.headers["content-type"].startswith("application/json"):
            assert not keys_anywhere(answer.json()) & PERSONAL_KEYS

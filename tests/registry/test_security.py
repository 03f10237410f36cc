"""Regressions of the registry's security findings (issue 16: 2, 3, 8, 9, 11) and of the classes of weakness:
concurrency on every write path, text identity, bounds on every value. Each test failed before its fix."""

import asyncio
import base64
import uuid
from datetime import date, timedelta
from typing import Any

import asyncpg
import orjson

from tests.helpers import OTHER_COMMUNE, Api
from tests.registry.conftest import (
    Registry,
    id_number,
    new_uuid,
    next_commune,
    unique_name,
)

BOUND = 60.0  # seconds: generous, a loaded CI machine included; a hang fails instead of blocking the suite


def cursor_of(values: Any) -> str:
    raw = values if isinstance(values, bytes) else orjson.dumps(values)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def comparable(response: Any) -> tuple[int, dict[str, Any]]:
    body = response.json()
    return response.status_code, {k: v for k, v in body.items() if k not in ("request_id", "instance")}


async def children_named(stack_db: str, name: str) -> int:
    connection = await asyncpg.connect(stack_db)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM child WHERE full_name = $1", name))
    finally:
        await connection.close()


# --- Idempotency-Key and the same child registered twice at once ------------------------------------------------


async def test_creation_with_an_idempotency_key_is_safe_to_retry(registry: Registry, stack_db: str) -> None:
    key = {"Idempotency-Key": f"phone-{uuid.uuid4()}"}
    name = unique_name()
    first = await registry.create(headers=registry.officer | key, full_name=name)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    replay = await registry.create(headers=registry.officer | key, full_name=name)
    assert replay.status_code == 200, replay.text
    assert replay.headers["idempotent-replayed"] == "true" and replay.json()["id"] == first.json()["id"]
    other_body = await registry.create(headers=registry.officer | key, full_name=unique_name())
    assert other_body.status_code == 422
    assert other_body.json()["errors"][0]["loc"] == ["header", "Idempotency-Key"]
    # Two requests with one new key at the same moment: one record, both told about it.
    key = {"Idempotency-Key": f"phone-{uuid.uuid4()}"}
    name = unique_name()
    racing = await asyncio.wait_for(asyncio.gather(*[
        registry.create(headers=registry.officer | key, full_name=name) for _ in range(3)]), BOUND)
    assert sorted(r.status_code for r in racing) == [200, 200, 201], [r.text for r in racing]
    assert len({r.json()["id"] for r in racing}) == 1
    assert await children_named(stack_db, name) == 1


async def test_the_same_child_registered_twice_at_once_is_one_record(registry: Registry, stack_db: str) -> None:
    # No ID number and no key: only the database can tell the two requests apart.
    name = unique_name()
    racing = await asyncio.wait_for(asyncio.gather(*[registry.create(full_name=name) for _ in range(4)]), BOUND)
    assert sorted(r.status_code for r in racing) == [201, 409, 409, 409], [r.text for r in racing]
    assert await children_named(stack_db, name) == 1
    # An officer who confirms they are two children still can register the second.
    confirmed = await registry.create(full_name=name, confirm_not_duplicate=True)
    assert confirmed.status_code == 201, confirmed.text


# --- finding 3: a duplicate outside the caller's jurisdiction -----------------------------------------------------


async def test_a_duplicate_elsewhere_does_not_name_its_commune(api: Api, registry: Registry, stack_db: str) -> None:
    number = id_number("female", "2016-05-01")
    child = await registry.created(personal_id=number)
    elsewhere = await api.commune_user("child_protection_officer", OTHER_COMMUNE)
    refused = await registry.client.post("/registry/v1/children", headers=elsewhere, json={
        "full_name": unique_name(), "sex": "female", "date_of_birth": "2016-05-01", "commune_code": OTHER_COMMUNE,
        "personal_id": number})
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["reason"] == "same_personal_id" and body["route_to"] == "province"
    assert "candidates" not in body
    assert registry.commune not in refused.text and child["id"] not in refused.text
    connection = await asyncpg.connect(stack_db)
    try:
        trace = await connection.fetchrow("SELECT actor_id, detail FROM audit_entry WHERE action = 'duplicate_refused' "
                                          "AND object_id = $1", child["id"])
    finally:
        await connection.close()
    assert trace is not None and orjson.loads(trace["detail"]) == {"attempted_commune": OTHER_COMMUNE,
                                                                    "route_to_province": "01"}
    # In the caller's own commune the candidate is shown, so the officer can open it.
    mine = await registry.create(personal_id=number, confirm_not_duplicate=True)
    assert mine.status_code == 409 and mine.json()["candidates"][0]["id"] == child["id"]


# --- finding 8: reads through a relayed user token ------------------------------------------------------------------


async def test_reads_out_of_reach_are_404_and_tell_nothing(api: Api, registry: Registry) -> None:
    child = await registry.created()
    stranger = await api.commune_user("child_protection_officer", OTHER_COMMUNE)
    assert comparable(await registry.get(child["id"], headers=stranger)) == comparable(
        await registry.get(new_uuid(), headers=stranger))
    # The cases service relays the officer's own token to register a child: the officer's jurisdiction applies.
    created_elsewhere = await registry.create(headers=stranger)
    assert created_elsewhere.status_code == 404
    # Naming a case: the cases service is asked before the record is looked at, so an unknown id and a child out
    # of reach get the same answer.
    case = f"case:{new_uuid()}"
    out_of_reach = await registry.get(child["id"], headers=stranger, purpose=case)
    unknown = await registry.get(new_uuid(), headers=stranger, purpose=case)
    assert out_of_reach.status_code == 404
    assert comparable(out_of_reach) == comparable(unknown)


# --- finding 9: crafted cursors ---------------------------------------------------------------------------------


async def test_crafted_cursors_are_400(registry: Registry) -> None:
    child = await registry.created()
    history = f"/registry/v1/children/{child['id']}/history"
    for values in (["abc"], [None], [1e30], [[1]], [{"a": 1}], [1, 2]):
        response = await registry.client.get(history, params={"cursor": cursor_of(values)}, headers=registry.officer)
        assert response.status_code == 400, (values, response.text)
    for values in (["a\x00b", new_uuid()], ["nguyen", "not-a-uuid"], [None, new_uuid()], [1e30, new_uuid()],
                   ["x" * 600, new_uuid()], ["nguyen"]):
        response = await registry.search(commune_code=registry.commune, cursor=cursor_of(values))
        assert response.status_code == 400, (values, response.text)
    for raw in (b"[1e30]", b"[1000000000000000000000000000000]", b"[nan]", b"\x00", b"[\"abc\""):
        response = await registry.client.get(history, params={"cursor": cursor_of(raw)}, headers=registry.officer)
        assert response.status_code == 400, (raw, response.text)


# --- finding 11: merge needs If-Match ---------------------------------------------------------------------------


async def test_merge_requires_the_current_etag(registry: Registry) -> None:
    survivor = await registry.created(full_name="Vũ Minh Khang", sex="male", date_of_birth="2013-09-09")
    retired = await registry.created(full_name="Vu Minh Khang", sex="male", date_of_birth="2013-09-09",
                                     confirm_not_duplicate=True)
    url = f"/registry/v1/children/{survivor['id']}/merge"
    body = {"merged_child_id": retired["id"]}
    missing = await registry.client.post(url, json=body, headers=registry.officer)
    assert missing.status_code == 428, missing.text
    await registry.client.patch(f"/registry/v1/children/{survivor['id']}", json={"address": "Số 9"},
                                headers=registry.officer | {"If-Match": f'"{survivor["id"]}.1"'})
    old, current = {"If-Match": f'"{survivor["id"]}.1"'}, {"If-Match": f'"{survivor["id"]}.2"'}
    stale = await registry.client.post(url, json=body, headers=registry.officer | old)
    assert stale.status_code == 412 and stale.json()["current_etag"] == f'"{survivor["id"]}.2"'
    merged = await registry.client.post(url, json=body, headers=registry.officer | current)
    assert merged.status_code == 200, merged.text


# --- concurrency on every write path ----------------------------------------------------------------------------


async def test_merge_racing_an_update_has_one_winner(registry: Registry) -> None:
    survivor = await registry.created(full_name="Đỗ Minh Quân", sex="male", date_of_birth="2014-04-04")
    retired = await registry.created(full_name="Do Minh Quan", sex="male", date_of_birth="2014-04-04",
                                     confirm_not_duplicate=True)
    current = {"If-Match": f'"{survivor["id"]}.1"'}
    merge = registry.client.post(f"/registry/v1/children/{survivor['id']}/merge",
                                 json={"merged_child_id": retired["id"]}, headers=registry.officer | current)
    update = registry.client.patch(f"/registry/v1/children/{survivor['id']}", json={"address": "Số 1"},
                                   headers=registry.officer | current)
    merged, updated = await asyncio.wait_for(asyncio.gather(merge, update), BOUND)
    assert sorted((merged.status_code, updated.status_code)) == [200, 412], [merged.text, updated.text]
    late = await registry.client.patch(f"/registry/v1/children/{retired['id']}", json={"address": "Số 2"},
                                       headers=registry.officer | {"If-Match": f'"{retired["id"]}.1"'})
    if merged.status_code == 200:
        # The retired record changed under the merge: an update of it answers 409 with the survivor, never a 500.
        assert late.status_code in (409, 412), late.text
    else:
        # The update won, so the merge changed nothing: the other record is as it was and takes the update.
        assert late.status_code == 200, late.text


async def test_crossed_merges_never_deadlock(registry: Registry) -> None:
    one = await registry.created(full_name="Hồ Thị Lan", date_of_birth="2015-05-05")
    two = await registry.created(full_name="Ho Thi Lan", date_of_birth="2015-05-05", confirm_not_duplicate=True)

    def merge(into: dict[str, Any], other: dict[str, Any]) -> Any:
        return registry.client.post(f"/registry/v1/children/{into['id']}/merge", json={"merged_child_id": other["id"]},
                                    headers=registry.officer | {"If-Match": f'"{into["id"]}.1"'})

    answers = await asyncio.wait_for(asyncio.gather(merge(one, two), merge(two, one)), BOUND)
    assert sorted(a.status_code for a in answers) == [200, 404], [a.text for a in answers]


# --- text identity and bounds -----------------------------------------------------------------------------------


async def test_look_alike_names_and_digits_cannot_make_a_second_record(registry: Registry) -> None:
    name = unique_name("Nguyễn Văn")
    number = id_number("male", "2015-03-02")
    await registry.created(full_name=name, sex="male", date_of_birth="2015-03-02", personal_id=number)
    hidden = name.replace(" ", " \u200b", 1)  # a zero-width space
    assert (await registry.create(full_name=hidden, sex="male", date_of_birth="2015-03-02")).status_code == 409
    decomposed = "Nguye\u0302\u0303n" + name.removeprefix("Nguyễn")
    assert (await registry.create(full_name=decomposed, sex="male", date_of_birth="2015-03-02")).status_code == 409
    cyrillic = name[:-1] + {"a": "\u0430", "e": "\u0435", "o": "\u043e"}.get(name[-1], "\u0430")
    refused = await registry.create(full_name=cyrillic, sex="male", date_of_birth="2015-03-02")
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["loc"] == ["body", "full_name"]
    full_width = "".join(chr(0xFF10 + int(d)) for d in number)
    arabic_indic = "".join(chr(0x0660 + int(d)) for d in number)
    for digits in (full_width, arabic_indic):
        again = await registry.create(full_name=unique_name(), sex="male", date_of_birth="2015-03-02",
                                      personal_id=digits)
        assert again.status_code == 409 and again.json()["candidates"][0]["reason"] == "same_personal_id", again.text
    guardian = await registry.create(guardians=[{"full_name": "Tr\u0430n Văn Bố", "relationship": "father"}])
    assert guardian.status_code == 422


async def test_every_date_and_number_has_a_range(registry: Registry) -> None:
    today = date.today()
    seventeen = today.replace(year=today.year - 17).isoformat()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"date_of_birth": seventeen}, "date_of_birth"),
        ({"date_of_birth": "0001-01-01"}, "date_of_birth"),
        ({"date_of_birth": "9999-12-31"}, "date_of_birth"),
        ({"date_of_birth": (today + timedelta(days=1)).isoformat()}, "date_of_birth"),
        ({"birth_registered": True, "birth_registered_on": "2015-01-01"}, "birth_registered_on"),
        ({"health_insurance_valid_until": "2099-01-01"}, "health_insurance_valid_until"),
        ({"status": "moved_away", "status_date": (today + timedelta(days=5)).isoformat()}, "status_date"),
        ({"special_groups": [{"group": "a", "start": "2010-01-01"}]}, "special_groups"),
        ({"school_grade": 13}, "school_grade"),
        ({"status": "aged_out"}, "status"),
        ({"school_grade": 10**30}, "school_grade"),
        ({"guardians": [{"full_name": "Lê Thị Mẹ", "relationship": "mother"}] * 11}, "guardians"),
    ]
    for overrides, field in cases:
        response = await registry.create(**overrides)
        assert response.status_code == 422, (overrides, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        errors = response.json()["errors"]
        assert all(set(e) == {"loc", "msg", "type"} for e in errors)
        assert field in [e["loc"][1] for e in errors], (overrides, errors)
    child = await registry.created(date_of_birth="2016-05-01")
    older = await registry.client.patch(f"/registry/v1/children/{child['id']}", json={"date_of_birth": seventeen},
                                        headers=registry.officer | {"If-Match": f'"{child["id"]}.1"'})
    assert older.status_code == 422 and older.json()["errors"][0]["type"] == "date_of_birth.over_age_limit"


# --- guardians keep their ids -----------------------------------------------------------------------------------


async def test_guardians_keep_their_ids_through_edits(registry: Registry) -> None:
    child = await registry.created(guardians=[
        {"full_name": "Trần Văn Dượng", "relationship": "step_father"},
        {"full_name": "Lê Thị Bà", "relationship": "maternal_grandmother", "lives_with_child": False}])
    step_father, grandmother = child["guardians"]
    assert uuid.UUID(step_father["id"]) and step_father["id"] != grandmother["id"]
    edited = await registry.client.patch(f"/registry/v1/children/{child['id']}", json={"guardians": [
        grandmother | {"phone": "0912000333"}, {"full_name": "Trần Thị Mẹ", "relationship": "mother"}]},
        headers=registry.officer | {"If-Match": f'"{child["id"]}.1"'})
    assert edited.status_code == 200, edited.text
    kept, new = edited.json()["guardians"]
    assert kept["id"] == grandmother["id"] and kept["phone"] == "0912000333"
    assert new["id"] not in (step_father["id"], grandmother["id"])
    made_up = await registry.client.patch(f"/registry/v1/children/{child['id']}", json={"guardians": [
        {"id": new_uuid(), "full_name": "Ai Đó", "relationship": "other"}]},
        headers=registry.officer | {"If-Match": f'"{child["id"]}.2"'})
    assert made_up.status_code == 422 and made_up.json()["errors"][0]["type"] == "guardian.unknown_id"


# --- finding 2: the hotline's quota and audit -------------------------------------------------------------------


async def test_hotline_matches_are_limited_per_operator_and_audited(api: Api, registry: Registry,
                                                                    stack_db: str) -> None:
    hotline = await api.user("hotline_operator", {"level": "national"})
    other = await api.user("hotline_operator", {"level": "national"})
    params = {"first_name": "Khang", "birth_year": 2014, "province_code": "01"}
    answers = [(await registry.search(headers=hotline, **params)).status_code for _ in range(61)]
    assert answers[:60] == [200] * 60 and answers[60] == 429, answers
    limited = await registry.search(headers=hotline, **params)
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    assert (await registry.search(headers=other, **params)).status_code == 200  # per operator
    connection = await asyncpg.connect(stack_db)
    try:
        rows = await connection.fetch("SELECT detail FROM audit_entry WHERE action = 'match' AND actor_id = "
                                      "(SELECT actor_id FROM audit_entry WHERE action = 'match' ORDER BY at DESC "
                                      "LIMIT 1)")
    finally:
        await connection.close()
    details = [orjson.loads(r["detail"]) for r in rows]
    assert details and all(d["criteria"] == ["birth_year", "first_name", "province_code"] for d in details)
    assert "Khang" not in str(details)


# --- contract 4: the commune that leads a case about the child reads it --------------------------------------------


async def test_the_commune_leading_a_case_reads_the_child_read_only(api: Api, registry: Registry,
                                                                   stack_db: str) -> None:
    child = await registry.created(address="Số 7 Ngõ Huế")
    leading = await api.commune_user("child_protection_officer", OTHER_COMMUNE)
    chairman = await api.commune_user("commune_chairman", OTHER_COMMUNE)
    # A report of something that happened in the other commune: that commune leads the case. The test links the
    # child itself, in the cases database, as the leading commune's link-child does once it may read the child.
    case = await registry.client.post("/cases/v1/cases", headers=leading, json={
        "incident_commune_code": OTHER_COMMUNE, "abuse_forms": ["neglect"], "environment": "home",
        "description": "Report made by a test", "child": {"sex": "female"}})
    assert case.status_code == 201, case.text
    case_id = case.json()["id"]
    cases_db = await asyncpg.connect(registry.api.stack.database_url("cases").replace("postgresql+asyncpg://",
                                                                                      "postgresql://"))
    try:
        await cases_db.execute("UPDATE case_record SET child_id = $1 WHERE id = $2", uuid.UUID(child["id"]),
                               uuid.UUID(case_id))
    finally:
        await cases_db.close()
    assert (await registry.get(child["id"], headers=leading)).status_code == 404  # no purpose, no access
    for reader in (leading, chairman):
        read = await registry.get(child["id"], headers=reader, purpose=f"case:{case_id}")
        assert read.status_code == 200, read.text
        assert read.json()["address"] == "Số 7 Ngõ Huế"
    url = f"/registry/v1/children/{child['id']}"
    patched = await registry.client.patch(url, json={"address": "x"}, params={"purpose": f"case:{case_id}"},
                                          headers=leading | {"If-Match": f'"{child["id"]}.1"'})
    assert patched.status_code in (400, 404)  # read-only: the case opens no change
    assert (await registry.client.get(f"{url}/history", headers=leading)).status_code == 404
    connection = await asyncpg.connect(stack_db)
    try:
        audited = await connection.fetchrow("SELECT purpose, detail FROM audit_entry WHERE object_id = $1 AND "
                                            "action = 'read' AND purpose = $2 LIMIT 1", child["id"],
                                            f"case:{case_id}")
    finally:
        await connection.close()
    assert audited is not None and orjson.loads(audited["detail"]) == {"access": "leading_commune"}
    # A commune that does not lead the case, naming it, reads nothing.
    bystander = await api.commune_user("child_protection_officer", next_commune())
    assert (await registry.get(child["id"], headers=bystander, purpose=f"case:{case_id}")).status_code == 404
    # A case about another child opens nothing.
    other_child = await registry.created()
    assert (await registry.get(other_child["id"], headers=leading, purpose=f"case:{case_id}")).status_code == 404

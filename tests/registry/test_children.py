"""Child records through the gateway: the full record, checks of the ID number, jurisdiction, field visibility,
search, ETags, history, duplicates, merge and events."""

import asyncio
from datetime import date, timedelta

import httpx

from tests.helpers import OTHER_COMMUNE, OTHER_PROVINCE, Api
from tests.involvement import case_involving
from tests.registry.conftest import Registry, id_number, new_uuid, next_commune, province_user, unique_name

FULL = {
    "sex": "female", "date_of_birth": "2021-03-04", "ethnicity": "01", "nationality": "VN",
    "address": "12 Ngõ Huế", "birth_registered": True, "birth_registered_on": "2021-03-20",
    "birth_certificate_number": "KS-123/2021",
    "guardians": [{"full_name": "Trần Văn Bố", "relationship": "father", "phone": "+84 912 345 678",
                   "lives_with_child": True}],
    "school_name": "Mầm non Hoa Sen", "school_level": "preschool", "school_status": "enrolled",
    "health_insurance_number": "0123456789", "health_insurance_valid_from": "2024-01-01",
    "health_insurance_valid_until": (date.today() + timedelta(days=300)).isoformat(),
    "disability": True, "disability_level": "mild",
    "special_groups": [{"group": "d", "start": "2023-01-01", "supported": True}],
    "at_risk_flags": ["poor_household"],
}


async def test_full_record_round_trip(registry: Registry) -> None:
    body = FULL | {"personal_id": id_number("female", "2021-03-04"), "birth_registration_commune_code":
                   registry.commune}
    created = await registry.create(**body)
    assert created.status_code == 201, created.text
    child = created.json()
    assert created.headers["etag"] == f'"{child["id"]}.1"'
    assert created.headers["location"] == f"/registry/v1/children/{child['id']}"
    read = (await registry.get(child["id"])).json()
    assert read["guardians"][0]["phone"] == "0912345678"
    assert read["guardians"][0]["id"] == child["guardians"][0]["id"]  # a stable id, for a case to name
    assert read["special_groups"][0]["group"] == "d" and read["special_groups"][0]["recorded_by"]
    assert read["at_risk"] is True and read["health_insurance_entitled"] is True
    assert read["province_code"] == "01" and read["revision"] == 1
    for name in ("ethnicity", "personal_id", "school_name", "birth_certificate_number", "disability_level"):
        assert read[name] == body[name]


async def test_id_number_parts_that_disagree_are_named(registry: Registry) -> None:
    good = id_number("male", "2015-06-01")
    cases = {
        "province_code": "099" + good[3:],  # 099 is no province
        "century_sex_digit": good[:3] + "3" + good[4:],  # says female
        "birth_year_digits": good[:4] + "09" + good[6:],
    }
    for part, number in cases.items():
        response = await registry.create(sex="male", date_of_birth="2015-06-01", personal_id=number)
        assert response.status_code == 422, response.text
        assert [(e["loc"], e["type"]) for e in response.json()["errors"]] == [(["body", "personal_id"],
                                                                              f"personal_id.{part}")]
    other_province = await registry.create(sex="male", date_of_birth="2015-06-01", personal_id="024" + good[3:],
                                           birth_registration_commune_code=registry.commune, birth_registered=True)
    assert other_province.json()["errors"][0]["type"] == "personal_id.province_code"
    foundling = await registry.create(sex="male", date_of_birth="2015-06-01", date_of_birth_estimated=True,
                                      personal_id=good[:4] + "13" + good[6:])
    assert foundling.status_code == 201, foundling.text


async def test_invalid_values_are_rejected(registry: Registry) -> None:
    for overrides in ({"commune_code": "99999"}, {"ethnicity": "55"}, {"special_groups": [{"group": "f",
                      "start": "2020-01-01"}]}, {"date_of_birth": (date.today() + timedelta(days=1)).isoformat()},
                      {"personal_id": "12345"}, {"unknown_field": 1}, {"at_risk_flags": ["nope"]}):
        response = await registry.create(**overrides)
        assert response.status_code == 422, (overrides, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_other_commune_officer_gets_404(api: Api, registry: Registry) -> None:
    child = await registry.created()
    stranger = await api.commune_user("child_protection_officer", OTHER_COMMUNE)
    assert (await registry.get(child["id"], headers=stranger)).status_code == 404
    patched = await api.client.patch(f"/registry/v1/children/{child['id']}", json={"address": "x"},
                                     headers=stranger | {"If-Match": f'"{child["id"]}.1"'})
    assert patched.status_code == 404
    listed = (await registry.search(headers=stranger, limit=200)).json()["items"]
    assert child["id"] not in {c["id"] for c in listed}
    assert (await registry.create(headers=stranger)).status_code == 404  # a commune not theirs


async def test_hotline_matches_by_whole_first_name_age_and_place(api: Api, registry: Registry) -> None:
    hotline = await api.user("hotline_operator", {"level": "national"})
    name = unique_name("Lê Văn")
    first_name = name.split()[-1]
    number = id_number("male", "2014-02-03")
    child = await registry.created(full_name=name, sex="male", date_of_birth="2014-02-03", personal_id=number,
                                   address="1 Phố Huế")
    expected = [{"id": child["id"], "full_name": name, "birth_year": 2014, "province_code": "01",
                 "commune_code": registry.commune}]
    by_year = await registry.search(headers=hotline, first_name=first_name.lower(), birth_year=2014,
                                    province_code="01")
    assert by_year.status_code == 200, by_year.text
    assert by_year.json() == {"items": expected, "next_cursor": None}
    age = date.today().year - 2014 - (1 if (date.today().month, date.today().day) < (2, 3) else 0)
    for approximate in (age - 1, age, age + 1):  # an age one year off still matches
        found = await registry.search(headers=hotline, first_name=first_name, age=approximate,
                                      commune_code=registry.commune)
        assert found.json()["items"] == expected, approximate
    assert (await registry.search(headers=hotline, first_name=first_name, age=age + 3,
                                  commune_code=registry.commune)).json()["items"] == []
    assert (await registry.search(headers=hotline, first_name=first_name, birth_year=2013,
                                  province_code="01")).json()["items"] == []
    by_number = (await registry.search(headers=hotline, q=number)).json()["items"]
    assert by_number == expected
    # Not enough to identify a child: refused, whatever else is sent.
    for params in ({"first_name": first_name, "birth_year": 2014},  # no place
                   {"first_name": first_name, "province_code": "01"},  # no age or year
                   {"birth_year": 2014, "province_code": "01"},  # no name
                   {"q": name, "birth_year": 2014},  # the old name search
                   {"q": name[:4], "birth_year": 2014, "province_code": "01"},  # a prefix
                   {"q": "0912345678"},  # browsing by phone
                   {"first_name": first_name, "birth_year": 2014, "province_code": "01", "special_group": "l"},
                   {"first_name": first_name, "birth_year": 2014, "province_code": "01", "cursor": "x"}):
        assert (await registry.search(headers=hotline, **params)).status_code == 400, params
    # A prefix of the first name is not the first name.
    assert (await registry.search(headers=hotline, first_name=first_name[:2], birth_year=2014,
                                  province_code="01")).json()["items"] == []
    assert (await registry.get(child["id"], headers=hotline)).status_code == 404


async def test_each_agency_sees_its_fields_for_a_purpose(api: Api, registry: Registry) -> None:
    child = await registry.created(**FULL)
    expectations = {
        "health_officer": ({"health_insurance_number", "disability"}, {"school_name", "guardians", "personal_id"}),
        "education_officer": ({"school_name", "school_status"}, {"health_insurance_number", "guardians"}),
        "police_officer": ({"guardians", "address"}, {"school_name", "health_insurance_number"}),
    }
    # Each agency is involved in a case about the child (the police by the statutory referral of a sexual-abuse
    # report, the others by a task of the approved plan) and names that case as the purpose of its read.
    police_case = await case_involving(api, registry.commune, child["id"], "police", registry.officer)
    for role, (seen, hidden) in expectations.items():
        headers = await province_user(api, role)
        case = police_case if role == "police_officer" else \
            await case_involving(api, registry.commune, child["id"], role.removesuffix("_officer"), registry.officer)
        assert (await registry.get(child["id"], headers=headers)).status_code == 400  # no purpose
        response = await registry.get(child["id"], headers=headers, purpose=f"case:{case}")
        assert response.status_code == 200, response.text
        fields = set(response.json())
        assert seen <= fields and not hidden & fields, (role, fields)
        assert {"full_name", "date_of_birth", "commune_code"} <= fields
        assert (await registry.search(headers=headers)).status_code == 403
    # A case that does not involve the agency, or is about another child, opens nothing.
    justice = await province_user(api, "justice_officer")
    assert (await registry.get(child["id"], headers=justice, purpose=f"case:{police_case}")).status_code == 404
    other_child = await registry.created()
    police = await province_user(api, "police_officer")
    assert (await registry.get(other_child["id"], headers=police, purpose=f"case:{police_case}")).status_code == 404
    assert (await registry.get(child["id"], headers=police, purpose=f"case:{new_uuid()}")).status_code == 404
    elsewhere = await province_user(api, "police_officer", OTHER_PROVINCE)
    assert (await registry.get(child["id"], headers=elsewhere, purpose=f"case:{police_case}")).status_code == 404
    cases_service = {"Authorization": f"Bearer {await api.service_token('cases', 'registry:service_read')}"}
    assert (await registry.get(child["id"], headers=cases_service)).json()["school_name"] == FULL["school_name"]


async def test_search_without_diacritics_and_by_id_date_phone(registry: Registry) -> None:
    an = await registry.created(full_name="Nguyễn Văn An", sex="male", date_of_birth="2015-03-02")
    anh = await registry.created(full_name="Nguyễn Văn Anh", sex="male", date_of_birth="2016-07-08",
                                 personal_id=id_number("male", "2016-07-08"),
                                 guardians=[{"full_name": "Phạm Thị Mẹ", "relationship": "mother",
                                             "phone": "0987 654 321"}])
    await registry.created(full_name="Nguyễn Văn Bình", sex="male")
    dat = await registry.created(full_name="Đỗ Tiến Đạt", sex="male")

    async def ids(q: str) -> list[str]:
        response = await registry.search(q=q, commune_code=registry.commune)
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()["items"]]

    assert await ids("nguyen van an") == [an["id"], anh["id"]]
    assert await ids("NGUYEN  VĂN ANH") == [anh["id"]]
    assert await ids("do tien dat") == [dat["id"]]
    assert await ids(anh["personal_id"]) == [anh["id"]]
    assert await ids("08/07/2016") == [anh["id"]]
    assert await ids("2015-03-02") == [an["id"]]
    assert await ids("+84987654321") == [anh["id"]]
    assert (await registry.search(q="%%")).status_code == 400


async def test_filters_and_cursor_pages(registry: Registry) -> None:
    today = date.today()
    insured = await registry.created(date_of_birth="2022-01-01", health_insurance_number="0123456789",
                                     health_insurance_valid_until=(today + timedelta(days=30)).isoformat())
    group_c = await registry.created(date_of_birth="2012-01-01",
                                     special_groups=[{"group": "c", "start": "2020-01-01"}])
    registered = await registry.created(date_of_birth="2018-01-01", birth_registered=True)
    moved = await registry.created(date_of_birth="2017-01-01", status="moved_away")
    everyone = {insured["id"], group_c["id"], registered["id"], moved["id"]}

    async def ids(**params: object) -> set[str]:
        response = await registry.search(commune_code=registry.commune, **params)
        assert response.status_code == 200, response.text
        return {c["id"] for c in response.json()["items"]}

    assert await ids(has_health_insurance=True) == {insured["id"]}
    assert await ids(special_group="c") == {group_c["id"]}
    assert await ids(birth_registered=True) == {registered["id"]}
    assert await ids(status="moved_away") == {moved["id"]}
    assert await ids(age_min=10) == {group_c["id"]}
    assert await ids(age_max=5) == {insured["id"]}
    seen: list[str] = []
    cursor = None
    while True:
        params = {"commune_code": registry.commune, "limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await registry.search(**params)).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(everyone) and len(seen) == len(everyone)
    assert (await registry.search(cursor="not-a-cursor")).status_code == 400


async def test_updates_need_the_current_etag(registry: Registry) -> None:
    child = await registry.created()
    url = f"/registry/v1/children/{child['id']}"
    assert (await registry.client.patch(url, json={"address": "a"}, headers=registry.officer)).status_code == 428
    first_etag = f'"{child["id"]}.1"'
    updated = await registry.client.patch(url, json={"address": "Số 2"},
                                          headers=registry.officer | {"If-Match": first_etag})
    assert updated.status_code == 200, updated.text
    assert updated.headers["etag"] == f'"{child["id"]}.2"' and updated.json()["address"] == "Số 2"
    stale = await registry.client.patch(url, json={"address": "Số 3"},
                                        headers=registry.officer | {"If-Match": first_etag})
    assert stale.status_code == 412
    current = updated.headers["etag"]
    racing = await asyncio.gather(*[
        registry.client.patch(url, json={"address": f"Số {n}"}, headers=registry.officer | {"If-Match": current})
        for n in (4, 5)])
    assert sorted(r.status_code for r in racing) == [200, 412]
    assert (await registry.client.patch(url, json={"full_name": None},
                                        headers=registry.officer | {"If-Match": current})).status_code == 422


async def test_history_records_who_what_old_and_new(api: Api, registry: Registry) -> None:
    child = await registry.created(address="Cũ")
    url = f"/registry/v1/children/{child['id']}"
    await registry.client.patch(url, json={"address": "Mới", "status": "moved_away"},
                                headers=registry.officer | {"If-Match": f'"{child["id"]}.1"'})
    history = await registry.client.get(f"{url}/history", headers=registry.officer)
    assert history.status_code == 200, history.text
    latest, first = history.json()["items"]
    assert latest["revision"] == 2 and latest["change"] == "update"
    assert latest["changes"]["address"] == {"old": "Cũ", "new": "Mới"}
    assert latest["changes"]["status"] == {"old": "active", "new": "moved_away"}
    assert latest["changes"]["status_date"]["new"] == date.today().isoformat()
    assert first["change"] == "create" and latest["actor_role"] == "child_protection_officer"
    chairman = await api.commune_user("commune_chairman", registry.commune)
    assert (await registry.client.get(f"{url}/history", headers=chairman)).status_code == 200
    health = await province_user(api, "health_officer")
    assert (await registry.client.get(f"{url}/history", headers=health)).status_code == 403


async def test_duplicates_are_caught_unless_confirmed(registry: Registry) -> None:
    number = id_number("female", "2016-05-01")
    first = await registry.created(full_name="Phạm Thị Hoa", personal_id=number)
    again = await registry.create(full_name="PHAM THI HOA")
    assert again.status_code == 409
    assert again.json()["candidates"][0]["id"] == first["id"]
    confirmed = await registry.create(full_name="Phạm Thị Hoa", confirm_not_duplicate=True)
    assert confirmed.status_code == 201
    same_id = await registry.create(personal_id=number, confirm_not_duplicate=True)
    assert same_id.status_code == 409 and same_id.json()["candidates"][0]["reason"] == "same_personal_id"
    racing_number = id_number("female", "2016-05-01")
    racing = await asyncio.gather(*[registry.create(personal_id=racing_number, confirm_not_duplicate=True)
                                    for _ in range(3)])
    assert sorted(r.status_code for r in racing) == [201, 409, 409]


async def test_merge_keeps_both_ids_resolving(registry: Registry) -> None:
    survivor = await registry.created(full_name="Vũ Minh Khang", sex="male", date_of_birth="2013-09-09")
    retired = await registry.created(full_name="Vu Minh Khang", sex="male", date_of_birth="2013-09-09",
                                     confirm_not_duplicate=True, school_name="Tiểu học Kim Liên",
                                     special_groups=[{"group": "b", "start": "2020-01-01"}])
    merged = await registry.client.post(f"/registry/v1/children/{survivor['id']}/merge",
                                        json={"merged_child_id": retired["id"]},
                                        headers=registry.officer | {"If-Match": f'"{survivor["id"]}.1"'})
    assert merged.status_code == 200, merged.text
    body = merged.json()
    assert body["school_name"] == "Tiểu học Kim Liên" and body["merged_ids"] == [retired["id"]]
    assert [g["group"] for g in body["special_groups"]] == ["b"] and body["revision"] == 2
    via_old = (await registry.get(retired["id"])).json()
    assert via_old["id"] == survivor["id"] and via_old["resolved_from"] == retired["id"]
    listed = {c["id"] for c in (await registry.search(commune_code=registry.commune)).json()["items"]}
    assert retired["id"] not in listed and survivor["id"] in listed
    patch_retired = await registry.client.patch(f"/registry/v1/children/{retired['id']}", json={"address": "x"},
                                                headers=registry.officer | {"If-Match": f'"{retired["id"]}.1"'})
    assert patch_retired.status_code == 409 and patch_retired.json()["surviving_id"] == survivor["id"]
    again = await registry.client.post(f"/registry/v1/children/{survivor['id']}/merge",
                                       json={"merged_child_id": retired["id"]},
                                       headers=registry.officer | {"If-Match": f'"{survivor["id"]}.2"'})
    assert again.status_code == 404
    history = (await registry.client.get(f"/registry/v1/children/{survivor['id']}/history",
                                         headers=registry.officer)).json()["items"]
    assert {h["change"] for h in history} >= {"merge", "merged_into", "create"}
    events = [e for e in await registry.events() if e["payload"].get("child_id") == survivor["id"]]
    assert [e["type"] for e in events][-2:] == ["child.merged", "child.changed"]
    assert events[-2]["payload"] == {"child_id": survivor["id"], "merged_child_id": retired["id"], "revision": 2}


SNAPSHOT_KEYS = {"child_id", "revision", "sex", "birth_month", "province_code", "commune_code", "status",
                 "status_date", "birth_registered", "birth_registered_on", "health_insurance_valid_until",
                 "disability", "special_groups", "at_risk"}


async def test_events_carry_snapshots_without_personal_data(registry: Registry) -> None:
    body = FULL | {"personal_id": id_number("female", "2021-03-04")}
    child = await registry.created(**body)
    await registry.client.patch(f"/registry/v1/children/{child['id']}", json={"address": "Không thống kê"},
                                headers=registry.officer | {"If-Match": f'"{child["id"]}.1"'})
    await registry.client.patch(f"/registry/v1/children/{child['id']}", json={"status": "deceased"},
                                headers=registry.officer | {"If-Match": f'"{child["id"]}.2"'})
    mine = [e for e in await registry.events() if e["payload"].get("child_id") == child["id"]]
    assert [(e["type"], e["payload"]["revision"]) for e in mine] == [("child.registered", 1), ("child.changed", 3)]
    registered = mine[0]
    assert registered["source"] == "registry" and registered["version"] == 1
    assert set(registered["payload"]) == SNAPSHOT_KEYS
    assert registered["payload"]["birth_month"] == "2021-03"
    assert registered["payload"]["special_groups"] == [{"group": "d", "start": "2023-01-01", "end": None,
                                                       "supported": True}]
    text = str(mine)
    for secret in (child["full_name"], body["personal_id"], "912345678", "Ngõ Huế", "Hoa Sen", "0123456789"):
        assert secret not in text


async def test_locations_and_old_addresses(api: Api) -> None:
    hotline = await api.as_demo("hotline_operator")
    provinces = (await api.client.get("/registry/v1/locations/provinces", headers=hotline)).json()
    assert len(provinces) == 34
    hanoi = (await api.client.get("/registry/v1/locations/provinces/01/communes", headers=hotline)).json()
    assert "00070" in {c["code"] for c in hanoi} and all(c["province_code"] == "01" for c in hanoi)
    commune = (await api.client.get("/registry/v1/locations/communes/07210", headers=hotline)).json()
    assert commune["province_code"] == "24"
    assert (await api.client.get("/registry/v1/locations/communes/99999", headers=hotline)).status_code == 404
    for old, new in (("Phuong Dinh Ke, Thanh pho Bac Giang, Tinh Bac Giang", "07210"),
                     ("Thi tran Ha Trung, Huyen Ha Trung, Tinh Thanh Hoa", "15271")):
        converted = await api.client.get("/registry/v1/locations/convert", params={"address": old},
                                         headers=hotline)
        assert converted.status_code == 200, converted.text
        assert converted.json()["commune"]["code"] == new
    unknown = await api.client.get("/registry/v1/locations/convert", params={"address": "nowhere at all"},
                                   headers=hotline)
    assert unknown.status_code == 404
    assert (await api.client.get("/registry/v1/locations/provinces")).status_code == 401


async def test_export_neutralises_formulas_and_is_audited(api: Api, registry: Registry) -> None:
    await registry.created(address="=HYPERLINK(1)", school_name="@school", birth_certificate_number="-1",
                           guardians=[{"full_name": "Trần Văn Bố", "relationship": "father",
                                       "phone": "+84 912 345 678"}])
    chairman = await api.commune_user("commune_chairman", registry.commune)
    csv_export = await registry.client.get("/registry/v1/children/export",
                                           params={"commune_code": registry.commune}, headers=chairman)
    assert csv_export.status_code == 200, csv_export.text
    text = csv_export.content.decode("utf-8-sig")
    assert "'=HYPERLINK(1)" in text and "'@school" in text and "'-1" in text
    assert ",=" not in text and "\n=" not in text
    xlsx = await registry.client.get("/registry/v1/children/export",
                                     params={"commune_code": registry.commune, "format": "xlsx"},
                                     headers=registry.officer)
    assert xlsx.status_code == 200 and xlsx.content.startswith(b"PK")
    import io

    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(xlsx.content), read_only=True).worksheets[0]
    values = [cell for row in sheet.iter_rows(values_only=True) for cell in row if isinstance(cell, str)]
    assert "'=HYPERLINK(1)" in values and not any(v.startswith("=") for v in values)
    other = next_commune()
    assert (await registry.client.get("/registry/v1/children/export", params={"commune_code": other},
                                      headers=chairman)).status_code == 404
    health = await province_user(api, "health_officer")
    assert (await registry.client.get("/registry/v1/children/export", params={"commune_code": registry.commune},
                                      headers=health)).status_code == 403


async def test_reads_are_audited_with_their_purpose(api: Api, registry: Registry, stack_db: str) -> None:
    child = await registry.created()
    health = await province_user(api, "health_officer")
    case = await case_involving(api, registry.commune, child["id"], "health", registry.officer)
    assert (await registry.get(child["id"], headers=health, purpose=f"case:{case}")).status_code == 200
    import asyncpg

    connection = await asyncpg.connect(stack_db)
    try:
        rows = await connection.fetch("SELECT action, actor_role, purpose FROM audit_entry WHERE object_id = $1 "
                                      "ORDER BY at", child["id"])
    finally:
        await connection.close()
    assert [(r["action"], r["actor_role"]) for r in rows][:1] == [("create", "child_protection_officer")]
    assert ("read", "health_officer", f"case:{case}") in [tuple(r) for r in rows]


async def test_unauthenticated_and_unknown_ids(registry: Registry) -> None:
    async with httpx.AsyncClient(base_url=registry.api.stack.url("gateway")) as anonymous:
        assert (await anonymous.get("/registry/v1/children")).status_code == 401
    assert (await registry.get(new_uuid())).status_code == 404
    assert (await registry.get("not-a-uuid")).status_code == 422

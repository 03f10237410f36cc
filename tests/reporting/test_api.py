"""The API for pollers, through the gateway with real tokens: catalogue, jurisdiction, formats, ETags and 304.

Facts are written into the running reporting service's database with the service's own apply functions, in
provinces no other test touches, so the figures are known exactly.
"""

import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import openpyxl
import pytest

from services.common.db import Database
from services.common.outbox import Event
from services.reporting.ingest import Ingestor
from tests.helpers import Api

PROVINCE = "96"
COMMUNE = "32002"  # Phuong An Xuyen
OTHER_COMMUNE = "32014"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
async def stack_reporting(api: Api) -> AsyncIterator[Database]:
    database = Database(api.stack.database_url("reporting"), pool_size=1)
    yield database
    await database.dispose()


def child_event(commune: str, sex: str = "female", birth_month: str = "2019-03", seq: int = 1) -> Event:
    payload = {"child_id": str(uuid.uuid4()), "revision": 1, "sex": sex, "birth_month": birth_month,
               "province_code": commune[:2], "commune_code": commune, "status": "active", "status_date": None,
               "birth_registered": True, "birth_registered_on": None, "health_insurance_valid_until": "2030-01-01",
               "disability": False, "special_groups": [], "at_risk": False}
    return Event(seq=seq, id=uuid.uuid4(), type="child.registered", version=1,
                 occurred_at=datetime(2024, 1, 10, tzinfo=UTC), agency="peoples_committee", source="registry",
                 payload=payload)


async def add_children(database: Database, commune: str, count: int, sex: str = "female") -> None:
    async with database.sessionmaker() as session, session.begin():
        await Ingestor().apply_registry_events(session, [child_event(commune, sex) for _ in range(count)])


async def test_catalogue_lists_every_required_indicator(api: Api) -> None:
    response = await api.client.get("/reporting/v1/indicators", headers=await api.as_demo("province_statistician"))
    assert response.status_code == 200, response.text
    catalogue = {i["code"]: i for i in response.json()["indicators"]}
    assert {"TE01", "TE02", "TE03", "TE04", "TE05", "0101", "VV01", "VV02", "VV03", "KT01", "KT02", "KT03",
            "KT04"} <= set(catalogue)
    abused = catalogue["0101"]
    assert abused["name_vi"] == "Số trẻ em bị xâm hại" and abused["unit"] == "children" and abused["definition"]
    assert {b["code"] for b in abused["breakdowns"]} == {"sex", "age_group", "abuse_form", "environment", "locality"}
    groups = next(b for b in catalogue["TE02"]["breakdowns"] if b["code"] == "special_group")
    assert len(groups["categories"]) == 14


async def test_a_statistician_reads_its_province_only(api: Api, stack_reporting: Database) -> None:
    await add_children(stack_reporting, COMMUNE, 7)
    own = await api.province_user("province_statistician", PROVINCE)
    other = await api.province_user("province_statistician", "24")
    for location in (PROVINCE, COMMUNE):
        response = await api.client.get("/reporting/v1/reports/2024", params={"location": location}, headers=own)
        assert response.status_code == 200, response.text
    for location in (PROVINCE, COMMUNE, "VN"):
        response = await api.client.get("/reporting/v1/values", headers=other,
                                        params={"period": "2024", "location": location})
        assert response.status_code == 404, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
    # Without a location, the caller's own jurisdiction.
    default = await api.client.get("/reporting/v1/reports/2024", headers=own)
    assert default.json()["location"] == {"code": PROVINCE, "level": "province", "name": "Cà Mau"}
    officer = await api.as_demo("child_protection_officer")
    assert (await api.client.get("/reporting/v1/reports/2024", headers=officer)).status_code == 403


async def test_bad_parameters_are_problems_not_errors(api: Api) -> None:
    headers = await api.as_demo("province_statistician")
    for params, status in (({"period": "2024S3"}, 400), ({"period": "2024", "indicator": "XX99"}, 404),
                           ({"period": "2024", "breakdown": "colour"}, 400), ({"period": "2024", "location": "1"}, 422),
                           ({"period": "2024", "location": "99"}, 404), ({"period": ",".join(["2024"] * 30)}, 200)):
        response = await api.client.get("/reporting/v1/values", params=params, headers=headers)
        assert response.status_code == status, (params, response.text)


async def test_values_filter_by_indicator_period_and_breakdown(api: Api, stack_reporting: Database) -> None:
    await add_children(stack_reporting, "32025", 6, sex="male")
    headers = await api.province_user("province_statistician", PROVINCE)
    response = await api.client.get("/reporting/v1/values", headers=headers, params={
        "indicator": "TE01", "period": "2024S1,2024Q2", "location": "32025", "breakdown": "sex"})
    assert response.status_code == 200, response.text
    values = response.json()["values"]
    assert {(v["period"], v["category"], v["value"]) for v in values} == {
        ("2024S1", "male", 6), ("2024S1", "female", 0), ("2024Q2", "male", 6), ("2024Q2", "female", 0)}
    totals = await api.client.get("/reporting/v1/values", headers=headers, params={
        "indicator": "TE01", "period": "2024", "location": "32025", "breakdown": "total"})
    assert [(v["breakdown"], v["value"]) for v in totals.json()["values"]] == [(None, 6)]


async def test_polls_answer_304_until_the_figures_change(api: Api, stack_reporting: Database) -> None:
    await add_children(stack_reporting, OTHER_COMMUNE, 5)
    headers = await api.province_user("province_statistician", PROVINCE)
    url, params = "/reporting/v1/reports/2024S1", {"location": PROVINCE}
    first = await api.client.get(url, params=params, headers=headers)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert etag.startswith('W/"') and first.headers["last-modified"].endswith("GMT")
    assert "registry;position=" in first.headers["data-freshness"]
    assert set(first.json()["freshness"]) >= {"registry", "cases"}

    again = await api.client.get(url, params=params, headers={**headers, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    other_format = await api.client.get(url, params={**params, "format": "csv"},
                                        headers={**headers, "If-None-Match": etag})
    assert other_format.status_code == 200

    await add_children(stack_reporting, OTHER_COMMUNE, 1)
    changed = await api.client.get(url, params=params, headers={**headers, "If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag


async def test_report_as_csv_xlsx_and_dhis2(api: Api, stack_reporting: Database) -> None:
    await add_children(stack_reporting, "32041", 8)
    headers = await api.province_user("province_statistician", PROVINCE)
    url = "/reporting/v1/reports/2024AY"

    as_csv = await api.client.get(url, params={"location": "32041"}, headers={**headers, "Accept": "text/csv"})
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["Mã chỉ tiêu", "Tên chỉ tiêu", "Kỳ báo cáo"]
    followed = next(r for r in rows if r[0] == "TE01" and r[7] == "Tổng số")
    assert followed[8] == "8" and followed[3] == "32041"

    as_xlsx = await api.client.get(url, params={"location": "32041", "format": "xlsx"}, headers=headers)
    assert as_xlsx.headers["content-type"] == XLSX
    sheet = openpyxl.load_workbook(io.BytesIO(as_xlsx.content)).active
    table = list(sheet.iter_rows(values_only=True))
    assert table[2][0] == "Mã chỉ tiêu"
    assert any(r[0] == "TE01" and r[7] == "Tổng số" and r[8] == 8 for r in table[3:])

    dhis2 = await api.client.get(url, params={"location": "32041", "format": "dhis2"}, headers=headers)
    body = dhis2.json()
    assert body["period"] == "2024AY" and body["orgUnit"] == "32041"
    assert {"dataElement": "TE01", "period": "2024AY", "orgUnit": "32041", "categoryOptionCombo": "default",
            "value": "8"} in body["dataValues"]

    report = (await api.client.get(url, params={"location": "32041"}, headers=headers)).json()
    assert report["period"] == {"id": "2024AY", "kind": "admin_year", "start": "2023-12-15", "end": "2024-12-14",
                                "due_date": "2024-11-10"}


async def test_commune_figures_are_suppressed_for_every_reader(api: Api, stack_reporting: Database) -> None:
    commune = "32167"
    await add_children(stack_reporting, commune, 3, sex="male")
    await add_children(stack_reporting, commune, 9, sex="female")
    chairman = await api.commune_user("commune_chairman", commune)
    response = await api.client.get("/reporting/v1/values", headers=chairman,
                                    params={"indicator": "TE01", "period": "2024"})
    assert response.status_code == 200, response.text
    shown = {v["category"]: v for v in response.json()["values"] if v["breakdown"] in (None, "sex")}
    assert shown[None]["value"] == 12
    assert shown["male"]["display"] == "<5" and shown["male"]["value"] is None
    assert shown["female"]["display"] == "x" and shown["female"]["value"] is None

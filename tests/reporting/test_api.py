"""The API for pollers, through the gateway with real tokens: catalogue, jurisdiction, formats, ETags and 304,
marking and revisions, the documents a province hands up, DHIS2, and the child-friendly commune assessment.

Facts are written into the running reporting service's database with the service's own apply functions, in
provinces no other test touches, so the figures are known exactly.
"""

import csv
import io
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from pypdf import PdfReader

from services.common.db import Database
from services.common.locations import communes
from services.common.outbox import Event
from services.reporting.ingest import Ingestor
from tests.helpers import Api

PROVINCE = "96"
COMMUNE = "32002"  # Phường An Xuyên, Cà Mau
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


def case_payload(commune: str, **changes: Any) -> dict[str, Any]:
    return {"case_id": str(uuid.uuid4()), "revision": 1, "province_code": commune[:2], "commune_code": commune,
            "received_at": "2024-03-05T03:00:00+00:00", "child_sex": "female", "child_age_group": "6-10",
            "child_id": None, "abuse_forms": ["violence"], "environment": "home", "state": "received",
            "emergency": False, "closure_reason": None, "closed_at": None, "deadlines": {},
            "category": "abused", "channel": "phone", "intake_agency": "hotline", **changes}


async def add_children(database: Database, commune: str, count: int, sex: str = "female") -> None:
    async with database.sessionmaker() as session, session.begin():
        await Ingestor().apply_registry_events(session, [child_event(commune, sex) for _ in range(count)])


async def add_cases(database: Database, payloads: list[dict[str, Any]]) -> None:
    events = [Event(seq=n, id=uuid.uuid4(), type="case.changed", version=1, occurred_at=datetime.now(UTC),
                    agency="hotline", source="cases", payload=p) for n, p in enumerate(payloads, start=1)]
    async with database.sessionmaker() as session, session.begin():
        await Ingestor().apply_cases_events(session, events)


async def test_catalogue_lists_every_indicator_with_its_legal_source_and_every_category(api: Api) -> None:
    response = await api.client.get("/reporting/v1/indicators", headers=await api.as_demo("province_statistician"))
    assert response.status_code == 200, response.text
    body = response.json()
    catalogue = {i["code"]: i for i in body["indicators"]}
    assert {"0101", "HT-TE01", "HT-TE06", "HT-VV01", "HT-KT05", "HT-KT06", "HT-CL01"} <= set(catalogue)
    assert all(code == "0101" or code.startswith("HT-") for code in catalogue)
    abused = catalogue["0101"]
    assert abused["circular_13_2021"]["code"] == "0101" and abused["circular_13_2021"]["annex"] == "IV"
    assert {b["code"] for b in abused["breakdowns"]} >= {"sex", "age_group", "abuse_form", "environment",
                                                         "perpetrator", "locality"}
    assert catalogue["HT-KT02"]["legal"] == "Decree 56/2017/NĐ-CP, Art. 28(1)"
    assert "28(4)" in catalogue["HT-KT03"]["legal"]
    age_groups = next(b for b in catalogue["HT-VV01"]["breakdowns"] if b["code"] == "age_group")["categories"]
    assert {"16+", "unknown"} <= set(age_groups)
    labels = {term["code"]: term for term in body["categories"]["age_group"]}
    assert labels["16+"]["vi"] == "Từ 16 tuổi" and labels["unknown"]["en"] == "Unknown"
    assert len(body["categories"]["special_group"]) == 14
    vocabularies = await api.client.get("/reporting/v1/vocabularies", headers=await api.as_demo("police_officer"))
    assert vocabularies.status_code == 200
    names = {v["name"] for v in vocabularies.json()["vocabularies"]}
    assert {"report_age_group", "report_channel", "report_perpetrator", "report_breakdown"} <= names


async def test_a_statistician_reads_its_province_only(api: Api, stack_reporting: Database) -> None:
    await add_children(stack_reporting, COMMUNE, 7)
    own = await api.province_user("province_statistician", PROVINCE)
    other = await api.province_user("province_statistician", "24")
    for location in (PROVINCE, COMMUNE):
        response = await api.client.get("/reporting/v1/reports/2024", params={"location": location}, headers=own)
        assert response.status_code == 200, response.text
        followed = next(v for i in response.json()["indicators"] if i["code"] == "HT-TE01" for v in i["values"]
                        if v["breakdown"] is None)
        assert followed["value"] == 7 and followed["category_vi"] == "Tổng số"
    for location in (PROVINCE, COMMUNE, "VN"):
        response = await api.client.get("/reporting/v1/values", headers=other,
                                        params={"period": "2024", "location": location})
        assert response.status_code == 404, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
    # Without a location, the caller's own jurisdiction.
    default = await api.client.get("/reporting/v1/reports/2024", headers=own)
    assert default.json()["location"] == {"code": PROVINCE, "level": "province", "name": "Cà Mau"}
    police = await api.as_demo("police_officer")
    assert (await api.client.get("/reporting/v1/reports/2024", headers=police)).status_code == 403


@pytest.mark.parametrize("period", ["٢٠٢٤S1", "２０２４S1", "2024Ｓ1", "۲۰۲۴", "2024Q٢", "2024S3", "20245",
                                    "2024-S1", "x" * 11])
async def test_periods_in_other_digits_are_refused_in_every_format(api: Api, period: str) -> None:
    headers = await api.as_demo("province_statistician")
    for fmt in ("json", "csv", "xlsx", "pdf", "dhis2"):
        response = await api.client.get(f"/reporting/v1/reports/{period}", params={"format": fmt}, headers=headers)
        assert response.status_code in (400, 422), (fmt, response.status_code, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert period not in response.json().get("detail", "")  # never echoed back
    values = await api.client.get("/reporting/v1/values", params={"period": period}, headers=headers)
    assert values.status_code in (400, 422) and period not in values.json().get("detail", "")


async def test_bad_parameters_are_problems_not_errors(api: Api) -> None:
    headers = await api.as_demo("province_statistician")
    for params, status in (({"period": "2024S3"}, 400), ({"period": "2024", "indicator": "XX99"}, 404),
                           ({"period": "2024", "breakdown": "colour"}, 400), ({"period": "2024", "location": "1"}, 422),
                           ({"period": "2024", "location": "٠١"}, 422), ({"period": "2024", "location": "99"}, 404),
                           ({"period": ",".join(["2024"] * 30)}, 200), ({"period": ",".join(["2023", "2024"] * 13)},
                                                                        200)):
        response = await api.client.get("/reporting/v1/values", params=params, headers=headers)
        assert response.status_code == status, (params, response.text)


async def test_values_filter_by_indicator_period_and_breakdown(api: Api, stack_reporting: Database) -> None:
    await add_children(stack_reporting, "32025", 6, sex="male")
    headers = await api.province_user("province_statistician", PROVINCE)
    response = await api.client.get("/reporting/v1/values", headers=headers, params={
        "indicator": "HT-TE01", "period": "2024S1,2024AS1", "location": "32025", "breakdown": "sex"})
    assert response.status_code == 200, response.text
    values = response.json()["values"]
    assert {(v["period"], v["category"], v["category_vi"], v["value"]) for v in values} == {
        ("2024S1", "male", "Nam", 6), ("2024S1", "female", "Nữ", 0), ("2024AS1", "male", "Nam", 6),
        ("2024AS1", "female", "Nữ", 0)}
    totals = await api.client.get("/reporting/v1/values", headers=headers, params={
        "indicator": "HT-TE01", "period": "2024", "location": "32025", "breakdown": "total"})
    assert [(v["breakdown"], v["value"]) for v in totals.json()["values"]] == [(None, 6)]
    # Commune figures go to outsiders for half-years and years only.
    monthly = await api.client.get("/reporting/v1/values", headers=headers,
                                   params={"period": "202405", "location": "32025"})
    assert monthly.status_code == 400


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


async def test_a_case_later_found_unfounded_revises_the_past_period(api: Api, stack_reporting: Database) -> None:
    """0101 counts children, once, and never a report closed as unfounded; the revision moves when it changes."""
    commune = "30313"  # a province (91) no other test touches
    child = str(uuid.uuid4())
    first, second = case_payload(commune, child_id=child), case_payload(commune, child_id=child)
    other = case_payload(commune)
    await add_cases(stack_reporting, [first, second, other])
    headers = await api.province_user("province_statistician", communes()[commune].province_code)
    url, params = "/reporting/v1/reports/2024", {"location": communes()[commune].province_code}

    def abused(body: dict[str, Any]) -> int:
        return next(v["value"] for i in body["indicators"] if i["code"] == "0101" for v in i["values"]
                    if v["breakdown"] is None)

    before = await api.client.get(url, params=params, headers=headers)
    assert abused(before.json()) == 2  # two children: one with two cases, one more
    revision = before.json()["marking"]["revision"]
    assert revision["number"] >= 1 and before.headers["report-revision"] == str(revision["number"])
    await add_cases(stack_reporting, [{**other, "revision": 2, "state": "closed", "closure_reason": "unfounded",
                                       "closed_at": "2024-04-01T03:00:00+00:00", "closure_kind": "early"}])
    after = await api.client.get(url, params=params, headers={**headers, "If-None-Match": before.headers["etag"]})
    assert after.status_code == 200 and after.headers["etag"] != before.headers["etag"]
    assert abused(after.json()) == 1
    revised = after.json()["marking"]["revision"]
    assert revised["number"] == revision["number"] + 1 and revised["revised_at"] > revision["revised_at"]
    assert revised["first_published_at"] == revision["first_published_at"]


async def test_every_output_carries_its_marking_and_freshness(api: Api, stack_reporting: Database) -> None:
    await add_children(stack_reporting, "32041", 8)
    headers = await api.province_user("province_statistician", PROVINCE)
    url, params = "/reporting/v1/reports/2024AY", {"location": "32041"}
    report = (await api.client.get(url, params=params, headers=headers)).json()
    assert report["period"] == {"id": "2024AY", "kind": "admin_year", "start": "2023-12-15", "end": "2024-12-14",
                                "due_date": "2025-01-13", "due_rule": "lag"}
    assert report["marking"]["level"] == "restricted" and "Hạn chế" in report["marking"]["text_vi"]
    assert report["marking"]["data_as_of"]
    as_csv = await api.client.get(url, params=params, headers={**headers, "Accept": "text/csv"})
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.headers["confidentiality"] == "restricted" and as_csv.headers["report-revision"]
    rows = list(csv.reader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["Mã chỉ tiêu", "Tên chỉ tiêu", "Kỳ báo cáo"] and rows[0][-3:] == [
        "Mức độ mật", "Số liệu cập nhật đến", "Lần sửa đổi"]
    followed = next(r for r in rows if r[0] == "HT-TE01" and r[7] == "Tổng số")
    assert followed[8] == "8" and followed[3] == "32041" and "Hạn chế" in followed[13] and followed[14]
    dhis2 = await api.client.get(url, params={**params, "format": "dhis2"}, headers=headers)
    assert dhis2.status_code == 400  # no DHIS2 period type starts on 15 December
    calendar = await api.client.get("/reporting/v1/reports/2024", params={**params, "format": "dhis2"},
                                    headers=headers)
    assert calendar.headers["confidentiality"] == "restricted"
    assert {"dataElement": "BVTE_HT_TE01", "period": "2024", "orgUnit": "32041", "value": "8"} in \
        calendar.json()["dataValues"]


async def test_dhis2_values_all_exist_in_the_metadata_and_belong_together(api: Api,
                                                                          stack_reporting: Database) -> None:
    await add_children(stack_reporting, "32167", 12)
    await add_cases(stack_reporting, [case_payload("32167", abuse_forms=["violence", "neglect"]) for _ in range(6)])
    headers = await api.province_user("province_statistician", PROVINCE)
    metadata = (await api.client.get("/reporting/v1/dhis2/metadata", headers=headers)).json()
    by_code = {kind: {item["code"]: item for item in metadata[kind]} for kind in (
        "dataElements", "categoryCombos", "categoryOptionCombos", "organisationUnits", "dataSets", "categories",
        "categoryOptions")}
    ids = {kind: {item["id"]: item for item in metadata[kind]} for kind in by_code}
    for combo in metadata["categoryOptionCombos"]:  # each option combination is made of its combination's options
        category = ids["categories"][ids["categoryCombos"][combo["categoryCombo"]["id"]]["categories"][0]["id"]]
        assert {o["id"] for o in combo["categoryOptions"]} <= {o["id"] for o in category["categoryOptions"]}
    assert all(len(item["id"]) == 11 and item["id"][0].isalpha() for kind in ids.values() for item in kind.values())
    assert len({item["id"] for kind in ids.values() for item in kind.values()}) == sum(len(k) for k in ids.values())
    checked = 0
    for location in (PROVINCE, "32167"):
        value_set = (await api.client.get("/reporting/v1/reports/2024S1", headers=headers,
                                          params={"location": location, "format": "dhis2"})).json()
        data_set = by_code["dataSets"][value_set["dataSet"]]
        assert data_set["periodType"] == "SixMonthly"
        members = {e["dataElement"]["id"] for e in data_set["dataSetElements"]}
        units = {u["id"] for u in data_set["organisationUnits"]}
        seen = set()
        for value in value_set["dataValues"]:
            element = by_code["dataElements"][value["dataElement"]]
            assert element["id"] in members and by_code["organisationUnits"][value["orgUnit"]]["id"] in units
            combo = value.get("categoryOptionCombo")
            if combo is None:
                assert element["categoryCombo"]["id"] == "bjDvmb4bfuf"  # default
            else:
                assert by_code["categoryOptionCombos"][combo]["categoryCombo"] == element["categoryCombo"]
            key = (value["dataElement"], value["orgUnit"], combo)
            assert key not in seen  # one value per element, unit and option combination
            seen.add(key)
            checked += 1
    assert checked > 50


async def test_the_province_report_as_official_tables_and_a_document(api: Api, stack_reporting: Database,
                                                                      tmp_path: Path) -> None:
    await add_children(stack_reporting, "32083", 9, sex="male")
    await add_children(stack_reporting, "32188", 14)
    await add_cases(stack_reporting, [case_payload("32083") for _ in range(7)]
                    + [case_payload("32188", child_sex="male") for _ in range(2)])
    headers = await api.province_user("province_statistician", PROVINCE)
    params = {"location": PROVINCE}
    report = (await api.client.get("/reporting/v1/reports/2024S1", params=params, headers=headers)).json()
    totals = {i["code"]: next(v for v in i["values"] if v["breakdown"] is None) for i in report["indicators"]}
    localities = {v["category"]: v for i in report["indicators"] if i["code"] == "0101" for v in i["values"]
                  if v["breakdown"] == "locality"}

    as_xlsx = await api.client.get("/reporting/v1/reports/2024S1", params={**params, "format": "xlsx"},
                                   headers=headers)
    assert as_xlsx.status_code == 200 and as_xlsx.headers["content-type"] == XLSX
    workbook = openpyxl.load_workbook(io.BytesIO(as_xlsx.content))
    assert workbook.sheetnames[0] == "Thông tin" and "Tình hình trẻ em" in workbook.sheetnames
    cover = {row[0]: row[1] for row in workbook["Thông tin"].iter_rows(values_only=True) if row and row[0]}
    assert cover["Kỳ báo cáo"] == "2024S1" and "Hạn chế" in cover["Mức độ mật"]
    compared = 0
    for sheet in workbook.worksheets[1:]:
        rows = list(sheet.iter_rows(values_only=True))
        for number, row in enumerate(rows):
            if not (row and isinstance(row[0], str) and row[0].startswith("Biểu ")):
                continue
            code = row[0].split(" ")[2]
            header, table = rows[number + 2], []
            assert rows[number + 1][:2] == ("Mã địa bàn", "Địa bàn") and header[2] == "Tổng số"
            for line in rows[number + 3:]:
                if not line or line[0] is None or not str(line[0]).isdigit():
                    break
                table.append(line)
            total_line = table[-1]
            assert total_line[0] == PROVINCE and total_line[1] == "Tổng số"
            assert total_line[2] == totals[code]["value"], (code, total_line, totals[code])
            if code == "0101":
                by_commune = {line[0]: line[2] for line in table[:-1]}
                assert len(by_commune) == len([c for c in communes().values() if c.province_code == PROVINCE])
                for commune, value in localities.items():
                    assert by_commune[commune] == (value["display"] if value["suppressed"] else value["value"])
            compared += 1
    assert compared >= 20

    as_pdf = await api.client.get("/reporting/v1/reports/2024S1", params={**params, "format": "pdf"},
                                  headers=headers)
    assert as_pdf.status_code == 200 and as_pdf.headers["content-type"] == "application/pdf"
    reader = PdfReader(io.BytesIO(as_pdf.content))
    first_page = reader.pages[0]
    assert abs(float(first_page.mediabox.width) - 595.3) < 1 and abs(float(first_page.mediabox.height) - 841.9) < 1
    text = " ".join(page.extract_text() for page in reader.pages)
    for expected in ("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "Độc lập - Tự do - Hạnh phúc", "SỞ Y TẾ", "BÁO CÁO",
                     "Nơi nhận", "Số trẻ em bị xâm hại", "Biểu đồ 1", "Biểu đồ 2", "Hạn chế phạm vi cung cấp"):
        assert expected in text, expected
    path = tmp_path / "report.pdf"
    path.write_bytes(as_pdf.content)
    assert shutil.which("pdftoppm"), "poppler-utils is installed by deploy/ci-prereqs.sh"
    subprocess.run(["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(path), str(tmp_path / "page")],
                   check=True, timeout=120)
    image = next(tmp_path.glob("page*.png"))
    assert image.stat().st_size > 5000
    assert _ink(image) > 0.01  # a blank page has no ink


def _ink(png: Path) -> float:
    """The share of dark pixels on a rendered page (pdftoppm's PNG, read without an imaging library: via PPM)."""
    ppm = png.with_suffix(".ppm")
    subprocess.run(["pdftoppm", "-r", "30", "-f", "1", "-l", "1", str(png.parent / "report.pdf"),
                    str(ppm.with_suffix(""))], check=True, timeout=120)
    data = next(png.parent.glob(f"{ppm.stem}*.ppm")).read_bytes()
    header_end, fields = 0, []
    while len(fields) < 4:  # P6 width height maxval
        start = header_end
        while data[header_end:header_end + 1] not in (b" ", b"\n"):
            header_end += 1
        fields.append(data[start:header_end])
        header_end += 1
    pixels = data[header_end:]
    dark = sum(1 for i in range(0, len(pixels), 3) if pixels[i] < 128)
    return dark / (len(pixels) / 3)


async def test_commune_figures_are_suppressed_for_outsiders_and_exact_for_the_commune(
        api: Api, stack_reporting: Database) -> None:
    commune = "32167"
    await add_children(stack_reporting, commune, 3, sex="male")
    await add_children(stack_reporting, commune, 9, sex="female")
    statistician = await api.province_user("province_statistician", PROVINCE)
    response = await api.client.get("/reporting/v1/values", headers=statistician,
                                    params={"indicator": "HT-TE01", "period": "2024", "location": commune})
    assert response.status_code == 200, response.text
    shown = {v["category"]: v for v in response.json()["values"] if v["breakdown"] in (None, "sex")}
    assert shown["male"]["suppressed"] and shown["male"]["value"] is None and shown["male"]["display"] == "x"
    assert shown["female"]["suppressed"] or shown[None]["suppressed"]  # 12 - 9 would give 3 back
    assert response.json()["suppression"]["applies"]

    for role in ("commune_chairman", "child_protection_officer"):
        own = await api.commune_user(role, commune)
        mine = await api.client.get("/reporting/v1/values", headers=own,
                                    params={"indicator": "HT-TE01", "period": "202403"})
        assert mine.status_code == 200, mine.text  # any period: the commune's own figures
        body = mine.json()
        exact = {v["category"]: v["value"] for v in body["values"] if v["breakdown"] in (None, "sex")}
        assert exact[None] >= 12 and exact["male"] >= 3 and not any(v["suppressed"] for v in body["values"])
        assert body["marking"]["level"] == "commune_only" and "Mật" in body["marking"]["text_vi"]
        for other_place in (PROVINCE, "32110"):  # its province, a neighbouring commune: not theirs to read
            elsewhere = await api.client.get("/reporting/v1/values", headers=own,
                                             params={"period": "2024", "location": other_place})
            assert elsewhere.status_code == 404, other_place


async def test_the_commune_enters_the_criteria_it_cannot_compute_with_their_evidence(
        api: Api, stack_reporting: Database) -> None:
    commune = "32110"
    await add_children(stack_reporting, commune, 20)
    officer = await api.commune_user("child_protection_officer", commune)
    chairman = await api.commune_user("commune_chairman", commune)
    statistician = await api.province_user("province_statistician", PROVINCE)
    url = f"/reporting/v1/child-friendly/2024/communes/{commune}/criteria"

    computed = await api.client.put(f"{url}/6", headers=officer, json={"points": 125, "source": "Tự chấm"})
    assert computed.status_code == 409  # the system scores criterion 6 from the figures
    assert (await api.client.put(f"{url}/7", headers=chairman, json={"points": 50, "source": "Sổ tiêm chủng"})
            ).status_code == 403  # the chairman reads, the officer enters
    bad = await api.client.put(f"{url}/7", headers=officer, json={"points": 51, "source": "Sổ tiêm chủng"})
    assert bad.status_code == 422  # criterion 7 is worth 50 at most
    first = await api.client.put(f"{url}/7", headers=officer,
                                 json={"points": 40, "value": "97,2%", "source": "Sổ tiêm chủng trạm y tế 2024"})
    assert first.status_code == 200, first.text
    entry = next(c for c in first.json()["criteria"] if c["criterion"] == 7)["entry"]
    assert entry["points"] == 40 and entry["value"] == "97,2%" and entry["entered_at"] and entry["entered_by"]
    stale = await api.client.put(f"{url}/7", headers=officer, json={"points": 50, "source": "Sổ tiêm chủng"})
    assert stale.status_code == 428
    corrected = await api.client.put(f"{url}/7", headers={**officer, "If-Match": first.headers["etag"]},
                                     json={"points": 50, "value": "98,4%", "source": "Báo cáo trạm y tế số 12"})
    assert corrected.status_code == 200
    again = await api.client.put(f"{url}/7", headers={**officer, "If-Match": first.headers["etag"]},
                                 json={"points": 45, "source": "Sổ tiêm chủng"})
    assert again.status_code == 412

    for number in (1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13):
        points = 80 if number != 1 else 100
        response = await api.client.put(f"{url}/{number}", headers=officer,
                                        json={"points": points, "source": f"Hồ sơ tiêu chí {number}"})
        assert response.status_code == 200, response.text
    incomplete = (await api.client.get("/reporting/v1/child-friendly/2024", headers=chairman)).json()
    assessment = incomplete["assessments"][0]
    assert assessment["result"]["outcome"] == "incomplete" and assessment["result"]["missing_kind"]
    kind = await api.client.put(f"{url}/0", headers=officer, json={"value": "other", "source": "Quyết định phân loại"})
    assert kind.status_code == 200
    result = (await api.client.get("/reporting/v1/child-friendly/2024", headers=statistician,
                                   params={"location": commune})).json()["assessments"][0]
    six = next(c for c in result["criteria"] if c["criterion"] == 6)
    assert six["points_from"] == "computed" and six["measures"]["criterion_6_plan_rate"] == 100.0
    # 100 + 10 criteria x 80 + 50 + criterion 6 (no child in special circumstances: 0 of 50, plan rate: 75)
    assert result["total_points"] == 100 + 10 * 80 + 50 + six["points"]
    assert result["pass_mark"] == 850
    assert result["result"]["outcome"] == ("passed" if result["total_points"] >= 850 and six["points"] else
                                           "not_passed")
    province_view = (await api.client.get("/reporting/v1/child-friendly/2024", headers=statistician,
                                          params={"location": PROVINCE})).json()
    assert len(province_view["assessments"]) == len([c for c in communes().values() if c.province_code == PROVINCE])

"""Bulk import through the gateway: the happy path, re-import without duplicates, and every class of bad input."""

import asyncio
import csv
import io
import time
from typing import Any

import httpx
import orjson
from openpyxl import Workbook

from tests.helpers import Api
from tests.registry.conftest import Registry, id_number

HEADER = ["Họ và tên", "Giới tính", "Ngày sinh", "Số định danh", "Mã xã", "Nhóm", "Người giám hộ",
          "Điện thoại người giám hộ"]
MAPPING = {"full_name": "Họ và tên", "sex": "Giới tính", "date_of_birth": "Ngày sinh",
           "personal_id": "Số định danh", "commune_code": "Mã xã", "special_groups": "Nhóm",
           "guardian_name": "Người giám hộ", "guardian_phone": "Điện thoại người giám hộ"}


def csv_bytes(rows: list[list[Any]], header: list[str] = HEADER, encoding: str = "utf-8") -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode(encoding)


def good_rows(commune: str) -> list[list[Any]]:
    return [
        ["Nguyễn Văn Bảo", "nam", "02/03/2015", id_number("male", "2015-03-02"), commune, "a;d", "Nguyễn Văn Cha",
         "0912000111"],
        ["Trần Thị Cúc", "nữ", "2017-11-20", "", commune, "", "", ""],
        ["Lê Minh Đức", "male", "01/01/2019", "", commune, "h", "Lê Thị Mẹ", "+84 913 000 222"],
    ]


async def upload(registry: Registry, content: bytes, *, filename: str = "list.csv", mode: str = "row_by_row",
                 mapping: dict[str, str] | None = MAPPING, **form: str) -> dict[str, Any]:
    data = {"mode": mode, **form}
    if mapping is not None:
        data["mapping"] = orjson.dumps(mapping).decode()
    response = await registry.client.post("/registry/v1/imports", files={"file": (filename, content)}, data=data,
                                          headers=registry.officer)
    assert response.status_code == 202, response.text
    return dict(response.json())


async def finished(registry: Registry, job: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = (await registry.client.get(f"/registry/v1/imports/{job['id']}", headers=registry.officer)).json()
        if current["status"] in ("succeeded", "failed"):
            return dict(current)
        await asyncio.sleep(0.1)
    raise AssertionError("the import did not finish")


async def report(registry: Registry, job: dict[str, Any]) -> list[dict[str, str]]:
    response = await registry.client.get(f"/registry/v1/imports/{job['id']}/errors", headers=registry.officer)
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


async def commune_children(registry: Registry) -> list[dict[str, Any]]:
    return list((await registry.search(commune_code=registry.commune, limit=200)).json()["items"])


async def test_csv_import_then_reimport_creates_no_duplicates(registry: Registry) -> None:
    job = await finished(registry, await upload(registry, csv_bytes(good_rows(registry.commune))))
    assert job["status"] == "succeeded", job
    assert (job["total_rows"], job["rows_done"], job["created_count"], job["error_count"]) == (3, 3, 3, 0)
    children = await commune_children(registry)
    assert sorted(c["full_name"] for c in children) == ["Lê Minh Đức", "Nguyễn Văn Bảo", "Trần Thị Cúc"]
    bao = next(c for c in children if c["full_name"] == "Nguyễn Văn Bảo")
    assert [g["group"] for g in bao["special_groups"]] == ["a", "d"]
    assert bao["guardians"][0]["phone"] == "0912000111"
    events = [e for e in await registry.events() if e["payload"].get("commune_code") == registry.commune]
    assert len(events) == 3 and {e["type"] for e in events} == {"child.registered"}
    assert "Bảo" not in str(events)
    again = await finished(registry, await upload(registry, csv_bytes(good_rows(registry.commune))))
    assert (again["status"], again["created_count"], again["duplicate_count"]) == ("succeeded", 0, 3)
    assert len(await commune_children(registry)) == 3
    history = (await registry.client.get(f"/registry/v1/children/{bao['id']}/history",
                                         headers=registry.officer)).json()["items"]
    assert history[0]["change"] == "import"


async def test_xlsx_import_with_dates_and_numbers(registry: Registry) -> None:
    from datetime import datetime

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["full_name", "sex", "date_of_birth", "personal_id", "guardian_name", "guardian_phone",
                  "birth_registered"])
    number = id_number("female", "2016-04-05")
    sheet.append(["Hoàng Thị Én", "female", datetime(2016, 4, 5), int(number), "Hoàng Thị Mẹ", 912345678, "có"])
    sheet.append(["Hoàng Văn Phúc", "male", "05/06/2014", None, None, None, "không"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    job = await finished(registry, await upload(registry, buffer.getvalue(), filename="danh-sach.xlsx",
                                                mapping=None))
    assert job["status"] == "succeeded" and job["created_count"] == 2, job["failure"]
    children = {c["full_name"]: c for c in await commune_children(registry)}
    assert children["Hoàng Thị Én"]["personal_id"] == number  # the leading zeros Excel dropped are restored
    assert children["Hoàng Thị Én"]["guardians"][0]["phone"] == "0912345678"
    assert children["Hoàng Thị Én"]["birth_registered"] is True
    assert children["Hoàng Văn Phúc"]["commune_code"] == registry.commune  # the officer's commune by default


async def test_bad_rows_are_reported_by_row_and_field(registry: Registry) -> None:
    rows = [
        *good_rows(registry.commune)[:1],
        ["Đặng Văn Giàu", "nam", "31/02/2015", "", registry.commune, "", "", ""],
        ["Bùi Thị Hạnh", "nữ", "2016-01-01", "", "99999", "", "", ""],
        ["Mai Văn Ích", "nam", "2015-05-05", "001209123456", registry.commune, "", "", ""],
        ["=HYPERLINK(\"http://x\")", "nam", "2015-05-05", "", registry.commune, "", "", ""],
        ["", "nữ", "2015-05-05", "", registry.commune, "", "", ""],
        ["Tạ Văn Khải", "unknown", "2015-05-05", "", registry.commune, "z", ""],
        ["Tạ Văn Lâm", "nam", "2015-05-05", "", "07210", "", "", ""],
    ]
    job = await finished(registry, await upload(registry, csv_bytes(rows)))
    assert job["status"] == "succeeded" and job["created_count"] == 1 and job["error_count"] == 7, job
    problems = {(p["row"], p["field"]) for p in await report(registry, job)}
    assert problems == {("3", "date_of_birth"), ("4", "commune_code"), ("5", "personal_id"), ("6", "full_name"),
                        ("7", "full_name"), ("8", "sex"), ("8", "special_groups"), ("9", "commune_code")}
    lines = await report(registry, job)
    assert any("formula" in p["problem"] for p in lines if p["row"] == "6")
    assert any(p["column"] == "Ngày sinh" for p in lines if p["row"] == "3")
    assert [c["full_name"] for c in await commune_children(registry)] == ["Nguyễn Văn Bảo"]


async def test_all_or_nothing_writes_nothing_when_a_row_is_bad(registry: Registry) -> None:
    rows = [*good_rows(registry.commune), ["Đinh Văn Mạnh", "nam", "2015-13-01", "", registry.commune, "", ""]]
    job = await finished(registry, await upload(registry, csv_bytes(rows), mode="all_or_nothing"))
    assert job["status"] == "failed" and "nothing was imported" in job["failure"], job
    assert job["created_count"] == 0 and job["error_count"] == 1
    assert await commune_children(registry) == []
    assert [(p["row"], p["field"]) for p in await report(registry, job)][-1] == ("5", "date_of_birth")


async def test_malformed_files_fail_cleanly(registry: Registry) -> None:
    legacy = csv_bytes([["Nguyễn Thị Ngọc", "nữ", "2016-01-01", "", registry.commune, "", ""]], encoding="utf-16")
    wrong_encoding = await finished(registry, await upload(registry, legacy))
    assert wrong_encoding.get("failure") and "not valid utf-8" in wrong_encoding["failure"]
    readable = await finished(registry, await upload(registry, legacy, encoding="utf-16"))
    assert readable["status"] == "succeeded" and readable["created_count"] == 1, readable
    broken_xlsx = await finished(registry, await upload(registry, b"PK\x03\x04 not a zip", filename="x.xlsx"))
    assert broken_xlsx["status"] == "failed" and "XLSX" in broken_xlsx["failure"]
    nul = await finished(registry, await upload(registry, csv_bytes([["a\x00b", "nam", "2015-01-01", "", "", "",
                                                                      ""]])))
    assert nul["status"] == "failed" or nul["error_count"] == 1
    no_columns = await finished(registry, await upload(registry, b"name,birthday\nX,2015-01-01\n", mapping=None))
    assert no_columns["status"] == "failed" and "full_name" in no_columns["failure"]
    wrong_mapping = await finished(registry, await upload(registry, csv_bytes([]),
                                                          mapping=MAPPING | {"address": "Địa chỉ"}))
    assert "Địa chỉ" in wrong_mapping["failure"]
    assert len(await commune_children(registry)) == 1


async def test_uploads_refused_before_a_job(api: Api, registry: Registry) -> None:
    post = registry.client.post
    empty = await post("/registry/v1/imports", files={"file": ("x.csv", b"")}, headers=registry.officer)
    assert empty.status_code == 422
    bad_mapping = await post("/registry/v1/imports", files={"file": ("x.csv", b"a\n1\n")},
                             data={"mapping": '{"nickname": "x"}'}, headers=registry.officer)
    assert bad_mapping.status_code == 422 and "nickname" in bad_mapping.json()["detail"]
    too_big = await post("/registry/v1/imports", files={"file": ("x.csv", b"x" * 31_000_000)},
                         headers=registry.officer)
    assert too_big.status_code == 413
    health = await api.as_demo("health_officer")
    assert (await post("/registry/v1/imports", files={"file": ("x.csv", b"a\n")}, headers=health)).status_code == 403
    job = await upload(registry, csv_bytes(good_rows(registry.commune)[:1]))
    other = await api.commune_user("child_protection_officer", registry.commune)
    assert (await registry.client.get(f"/registry/v1/imports/{job['id']}", headers=other)).status_code == 404
    await finished(registry, job)


async def test_export_in_vietnamese_or_codes_with_guardian_columns_and_reimport(api: Api, registry: Registry) -> None:
    await registry.created(full_name="Nguyễn Thị Én", sex="female", date_of_birth="2016-04-05", ethnicity="04",
                           special_groups=[{"group": "dd", "start": "2020-01-01"}], at_risk_flags=["poor_household"],
                           guardians=[{"full_name": "Nguyễn Văn Dượng", "relationship": "step_father",
                                       "phone": "0912000444"},
                                      {"full_name": "Trần Thị Bà", "relationship": "maternal_grandmother",
                                       "lives_with_child": False}])
    await registry.created(full_name="Nguyễn Văn Phúc", sex="male", date_of_birth="2014-06-05")
    url = "/registry/v1/children/export"
    vietnamese = await registry.client.get(url, params={"commune_code": registry.commune}, headers=registry.officer)
    assert vietnamese.status_code == 200, vietnamese.text
    rows = list(csv.DictReader(io.StringIO(vietnamese.content.decode("utf-8-sig"))))
    en = next(r for r in rows if r["Họ và tên"] == "Nguyễn Thị Én")
    assert en["Giới tính"] == "Nữ" and en["Dân tộc"] == "Hoa (Hán)" and en["Ngày sinh"] == "05/04/2016"
    assert en["Nhóm hoàn cảnh đặc biệt (Điều 10 Luật Trẻ em)"] == "đ"
    assert en["Yếu tố nguy cơ"] == "Hộ nghèo hoặc cận nghèo"
    assert en["Người chăm sóc 1: họ và tên"] == "Nguyễn Văn Dượng" and en["Người chăm sóc 1: quan hệ với trẻ"] == \
        "Cha dượng"
    assert en["Người chăm sóc 2: quan hệ với trẻ"] == "Bà ngoại" and en["Người chăm sóc 2: sống cùng trẻ"] == "không"
    phuc = next(r for r in rows if r["Họ và tên"] == "Nguyễn Văn Phúc")
    assert phuc["Người chăm sóc 1: họ và tên"] == ""
    codes = await registry.client.get(url, params={"commune_code": registry.commune, "labels": "codes"},
                                      headers=registry.officer)
    coded = next(r for r in csv.DictReader(io.StringIO(codes.content.decode("utf-8-sig")))
                 if r["full_name"] == "Nguyễn Thị Én")
    assert (coded["sex"], coded["ethnicity"], coded["guardian_1_relationship"], coded["special_groups"]) == \
        ("female", "04", "step_father", "dd")
    assert (await registry.client.get(url, params={"commune_code": registry.commune, "labels": "xx"},
                                      headers=registry.officer)).status_code == 422
    # The Vietnamese export imports as it is: every child is recognised as already registered.
    for content in (vietnamese.content, codes.content):
        again = await finished(registry, await upload(registry, content, mapping=None))
        assert (again["status"], again["created_count"], again["duplicate_count"]) == ("succeeded", 0, 2), again


async def test_import_reads_labels_and_several_guardians(registry: Registry) -> None:
    header = ["Họ và tên", "Giới tính", "Ngày sinh", "Dân tộc", "Nhóm hoàn cảnh đặc biệt (Điều 10 Luật Trẻ em)",
              "Người chăm sóc 1: họ và tên", "Người chăm sóc 1: quan hệ với trẻ", "Người chăm sóc 2: họ và tên",
              "Người chăm sóc 2: quan hệ với trẻ"]
    rows = [["Lò Văn Sáng", "Nam", "01/02/2015", "Thái", "a; đ", "Lò Thị Bà", "Bà nội", "Lò Văn Ông", "ông ngoại"],
            ["Lò Thị Hoa", "nu", "01/02/2016", "Người sao Hỏa", "", "", "", "", ""]]
    job = await finished(registry, await upload(registry, csv_bytes(rows, header=header), mapping=None))
    assert (job["status"], job["created_count"], job["error_count"]) == ("succeeded", 1, 1), job
    assert [(p["row"], p["field"]) for p in await report(registry, job)] == [("3", "ethnicity")]
    child = (await commune_children(registry))[0]
    assert child["ethnicity"] == "03" and [g["group"] for g in child["special_groups"]] == ["a", "dd"]
    assert [(g["relationship"], bool(g["id"])) for g in child["guardians"]] == [
        ("paternal_grandmother", True), ("maternal_grandfather", True)]


async def test_vocabularies_are_served_with_labels_and_etag(api: Api) -> None:
    # Public on the registry itself (labels are not personal data); the gateway merges them for the frontends.
    async with httpx.AsyncClient(base_url=api.stack.url("registry")) as direct:
        assert (await direct.get("/v1/vocabularies")).status_code == 200
    hotline = await api.as_demo("hotline_operator")
    response = await api.client.get("/registry/v1/vocabularies", headers=hotline)
    assert response.status_code == 200, response.text
    vocabularies = {v["name"]: v for v in response.json()["vocabularies"]}
    ethnicities = vocabularies["ethnicity"]
    assert len(ethnicities["terms"]) == 54 and "121-TCTK/PPCĐ" in ethnicities["source"]
    groups = {t["code"]: t for t in vocabularies["special_group"]["terms"]}
    assert groups["dd"]["extra"] == {"letter": "đ"} and groups["dd"]["vi"] == "Trẻ em nhiễm HIV/AIDS"
    relationships = {t["code"]: (t["vi"], t["en"]) for t in vocabularies["guardian_relationship"]["terms"]}
    assert relationships["step_mother"] == ("Mẹ kế", "Step-mother")
    unchanged = await api.client.get("/registry/v1/vocabularies",
                                     headers=hotline | {"If-None-Match": response.headers["etag"]})
    assert unchanged.status_code == 304

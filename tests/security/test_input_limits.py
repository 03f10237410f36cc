"""OWASP API4 (unrestricted resource consumption): oversized and deeply nested bodies, huge strings in every text
field, huge numbers, long lists and long queries. Each is refused cleanly (400, 413, 414, 422 as problem+json),
never a 500 and never a half-written record.

Tested elsewhere: rate limits (429 with Retry-After, per user and per address) in
tests/gateway/test_proxy.py::test_rate_limits_answer_429_with_retry_after; the body limit with and without a
Content-Length in tests/gateway/test_proxy.py::test_body_over_the_limit_is_413_with_and_without_content_length.
"""

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.cases.samples import FORMS, intake
from tests.security.conftest import COMMUNE_B, World, full_child

DEPTH = 10_000
NESTED = {"arrays": "[" * DEPTH + "]" * DEPTH, "objects": '{"a":' * DEPTH + "1" + "}" * DEPTH,
          "in_a_field": '{"full_name": ' + "[" * DEPTH + "]" * DEPTH + "}"}
HUGE = "Đ" * 400_000  # 800 kB of UTF-8: under the 1 MB body limit, far over every field's limit


def json_routes(world: World) -> dict[str, tuple[str, str, dict[str, str]]]:
    """Every route that takes a JSON body: method, path, headers of a role that may call it."""
    b = world.b
    case, child, task = b.case["id"], b.child["id"], b.tasks["police"]["id"]
    officer = b.officer | {"If-Match": '"1"'}
    return {
        "create child": ("POST", "/registry/v1/children", b.officer),
        "update child": ("PATCH", f"/registry/v1/children/{child}", officer),
        "merge": ("POST", f"/registry/v1/children/{child}/merge", officer),
        "create case": ("POST", "/cases/v1/cases", b.officer),
        "action": ("POST", f"/cases/v1/cases/{case}/actions/start_review", officer),
        "note": ("POST", f"/cases/v1/cases/{case}/notes", b.officer),
        "link child": ("POST", f"/cases/v1/cases/{case}/link-child", officer),
        "update task": ("PATCH", f"/cases/v1/tasks/{task}", officer),
        "refresh": ("POST", "/auth/refresh", {}),
    }


def refused_cleanly(response: httpx.Response, allowed: tuple[int, ...] = (400, 413, 422)) -> bool:
    return response.status_code in allowed and response.headers["content-type"].startswith(
        "application/problem+json")


@pytest.mark.parametrize("shape", list(NESTED))
async def test_deeply_nested_bodies_are_refused_cleanly(world: World, shape: str) -> None:
    for label, (method, path, headers) in json_routes(world).items():
        response = await world.client.request(method, path, content=NESTED[shape],
                                              headers=headers | {"content-type": "application/json"})
        assert refused_cleanly(response), (label, response.status_code, response.text[:200])


# Each text field of each writable shape, filled with a huge string.
TEXT_FIELDS: dict[str, Callable[[str], tuple[str, str, dict[str, Any]]]] = {
    "child full_name": lambda s: ("POST", "/registry/v1/children", full_child(COMMUNE_B, full_name=s)),
    "child address": lambda s: ("POST", "/registry/v1/children", full_child(COMMUNE_B, address=s)),
    "child school_name": lambda s: ("POST", "/registry/v1/children", full_child(COMMUNE_B, school_name=s)),
    "child birth_certificate_number": lambda s: ("POST", "/registry/v1/children",
                                                 full_child(COMMUNE_B, birth_certificate_number=s)),
    "guardian full_name": lambda s: ("POST", "/registry/v1/children", full_child(
        COMMUNE_B, guardians=[{"full_name": s, "relationship": "mother"}])),
    "case description": lambda s: ("POST", "/cases/v1/cases", intake(COMMUNE_B, description=s)),
    "reporter name": lambda s: ("POST", "/cases/v1/cases", intake(COMMUNE_B, reporter={
        "anonymous": False, "name": s})),
    "reporter relationship": lambda s: ("POST", "/cases/v1/cases", intake(COMMUNE_B, reporter={
        "anonymous": False, "name": "An", "relationship": s})),
    "child first_name": lambda s: ("POST", "/cases/v1/cases", intake(COMMUNE_B, child={"first_name": s})),
    "child place": lambda s: ("POST", "/cases/v1/cases", intake(COMMUNE_B, child={"place": s})),
    "note text": lambda s: ("POST", "notes", {"text": s}),
    "transfer reason": lambda s: ("POST", "action:transfer", FORMS["transfer"] | {"reason": s}),
    "task note": lambda s: ("PATCH", "task", {"note": s}),
    "task assignee": lambda s: ("PATCH", "task", {"assignee_id": s}),
}


@pytest.mark.parametrize("field", list(TEXT_FIELDS))
async def test_huge_strings_in_text_fields_are_refused(world: World, field: str) -> None:
    method, path, body = TEXT_FIELDS[field](HUGE)
    b = world.b
    headers = b.officer
    if path == "notes":
        path = f"/cases/v1/cases/{b.case['id']}/notes"
    elif path.startswith("action:"):
        current = await world.client.get(f"/cases/v1/cases/{b.case['id']}", headers=headers)
        path = f"/cases/v1/cases/{b.case['id']}/actions/{path.split(':')[1]}"
        headers = headers | {"If-Match": current.headers["etag"]}
    elif path == "task":
        tasks = await world.client.get(f"/cases/v1/cases/{b.case['id']}/tasks", headers=headers)
        task = next(t for t in tasks.json()["items"] if t["id"] == b.tasks["police"]["id"])
        path = f"/cases/v1/tasks/{task['id']}"
        headers = headers | {"If-Match": f'"{task["version"]}"'}
    response = await world.client.request(method, path, json=body, headers=headers)
    assert refused_cleanly(response, (422,)), (response.status_code, response.text[:300])
    assert HUGE[:100] not in response.text  # the refusal never echoes the value back


async def test_long_lists_and_huge_numbers_are_refused(world: World) -> None:
    officer = world.b.officer
    for body in (full_child(COMMUNE_B, guardians=[{"full_name": "An", "relationship": "other"}] * 11),
                 full_child(COMMUNE_B, at_risk_flags=["x"] * 50_000),
                 full_child(COMMUNE_B, special_groups=[{"group": "a", "start": "2020-01-01"}] * 51),
                 full_child(COMMUNE_B, school_grade=10**400)):
        response = await world.client.post("/registry/v1/children", json=body, headers=officer)
        assert refused_cleanly(response), response.text[:200]
    for body in (intake(COMMUNE_B, abuse_forms=["violence"] * 10_000),
                 intake(COMMUNE_B, danger_indicators=["abuser_has_access"] * 10_000)):
        response = await world.client.post("/cases/v1/cases", json=body, headers=officer)
        assert refused_cleanly(response), response.text[:200]
    raw = b'{"description": 1e999999, "incident_commune_code": NaN}'
    response = await world.client.post("/cases/v1/cases", content=raw,
                                       headers=officer | {"content-type": "application/json"})
    assert refused_cleanly(response)


async def test_bodies_over_the_limit_are_413_on_every_service(world: World) -> None:
    big = b'{"text": "' + b"x" * 1_000_001 + b'"}'
    for path in ("/registry/v1/children", f"/cases/v1/cases/{world.b.case['id']}/notes", "/reporting/v1/values"):
        response = await world.client.post(path, content=big, headers=world.b.officer | {
            "content-type": "application/json"})
        assert response.status_code == 413 and refused_cleanly(response, (413,)), path


async def test_long_queries_are_refused(world: World) -> None:
    officer = world.b.officer
    for path, params in (("/registry/v1/children", {"q": "a" * 60_000}),
                         ("/registry/v1/locations/convert", {"address": "Ha Noi " * 7_000}),
                         ("/cases/v1/cases", {"cursor": "c" * 60_000}),
                         ("/reporting/v1/values", {"period": "2026," * 6_000})):
        headers = world.statistician if path.startswith("/reporting") else officer
        response = await world.client.get(path, params=params, headers=headers)
        assert refused_cleanly(response, (400, 414, 422)), (path, response.status_code)

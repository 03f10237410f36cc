"""Every failure a client sees is RFC 9457 problem+json, and none echoes what the client sent."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.common.sample_app import NAME, PHONE, build_sample_app

PROBLEM = "application/problem+json"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_sample_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and body["title"] and body["type"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_validation_errors_name_the_fields_but_never_echo_the_values(client: httpx.AsyncClient) -> None:
    response = await client.post("/people", json={"full_name": NAME * 3, "phone": f"{PHONE}9", "age": "mười bốn"})
    body = assert_problem(response, 422)
    assert body["type"].endswith("/validation-error")
    assert {tuple(error["loc"]) for error in body["errors"]} == {
        ("body", "full_name"), ("body", "phone"), ("body", "age")}
    assert all(set(error) == {"loc", "msg", "type"} for error in body["errors"])
    for value in ("Bích", PHONE, "mười"):
        assert value not in response.text


async def test_malformed_json_and_bad_query_are_validation_problems(client: httpx.AsyncClient) -> None:
    broken = await client.post("/people", content=f'{{"full_name": "{NAME}", "phone": "{PHONE}'.encode(),
                               headers={"content-type": "application/json"})
    assert_problem(broken, 422)
    assert "Bích" not in broken.text and PHONE not in broken.text
    too_many = await client.get("/people", params={"limit": f"{PHONE}000"})
    assert_problem(too_many, 422)
    assert PHONE not in too_many.text


async def test_unknown_route_is_a_404_problem(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/nothing-here"), 404)
    assert body["title"] == "Not Found"


async def test_wrong_method_is_a_405_problem_that_says_what_is_allowed(client: httpx.AsyncClient) -> None:
    response = await client.delete("/duplicates")
    assert_problem(response, 405)
    assert response.headers["allow"] == "POST"


async def test_app_errors_carry_their_status_type_and_extra_fields(client: httpx.AsyncClient) -> None:
    conflict = assert_problem(await client.post("/duplicates"), 409)
    assert conflict["type"] == "https://child-protection.gov.vn/problems/conflict"
    assert conflict["candidates"] == [{"id": "c-1", "score": 0.9}]
    assert conflict["detail"] == "a child with these details may already exist"

    transition = assert_problem(await client.post("/cases/close"), 409)
    assert transition["type"].endswith("/invalid-transition")
    assert (transition["state"], transition["action"]) == ("assessment", "close")
    # Extra fields named like a standard member never replace it.
    assert (transition["status"], transition["title"]) == (409, "Action not allowed in the current state")

    unauthorized = await client.get("/private")
    assert_problem(unauthorized, 401)
    assert unauthorized.headers["www-authenticate"].startswith("Bearer")


async def test_framework_http_errors_are_problems(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/framework-error"), 403)
    assert body["detail"] == "not for you"


async def test_unexpected_errors_are_a_500_problem_without_the_exception_text(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/people/{PHONE}/explode", params={"q": NAME})
    body = assert_problem(response, 500)
    assert body["type"].endswith("/internal-error")
    assert "cannot read" not in response.text and NAME not in response.text
    assert "RuntimeError" not in response.text

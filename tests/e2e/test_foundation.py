"""The four processes run together: health, routing through the gateway, and an event across services."""

from datetime import UTC, datetime

import httpx

from tests.helpers import DEMO_COMMUNE, DEMO_PROVINCE, Api, eventually


async def test_every_service_is_alive_and_ready(api: Api) -> None:
    for name in ("gateway", "registry", "cases", "reporting"):
        async with httpx.AsyncClient(base_url=api.stack.url(name)) as client:
            assert (await client.get("/healthz")).json() == {"status": "ok"}
            ready = await client.get("/readyz")
            assert ready.status_code == 200 and ready.json()["status"] == "ready"


async def test_gateway_routes_to_each_service(api: Api) -> None:
    for service in ("registry", "cases", "reporting"):
        response = await api.client.get(f"/{service}/healthz")
        assert response.status_code == 200
        assert response.headers["x-request-id"]


async def test_request_id_travels_to_the_service(api: Api) -> None:
    response = await api.client.get("/registry/healthz", headers={"X-Request-ID": "trace-0123456789"})
    assert response.headers["x-request-id"] == "trace-0123456789"


async def test_child_registered_in_registry_reaches_reporting(api: Api) -> None:
    officer = await api.as_demo("child_protection_officer")
    statistician = await api.as_demo("province_statistician")
    period = f"{datetime.now(UTC).year}"

    async def followed() -> int:
        # Province level: figures are published unsuppressed there, so a change of one child shows.
        response = await api.client.get("/reporting/v1/values", headers=statistician, params={
            "indicator": "HT-TE01", "period": period, "location": DEMO_PROVINCE, "breakdown": "total"})
        assert response.status_code == 200, response.text
        return int(response.json()["values"][0]["value"])

    before = await followed()
    created = await api.client.post("/registry/v1/children", headers=officer, json={
        "full_name": "Lê Thị Hoa", "sex": "female", "date_of_birth": "2016-05-01", "commune_code": DEMO_COMMUNE})
    assert created.status_code == 201, created.text

    async def counted() -> bool:
        return await followed() == before + 1

    await eventually(counted)


async def test_unknown_route_and_method_are_problem_json(api: Api) -> None:
    missing = await api.client.get("/registry/v1/nothing-here", headers=await api.as_demo("admin"))
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    wrong_method = await api.client.delete("/auth/token")
    assert wrong_method.status_code in (404, 405)
    assert wrong_method.headers["content-type"].startswith("application/problem+json")

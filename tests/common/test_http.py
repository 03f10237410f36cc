"""Every answer carries the request id and the security headers, and the id travels on calls to other services."""

from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web
from fastapi import FastAPI

from services.common.http import SECURITY_HEADERS, new_http_client, outgoing_headers
from tests.common.sample_app import PHONE, build_sample_app


@pytest.fixture
async def peer() -> AsyncIterator[tuple[str, list[str | None]]]:
    """Another service on a real port, recording the request id of each call it receives."""
    seen: list[str | None] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request.headers.get("x-request-id"))
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/peer", record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/peer", seen
    finally:
        await runner.cleanup()


@pytest.fixture
async def client(peer: tuple[str, list[str | None]]) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = build_sample_app()
    peer_url, _ = peer

    @app.get("/calls-peer")
    async def calls_peer() -> dict[str, str]:
        async with new_http_client() as outgoing:
            (await outgoing.get(peer_url, headers=outgoing_headers())).raise_for_status()
        return {}

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/people", 200), ("GET", "/nothing", 404), ("DELETE", "/people", 405), ("POST", "/people", 422),
    ("POST", "/duplicates", 409), ("GET", f"/people/{PHONE}/explode", 500)])
async def test_every_answer_has_the_security_headers_and_a_request_id(
        client: httpx.AsyncClient, method: str, path: str, status: int) -> None:
    response = await client.request(method, path)
    assert response.status_code == status
    for name, value in SECURITY_HEADERS:
        assert response.headers[name.decode()] == value.decode()
    assert len(response.headers["x-request-id"]) == 32


@pytest.mark.parametrize("incoming", ["short", "x" * 65, "with space-0123", "inject\"},{\"level\":\"error"])
async def test_an_unusable_incoming_request_id_is_replaced(client: httpx.AsyncClient, incoming: str) -> None:
    response = await client.get("/people", headers={"x-request-id": incoming})
    assert response.headers["x-request-id"] != incoming


async def test_the_request_id_travels_to_the_next_service(
        client: httpx.AsyncClient, peer: tuple[str, list[str | None]]) -> None:
    _, seen = peer
    response = await client.get("/calls-peer", headers={"x-request-id": "trace-0123456789"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "trace-0123456789"
    assert seen == ["trace-0123456789"]

"""What the gateway does to traffic: limits, stripped headers, timeouts, CORS, and failing fast."""

import time
from collections.abc import AsyncIterator, Callable

import httpx

from tests.gateway.conftest import EchoUpstream
from tests.helpers import Api


async def test_body_over_the_limit_is_413_with_and_without_content_length(api: Api) -> None:
    headers = await api.as_demo("child_protection_officer")
    big = b"x" * 1_000_001
    declared = await api.client.post("/registry/v1/children", content=big,
                                     headers=headers | {"content-type": "application/json"})
    assert declared.status_code == 413
    assert declared.headers["content-type"].startswith("application/problem+json")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(11):
            yield b"y" * 100_000

    chunked = await api.client.post("/registry/v1/children", content=chunks(),
                                    headers=headers | {"content-type": "application/json"})
    assert chunked.status_code == 413


async def test_client_identity_headers_are_stripped(api: Api, extra_gateway: Callable[[dict[str, str]], str],
                                                    echo_upstream: EchoUpstream) -> None:
    url = extra_gateway({"GATEWAY_REGISTRY_URL": echo_upstream.url})
    token = await api.login("demo-child_protection_officer")
    injected = {"Authorization": f"Bearer {token}", "X-Forwarded-For": "10.9.9.9", "X-User-Id": "admin",
                "X-Role": "admin", "X-Real-IP": "10.9.9.9", "Forwarded": "for=10.9.9.9", "Connection": "keep-alive",
                "X-Request-ID": "client-supplied-id-123", "Cookie": "session=abc"}
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.get("/registry/v1/anything?x=1", headers=injected)
    assert response.status_code == 200
    seen = response.json()["headers"]
    assert seen["x-forwarded-for"] == "127.0.0.1"
    for name in ("x-user-id", "x-role", "x-real-ip", "forwarded", "cookie"):
        assert name not in seen
    assert seen["authorization"] == f"Bearer {token}"  # services verify the token themselves
    assert seen["x-request-id"] == response.headers["x-request-id"] == "client-supplied-id-123"
    assert response.json()["path"] == "/v1/anything?x=1"


async def test_service_down_answers_503_fast(api: Api, extra_gateway: Callable[[dict[str, str]], str]) -> None:
    # Nothing listens on the cases port: the gateway must answer from the refused connection, not wait out its
    # upstream timeout (a minute here, so the two cannot be confused on a loaded machine).
    url = extra_gateway({"GATEWAY_CASES_URL": "http://127.0.0.1:9", "GATEWAY_UPSTREAM_TIMEOUT_SECONDS": "60"})
    headers = await api.as_demo("child_protection_officer")
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        # A first call warms the fresh process (its token check fetches the signing keys once).
        assert (await client.get("/registry/v1/children", headers=headers, params={"limit": 1})).status_code == 200
        started = time.monotonic()
        response = await client.get("/cases/v1/cases", headers=headers)
        elapsed = time.monotonic() - started
    assert response.status_code == 503 and elapsed < 20
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["retry-after"]


async def test_slow_service_times_out_as_503(api: Api, extra_gateway: Callable[[dict[str, str]], str],
                                             echo_upstream: EchoUpstream) -> None:
    # The upstream answers after 20 s; the gateway gives up after 0.5 s. The bound sits between the two.
    url = extra_gateway({"GATEWAY_REGISTRY_URL": echo_upstream.url, "GATEWAY_UPSTREAM_TIMEOUT_SECONDS": "0.5"})
    headers = await api.as_demo("child_protection_officer")
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        started = time.monotonic()
        response = await client.get("/registry/slow", headers=headers)
    assert response.status_code == 503 and time.monotonic() - started < 10


async def test_rate_limits_answer_429_with_retry_after(api: Api,
                                                       extra_gateway: Callable[[dict[str, str]], str]) -> None:
    url = extra_gateway({"GATEWAY_RATE_LIMIT_PER_USER": "5", "GATEWAY_RATE_LIMIT_PER_ADDRESS": "1000"})
    headers = await api.as_demo("child_protection_officer")
    async with httpx.AsyncClient(base_url=url) as client:
        statuses = [(await client.get("/registry/healthz-not-public", headers=headers)).status_code
                    for _ in range(7)]
        assert statuses.count(429) >= 1
        limited = await client.get("/registry/v1/children/x", headers=headers)
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        # Another user is not affected by this user's limit.
        other = await client.get("/registry/v1/children/x", headers=await api.as_demo("commune_chairman"))
        assert other.status_code != 429
    per_address = extra_gateway({"GATEWAY_RATE_LIMIT_PER_ADDRESS": "3"})
    async with httpx.AsyncClient(base_url=per_address) as client:
        statuses = [(await client.post("/auth/token", data={"grant_type": "password", "username": "x",
                                                            "password": "y"})).status_code for _ in range(5)]
    assert 429 in statuses


async def test_cors_allows_only_configured_origins(extra_gateway: Callable[[dict[str, str]], str]) -> None:
    url = extra_gateway({"GATEWAY_CORS_ORIGINS": '["https://app.child-protection.example"]'})
    origin = "https://app.child-protection.example"
    async with httpx.AsyncClient(base_url=url) as client:
        allowed = await client.options("/auth/token", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST"})
        refused = await client.options("/auth/token", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        # Preflights of the services' routes, through the gateway, with the headers a web app sends.
        proxied = [await client.options(path, headers={
            "Origin": origin, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers}) for path, method, headers in (
                ("/registry/v1/children", "GET", "authorization, if-none-match, accept-language"),
                ("/cases/v1/cases", "POST", "authorization, content-type, idempotency-key, x-request-id"),
                ("/cases/v1/cases/0b7d2c8e-3f7a-4c1e-9a51-0d7f4f3e2a10/actions/assess", "POST",
                 "authorization, content-type, if-match, traceparent"),
                ("/registry/v1/children/0b7d2c8e-3f7a-4c1e-9a51-0d7f4f3e2a10", "PATCH", "authorization, if-match"))]
        actual = await client.get("/healthz", headers={"Origin": origin})
    assert allowed.headers["access-control-allow-origin"] == origin
    assert "access-control-allow-origin" not in refused.headers
    for preflight in proxied:
        assert preflight.status_code == 200, preflight.text
        assert preflight.headers["access-control-allow-origin"] == origin
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    assert actual.headers["access-control-allow-origin"] == origin
    assert "etag" in actual.headers["access-control-expose-headers"].lower()


async def test_security_headers_on_every_answer(api: Api) -> None:
    response = await api.client.get("/healthz")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "strict-transport-security" in response.headers


async def test_combined_openapi_and_docs(api: Api) -> None:
    document = (await api.client.get("/openapi.json")).json()
    assert "/auth/token" in document["paths"]
    assert "/registry/v1/children" in document["paths"]
    assert not any(path.startswith(("/registry/internal", "/cases/internal")) for path in document["paths"])
    assert any(path.startswith("/cases/") for path in document["paths"])
    assert any(path.startswith("/reporting/v1") for path in document["paths"])
    refs = str(document)
    for name in document["components"]["schemas"]:
        assert name  # every referenced schema exists:
    for ref in {part.split("'")[0] for part in refs.split("#/components/schemas/")[1:]}:
        assert ref in document["components"]["schemas"], ref
    docs = await api.client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()

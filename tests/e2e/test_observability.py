"""Metrics and traces: what operators see, and that personal data is not in it."""

import httpx

from tests.collector import TraceCollector
from tests.helpers import DEMO_COMMUNE, Api, eventually


async def test_metrics_count_requests_by_route_and_are_not_public(api: Api) -> None:
    await api.client.get("/registry/healthz")
    async with httpx.AsyncClient(base_url=api.stack.url("registry")) as registry:
        text = (await registry.get("/metrics")).text
    assert 'http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert "http_request_duration_seconds_bucket" in text
    assert (await api.client.get("/registry/metrics")).status_code == 404
    async def feed_position_exported() -> bool:
        async with httpx.AsyncClient(base_url=api.stack.url("reporting")) as reporting:
            return 'feed_position{feed="registry"}' in (await reporting.get("/metrics")).text

    await eventually(feed_position_exported)
    async with httpx.AsyncClient(base_url=api.stack.url("cases")) as cases:
        assert "cases_overdue_deadlines " in (await cases.get("/metrics")).text


async def test_a_trace_crosses_gateway_and_service_without_personal_data(api: Api,
                                                                        trace_collector: TraceCollector) -> None:
    secret_name = "Phạm Thị Bí Mật"
    headers = await api.as_demo("child_protection_officer")
    created = await api.client.post("/registry/v1/children", headers=headers, json={
        "full_name": secret_name, "sex": "female", "date_of_birth": "2017-02-03", "commune_code": DEMO_COMMUNE})
    assert created.status_code == 201
    child_id = created.json()["id"]
    await api.client.get(f"/registry/v1/children/{child_id}", params={"purpose": "nguyen-van-search"},
                         headers=headers)

    def crossing() -> set[str]:
        by_trace: dict[str, set[str]] = {}
        for span in trace_collector.spans:
            by_trace.setdefault(span["trace_id"], set()).add(span["service"])
        return {trace for trace, services in by_trace.items() if {"gateway", "registry"} <= services}

    async def traced() -> bool:
        return bool(crossing())

    await eventually(traced, timeout=30)
    recorded = str(trace_collector.spans)
    assert secret_name not in recorded and "nguyen-van-search" not in recorded

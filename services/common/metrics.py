"""Prometheus metrics: request rates and latencies per route, feed lag; services add their own gauges.

`/metrics` answers loopback callers, or callers with `Authorization: Bearer <METRICS_TOKEN>` when that setting is
set: route counts are nobody else's business. The gateway, whose reverse proxy makes every caller look like
loopback, turns the loopback rule off (`allow_loopback=False`) and serves metrics on a port of its own instead.
"""

import hmac

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from services.common.errors import NotFound

REQUESTS = Counter("http_requests_total", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram("http_request_duration_seconds", "Time to answer an HTTP request", ["method", "route"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
FEED_POSITION = Gauge("feed_position", "Last event sequence number applied from a feed", ["feed"])
FEED_LAG_SECONDS = Gauge("feed_lag_seconds", "Age of the last applied event while more are waiting", ["feed"])
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    REQUESTS.labels(method, route, str(status)).inc()
    LATENCY.labels(method, route).observe(seconds)


def metrics_router(token: str, *, allow_loopback: bool = True) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/metrics")
    async def metrics(request: Request) -> Response:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        allowed = hmac.compare_digest(given, token) if token else (allow_loopback and request.client is not None
                                                                   and request.client.host in LOOPBACK)
        if not allowed:
            raise NotFound("no such route")
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router

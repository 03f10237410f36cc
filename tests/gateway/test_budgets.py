"""The proxy's time budgets per route and its circuit breaker, as pieces (the whole is in test_trust.py)."""

import time

from gateway.proxy import CircuitBreaker, Proxy
from gateway.settings import GatewaySettings


def test_the_longest_configured_route_prefix_sets_the_budget() -> None:
    settings = GatewaySettings(upstream_timeout_seconds=15,
                               upstream_timeouts_json='{"reporting": 30, "/registry/v1/children/export/": 60}')
    proxy = Proxy(settings.upstreams, settings.upstream_timeouts)
    assert proxy.budget("registry", "/registry/v1/children/export") == 60
    assert proxy.budget("registry", "/registry/v1/children/export/x") == 60
    assert proxy.budget("registry", "/registry/v1/children/exporter") == 15
    assert proxy.budget("registry", "/registry/v1/children") == 15
    assert proxy.budget("reporting", "/reporting/v1/indicators") == 30


def test_reports_and_exports_get_a_longer_budget_by_default() -> None:
    proxy = Proxy(GatewaySettings().upstreams, GatewaySettings().upstream_timeouts)
    assert proxy.budget("reporting", "/reporting/v1/reports/2024S1") == 60
    assert proxy.budget("registry", "/registry/v1/children/export") == 60
    assert proxy.budget("reporting", "/reporting/v1/indicators") == 15


def test_the_breaker_opens_after_repeated_timeouts_and_one_probe_closes_it() -> None:
    breaker = CircuitBreaker(threshold=3, open_seconds=0.2)
    for _ in range(2):
        breaker.failed()
        assert breaker.allow() == 0
    breaker.failed()
    assert breaker.allow() > 0  # open: refused at once
    deadline = time.monotonic() + 5
    while breaker.allow() > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    # Half open: this call was the probe; others wait for it.
    assert breaker.allow() > 0
    breaker.succeeded()
    assert breaker.allow() == 0 and breaker.failures == 0


def test_a_failed_probe_opens_the_breaker_again() -> None:
    breaker = CircuitBreaker(threshold=1, open_seconds=0.1)
    breaker.failed()
    deadline = time.monotonic() + 5
    while breaker.allow() > 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    breaker.failed()
    assert breaker.allow() > 0

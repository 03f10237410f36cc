"""OpenTelemetry traces across the gateway and the services, switched on by `*_OTEL_EXPORTER_ENDPOINT`.

Spans carry routes, methods and statuses; FastAPI's instrumentation records the route template, and the URL
query string (which can hold search terms) is excluded from span attributes.
"""

from typing import Any

import httpx
from fastapi import FastAPI

_configured: set[str] = set()


def configure_tracing(app: FastAPI, service: str, endpoint: str) -> None:
    if not endpoint:
        return
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if service not in _configured:
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint), schedule_delay_millis=500))
        trace.set_tracer_provider(provider)
        _configured.add(service)
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics",
                                       exclude_spans=["receive", "send"], server_request_hook=_without_query)


def _without_query(span: Any, scope: dict[str, Any]) -> None:
    """The instrumentation records the full URL; the query string can hold search terms (names, ID numbers)."""
    if span is None or not span.is_recording():
        return
    host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
    span.set_attribute("http.url", f"{scope.get('scheme', 'http')}://{host}{scope.get('path', '')}")
    span.set_attribute("url.query", "")


def instrument_client(client: httpx.AsyncClient, endpoint: str) -> None:
    """Outgoing calls carry the trace context (`traceparent`) to the next service."""
    if not endpoint:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor.instrument_client(client)

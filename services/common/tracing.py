"""OpenTelemetry traces across the gateway and the services, switched on by `*_OTEL_EXPORTER_ENDPOINT`.

Spans carry routes, methods and statuses; FastAPI's instrumentation records the route template, and the URL
query string (which can hold search terms) is excluded from span attributes.
"""

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
                                       exclude_spans=["receive", "send"])


def instrument_client(client: httpx.AsyncClient, endpoint: str) -> None:
    """Outgoing calls carry the trace context (`traceparent`) to the next service."""
    if not endpoint:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor.instrument_client(client)

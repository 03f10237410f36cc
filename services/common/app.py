"""`create_service_app`: the same middleware, errors, health checks, auth and lifecycle for every service."""

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI
from starlette.middleware import Middleware

from services.common.auth import RevocationList, TokenVerifier
from services.common.db import Database
from services.common.errors import install_error_handlers
from services.common.feed import events_router
from services.common.health import health_router
from services.common.http import RequestContextMiddleware, new_http_client
from services.common.logging import configure_logging, get_logger
from services.common.metrics import metrics_router
from services.common.openapi import operation_id, use_problem_details
from services.common.outbox import Outbox
from services.common.parameters import reject_unknown_query_parameters
from services.common.settings import ServiceSettings
from services.common.tracing import configure_tracing, instrument_client

BackgroundTask = Callable[[FastAPI, asyncio.Event], Awaitable[None]]
StartupHook = Callable[[FastAPI], Awaitable[None]]
ShutdownHook = Callable[[FastAPI], Awaitable[None]]
# Container allocations (net of frees) between two young-generation collections; Python's default is 700.
YOUNG_GENERATION_THRESHOLD = 10_000


def tune_garbage_collector() -> None:
    """Once the service has started: what it loaded to start (modules, schemas, tables, vocabularies: some 200,000
    objects) is moved out of the collector's sight, so an old-generation collection no longer walks all of it (one
    took 146 ms here, in the middle of a request), and young collections come less often (at Python's default the
    cases service ran one every five intakes, some 10% of its CPU; what a request allocates, reference counting frees).

    Once per process: a process that starts many applications (the tests) freezes only what the first one loaded."""
    if gc.get_freeze_count():
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, *gc.get_threshold()[1:])


def create_service_app(
    *,
    name: str,
    title: str,
    description: str,
    settings: ServiceSettings,
    migrations_dir: Path,
    routers: Sequence[APIRouter],
    outbox: Outbox | None = None,
    on_startup: Sequence[StartupHook] = (),
    background: Sequence[BackgroundTask] = (),
    own_docs: bool = True,
    on_shutdown: Sequence[ShutdownHook] = (),
    metrics_from_loopback: bool = True,
    refuse_unknown_query: bool = True,
    middleware: Sequence[Middleware] = (),
) -> FastAPI:
    """`middleware`: pure ASGI middleware that runs inside the request context (request id, security headers,
    access log, metrics) and inside the answer to unexpected errors, but before the router: a hot path that needs no
    routing or dependencies (the gateway's forwarding) answers there."""
    configure_logging(name, settings.log_level, settings.log_format)
    logger = get_logger(name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = Database(settings.database_url, pool_size=settings.database_pool_size, outbox=outbox,
                                timeouts=settings.database_timeouts)
        app.state.http = new_http_client()
        instrument_client(app.state.http, settings.otel_exporter_endpoint)
        app.state.verifier = TokenVerifier(
            issuer=settings.jwt_issuer, audience=settings.jwt_audience, jwks_url=settings.jwks_url,
            client=app.state.http, trusted=settings.trusted_issuers,
            revocations=RevocationList.from_gateway(f"{settings.gateway_url}/auth/revocations", app.state.http),
        )
        for hook in on_startup:
            await hook(app)
        tune_garbage_collector()
        stop = asyncio.Event()
        tasks = [asyncio.create_task(task(app, stop)) for task in background]
        logger.info("started", extra={"port": settings.port})
        try:
            yield
        finally:
            stop.set()
            if tasks:
                await asyncio.wait(tasks, timeout=5)
                for task in tasks:
                    task.cancel()
            for shutdown_hook in on_shutdown:
                await shutdown_hook(app)
            await app.state.http.aclose()
            await app.state.db.dispose()

    # The gateway serves a combined document and UI of its own instead (own_docs=False).
    docs = {} if own_docs else {"openapi_url": None, "docs_url": None, "redoc_url": None}
    app = FastAPI(title=title, description=description, version="1.0.0", lifespan=lifespan,
                  generate_unique_id_function=operation_id,
                  dependencies=[Depends(reject_unknown_query_parameters)] if refuse_unknown_query else None, **docs)
    use_problem_details(app, refuses_unknown_query=refuse_unknown_query)
    app.state.settings = settings
    for entry in reversed(middleware):  # the first listed runs first
        app.add_middleware(entry.cls, *entry.args, **entry.kwargs)
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware, public_path_prefix=settings.public_path_prefix)
    app.include_router(health_router(migrations_dir))
    app.include_router(metrics_router(settings.metrics_token, allow_loopback=metrics_from_loopback))
    if outbox is not None:
        app.include_router(events_router(outbox))
    for router in routers:
        app.include_router(router)
    configure_tracing(app, name, settings.otel_exporter_endpoint)
    return app

"""`create_service_app`: the same middleware, errors, health checks, auth and lifecycle for every service."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI

from services.common.auth import TokenVerifier
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
    refuse_unknown_query: bool = True,
) -> FastAPI:
    configure_logging(name, settings.log_level, settings.log_format)
    logger = get_logger(name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = Database(settings.database_url, pool_size=settings.database_pool_size, outbox=outbox)
        app.state.http = new_http_client()
        instrument_client(app.state.http, settings.otel_exporter_endpoint)
        app.state.verifier = TokenVerifier(
            issuer=settings.jwt_issuer, audience=settings.jwt_audience, jwks_url=settings.jwks_url,
            client=app.state.http, trusted=settings.trusted_issuers,
        )
        for hook in on_startup:
            await hook(app)
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
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware, public_path_prefix=settings.public_path_prefix)
    app.include_router(health_router(migrations_dir))
    app.include_router(metrics_router(settings.metrics_token))
    if outbox is not None:
        app.include_router(events_router(outbox))
    for router in routers:
        app.include_router(router)
    configure_tracing(app, name, settings.otel_exporter_endpoint)
    return app

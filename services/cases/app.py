"""The cases application: `uvicorn services.cases.app:create_app --factory`."""

import asyncio
import contextlib
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import Gauge

from services.cases import attachments, registry, service, sync
from services.cases.attachments_routes import router as attachments_router
from services.cases.documents_routes import router as documents_router
from services.cases.models import outbox
from services.cases.routes import internal_router, router
from services.cases.settings import CasesSettings
from services.cases.sync_routes import router as sync_router
from services.cases.vocabulary import VOCABULARIES
from services.cases.workflow_routes import router as workflow_router
from services.common.app import create_service_app
from services.common.clients import ServiceTokenProvider
from services.common.logging import get_logger
from services.common.storage import ObjectStore
from services.common.vocabulary import vocabularies_router

MIGRATIONS = Path(__file__).parent / "migrations"
logger = get_logger("cases")


async def connect_registry(app: FastAPI) -> None:
    settings: CasesSettings = app.state.settings
    tokens = ServiceTokenProvider(app.state.http, f"{settings.gateway_url}/auth/token", settings.service_client_id,
                                  settings.service_client_secret, registry.SCOPES)
    app.state.registry = registry.RegistryClient(app.state.http, tokens, settings.registry_url,
                                                 settings.registry_timeout_seconds)


async def open_object_store(app: FastAPI) -> None:
    app.state.object_store = ObjectStore(app.state.settings)
    await app.state.object_store.start()


async def close_object_store(app: FastAPI) -> None:
    await app.state.object_store.close()


async def keep_files(app: FastAPI, stop: asyncio.Event) -> None:
    await attachments.keep_files(app.state.db, app.state.object_store, app.state.settings, stop)


async def expire_synced(app: FastAPI, stop: asyncio.Event) -> None:
    await sync.keep_expiring(app.state.db, app.state.settings, stop)


OVERDUE = Gauge("cases_overdue_deadlines", "Deadlines missed whose step is still not done")


async def watch_deadlines(app: FastAPI, stop: asyncio.Event) -> None:
    """The periodic check: mark overdue steps and emit one event per missed deadline."""
    settings: CasesSettings = app.state.settings
    while not stop.is_set():
        try:
            # Rounds follow each other at once while they find work, so a backlog clears without waiting.
            while marked := await service.check_deadlines(app.state.db, settings):
                logger.info("deadlines missed", extra={"count": marked})
                if stop.is_set():
                    break
            OVERDUE.set(await service.count_overdue(app.state.db))
        except Exception as exc:  # the next round retries; a failed round must not end the loop
            logger.warning("deadline check failed", extra={"error_type": type(exc).__name__})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=settings.deadline_check_seconds)


def create_app(settings: CasesSettings | None = None) -> FastAPI:
    settings = settings or CasesSettings()
    return create_service_app(
        name="cases",
        title="Case management",
        description="Reports of abused children and the Decree 56/2017 intervention workflow.",
        settings=settings,
        migrations_dir=MIGRATIONS,
        routers=[router, workflow_router, sync_router, attachments_router, documents_router, internal_router,
                 vocabularies_router([*VOCABULARIES, *attachments.VOCABULARIES])],
        outbox=outbox,
        on_startup=[connect_registry, open_object_store],
        background=[watch_deadlines, keep_files, expire_synced],
        on_shutdown=[close_object_store],
    )

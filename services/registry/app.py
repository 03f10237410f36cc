"""The registry application: `uvicorn services.registry.app:create_app --factory`."""

import asyncio
import contextlib
from pathlib import Path

from fastapi import FastAPI

from services.common.app import create_service_app
from services.common.clients import ServiceTokenProvider
from services.common.logging import get_logger
from services.common.permissions import Action
from services.common.vocabulary import vocabularies_router
from services.registry import service
from services.registry.cases import CasesClient
from services.registry.imports import ImportRunner
from services.registry.models import outbox
from services.registry.routes import router
from services.registry.settings import RegistrySettings
from services.registry.vocabulary import VOCABULARIES

MIGRATIONS = Path(__file__).parent / "migrations"
logger = get_logger("registry")


def create_app(settings: RegistrySettings | None = None) -> FastAPI:
    settings = settings or RegistrySettings()

    async def start_imports(app: FastAPI) -> None:
        app.state.imports = ImportRunner(app.state.db, settings.import_dir, max_rows=settings.import_max_rows,
                                         batch_rows=settings.import_batch_rows, workers=settings.import_workers,
                                         max_seconds=settings.import_max_seconds)
        await app.state.imports.recover()
        tokens = ServiceTokenProvider(app.state.http, f"{settings.gateway_url}/auth/token",
                                      settings.service_client_id, settings.service_client_secret,
                                      [Action.CASES_SERVICE_READ.value])
        app.state.cases = CasesClient(settings.cases_url, tokens, settings.cases_timeout_seconds)

    async def stop_imports(app: FastAPI, stop: asyncio.Event) -> None:
        await stop.wait()
        await app.state.imports.stop()

    async def watch_ages(app: FastAPI, stop: asyncio.Event) -> None:
        """Children who turn 16 leave the registry's care (Law on Children Art. 1): mark them, round after round."""
        while not stop.is_set():
            try:
                while marked := await service.mark_aged_out(app.state.db, settings.aged_out_check_batch):
                    logger.info("records aged out", extra={"count": marked})
                    if stop.is_set():
                        break
            except Exception as exc:  # the next round retries; a failed round must not end the loop
                logger.warning("aged-out check failed", extra={"error_type": type(exc).__name__})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=settings.aged_out_check_seconds)

    return create_service_app(
        name="registry",
        title="Child registry",
        description="Children each commune follows: identity, guardians, birth registration, groups, imports.",
        settings=settings,
        migrations_dir=MIGRATIONS,
        routers=[router, vocabularies_router(VOCABULARIES)],
        outbox=outbox,
        on_startup=[start_imports],
        background=[stop_imports, watch_ages],
    )

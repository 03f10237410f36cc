"""The registry application: `uvicorn services.registry.app:create_app --factory`."""

import asyncio
from pathlib import Path

from fastapi import FastAPI

from services.common.app import create_service_app
from services.common.clients import ServiceTokenProvider
from services.common.permissions import Action
from services.registry.cases import CasesClient
from services.registry.imports import ImportRunner
from services.registry.models import outbox
from services.registry.routes import router
from services.registry.settings import RegistrySettings

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: RegistrySettings | None = None) -> FastAPI:
    settings = settings or RegistrySettings()

    async def start_imports(app: FastAPI) -> None:
        app.state.imports = ImportRunner(app.state.db, settings.import_dir, max_rows=settings.import_max_rows,
                                         batch_rows=settings.import_batch_rows)
        await app.state.imports.recover()
        tokens = ServiceTokenProvider(app.state.http, f"{settings.gateway_url}/auth/token",
                                      settings.service_client_id, settings.service_client_secret,
                                      [Action.CASES_SERVICE_READ.value])
        app.state.cases = CasesClient(app.state.http, settings.cases_url, tokens)

    async def stop_imports(app: FastAPI, stop: asyncio.Event) -> None:
        await stop.wait()
        await app.state.imports.stop()

    return create_service_app(
        name="registry",
        title="Child registry",
        description="Children each commune follows: identity, guardians, birth registration, groups, imports.",
        settings=settings,
        migrations_dir=MIGRATIONS,
        routers=[router],
        outbox=outbox,
        on_startup=[start_imports],
        background=[stop_imports],
    )

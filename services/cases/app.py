"""The cases application: `uvicorn services.cases.app:create_app --factory`."""

from pathlib import Path

from fastapi import FastAPI

from services.cases.models import outbox
from services.cases.routes import router
from services.cases.settings import CasesSettings
from services.common.app import create_service_app

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: CasesSettings | None = None) -> FastAPI:
    settings = settings or CasesSettings()
    return create_service_app(
        name="cases",
        title="Case management",
        description="Reports of abused children and the Decree 56/2017 intervention workflow.",
        settings=settings,
        migrations_dir=MIGRATIONS,
        routers=[router],
        outbox=outbox,
    )

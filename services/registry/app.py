"""The registry application: `uvicorn services.registry.app:create_app --factory`."""

from pathlib import Path

from fastapi import FastAPI

from services.common.app import create_service_app
from services.registry.models import outbox
from services.registry.routes import router
from services.registry.settings import RegistrySettings

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: RegistrySettings | None = None) -> FastAPI:
    settings = settings or RegistrySettings()
    return create_service_app(
        name="registry",
        title="Child registry",
        description="Children each commune follows: identity, guardians, birth registration, groups.",
        settings=settings,
        migrations_dir=MIGRATIONS,
        routers=[router],
        outbox=outbox,
    )

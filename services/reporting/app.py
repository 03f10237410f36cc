"""The reporting application: `uvicorn services.reporting.app:create_app --factory`."""

import asyncio
from pathlib import Path

from fastapi import FastAPI

from services.common.app import create_service_app
from services.common.clients import ServiceTokenProvider
from services.common.consumer import FeedConsumer
from services.common.permissions import Action
from services.common.vocabulary import vocabularies_router
from services.reporting.ingest import Ingestor
from services.reporting.models import feed_cursors
from services.reporting.routes import router
from services.reporting.service import ProvinceViews, Revisions
from services.reporting.settings import ReportingSettings
from services.reporting.vocabulary import VOCABULARIES

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: ReportingSettings | None = None) -> FastAPI:
    settings = settings or ReportingSettings()
    ingestor = Ingestor(settings.timezone)

    async def start(app: FastAPI) -> None:
        app.state.province_views = ProvinceViews(settings.province_views_cached)
        app.state.revisions = Revisions()

    async def consume_feeds(app: FastAPI, stop: asyncio.Event) -> None:
        tokens = ServiceTokenProvider(app.state.http, f"{settings.gateway_url}/auth/token",
                                      settings.service_client_id, settings.service_client_secret,
                                      [Action.EVENTS_READ.value])
        common = {"database": app.state.db, "cursor_table": feed_cursors, "client": app.state.http,
                  "tokens": tokens, "batch_size": settings.feed_batch_size,
                  "idle_seconds": settings.feed_idle_seconds}
        consumers = [
            FeedConsumer(feed="registry", url=f"{settings.registry_url}/internal/v1/events",
                         apply=ingestor.apply_registry_events, **common),
            FeedConsumer(feed="cases", url=f"{settings.cases_url}/internal/v1/events",
                         apply=ingestor.apply_cases_events, **common),
        ]
        app.state.consumers = consumers
        await asyncio.gather(*(consumer.run_forever(stop) for consumer in consumers))

    return create_service_app(
        name="reporting",
        title="Statistics",
        description="Indicators for provinces and the ministry, from the registry's and cases' event feeds.",
        settings=settings,
        migrations_dir=MIGRATIONS,
        routers=[router, vocabularies_router(VOCABULARIES)],
        on_startup=[start],
        background=[consume_feeds],
    )

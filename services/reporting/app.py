"""The reporting application: `uvicorn services.reporting.app:create_app --factory`."""

import asyncio
import contextlib
from dataclasses import replace
from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError

from services.common.app import create_service_app
from services.common.clients import ServiceTokenProvider
from services.common.clock import utcnow
from services.common.consumer import FeedConsumer
from services.common.db import Database
from services.common.errors import ServiceUnavailable
from services.common.logging import get_logger
from services.common.permissions import Action
from services.common.vocabulary import vocabularies_router
from services.reporting.ingest import Ingestor
from services.reporting.models import feed_cursors
from services.reporting.periods import recent_periods
from services.reporting.routes import router
from services.reporting.service import ProvinceViews, Revisions, keep_national_ready
from services.reporting.settings import ReportingSettings
from services.reporting.vocabulary import VOCABULARIES

MIGRATIONS = Path(__file__).parent / "migrations"
BACKGROUND_STATEMENT_SECONDS = 600.0
logger = get_logger("reporting.app")


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
        common = {"database": app.state.db, "cursor_table": feed_cursors, "tokens": tokens, "read_ahead": True,
                  "batch_size": settings.feed_batch_size, "idle_seconds": settings.feed_idle_seconds}
        consumers = [
            FeedConsumer(feed="registry", url=f"{settings.registry_url}/internal/v1/events",
                         apply=ingestor.apply_registry_events, **common),
            FeedConsumer(feed="cases", url=f"{settings.cases_url}/internal/v1/events",
                         apply=ingestor.apply_cases_events, **common),
        ]
        app.state.consumers = consumers
        await asyncio.gather(*(consumer.run_forever(stop) for consumer in consumers),
                             keep_national_figures_ready(app, consumers, stop))

    async def keep_national_figures_ready(app: FastAPI, consumers: list[FeedConsumer], stop: asyncio.Event) -> None:
        if not settings.national_ready_years:
            return
        # Counting a million children for several periods is background work: its own connection, whose statements
        # may run longer than a request's.
        background = Database(settings.database_url, pool_size=1, timeouts=replace(
            settings.database_timeouts, statement=BACKGROUND_STATEMENT_SECONDS,
            idle_in_transaction=BACKGROUND_STATEMENT_SECONDS))
        try:
            await _keep_ready(consumers, stop, background)
        finally:
            await background.dispose()

    async def _keep_ready(consumers: list[FeedConsumer], stop: asyncio.Event, background: Database) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.national_ready_pause_seconds)
            if stop.is_set() or not all(consumer.caught_up for consumer in consumers):
                continue  # catching up moves every version: counting now would be thrown away
            periods = recent_periods(utcnow().astimezone(ZoneInfo(settings.timezone)).date(),
                                     settings.national_ready_years)
            try:
                await keep_national_ready(background, periods)
            except (OSError, DBAPIError, ServiceUnavailable) as exc:
                logger.warning("national figures not counted ahead", extra={"error_type": type(exc).__name__})
            except Exception:
                logger.exception("counting national figures ahead failed")

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

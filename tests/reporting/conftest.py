"""Reporting tests: a migrated empty database per test, and consumers reading producer-shaped feeds over HTTP."""

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from scripts.stack import migrate
from services.common.clients import ServiceTokenProvider
from services.common.consumer import FeedConsumer
from services.common.db import Database
from services.common.http import new_http_client
from services.reporting.app import MIGRATIONS
from services.reporting.ingest import Ingestor
from services.reporting.models import feed_cursors, metadata
from tests.reporting.feeds import FeedServer


def _migrated(fresh_database: Callable[[str], str]) -> str:
    url = fresh_database("reporting")
    migrate(url, MIGRATIONS)
    return url


# Two migrated databases for the whole run (made by synchronous fixtures: creating one runs its own event loop),
# emptied before each test that uses them: each test still starts from an empty database, without paying for a new
# one.
@pytest.fixture(scope="session")
def reporting_url(fresh_database: Callable[[str], str]) -> str:
    return _migrated(fresh_database)


@pytest.fixture(scope="session")
def other_reporting_url(fresh_database: Callable[[str], str]) -> str:
    return _migrated(fresh_database)


async def _empty(url: str) -> Database:
    database = Database(url, pool_size=2)
    async with database.sessionmaker() as session, session.begin():
        await session.execute(text(f"TRUNCATE {', '.join(t.name for t in metadata.sorted_tables)}"))
    return database


@pytest.fixture
async def reporting_db(reporting_url: str) -> AsyncIterator[Database]:
    database = await _empty(reporting_url)
    yield database
    await database.dispose()


@pytest.fixture
async def other_reporting_db(other_reporting_url: str) -> AsyncIterator[Database]:
    database = await _empty(other_reporting_url)
    yield database
    await database.dispose()


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    client = new_http_client()
    yield client
    await client.aclose()


def consumers(database: Database, server: FeedServer, ingestor: Ingestor, client: httpx.AsyncClient,
              batch_size: int = 50, **options: Any) -> list[FeedConsumer]:
    """The two consumers the service runs, pointed at the test feed server (`options`: page size, read-ahead)."""
    tokens = ServiceTokenProvider(client, server.token_url, "reporting", "secret", ["events:read"])
    return [
        FeedConsumer(feed="registry", url=server.url("registry"), database=database, cursor_table=feed_cursors,
                     tokens=tokens, apply=ingestor.apply_registry_events, batch_size=batch_size,
                     **options),
        FeedConsumer(feed="cases", url=server.url("cases"), database=database, cursor_table=feed_cursors,
                     tokens=tokens, apply=ingestor.apply_cases_events, batch_size=batch_size,
                     **options),
    ]


async def drain(feed_consumers: list[FeedConsumer]) -> None:
    """Apply every batch until both feeds are caught up."""
    for consumer in feed_consumers:
        while await consumer.run_once():
            pass
        consumer.stop_reading_ahead()

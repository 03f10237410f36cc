"""Fixtures of the papers' tests: a cases database migrated to head, on the real PostgreSQL."""

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from services.common.db import Database
from services.common.migrate import upgrade

# The cases tests' fixtures: a client taking workflow actions with the last ETag, and the cases service's database.
from tests.cases.conftest import cases, cases_db  # noqa: F401

MIGRATIONS = Path(__file__).parents[2] / "services" / "cases" / "migrations"


@pytest.fixture
def cases_database_url(fresh_database: Callable[[str], str]) -> str:
    """A fresh database (made outside the event loop: the factory runs its own), migrated to head."""
    url = fresh_database("documents")
    upgrade(MIGRATIONS, url)
    return url


@pytest.fixture
async def cases_database(cases_database_url: str) -> AsyncIterator[Database]:
    database = Database(cases_database_url, pool_size=12)
    yield database
    await database.dispose()

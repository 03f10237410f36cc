"""`/healthz` answers while the process runs; `/readyz` only when the database answers at the migration head."""

import asyncio
import contextlib
import io
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from alembic import command
from fastapi import FastAPI

from scripts.stack import free_port
from services.common.app import create_service_app
from services.common.migrate import alembic_config
from services.common.settings import ServiceSettings

PROBLEM = "application/problem+json"

ENV = """\
from services.common.db import new_metadata
from services.common.migrate import run_env

run_env(new_metadata())
"""

REVISION = '''\
import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = {down}


def upgrade() -> None:
    op.create_table("{table}", sa.Column("id", sa.Integer, primary_key=True))


def downgrade() -> None:
    op.drop_table("{table}")
'''


@pytest.fixture
def migrations_dir(tmp_path: Path) -> Path:
    """A service's migration history with two revisions: `first`, then `second` (the head)."""
    folder = tmp_path / "migrations"
    (folder / "versions").mkdir(parents=True)
    (folder / "env.py").write_text(ENV)
    (folder / "versions" / "first.py").write_text(REVISION.format(revision="first", down="None", table="one"))
    (folder / "versions" / "second.py").write_text(REVISION.format(revision="second", down='"first"', table="two"))
    return folder


@contextlib.asynccontextmanager
async def serving(database_url: str, migrations_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = ServiceSettings(environment="test", database_url=database_url, database_pool_size=1)
    app: FastAPI = create_service_app(name="test", title="test", description="test", settings=settings,
                                      migrations_dir=migrations_dir, routers=[])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


async def migrate_to(migrations_dir: Path, database_url: str, revision: str) -> None:
    await anyio.to_thread.run_sync(command.upgrade, alembic_config(migrations_dir, database_url), revision)


def assert_not_ready(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    return response.json()


async def test_ready_only_at_the_migration_head(database_url: str, migrations_dir: Path,
                                             json_logs: io.StringIO) -> None:
    async with serving(database_url, migrations_dir) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}

        never_migrated = assert_not_ready(await client.get("/readyz"))
        assert (never_migrated["current"], never_migrated["head"]) == (None, "second")

        await migrate_to(migrations_dir, database_url, "first")
        behind = assert_not_ready(await client.get("/readyz"))
        assert (behind["current"], behind["head"]) == ("first", "second")

        await migrate_to(migrations_dir, database_url, "head")
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "revision": "second"}


async def test_not_ready_when_nothing_listens_for_the_database(migrations_dir: Path, json_logs: io.StringIO) -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing"
    async with serving(url, migrations_dir) as client:
        assert (await client.get("/healthz")).status_code == 200
        body = assert_not_ready(await client.get("/readyz"))
        assert body["detail"] == "the database does not answer"


async def test_not_ready_quickly_when_the_database_hangs(migrations_dir: Path, json_logs: io.StringIO) -> None:
    """A server that accepts connections and never answers (a stuck database): readiness must not hang with it."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"postgresql+asyncpg://postgres@127.0.0.1:{silent.getsockname()[1]}/nothing"
        async with serving(url, migrations_dir) as client:
            started = time.monotonic()
            async with asyncio.timeout(60):
                response = await client.get("/readyz")
            assert_not_ready(response)
            # The probe gives up after READY_TIMEOUT_SECONDS (2 s); the bound leaves room for a loaded machine.
            assert time.monotonic() - started < 15

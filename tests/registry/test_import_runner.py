"""The import job against its own database: staging is cleaned up, and jobs of a dead process are failed."""

import asyncio
import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from scripts.stack import migrate
from services.common.db import Database
from services.registry.app import MIGRATIONS
from services.registry.imports import ImportRunner
from services.registry.models import Child, ImportJob, ImportRow, outbox

JURISDICTION = {"level": "commune", "province": None, "commune": "00070"}


async def prepared(fresh_database: Callable[[str], str], label: str) -> str:
    """An empty database with the registry's tables (the fixture and migrations block: run them in a thread)."""
    url = await asyncio.to_thread(fresh_database, label)
    await asyncio.to_thread(migrate, url, MIGRATIONS)
    return url


def job(**values: object) -> ImportJob:
    fields = {"created_by": "officer", "actor_role": "child_protection_officer", "actor_agency": "peoples_committee",
              "jurisdiction": JURISDICTION, "file_format": "csv", "file_sha256": "0" * 64, "file_size": 1,
              "mode": "row_by_row"} | values
    return ImportJob(**fields)  # type: ignore[arg-type]


async def test_a_job_runs_and_leaves_no_staged_rows(fresh_database: Callable[[str], str], tmp_path: Path) -> None:
    url = await prepared(fresh_database, "imports")
    db = Database(url, outbox=outbox)
    runner = ImportRunner(db, tmp_path, max_rows=10, batch_rows=2)
    try:
        new = job()
        runner.path(new.id).write_text("full_name,sex,date_of_birth\nLê Văn A,nam,2015-01-01\n"
                                       "Lê Văn B,nam,2015-01-02\nLê Văn C,nam,2015-01-03\n")
        async with db.sessionmaker() as session:
            session.add(new)
            await session.commit()
        await runner.run(new.id, "utf-8")
        async with db.sessionmaker() as session:
            done = await session.get_one(ImportJob, new.id)
            assert (done.status, done.created_count, done.total_rows) == ("succeeded", 3, 3)
            assert await session.scalar(select(func.count()).select_from(ImportRow)) == 0
            assert await session.scalar(select(func.count()).select_from(Child)) == 3
        assert not runner.path(new.id).exists()

        too_many = job()
        runner.path(too_many.id).write_text("full_name,sex,date_of_birth\n" + "X Y,nam,2015-01-01\n" * 11)
        async with db.sessionmaker() as session:
            session.add(too_many)
            await session.commit()
        await runner.run(too_many.id, "utf-8")
        async with db.sessionmaker() as session:
            refused = await session.get_one(ImportJob, too_many.id)
            assert refused.status == "failed" and "at most 10" in (refused.failure or "")
    finally:
        await db.dispose()


async def test_jobs_left_by_a_dead_process_are_failed(fresh_database: Callable[[str], str], tmp_path: Path) -> None:
    url = await prepared(fresh_database, "recover")
    db = Database(url)
    try:
        old = datetime.now(UTC) - timedelta(hours=1)
        stale, fresh = job(status="validating", updated_at=old), job(status="validating")
        async with db.sessionmaker() as session:
            session.add_all([stale, fresh])
            await session.commit()
        runner = ImportRunner(db, tmp_path, max_rows=10, batch_rows=2)
        orphan, current = runner.path(uuid.uuid4()), runner.path(fresh.id)
        orphan.write_bytes(b"x")
        current.write_bytes(b"x")
        os.utime(orphan, (old.timestamp(), old.timestamp()))
        await runner.recover()
        assert not orphan.exists() and current.exists()
        async with db.sessionmaker() as session:
            statuses = {j.id: j.status for j in (await session.execute(select(ImportJob))).scalars()}
        assert statuses == {stale.id: "failed", fresh.id: "validating"}
    finally:
        await db.dispose()

"""The import job against its own database: staging is cleaned up, and jobs of a dead process are failed."""

import asyncio
import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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


def xlsx_bytes(sheet_xml: str) -> bytes:
    """A minimal workbook around one sheet's XML, written by hand: a crafted file, not one a spreadsheet saved."""
    import io
    import zipfile

    parts = {
        "[Content_Types].xml": '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
        'package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/'
        'workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.'
        'spreadsheetml.worksheet+xml"/></Types>',
        "_rels/.rels": '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/'
        'package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/'
        '2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": '<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/'
        'spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        '<sheets><sheet name="s" sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
        'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.'
        'org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>',
        "xl/worksheets/sheet1.xml": sheet_xml,
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in parts.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def sheet(dimension: str, rows: str, padding: str = "") -> str:
    return ('<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/'
            f'2006/main"><dimension ref="{dimension}"/><sheetData>{padding}{rows}</sheetData></worksheet>')


HEADER_ROW = ('<row r="1"><c r="A1" t="inlineStr"><is><t>full_name</t></is></c><c r="B1" t="inlineStr"><is><t>sex</t>'
              '</is></c><c r="C1" t="inlineStr"><is><t>date_of_birth</t></is></c></row>')


async def run_file(runner: ImportRunner, db: Database, content: bytes, **values: object) -> ImportJob:
    new = job(file_format="xlsx", **values)
    runner.path(new.id).write_bytes(content)
    async with db.sessionmaker() as session:
        session.add(new)
        await session.commit()
    await asyncio.wait_for(runner.run(new.id, "utf-8"), 60)
    async with db.sessionmaker() as session:
        return await session.get_one(ImportJob, new.id)


async def test_small_crafted_files_fail_fast(fresh_database: Callable[[str], str], tmp_path: Path) -> None:
    url = await prepared(fresh_database, "crafted")
    db = Database(url, outbox=outbox)
    runner = ImportRunner(db, tmp_path, max_rows=100, batch_rows=50, max_seconds=60)
    try:
        # A few hundred bytes that claim a sheet of 16,384 columns and a million rows: read as declared, that is
        # 17 billion empty cells; read as it is, the gap up to the last row is too many rows.
        huge = xlsx_bytes(sheet("A1:XFD1048576", HEADER_ROW + '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>'))
        assert len(huge) < 2_000
        failed = await run_file(runner, db, huge)
        assert failed.status == "failed" and "rows" in (failed.failure or ""), failed.failure
        # A sheet that expands a thousand times: a decompression bomb, refused before it is parsed.
        bomb = xlsx_bytes(sheet("A1:C1", HEADER_ROW, padding=" " * 5_000_000))
        assert len(bomb) < 100_000
        refused = await run_file(runner, db, bomb)
        assert refused.status == "failed" and "expands" in (refused.failure or ""), refused.failure
        # Cells far to the right are not read at all; the rest of the row imports.
        wide = xlsx_bytes(sheet("A1:XFD2", HEADER_ROW + '<row r="2"><c r="A2" t="inlineStr"><is><t>Lê Văn A</t></is>'
                                '</c><c r="B2" t="inlineStr"><is><t>nam</t></is></c><c r="C2" t="inlineStr"><is><t>'
                                '2015-01-01</t></is></c><c r="XFD2"><v>1</v></c></row>'))
        ok = await run_file(runner, db, wide)
        assert (ok.status, ok.created_count) == ("succeeded", 1), ok.failure
    finally:
        await db.dispose()


async def test_one_communes_slow_job_does_not_hold_another_communes(fresh_database: Callable[[str], str],
                                                                    tmp_path: Path, monkeypatch: Any) -> None:
    import threading
    import time

    from services.registry import imports

    url = await prepared(fresh_database, "fairness")
    db = Database(url, outbox=outbox)
    runner = ImportRunner(db, tmp_path, max_rows=10, batch_rows=5, workers=2, max_seconds=1.0)
    other_commune = {"level": "commune", "province": None, "commune": "00004"}
    slow, waiting, elsewhere = job(), job(), job(jurisdiction=other_commune)
    released = threading.Event()
    counting = imports.count_rows

    def held(path: Path, file_format: str, encoding: str, limits: Any) -> int:
        # The first job of commune 00070 stands for a file that keeps its reader busy: it holds its worker until
        # the other commune's job is done, then runs out of time.
        if path == runner.path(slow.id):
            released.wait(60)
            while True:
                limits.check_time()
                time.sleep(0.05)
        return counting(path, file_format, encoding, limits)

    monkeypatch.setattr(imports, "count_rows", held)
    try:
        body = "full_name,sex,date_of_birth\nLê Văn A,nam,2015-01-01\n"
        async with db.sessionmaker() as session:
            for one in (slow, waiting, elsewhere):
                runner.path(one.id).write_text(body)
                session.add(one)
            await session.commit()
        for one in (slow, waiting, elsewhere):
            await runner.start(one.id, "utf-8", imports.queue_key(one.jurisdiction))

        async def status(job_id: uuid.UUID) -> ImportJob:
            async with db.sessionmaker() as session:
                return await session.get_one(ImportJob, job_id)

        async def finished(job_id: uuid.UUID) -> ImportJob:
            while (current := await status(job_id)).status not in ("succeeded", "failed"):
                await asyncio.sleep(0.05)
            return current

        done = await asyncio.wait_for(finished(elsewhere.id), 60)
        assert done.status == "succeeded" and done.created_count == 1
        # Meanwhile the second job of the slow job's commune waits its turn, and the slow job still runs.
        assert (await status(waiting.id)).status == "queued"
        assert (await status(slow.id)).status == "validating"
        released.set()
        stopped = await asyncio.wait_for(finished(slow.id), 60)
        assert stopped.status == "failed" and "longer than 1 s" in (stopped.failure or "")
        after = await asyncio.wait_for(finished(waiting.id), 60)
        assert after.status == "succeeded"
    finally:
        released.set()
        await runner.stop()
        await db.dispose()

"""Faults between the two writes of an upload: the object store killed (the API answers 503 problem+json at once and
writes nothing), and the cases service killed after the object was stored but before its row committed (the
sweeper removes the orphan, and only it)."""

import asyncio
import time
import uuid
from datetime import timedelta

import asyncpg
import httpx
import pytest
from sqlalchemy import text

from scripts.stack import SERVICES, SeaweedFS
from services.cases import attachments
from services.cases.settings import CasesSettings
from services.common.clock import utcnow
from services.common.db import Database
from services.common.storage import ObjectNotFound, ObjectStore
from tests.attachments.conftest import Files, pdf, photo, sweep_now
from tests.helpers import Api, eventually

FAST = 3.0  # seconds within which a call must be refused when the store is down (generous for a loaded machine)


def problem(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").startswith("application/problem+json")


async def test_with_the_store_killed_files_answer_503_at_once_and_nothing_is_half_written(
        api: Api, files: Files, seaweedfs: SeaweedFS, cases_database: Database) -> None:
    officer = await api.as_demo("child_protection_officer")
    case_id = await files.case(officer)
    kept = await files.attach(officer, case_id, pdf(5000), kind="other")
    await asyncio.to_thread(seaweedfs.stop, kill=True)
    try:
        calls = {
            "upload": lambda: files.upload(officer, case_id, photo()),
            "download": lambda: files.content(officer, kept["id"]),
            "resumable": lambda: api.client.post(f"/cases/v1/cases/{case_id}/attachment-uploads", headers=officer,
                                                 json={"kind": "other", "size": 1000}),
        }
        for name, call in calls.items():
            started = time.monotonic()
            response = await call()
            took = time.monotonic() - started
            assert response.status_code == 503 and problem(response), (name, response.status_code, response.text)
            assert response.headers.get("retry-after"), name
            assert took < FAST, (name, took)
        # What lives in the database still answers.
        assert (await api.client.get(f"/cases/v1/attachments/{kept['id']}", headers=officer)).status_code == 200
        listed = await api.client.get(f"/cases/v1/cases/{case_id}/attachments", headers=officer)
        assert [a["id"] for a in listed.json()["items"]] == [kept["id"]]
    finally:
        await asyncio.to_thread(seaweedfs.start)
        await asyncio.to_thread(seaweedfs.wait_ready)

    async def works_again() -> bool:
        return (await files.upload(officer, case_id, photo())).status_code == 201

    await eventually(works_again, timeout=60, interval=0.5)
    async with cases_database.sessionmaker() as session:
        count = await session.scalar(text("SELECT count(*) FROM attachment WHERE case_id = :id"), {"id": case_id})
    assert count == 2  # the one before, the one after: nothing from the outage
    assert (await files.content(officer, kept["id"])).status_code == 200


async def test_a_service_killed_between_the_object_and_its_row_leaves_an_orphan_the_sweeper_removes(
        api: Api, files: Files, store: ObjectStore, cases_database: Database,
        cases_settings_for_tests: CasesSettings) -> None:
    officer = await api.as_demo("child_protection_officer")
    case_id = await files.case(officer)
    kept = await files.attach(officer, case_id, pdf(5000), kind="other")
    before = {info.key async for info in store.listing(attachments.FINAL)}

    # Hold the case row: the upload stores its object, then waits for the row lock at its insert (step 3).
    dsn = api.stack.database_url("cases").replace("postgresql+asyncpg://", "postgresql://")
    blocker = await asyncpg.connect(dsn)
    transaction = blocker.transaction()
    await transaction.start()
    await blocker.execute("SELECT id FROM case_record WHERE id = $1 FOR UPDATE", uuid.UUID(case_id))
    upload = asyncio.create_task(files.upload(officer, case_id, pdf(300_000), kind="other"))
    new: set[str] = set()
    try:
        async def stored() -> bool:
            new.update({info.key async for info in store.listing(attachments.FINAL)} - before)
            return bool(new)

        await eventually(stored, timeout=30, interval=0.1)
        cases = next(s for s in SERVICES if s.name == "cases")
        await asyncio.to_thread(api.stack.stop, "cases", kill=True)
    finally:
        await transaction.rollback()
        await blocker.close()
    answer = await upload
    assert answer.status_code == 503, answer.text
    await asyncio.to_thread(api.stack.start, cases)
    await asyncio.to_thread(api.stack.wait_ready, "cases", 60.0)

    (orphan,) = new
    async with cases_database.sessionmaker() as session:
        rows = await session.scalar(text("SELECT count(*) FROM attachment WHERE object_key = :k"), {"k": orphan})
    assert rows == 0
    reader = await store.open(orphan)  # stored, encrypted, and named by no row
    await reader.close()

    grace = timedelta(seconds=cases_settings_for_tests.attachment_orphan_grace_seconds)
    # Younger than the grace period: an upload may still be committing it, so it stays.
    assert (await sweep_now(cases_database, store, cases_settings_for_tests, utcnow())).orphans_deleted == 0
    report = await sweep_now(cases_database, store, cases_settings_for_tests, utcnow() + 2 * grace)
    assert report.orphans_deleted >= 1
    with pytest.raises(ObjectNotFound):
        await store.open(orphan)
    assert (await files.content(officer, kept["id"])).status_code == 200  # a file with its row stays


async def test_expired_upload_sessions_are_dropped(api: Api, files: Files, store: ObjectStore,
                                                   cases_database: Database,
                                                   cases_settings_for_tests: CasesSettings) -> None:
    officer = await api.as_demo("child_protection_officer")
    case_id = await files.case(officer)
    session = (await api.client.post(f"/cases/v1/cases/{case_id}/attachment-uploads", headers=officer,
                                     json={"kind": "other", "size": 1000})).json()
    later = utcnow() + timedelta(hours=cases_settings_for_tests.attachment_upload_hours, minutes=1)
    report = await sweep_now(cases_database, store, cases_settings_for_tests, later)
    assert report.sessions_expired >= 1
    status = await api.client.get(f"/cases/v1/attachment-uploads/{session['id']}", headers=officer)
    assert status.status_code == 404


async def test_one_sweeper_at_a_time(api: Api, cases_database: Database, store: ObjectStore,
                                     cases_settings_for_tests: CasesSettings) -> None:
    dsn = api.stack.database_url("cases").replace("postgresql+asyncpg://", "postgresql://")
    other_replica = await asyncpg.connect(dsn)
    try:
        async def locked() -> bool:  # as soon as the service's own round (if any) has finished
            return bool(await other_replica.fetchval("SELECT pg_try_advisory_lock($1)", attachments.SWEEP_LOCK))

        await eventually(locked, timeout=60, interval=0.2)
        assert (await attachments.sweep(cases_database, store, cases_settings_for_tests)).skipped
        await other_replica.execute("SELECT pg_advisory_unlock($1)", attachments.SWEEP_LOCK)
        assert not (await sweep_now(cases_database, store, cases_settings_for_tests)).skipped
    finally:
        await other_replica.close()

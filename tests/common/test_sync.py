"""The kit's sync log (services/common/sync.py) never lets a phone skip a change, even when transactions commit out
of the order they started in, logs a record's old place when it moves, and keeps a cursor to its owner.

The triggers are the ones the services' migrations install (cases: case_record, case_task, case_note; registry:
child), on a table of the same shape."""

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Column, MetaData, String, Table, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.auth import Jurisdiction, Subject
from services.common.db import Database, new_metadata
from services.common.errors import BadRequest
from services.common.permissions import Agency, Role
from services.common.sync import SyncLog, SyncReset

COMMUNE, OTHER = "00070", "00004"  # two communes of Ha Noi (province 01)
TRIGGER = """CREATE FUNCTION sync_record_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO sync_change (record_id, province_code, commune_code)
  VALUES (NEW.id, NEW.province_code, NEW.commune_code);
  IF TG_OP = 'UPDATE' AND (OLD.province_code, OLD.commune_code)
                          IS DISTINCT FROM (NEW.province_code, NEW.commune_code) THEN
    INSERT INTO sync_change (record_id, province_code, commune_code)
    VALUES (OLD.id, OLD.province_code, OLD.commune_code);
  END IF;
  RETURN NULL;
END $$"""


def officer(commune: str = COMMUNE, user: str = "officer") -> Subject:
    return Subject(id=user, role=Role.CHILD_PROTECTION_OFFICER, agency=Agency.PEOPLES_COMMITTEE,
                   jurisdiction=Jurisdiction(level="commune", province="01", commune=commune), token_id="t")


@dataclass
class Log:
    database: Database
    log: SyncLog
    records: Table

    async def held_open(self, commune: str = COMMUNE) -> tuple[AsyncSession, uuid.UUID]:
        """A transaction that wrote a record and has not committed yet."""
        session = self.database.sessionmaker()
        record_id = uuid.uuid4()
        await session.execute(self.records.insert().values(id=record_id, province_code="01", commune_code=commune))
        return session, record_id

    async def read_all(self, subject: Subject, cursor: str | None = None) -> tuple[list[uuid.UUID], str]:
        async with self.database.sessionmaker() as session:
            ids: list[uuid.UUID] = []
            while True:
                page = await self.log.changes(session, subject, cursor, limit=2)
                ids += page.record_ids
                cursor = page.next_cursor
                if not page.has_more:
                    return ids, cursor


@pytest.fixture
async def log(database_url: str) -> AsyncIterator[Log]:
    metadata: MetaData = new_metadata()
    sync_log = SyncLog(metadata)
    records = Table("record", metadata, Column("id", UUID(as_uuid=True), primary_key=True),
                    Column("province_code", String(2), nullable=False),
                    Column("commune_code", String(5), nullable=False))
    database = Database(database_url, pool_size=4)
    async with database.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
        await connection.execute(text(TRIGGER))
        await connection.execute(text("CREATE TRIGGER record_sync AFTER INSERT OR UPDATE ON record "
                                      "FOR EACH ROW EXECUTE FUNCTION sync_record_change()"))
    yield Log(database, sync_log, records)
    await database.dispose()


async def test_a_change_committed_after_a_later_one_was_read_is_still_read(log: Log) -> None:
    # A starts first (the smaller transaction id); B writes first (the smaller seq) and commits last.
    a = log.database.sessionmaker()
    await a.execute(text("SELECT pg_current_xact_id()"))
    b, b_id = await log.held_open()
    a_id = uuid.uuid4()
    await a.execute(log.records.insert().values(id=a_id, province_code="01", commune_code=COMMUNE))
    await a.commit()
    first, cursor = await log.read_all(officer())
    assert first == [a_id]  # B still runs: its change is not offered yet
    await b.commit()
    # B's seq is below A's, which the cursor has passed: ordered by seq alone, B's change would be lost.
    second, cursor = await log.read_all(officer(), cursor)
    assert second == [b_id]
    assert (await log.read_all(officer(), cursor))[0] == []
    await a.close()
    await b.close()


async def test_a_change_read_is_never_offered_before_an_older_transaction_ends(log: Log) -> None:
    older, older_id = await log.held_open()
    async with log.database.sessionmaker() as newer:
        newer_id = uuid.uuid4()
        await newer.execute(log.records.insert().values(id=newer_id, province_code="01", commune_code=COMMUNE))
        await newer.commit()
    assert (await log.read_all(officer()))[0] == []  # the newer change waits for the older transaction
    await older.commit()
    await older.close()
    assert (await log.read_all(officer()))[0] == [older_id, newer_id]


async def test_a_move_logs_the_old_place_and_pages_stay_in_their_jurisdiction(log: Log) -> None:
    async with log.database.sessionmaker() as session:
        stays, moves, elsewhere = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        await session.execute(log.records.insert(), [
            {"id": stays, "province_code": "01", "commune_code": COMMUNE},
            {"id": moves, "province_code": "01", "commune_code": COMMUNE},
            {"id": elsewhere, "province_code": "01", "commune_code": OTHER}])
        await session.commit()
    seen, cursor = await log.read_all(officer())
    assert seen == [stays, moves]
    async with log.database.sessionmaker() as session:
        await session.execute(log.records.update().where(log.records.c.id == moves).values(commune_code=OTHER))
        await session.commit()
    assert (await log.read_all(officer(), cursor))[0] == [moves]  # the old commune hears of it: a tombstone
    assert (await log.read_all(officer(OTHER, "other")))[0] == [elsewhere, moves]
    # A page names each record once, where it last changed.
    async with log.database.sessionmaker() as session:
        for _ in range(3):
            await session.execute(log.records.update().where(log.records.c.id == stays).values(province_code="01"))
        await session.commit()
    async with log.database.sessionmaker() as session:
        page = await log.log.changes(session, officer(), cursor, limit=50)
    assert page.record_ids == [moves, stays]


async def test_a_cursor_is_its_owners_and_a_crafted_one_is_refused(log: Log) -> None:
    _, cursor = await log.read_all(officer())
    async with log.database.sessionmaker() as session:
        with pytest.raises(SyncReset):
            await log.log.changes(session, officer(user="someone else"), cursor, limit=10)
        with pytest.raises(SyncReset):
            await log.log.changes(session, officer(OTHER), cursor, limit=10)  # the same user, moved
        for crafted in ("x", "WzEsMiwzXQ", "W1siYSIsImIiLCJjIl1d", "x" * 2000):
            with pytest.raises(BadRequest):
                await log.log.changes(session, officer(), crafted, limit=10)

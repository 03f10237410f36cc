"""The registry marks a child who turns 16 as aged out by itself (Law on Children 2016 Art. 1), on the kit's clock,
once, even with several replicas checking at the same moment."""

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime

from sqlalchemy import func, select

from services.common.auth import Jurisdiction, Subject
from services.common.clock import frozen_at
from services.common.db import Database
from services.common.permissions import Agency, Role
from services.registry.models import Child, ChildRevision, audit, outbox
from services.registry.schemas import ChildCreate
from services.registry.service import child_record, mark_aged_out
from tests.registry.test_import_runner import prepared

OFFICER = Subject(id="officer", role=Role.CHILD_PROTECTION_OFFICER, agency=Agency.PEOPLES_COMMITTEE,
                  jurisdiction=Jurisdiction(level="commune", commune="00070"), token_id="")


async def add_children(db: Database, births: dict[str, date]) -> dict[str, uuid.UUID]:
    ids = {}
    async with db.sessionmaker() as session:
        for name, born in births.items():
            data = ChildCreate(full_name=name, sex="female", date_of_birth=born, commune_code="00070")
            record = child_record(data, OFFICER, datetime(2024, 1, 1, tzinfo=UTC))
            session.add(Child(**record))
            ids[name] = record["id"]
        await session.commit()
    return ids


async def statuses(db: Database) -> dict[str, tuple[str, date | None, int]]:
    async with db.sessionmaker() as session:
        rows = (await session.execute(select(Child.full_name, Child.status, Child.status_date, Child.revision))).all()
    return {row.full_name: (row.status, row.status_date, row.revision) for row in rows}


async def events(db: Database) -> list[dict[str, object]]:
    async with db.sessionmaker() as session:
        page = await outbox.read(session, 0, 1000)
    return [e.payload for e in page.events]


async def test_children_who_turn_16_are_aged_out_once(fresh_database: Callable[[str], str]) -> None:
    db = Database(await prepared(fresh_database, "aged_out"), outbox=outbox)
    try:
        ids = await add_children(db, {"Lê Thị Một": date(2010, 3, 15), "Lê Thị Hai": date(2010, 3, 16),
                                      "Lê Thị Ba": date(2012, 2, 29), "Lê Thị Bốn": date(2015, 1, 1)})
        # 15 March 2026, 08:00 in Vietnam (01:00 UTC): Một turns 16 today, Hai tomorrow.
        with frozen_at(datetime(2026, 3, 15, 1, 0, tzinfo=UTC)):
            assert await mark_aged_out(db) == 1
        found = await statuses(db)
        assert found["Lê Thị Một"] == ("aged_out", date(2026, 3, 15), 2)
        assert found["Lê Thị Hai"] == ("active", None, 1) and found["Lê Thị Bốn"][0] == "active"
        # 17:30 UTC on 15 March is already 16 March in Vietnam: the local date decides, not UTC's.
        with frozen_at(datetime(2026, 3, 15, 17, 30, tzinfo=UTC)):
            assert await mark_aged_out(db) == 1
        assert (await statuses(db))["Lê Thị Hai"] == ("aged_out", date(2026, 3, 16), 2)
        # Born on 29 February: 16 on 29 February 2028 (a leap year), not before.
        with frozen_at(datetime(2028, 2, 28, 5, 0, tzinfo=UTC)):
            assert await mark_aged_out(db) == 0
        with frozen_at(datetime(2028, 2, 29, 5, 0, tzinfo=UTC)):
            assert await mark_aged_out(db) == 1
        assert (await statuses(db))["Lê Thị Ba"][:2] == ("aged_out", date(2028, 2, 29))
        changed = [e for e in await events(db) if e["status"] == "aged_out"]
        assert sorted(str(e["child_id"]) for e in changed) == sorted(
            str(ids[n]) for n in ("Lê Thị Một", "Lê Thị Hai", "Lê Thị Ba"))
        async with db.sessionmaker() as session:
            revisions = (await session.execute(select(ChildRevision).where(ChildRevision.change == "aged_out"))
                         ).scalars().all()
            audited = await session.scalar(select(func.count()).select_from(audit.table).where(
                audit.table.c.action == "age_out"))
        assert len(revisions) == 3 and audited == 3
        assert revisions[0].changes["status"] == {"old": "active", "new": "aged_out"}
    finally:
        await db.dispose()


async def test_replicas_checking_at_once_mark_each_child_once(fresh_database: Callable[[str], str]) -> None:
    db = Database(await prepared(fresh_database, "aged_out_replicas"), outbox=outbox)
    try:
        await add_children(db, {f"Phạm Văn {name}": date(2009, 1, 1) for name in
                                ("An", "Bình", "Cường", "Dũng", "Giang", "Hải", "Hiếu", "Hùng", "Khoa", "Long")})
        with frozen_at(datetime(2026, 6, 1, tzinfo=UTC)):
            # Four "replicas" in small batches, at the same moment: SKIP LOCKED shares the work out.
            marked = await asyncio.gather(*[mark_aged_out(db, batch=3) for _ in range(4)])
            while more := await mark_aged_out(db, batch=3):
                marked.append(more)
        assert sum(marked) == 10
        assert {s[0] for s in (await statuses(db)).values()} == {"aged_out"}
        assert len([e for e in await events(db) if e["status"] == "aged_out"]) == 10
    finally:
        await db.dispose()

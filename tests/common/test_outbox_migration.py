"""The producers' outbox migration keeps every consumer's stored position meaning the same events.

Each producing service's database is migrated to the revision before events carried their transaction id, gets
events, is migrated to head, and gets more: a consumer that had read up to seq N (its cursor) then reads the rest
of the old events and all the new ones, each once, in order.
"""

import uuid

import anyio
import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text

from scripts.stack import ROOT
from services.common.db import Database, new_metadata
from services.common.migrate import alembic_config
from services.common.outbox import Outbox


def revision_before(config: Config, doc_start: str) -> str:
    """The revision just before the one whose message starts with `doc_start` (other revisions may come before or
    after it in the service's history)."""
    revision = next(r for r in ScriptDirectory.from_config(config).walk_revisions() if r.doc.startswith(doc_start))
    assert isinstance(revision.down_revision, str)
    return revision.down_revision


@pytest.mark.parametrize("service", ["cases", "registry"])
async def test_positions_kept_from_before_the_migration_read_on_without_loss(database_url: str,
                                                                            service: str) -> None:
    config = alembic_config(ROOT / "services" / service / "migrations", database_url)
    before = revision_before(config, "outbox events carry their transaction id")
    await anyio.to_thread.run_sync(command.upgrade, config, before)
    outbox = Outbox(new_metadata(), source=service)
    database = Database(database_url, pool_size=2, outbox=outbox)
    try:
        async with database.engine.begin() as connection:
            for number in range(1, 6):
                await connection.execute(text(
                    "INSERT INTO outbox_event (id, type, version, occurred_at, agency, payload) "
                    "VALUES (:id, 'test.old', 1, now(), 'test', CAST(:payload AS jsonb))"),
                    {"id": uuid.uuid4(), "payload": f'{{"number": {number}}}'})
        await anyio.to_thread.run_sync(command.upgrade, config, "head")
        for number in range(6, 9):
            async with database.unit_of_work() as session:
                outbox.emit(session, "test.new", {"number": number}, agency="test")

        async with database.sessionmaker() as session:
            page = await outbox.read(session, 3, 100)  # a consumer had applied seq 1..3
        assert [e.payload["number"] for e in page.events] == [4, 5, 6, 7, 8]
        assert [e.xid for e in page.events][:2] == [0, 0] and all(e.xid > 0 for e in page.events[2:])
    finally:
        await database.dispose()

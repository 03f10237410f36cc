"""The outbox feed never skips an event, even when transactions commit out of the order they started in.

A reader pages the feed while many writers commit concurrently, some slowly, some rolling back. To make the race
real, the writers in the kit test hold their transaction open for a random while *after* their events were
inserted (the window in which a later sequence number can commit first). The control experiment runs the same
workload reading by a plain serial id, and shows that a reader then loses events. Deterministic cases pin down the
order that a seq cursor gets wrong, and show that a long transaction holds the feed back (never loses its events)
only in its own database.
"""

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import Database, new_metadata
from services.common.errors import BadRequest
from services.common.outbox import Outbox, outbox_table
from tests.helpers import eventually

WRITERS = 12
TRANSACTIONS_PER_WRITER = 8
PAGE_SIZE = 5

Position = tuple[int, int]  # (xid, seq) for the kit's feed; (0, seq) for the control's plain serial id
Seen = list[tuple[Position, str]]  # (position, token) in the order read
ReadPage = Callable[[int], Awaitable[tuple[Seen, int]]]  # a page after a cursor, and the next cursor


class Abort(Exception):
    """Raised inside a unit of work to roll it back."""


class SlowCommitOutbox(Outbox):
    """The kit's outbox, with a pause between writing the events and the commit that follows.

    The pause widens the window in which a plain serial id skips; the kit must stay correct however long it is.
    """

    async def write_pending(self, session: AsyncSession) -> None:
        await super().write_pending(session)
        await asyncio.sleep(_pause())


def _pause() -> float:
    # Mostly short, sometimes long: long transactions are the ones a reader overtakes.
    return random.choice([0.0, 0.001, 0.003, 0.005, 0.02]) if random.random() < 0.9 else random.uniform(0.03, 0.08)


def _items(metadata: MetaData) -> Table:
    return Table("item", metadata, Column("id", Integer, primary_key=True, autoincrement=True),
                 Column("token", String(40), nullable=False, unique=True))


@dataclass
class Ledger:
    committed: set[str] = field(default_factory=set)
    rolled_back: set[str] = field(default_factory=set)


async def _create(database: Database, metadata: MetaData) -> None:
    async with database.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)


async def _read_feed(read_page: ReadPage, writers_done: asyncio.Event) -> Seen:
    """Page the feed the way a consumer does: ask for events after the cursor, advance to `next_cursor`."""
    seen: Seen = []
    after = 0
    while True:
        done = writers_done.is_set()  # read before the page, so the final pass starts after every commit
        events, after = await read_page(after)
        seen.extend(events)
        if not events:
            if done:
                return seen
            await asyncio.sleep(0.001)


async def test_feed_never_skips_or_repeats_under_concurrent_writers(database_url: str) -> None:
    metadata = new_metadata()
    outbox = SlowCommitOutbox(metadata, source="test")
    items = _items(metadata)
    database = Database(database_url, pool_size=WRITERS + 2, outbox=outbox)
    ledger = Ledger()
    try:
        await _create(database, metadata)

        async def writer(number: int) -> None:
            for _ in range(TRANSACTIONS_PER_WRITER):
                token = uuid.uuid4().hex
                roll_back = random.random() < 0.2
                try:
                    async with database.unit_of_work() as session:
                        await session.execute(items.insert().values(token=token))
                        outbox.emit(session, "test.item_created", {"token": token, "writer": number},
                                    agency="test")
                        await asyncio.sleep(_pause())
                        if roll_back:
                            raise Abort
                except Abort:
                    ledger.rolled_back.add(token)
                else:
                    ledger.committed.add(token)

        async def read_page(after: int) -> tuple[Seen, int]:
            async with database.sessionmaker() as session:
                page = await outbox.read(session, after, PAGE_SIZE)
            return [((event.xid, event.seq), event.payload["token"]) for event in page.events], page.next_cursor

        writers_done = asyncio.Event()
        reader = asyncio.create_task(_read_feed(read_page, writers_done))
        await asyncio.gather(*(writer(n) for n in range(WRITERS)))
        writers_done.set()
        seen = await reader

        positions = [position for position, _ in seen]
        tokens = [token for _, token in seen]
        assert positions == sorted(set(positions)), "the feed must give strictly increasing positions"
        assert len(tokens) == len(set(tokens)), "no event is read twice"
        assert ledger.rolled_back, "the workload must include rolled-back transactions"
        assert set(tokens) == ledger.committed, (
            f"missed {len(ledger.committed - set(tokens))} committed events, "
            f"read {len(set(tokens) & ledger.rolled_back)} rolled-back ones"
        )
        async with database.sessionmaker() as session:
            # Each committed change has its event and each rolled-back one has neither.
            stored_items = set((await session.execute(select(items.c.token))).scalars())
            stored_events = (await session.execute(select(func.count()).select_from(outbox.table))).scalar_one()
        assert stored_items == ledger.committed
        assert stored_events == len(ledger.committed)
    finally:
        await database.dispose()


async def _naive_run(database: Database, events: Table) -> tuple[int, int]:
    """The same workload, read by the plain serial id, with one transaction certain to be overtaken: it writes the
    first event, then holds its commit until the reader has gone past that event (on a loaded machine, chance alone
    may not line a reader up with a commit in time). Returns (committed, read)."""
    committed: set[str] = set()
    slow_seq: int | None = None
    overtaken = asyncio.Event()

    async def write(number: int, token: str, *, slow: bool = False) -> None:
        nonlocal slow_seq
        async with database.sessionmaker() as session, session.begin():
            seq = (await session.execute(events.insert().values(
                id=uuid.uuid4(), type="test.item_created", version=1, occurred_at=func.now(), agency="test",
                payload={"token": token, "writer": number}).returning(events.c.seq))).scalar_one()
            if slow:
                slow_seq = seq
                async with asyncio.timeout(60):
                    await overtaken.wait()
            else:
                await asyncio.sleep(_pause())
        committed.add(token)

    async def writer(number: int) -> None:
        for _ in range(TRANSACTIONS_PER_WRITER):
            await write(number, uuid.uuid4().hex)

    async def read_page(after: int) -> tuple[Seen, int]:
        async with database.sessionmaker() as session:
            rows = (await session.execute(
                select(events.c.seq, events.c.payload).where(events.c.seq > after).order_by(events.c.seq)
                .limit(PAGE_SIZE))).all()
        if slow_seq is not None and rows and rows[-1].seq > slow_seq:
            overtaken.set()
        return [((0, seq), payload["token"]) for seq, payload in rows], (rows[-1].seq if rows else after)

    slow = asyncio.create_task(write(-1, uuid.uuid4().hex, slow=True))
    while slow_seq is None and not slow.done():  # its event is written first: every other one gets a larger seq
        await asyncio.sleep(0.001)
    writers_done = asyncio.Event()
    reader = asyncio.create_task(_read_feed(read_page, writers_done))
    await asyncio.gather(slow, *(writer(n) for n in range(WRITERS)))
    writers_done.set()
    seen = {token for _, token in await reader}
    return len(committed), len(seen & committed)


async def test_control_a_plain_serial_id_skips_events(database_url: str) -> None:
    """Shows the workload above is able to catch a feed that skips: read by seq alone, events are lost."""
    metadata = new_metadata()
    events = outbox_table(metadata)
    database = Database(database_url, pool_size=WRITERS + 2)
    try:
        await _create(database, metadata)
        committed, read = await _naive_run(database, events)
        assert read < committed, f"no skip seen: {read} of {committed} read"
    finally:
        await database.dispose()


# ---------------------------------------------------------------------------------------------------- exact cases


@dataclass
class Feed:
    database: Database
    outbox: Outbox
    items: Table

    async def read_all(self, after: int = 0) -> Seen:
        """Every event the feed gives now after the cursor `after`, page by page, as ((xid, seq), token)."""
        seen: Seen = []
        while True:
            async with self.database.sessionmaker() as session:
                page = await self.outbox.read(session, after, PAGE_SIZE)
            seen += [((e.xid, e.seq), e.payload["token"]) for e in page.events]
            after = page.next_cursor
            if not page.has_more:
                return seen

    async def held_open(self, token: str | None) -> tuple[AsyncSession, int]:
        """A transaction that has its xid (and, with a token, its event written) but has not committed."""
        session = self.database.sessionmaker()
        await session.begin()
        xid = int((await session.execute(text("SELECT pg_current_xact_id()::text::bigint"))).scalar_one())
        if token is not None:
            self.outbox.emit(session, "test.item_created", {"token": token}, agency="test")
            await self.outbox.write_pending(session)
        return session, xid

    async def write(self, token: str) -> None:
        async with self.database.unit_of_work() as session:
            await session.execute(self.items.insert().values(token=token))
            self.outbox.emit(session, "test.item_created", {"token": token}, agency="test")


@pytest.fixture
async def feed(database_url: str) -> AsyncIterator[Feed]:
    metadata = new_metadata()
    outbox = Outbox(metadata, source="test")
    items = _items(metadata)
    database = Database(database_url, pool_size=4, outbox=outbox)
    await _create(database, metadata)
    try:
        yield Feed(database, outbox, items)
    finally:
        await database.dispose()


async def test_an_event_committed_after_a_later_seq_was_read_is_still_read(feed: Feed) -> None:
    # Transaction A starts first (smaller xid); B writes its event first (smaller seq) and commits last.
    a, a_xid = await feed.held_open(None)
    b, b_xid = await feed.held_open("b")
    feed.outbox.emit(a, "test.item_created", {"token": "a"}, agency="test")
    await feed.outbox.write_pending(a)
    await a.commit()
    first = await feed.read_all()
    assert [token for _, token in first] == ["a"]  # B is still running: its event is not offered yet
    await b.commit()
    (a_position, _), = first
    second = await feed.read_all(a_position[1])
    assert [token for _, token in second] == ["b"]
    (b_position, _), = second
    # The case `seq > cursor` gets wrong: B's seq is below the one already read.
    assert b_position[1] < a_position[1] and (a_position[0], b_position[0]) == (a_xid, b_xid)
    await a.close()
    await b.close()


async def test_writers_do_not_wait_for_each_other(feed: Feed) -> None:
    """The advisory lock made every event-writing transaction wait for the one before it to commit."""
    held, _ = await feed.held_open("slow")
    try:
        async with asyncio.timeout(30):  # generous: without a lock this takes milliseconds, with one forever
            await feed.write("quick")
        assert [token for _, token in await feed.read_all()] == []  # behind the running one, in its database
    finally:
        await held.rollback()
        await held.close()
    assert [token for _, token in await feed.read_all()] == ["quick"]


async def test_a_long_transaction_holds_back_only_its_own_database(feed: Feed, second_database_url: str) -> None:
    elsewhere = Database(second_database_url, pool_size=1)
    other_db = elsewhere.sessionmaker()
    await other_db.begin()
    await other_db.execute(text("SELECT pg_current_xact_id()"))  # running, with an xid, in another database
    try:
        await feed.write("one")

        async def offered() -> bool:
            return [token for _, token in await feed.read_all()] == ["one"]

        # Asked again until offered, while the other database's transaction stays open all along: a transaction
        # that ends between the snapshot and the activity list counts as ours once (a harmless wait), so the
        # very first read on a busy shared server may come back empty.
        await eventually(offered, timeout=30)

        here, _ = await feed.held_open(None)  # running in this database, no event (yet)
        await feed.write("two")
        assert [token for _, token in await feed.read_all()] == ["one"]
        await here.rollback()
        await here.close()
        assert [token for _, token in await feed.read_all()] == ["one", "two"]
    finally:
        await other_db.rollback()
        await other_db.close()
        await elsewhere.dispose()


async def test_an_event_written_in_a_savepoint_carries_the_top_level_transaction(feed: Feed) -> None:
    async with feed.database.unit_of_work() as session:
        top = int((await session.execute(text("SELECT pg_current_xact_id()::text::bigint"))).scalar_one())
        async with session.begin_nested():
            feed.outbox.emit(session, "test.item_created", {"token": "nested"}, agency="test")
            await feed.outbox.write_pending(session)
    assert [(position[0], token) for position, token in await feed.read_all()] == [(top, "nested")]


async def test_a_cursor_that_names_no_event_is_refused(feed: Feed) -> None:
    await feed.write("one")
    (position, _), = await feed.read_all()
    async with feed.database.sessionmaker() as session:
        with pytest.raises(BadRequest):  # a consumer ahead of a producer restored from an older backup
            await feed.outbox.read(session, position[1] + 1000, PAGE_SIZE)


async def test_events_restored_from_another_server_come_first_and_are_not_held_back(feed: Feed) -> None:
    # A logical dump of another server brings its transaction ids along: larger than any this server gave out.
    async with feed.database.unit_of_work() as session:
        await session.execute(text(
            "INSERT INTO outbox_event (xid, id, type, version, occurred_at, agency, payload) VALUES "
            "('900000000000', gen_random_uuid(), 'test.item_created', 1, now(), 'test', '{\"token\": \"restored\"}')"))
    await feed.write("new")
    fresh = Outbox(new_metadata(), source="test")  # a process started after the restore
    async with feed.database.unit_of_work() as session:
        page = await fresh.read(session, 0, PAGE_SIZE)
    assert [(e.xid == 0, e.payload["token"]) for e in page.events] == [(True, "restored"), (False, "new")]
    assert fresh.restored_checked is False  # it adopted some: the next read looks again, and finds none
    async with feed.database.unit_of_work() as session:
        await fresh.read(session, 0, PAGE_SIZE)
    assert fresh.restored_checked is True

"""The outbox feed never skips an event, even when transactions commit out of the order they started in.

A reader pages the feed while many writers commit concurrently, some slowly, some rolling back. To make the race
real, the writers in the kit test hold their transaction open for a random while *after* their events were
inserted (the window in which a later sequence number can commit first). The control experiment runs the same
workload with a plain serial id and no lock, and shows that a reader then loses events.
"""

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy import Column, Integer, MetaData, String, Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import Database, new_metadata
from services.common.outbox import Outbox, outbox_table

WRITERS = 12
TRANSACTIONS_PER_WRITER = 8
PAGE_SIZE = 5

Seen = list[tuple[int, str]]  # (seq, token) in the order read
ReadPage = Callable[[int], Awaitable[tuple[Seen, int]]]


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
    """Page the feed the way a consumer does: ask for events after the last seq seen, advance to `next_cursor`."""
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
            return [(event.seq, event.payload["token"]) for event in page.events], page.next_cursor

        writers_done = asyncio.Event()
        reader = asyncio.create_task(_read_feed(read_page, writers_done))
        await asyncio.gather(*(writer(n) for n in range(WRITERS)))
        writers_done.set()
        seen = await reader

        seqs = [seq for seq, _ in seen]
        tokens = [token for _, token in seen]
        assert seqs == sorted(set(seqs)), "the feed must give strictly increasing sequence numbers"
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
    """One round of the same workload with a plain serial id and no lock. Returns (committed, read)."""
    committed: set[str] = set()

    async def writer(number: int) -> None:
        for _ in range(TRANSACTIONS_PER_WRITER):
            token = uuid.uuid4().hex
            async with database.sessionmaker() as session, session.begin():
                await session.execute(events.insert().values(
                    id=uuid.uuid4(), type="test.item_created", version=1, occurred_at=func.now(), agency="test",
                    payload={"token": token, "writer": number}))
                await asyncio.sleep(_pause())
            committed.add(token)

    async def read_page(after: int) -> tuple[Seen, int]:
        async with database.sessionmaker() as session:
            rows = (await session.execute(
                select(events.c.seq, events.c.payload).where(events.c.seq > after).order_by(events.c.seq)
                .limit(PAGE_SIZE))).all()
        return [(seq, payload["token"]) for seq, payload in rows], (rows[-1].seq if rows else after)

    writers_done = asyncio.Event()
    reader = asyncio.create_task(_read_feed(read_page, writers_done))
    await asyncio.gather(*(writer(n) for n in range(WRITERS)))
    writers_done.set()
    seen = {token for _, token in await reader}
    return len(committed), len(seen & committed)


async def test_control_a_plain_serial_id_without_the_lock_skips_events(database_url: str) -> None:
    """Shows the workload above is able to catch a feed that skips: without the lock, events are lost."""
    metadata = new_metadata()
    events = outbox_table(metadata)
    database = Database(database_url, pool_size=WRITERS + 2)
    try:
        await _create(database, metadata)
        rounds = []
        for _ in range(5):
            committed, read = await _naive_run(database, events)
            rounds.append((committed, read))
            if read < committed:
                break
        assert any(read < committed for committed, read in rounds), f"no skip seen in {rounds}"
    finally:
        await database.dispose()

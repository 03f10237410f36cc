"""A feed consumer applies every event exactly once: killed mid-batch and restarted, or racing another replica.

The producer is real: its own database with the kit's outbox, served as JSON pages over real HTTP by a small test
server that also issues service tokens (the consumer's peers, not stand-ins for our database).
"""

import asyncio
import random
import secrets
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import Table, select

from scripts.stack import ROOT
from services.common.clients import ServiceTokenProvider
from services.common.consumer import FeedConsumer
from services.common.db import Database, DatabaseTimeouts, new_metadata
from services.common.http import new_http_client
from services.common.outbox import Event, Outbox
from tests.common.consumer_process import BATCH_SIZE, CLIENT_ID, CLIENT_SECRET, consumer_tables, count_applications

EVENTS = 57  # not a multiple of the batch size, so the last batch is a partial one


@dataclass
class Producer:
    """A producing service's database and its feed, served over HTTP with bearer tokens."""

    database: Database
    outbox: Outbox
    base_url: str = ""
    issued: set[str] = field(default_factory=set)

    @property
    def feed_url(self) -> str:
        return f"{self.base_url}/internal/v1/events"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/auth/token"

    async def emit(self, count: int, writers: int = 1) -> None:
        """Write `count` events, one per transaction. With several writers, each writes its event and waits a
        little before committing, so transactions commit out of the order of their sequence numbers."""
        numbers = iter(range(count))

        async def writer() -> None:
            for number in numbers:
                async with self.database.unit_of_work() as session:
                    self.outbox.emit(session, "test.counted", {"number": number}, agency="test")
                    if writers > 1:
                        await self.outbox.write_pending(session)
                        await asyncio.sleep(random.uniform(0, 0.02))

        await asyncio.gather(*(writer() for _ in range(writers)))

    async def last_seq(self) -> int:
        """The seq of the last event in feed order, (xid, seq): where a consumer that read everything stands."""
        table = self.outbox.table
        async with self.database.sessionmaker() as session:
            last = await session.execute(select(table.c.seq).order_by(table.c.xid.desc(), table.c.seq.desc()).limit(1))
            return int(last.scalar_one_or_none() or 0)

    async def token(self, request: web.Request) -> web.Response:
        auth = aiohttp.BasicAuth.decode(request.headers.get("Authorization", ""))
        form = await request.post()
        if (auth.login, auth.password) != (CLIENT_ID, CLIENT_SECRET) or form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "invalid_client"}, status=401)
        token = secrets.token_urlsafe(16)
        self.issued.add(token)
        return web.json_response({"access_token": token, "token_type": "Bearer", "expires_in": 300})

    async def events(self, request: web.Request) -> web.Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or token not in self.issued:
            return web.json_response({"title": "Not authenticated"}, status=401)
        after, limit = int(request.query.get("after", 0)), int(request.query.get("limit", 500))
        async with self.database.sessionmaker() as session:
            page = await self.outbox.read(session, after, limit)
        return web.Response(text=page.model_dump_json(), content_type="application/json")


@pytest.fixture
async def producer(database_url: str) -> AsyncIterator[Producer]:
    metadata = new_metadata()
    outbox = Outbox(metadata, source="producer")
    database = Database(database_url, pool_size=4, outbox=outbox)
    async with database.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    serving = Producer(database, outbox)
    app = web.Application()
    app.router.add_post("/auth/token", serving.token)
    app.router.add_get("/internal/v1/events", serving.events)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    serving.base_url = f"http://127.0.0.1:{port}"
    try:
        yield serving
    finally:
        await runner.cleanup()
        await database.dispose()


@dataclass
class ConsumerState:
    position: int
    applications: dict[str, int]  # event id -> times applied


async def consumer_state(database_url: str) -> ConsumerState:
    metadata = new_metadata()
    cursors, applied = consumer_tables(metadata)
    database = Database(database_url, pool_size=1)
    try:
        async with database.sessionmaker() as session:
            position = (await session.execute(select(cursors.c.position))).scalar_one_or_none() or 0
            rows = (await session.execute(select(applied.c.event_id, applied.c.times))).all()
        return ConsumerState(position, {str(event_id): times for event_id, times in rows})
    finally:
        await database.dispose()


async def create_consumer_tables(database_url: str) -> tuple[Table, Table]:
    metadata = new_metadata()
    tables = consumer_tables(metadata)
    database = Database(database_url, pool_size=1)
    async with database.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    await database.dispose()
    return tables


async def run_consumer_process(producer: Producer, database_url: str, pause: float,
                               kill_at_batch: int | None) -> list[str]:
    """Run the consumer in a subprocess; SIGKILL it while it sleeps inside batch number `kill_at_batch`."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.common.consumer_process", producer.feed_url, producer.token_url,
        database_url, str(pause), cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(120):
            while line := (await process.stdout.readline()).decode().strip():
                lines.append(line)
                if kill_at_batch is not None and sum(x.startswith("applying") for x in lines) == kill_at_batch:
                    process.kill()
                    break
            code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if kill_at_batch is None:
        assert code == 0 and lines[-1] == "caught up", lines
    else:
        assert code == -9, lines
    return lines


async def test_consumer_killed_mid_batch_neither_loses_nor_double_counts(
        producer: Producer, second_database_url: str) -> None:
    await producer.emit(EVENTS)
    await create_consumer_tables(second_database_url)
    last = await producer.last_seq()

    for kill_at_batch in (3, 2):
        lines = await run_consumer_process(producer, second_database_url, pause=0.4, kill_at_batch=kill_at_batch)
        killed_batch_first_seq = int(lines[-1].split()[1])
        state = await consumer_state(second_database_url)
        # The batch in flight was rolled back with its cursor; the batches before it stayed, each exactly once.
        assert state.position == killed_batch_first_seq - 1
        assert 0 < state.position < last
        assert len(state.applications) == state.position and set(state.applications.values()) == {1}

    await run_consumer_process(producer, second_database_url, pause=0.0, kill_at_batch=None)
    state = await consumer_state(second_database_url)
    assert state.position == last
    assert len(state.applications) == EVENTS
    assert sum(state.applications.values()) == EVENTS, "an event was applied twice"


async def test_two_consumers_on_one_cursor_never_apply_an_event_twice(
        producer: Producer, second_database_url: str) -> None:
    _, applied = await create_consumer_tables(second_database_url)
    cursors = consumer_tables(new_metadata())[0]
    applied_by: dict[int, list[str]] = {0: [], 1: []}
    # Enough batches that both replicas take some: each yields after a batch, so neither can keep the cursor to itself.
    produced = EVENTS * 5
    producing = asyncio.create_task(producer.emit(produced, writers=4))

    async def caught_up() -> bool:
        return (await consumer_state(second_database_url)).position == await producer.last_seq()

    async def consume(replica: int) -> None:
        database = Database(second_database_url, pool_size=2)

        def record(events: list[Event]) -> None:
            applied_by[replica].extend(str(event.id) for event in events)

        async with new_http_client() as client:
            consumer = FeedConsumer(
                feed="producer", url=producer.feed_url, database=database, cursor_table=cursors,
                tokens=ServiceTokenProvider(client, producer.token_url, CLIENT_ID, CLIENT_SECRET, ["events:read"]),
                apply=count_applications(applied, pause=random.uniform(0.005, 0.02), on_written=record),
                batch_size=BATCH_SIZE // 2,
            )
            while True:
                if await consumer.run_once():
                    await asyncio.sleep(random.uniform(0, 0.01))
                    continue
                # Checked in this order: once the producer is done, a caught-up cursor stays caught up.
                if producing.done() and await caught_up():
                    break
                await asyncio.sleep(0.005)
        await database.dispose()

    async with asyncio.timeout(120):
        await asyncio.gather(consume(0), consume(1), producing)

    state = await consumer_state(second_database_url)
    assert len(state.applications) == produced
    assert set(state.applications.values()) == {1}, "an event was applied twice"
    assert applied_by[0] and applied_by[1], "both replicas must have taken batches for the test to mean anything"
    assert not set(applied_by[0]) & set(applied_by[1])


async def test_a_refused_token_is_renewed_and_the_batch_retried_without_loss(
        producer: Producer, second_database_url: str) -> None:
    _, applied = await create_consumer_tables(second_database_url)
    cursors = consumer_tables(new_metadata())[0]
    await producer.emit(BATCH_SIZE * 2)
    database = Database(second_database_url, pool_size=1)
    async with new_http_client() as client:
        consumer = FeedConsumer(
            feed="producer", url=producer.feed_url, database=database, cursor_table=cursors,
            tokens=ServiceTokenProvider(client, producer.token_url, CLIENT_ID, CLIENT_SECRET, ["events:read"]),
            apply=count_applications(applied), batch_size=BATCH_SIZE,
        )
        assert await consumer.run_once() == BATCH_SIZE
        refused = set(producer.issued)
        producer.issued.clear()  # the producer no longer accepts the token (revoked, or its keys rotated)
        # The 401 makes the kit fetch a new token and ask again within the same batch: nothing is lost or skipped.
        assert await consumer.run_once() == BATCH_SIZE
        assert producer.issued and not refused & set(producer.issued)
        assert await consumer.run_once() == 0
    await database.dispose()
    state = await consumer_state(second_database_url)
    assert len(state.applications) == BATCH_SIZE * 2 and set(state.applications.values()) == {1}


async def test_a_replica_finds_the_feed_busy_and_moves_on_instead_of_waiting(
        producer: Producer, second_database_url: str) -> None:
    """While one replica applies a batch (its transaction holds the cursor row), another neither waits for the row
    (past the lock timeout, with a connection held) nor applies anything."""
    _, applied = await create_consumer_tables(second_database_url)
    cursors = consumer_tables(new_metadata())[0]
    await producer.emit(BATCH_SIZE)
    database = Database(second_database_url, pool_size=2, timeouts=DatabaseTimeouts(lock=1.0))
    async with new_http_client() as client:
        consumer = FeedConsumer(
            feed="producer", url=producer.feed_url, database=database, cursor_table=cursors,
            tokens=ServiceTokenProvider(client, producer.token_url, CLIENT_ID, CLIENT_SECRET, ["events:read"]),
            apply=count_applications(applied), batch_size=BATCH_SIZE,
        )
        assert await consumer.run_once() == BATCH_SIZE
        await producer.emit(BATCH_SIZE)
        async with database.sessionmaker() as busy, busy.begin():
            await busy.execute(select(cursors).with_for_update())  # the other replica, mid-batch
            async with asyncio.timeout(30):
                assert await consumer.run_once() == 0
        assert await consumer.run_once() == BATCH_SIZE
    await database.dispose()
    state = await consumer_state(second_database_url)
    assert len(state.applications) == BATCH_SIZE * 2 and set(state.applications.values()) == {1}

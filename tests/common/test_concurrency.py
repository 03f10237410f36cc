"""Concurrency, at the kit level: two requests on the same record at the same moment end with one winner and a clear
answer to the other, within a bounded time; no request hangs and no connection is left waiting or idle in a
transaction. Every pool carries lock, statement and idle-in-transaction timeouts (`DatabaseTimeouts`), and their
expiry answers one way everywhere (`errors._internal_error`): a lock wait or a deadlock is 409 `concurrent-change`
with Retry-After, a statement or transaction that ran too long is 503 with Retry-After.

Each service tests its own write paths (which rows it locks, in which order); these tests pin down what the kit
promises them. The slow side of each race waits on an event the test sets, never on a sleep, so a loaded machine
changes how long a test takes, not what it sees.
"""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Column, Integer, String, Table, select, text

from scripts.stack import ROOT
from services.common.app import create_service_app
from services.common.db import Database, DatabaseTimeouts, DbSession, new_metadata
from services.common.errors import install_error_handlers
from services.common.http import RequestContextMiddleware
from services.common.settings import ServiceSettings

metadata = new_metadata()
counters = Table("counter", metadata, Column("name", String(20), primary_key=True),
                 Column("value", Integer, nullable=False))
# Short enough for a quick test, long enough that a loaded machine does not trip them by accident.
TIMEOUTS = DatabaseTimeouts(lock=0.5, statement=1.0, idle_in_transaction=1.0, pool=1.0)
BOUND = 30.0  # every request here must be answered within this, whatever the machine's load


@dataclass
class Gates:
    """Points where a route stops until the test lets it go on."""

    holding: dict[str, asyncio.Event] = field(default_factory=dict)
    release: dict[str, asyncio.Event] = field(default_factory=dict)

    def pair(self, name: str) -> tuple[asyncio.Event, asyncio.Event]:
        return self.holding.setdefault(name, asyncio.Event()), self.release.setdefault(name, asyncio.Event())


def build_app(database: Database, gates: Gates) -> FastAPI:
    app = FastAPI()
    app.state.db = database
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)

    async def lock(session: DbSession, name: str) -> int:
        row = await session.execute(select(counters.c.value).where(counters.c.name == name).with_for_update())
        return int(row.scalar_one())

    @app.post("/counters/{name}/increment")
    async def increment(name: str, session: DbSession, gate: str | None = None) -> dict[str, int]:
        value = await lock(session, name)
        if gate:  # hold the row until the test says so
            holding, release = gates.pair(gate)
            holding.set()
            await release.wait()
        await session.execute(counters.update().where(counters.c.name == name).values(value=value + 1))
        return {"value": value + 1}

    @app.post("/counters/{first}/and/{second}")
    async def increment_both(first: str, second: str, gate: str, session: DbSession) -> dict[str, str]:
        """Locks `first`, waits until the test lets it go on, then locks `second`."""
        await lock(session, first)
        holding, release = gates.pair(gate)
        holding.set()
        await release.wait()
        await lock(session, second)
        return {"locked": f"{first},{second}"}

    @app.get("/slow")
    async def slow(session: DbSession) -> dict[str, str]:
        await session.execute(text("SELECT pg_sleep(60)"))
        return {"slept": "yes"}

    @app.post("/counters/{name}/idle")
    async def idle(name: str, session: DbSession, gate: str) -> dict[str, str]:
        """Writes, then leaves its transaction idle until the test lets it go on."""
        await lock(session, name)
        holding, release = gates.pair(gate)
        holding.set()
        await release.wait()
        return {"idle": "done"}

    return app


@dataclass
class Harness:
    database: Database
    gates: Gates
    client: httpx.AsyncClient
    database_name: str

    async def value(self, name: str) -> int:
        async with self.database.sessionmaker() as session:
            return int((await session.execute(select(counters.c.value).where(counters.c.name == name))).scalar_one())

    async def stuck_sessions(self) -> list[tuple[str | None, str | None]]:
        """Sessions of this database, other than the asking one, idle in a transaction or waiting for a lock."""
        async with self.database.sessionmaker() as session:
            rows = (await session.execute(text(
                "SELECT state, wait_event_type FROM pg_stat_activity WHERE datname = :name "
                "AND pid <> pg_backend_pid() AND (state LIKE 'idle in transaction%' OR wait_event_type = 'Lock')"),
                {"name": self.database_name})).all()
        return [(row.state, row.wait_event_type) for row in rows]


@pytest.fixture
async def harness(database_url: str) -> AsyncIterator[Harness]:
    database = Database(database_url, pool_size=4, timeouts=TIMEOUTS)
    async with database.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
        await connection.execute(counters.insert(), [{"name": n, "value": 0} for n in ("a", "b")])
    gates = Gates()
    transport = httpx.ASGITransport(app=build_app(database, gates), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield Harness(database, gates, client, database_url.rsplit("/", 1)[1])
    for event in gates.release.values():
        event.set()
    await database.dispose()


def assert_problem(response: httpx.Response, status: int, kind: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith(f"/{kind}")
    assert int(response.headers["retry-after"]) > 0


async def test_the_second_of_two_identical_requests_gives_up_waiting_with_409(harness: Harness) -> None:
    holding, release = harness.gates.pair("first")
    first = asyncio.create_task(harness.client.post("/counters/a/increment", params={"gate": "first"}))
    async with asyncio.timeout(BOUND):
        await holding.wait()
        # The first still holds the row, and goes on holding it until this answer is in.
        second = await harness.client.post("/counters/a/increment")
    assert_problem(second, 409, "concurrent-change")
    assert not first.done()
    release.set()
    async with asyncio.timeout(BOUND):
        assert (await first).json() == {"value": 1}
    assert await harness.value("a") == 1  # one winner; the refused request wrote nothing
    assert await harness.stuck_sessions() == []
    assert harness.database.engine.pool.checkedout() == 0


async def test_a_deadlock_between_two_requests_leaves_one_winner_and_a_409(harness: Harness) -> None:
    # Locks taken in opposite orders: PostgreSQL picks a victim. The deadlock check runs after deadlock_timeout
    # (1 s by default), so this pool waits longer than that for a lock.
    database = Database(harness.database.engine.url.render_as_string(hide_password=False), pool_size=4,
                        timeouts=DatabaseTimeouts(lock=20.0, statement=25.0, idle_in_transaction=25.0, pool=5.0))
    gates = Gates()
    transport = httpx.ASGITransport(app=build_app(database, gates), raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client, asyncio.timeout(BOUND):
            one = asyncio.create_task(client.post("/counters/a/and/b", params={"gate": "one"}))
            two = asyncio.create_task(client.post("/counters/b/and/a", params={"gate": "two"}))
            await gates.pair("one")[0].wait()
            await gates.pair("two")[0].wait()
            gates.pair("one")[1].set()
            gates.pair("two")[1].set()
            answers = sorted([(await one).status_code, (await two).status_code])
            loser = next(r for r in (one.result(), two.result()) if r.status_code != 200)
        assert answers == [200, 409]
        assert_problem(loser, 409, "concurrent-change")
        assert await harness.stuck_sessions() == []
    finally:
        await database.dispose()


async def test_a_statement_past_the_statement_timeout_is_cancelled_with_503(harness: Harness) -> None:
    async with asyncio.timeout(BOUND):
        response = await harness.client.get("/slow")
    assert_problem(response, 503, "service-unavailable")
    assert await harness.stuck_sessions() == []
    assert harness.database.engine.pool.checkedout() == 0


async def test_a_transaction_left_idle_is_ended_by_the_server_and_answers_503(harness: Harness) -> None:
    holding, release = harness.gates.pair("idle")
    idle = asyncio.create_task(harness.client.post("/counters/a/idle", params={"gate": "idle"}))
    async with asyncio.timeout(BOUND):
        await holding.wait()

        async def ended() -> bool:
            return await harness.stuck_sessions() == []

        while not await ended():  # the server ends the idle session after its timeout (1 s here)
            await asyncio.sleep(0.1)
        # Meanwhile the row it held is free again: another request takes it at once.
        assert (await harness.client.post("/counters/a/increment")).json() == {"value": 1}
        release.set()
        assert_problem(await idle, 503, "service-unavailable")
    assert harness.database.engine.pool.checkedout() == 0
    # The pool throws the dead connection away: the next request works.
    async with asyncio.timeout(BOUND):
        assert (await harness.client.post("/counters/a/increment")).json() == {"value": 2}


async def test_a_request_that_waits_for_a_full_pool_gets_503_in_bounded_time(harness: Harness) -> None:
    # Two connections, both held by requests that wait on the test; idle transactions may last.
    database = Database(harness.database.engine.url.render_as_string(hide_password=False), pool_size=2,
                        timeouts=DatabaseTimeouts(lock=5.0, statement=25.0, idle_in_transaction=25.0, pool=0.5))
    gates = Gates()
    transport = httpx.ASGITransport(app=build_app(database, gates), raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client, asyncio.timeout(BOUND):
            held = [asyncio.create_task(client.post(f"/counters/{name}/idle", params={"gate": name}))
                    for name in ("a", "b")]
            for name in ("a", "b"):
                await gates.pair(name)[0].wait()
            assert_problem(await client.get("/slow"), 503, "service-unavailable")
            for name in ("a", "b"):
                gates.pair(name)[1].set()
            assert [(await task).status_code for task in held] == [200, 200]
        assert database.engine.pool.checkedout() == 0
    finally:
        await database.dispose()


async def test_every_service_pool_carries_the_timeouts_of_its_settings(database_url: str) -> None:
    settings = ServiceSettings(database_url=database_url, database_lock_timeout_seconds=2.5,
                               database_statement_timeout_seconds=40, database_idle_in_transaction_timeout_seconds=90)
    app = create_service_app(name="timeouts", title="Timeouts", description="", settings=settings,
                             migrations_dir=ROOT / "services" / "cases" / "migrations", routers=[])
    async with app.router.lifespan_context(app):
        database: Database = app.state.db
        async with database.sessionmaker() as session:
            shown = {name: (await session.execute(text(f"SHOW {name}"))).scalar_one()
                     for name in ("lock_timeout", "statement_timeout", "idle_in_transaction_session_timeout")}
    assert shown == {"lock_timeout": "2500ms", "statement_timeout": "40s", "idle_in_transaction_session_timeout": "90s"}

"""One unit of work per request: commit after the handler returns and before the response, rollback on error."""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

import httpx
import pytest
from fastapi import FastAPI, Request
from pydantic import BaseModel
from sqlalchemy import Column, Integer, String, Table, UniqueConstraint, event, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import registry
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.audit import AuditLog
from services.common.auth import Jurisdiction, Subject
from services.common.db import Database, DbSession, new_metadata, pending_inserts, take_pending_rows
from services.common.errors import Conflict, install_error_handlers
from services.common.http import RequestContextMiddleware
from services.common.outbox import Outbox
from services.common.permissions import Agency, Role
from tests.helpers import eventually

metadata = new_metadata()
outbox = Outbox(metadata, source="test")
audit = AuditLog(metadata)
SUBJECT = Subject(id="officer-1", role=Role.CHILD_PROTECTION_OFFICER, agency=Agency.PEOPLES_COMMITTEE,
                  jurisdiction=Jurisdiction(level="commune", province="01", commune="00070"), token_id="t")
items = Table(
    "item", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token", String(40), nullable=False),
    # Checked at commit, so a request can fail after its handler returned.
    UniqueConstraint("token", name="uq_item_token", deferrable=True, initially="DEFERRED"),
)


# An item whose token is its key, for a write that inserts nothing when the key exists (ON CONFLICT DO NOTHING).
keyed_items = Table("keyed_item", metadata, Column("token", String(40), primary_key=True))


class KeyedItem:
    token: str


registry().map_imperatively(KeyedItem, keyed_items)


class ItemCreate(BaseModel):
    token: str
    fail: Literal["never", "unexpected", "app_error", "connection_lost"] = "never"


@dataclass
class CommitProbe:
    """ASGI wrapper: when the response starts, asks the database from another connection what is committed."""

    app: ASGIApp
    database: Database | None = None
    committed_at_response_start: list[int] = field(default_factory=list)
    held_at_response_start: list[int] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def probing_send(message: Message) -> None:
            if message["type"] == "http.response.start" and self.database is not None:
                self.held_at_response_start.append(self.database.engine.pool.checkedout())
                async with self.database.engine.connect() as connection:
                    self.committed_at_response_start.append(
                        (await connection.execute(select(func.count()).select_from(items))).scalar_one())
            await send(message)

        await self.app(scope, receive, probing_send)


def build_app(database: Database) -> FastAPI:
    app = FastAPI()
    app.state.db = database
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)

    @app.post("/items", status_code=201)
    async def create_item(body: ItemCreate, session: DbSession) -> dict[str, str]:
        await session.execute(items.insert().values(token=body.token))
        outbox.emit(session, "test.item_created", {"token": body.token}, agency="test")
        await session.flush()
        if body.fail == "unexpected":
            raise RuntimeError("boom after writing")
        if body.fail == "app_error":
            raise Conflict("refused after writing")
        if body.fail == "connection_lost":
            # The server ends this very connection, as a PostgreSQL restart does mid-request.
            await session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        return {"token": body.token}

    @app.get("/outside-the-unit-of-work")
    async def outside(request: Request) -> dict[str, int]:
        # Code with its own session (a key cache reloading, a background check) meets the same lost database.
        async with database.sessionmaker() as session:
            await session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        return {"reached": 1}

    return app


@dataclass
class Harness:
    database: Database
    probe: CommitProbe
    client: httpx.AsyncClient

    async def stored(self) -> tuple[list[str], list[str]]:
        async with self.database.sessionmaker() as session:
            tokens = list((await session.execute(select(items.c.token).order_by(items.c.id))).scalars())
            events = list((await session.execute(select(outbox.table.c.payload["token"].astext)
                                                 .order_by(outbox.table.c.seq))).scalars())
        return tokens, events


@pytest.fixture
async def harness(database_url: str) -> AsyncIterator[Harness]:
    database = Database(database_url, pool_size=2, outbox=outbox)
    async with database.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    probe = CommitProbe(build_app(database))
    probe.database = database
    transport = httpx.ASGITransport(app=probe, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield Harness(database, probe, client)
    await database.dispose()


async def test_success_is_answered_only_after_the_commit(harness: Harness) -> None:
    response = await harness.client.post("/items", json={"token": "first"})
    assert response.status_code == 201
    assert harness.probe.committed_at_response_start == [1], "the 201 started before the row was committed"
    assert harness.probe.held_at_response_start == [0]
    assert await harness.stored() == (["first"], ["first"])


@pytest.mark.parametrize(("fail", "status"), [("unexpected", 500), ("app_error", 409)])
async def test_a_request_that_fails_after_writing_leaves_nothing_behind(
        harness: Harness, fail: str, status: int) -> None:
    response = await harness.client.post("/items", json={"token": "doomed", "fail": fail})
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await harness.stored() == ([], [])
    assert harness.probe.held_at_response_start == [0], "the error was answered before the rollback"


async def test_a_failed_commit_is_never_answered_as_success(harness: Harness) -> None:
    assert (await harness.client.post("/items", json={"token": "twice"})).status_code == 201
    # The duplicate passes the handler (the constraint is deferred) and fails at commit time.
    response = await harness.client.post("/items", json={"token": "twice"})
    assert response.status_code == 409
    assert response.json()["type"].endswith("/concurrent-change")
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await harness.stored() == (["twice"], ["twice"])
    assert harness.probe.held_at_response_start == [0, 0]


async def test_a_connection_lost_inside_the_handler_is_a_503_and_leaves_nothing(harness: Harness) -> None:
    # Before the unit of work saw the handler's own exception, this answered 500 (the CI flake of the fault test).
    response = await harness.client.post("/items", json={"token": "cut", "fail": "connection_lost"})
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["retry-after"] == "2"
    assert await harness.stored() == ([], [])
    assert harness.probe.held_at_response_start == [0]


async def test_a_connection_lost_outside_the_unit_of_work_is_a_503_too(harness: Harness) -> None:
    response = await harness.client.get("/outside-the-unit-of-work")
    assert response.status_code == 503
    assert response.json()["type"].endswith("/service-unavailable")


async def test_audit_lines_and_events_go_with_the_commit_in_one_statement(database_url: str) -> None:
    """Round trips are most of what a small request costs: the side rows of a unit of work (its audit lines and its
    events) are one statement at the commit, not one per table, and the pool does not ping on every checkout."""
    database = Database(database_url, pool_size=1, outbox=outbox)
    statements: list[str] = []
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        event.listen(database.engine.sync_engine, "before_cursor_execute",
                     lambda _c, _cur, statement, *_: statements.append(statement))
        async with database.unit_of_work() as session:
            await session.execute(items.insert().values(token="one"))
            await audit.record(session, SUBJECT, "create", "item", "one")
            outbox.emit(session, "test.item_created", {"token": "one"}, agency="test")
        assert len(statements) == 2, statements  # the item; then the audit line and the event together
        async with database.sessionmaker() as session:
            assert (await session.execute(select(func.count()).select_from(audit.table))).scalar_one() == 1
            assert (await session.execute(select(func.count()).select_from(outbox.table))).scalar_one() == 1
    finally:
        await database.dispose()


async def test_a_one_statement_unit_of_work_is_one_round_trip_with_its_side_rows_or_nothing(
        database_url: str) -> None:
    """The hot path's unit of work: its write carries its audit line and event in the same statement, guarded by
    the row it inserts, and runs without BEGIN and COMMIT. A write that inserts nothing (a known key) brings no side
    rows."""
    database = Database(database_url, pool_size=1, outbox=outbox)
    statements: list[str] = []  # what SQLAlchemy executes
    sent: list[str] = []  # what the driver sends as plain queries: BEGIN and COMMIT, the driver's own lookups
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        async with database.engine.connect() as connection:  # the pool's one connection
            driver = (await connection.get_raw_connection()).driver_connection
            driver.add_query_logger(lambda record: sent.append(record.query.strip().upper()))
        event.listen(database.engine.sync_engine, "before_cursor_execute",
                     lambda _c, _cur, statement, *_: statements.append(statement))

        async def create(token: str) -> bool:
            async with database.one_statement() as session:
                await audit.record(session, SUBJECT, "create", "item", token)
                outbox.emit(session, "test.item_created", {"token": token}, agency="test")
                pending = take_pending_rows(session)
                assert pending is not None
                new_item = (pg_insert(keyed_items).values(token=token).on_conflict_do_nothing()
                            .returning(keyed_items.c.token).cte("new_item"))
                statement = select(new_item.c.token)
                for index, rows in enumerate(pending_inserts(pending.shape, new_item)):
                    statement = statement.add_cte(rows.cte(f"side_{index}"))
                return (await session.execute(statement, pending.params)).scalar_one_or_none() is not None

        assert await create("one")  # the driver looks up the array types once, on first use
        sent.clear()
        statements.clear()
        assert await create("two")
        assert len(statements) == 1 and sent == [], (statements, sent)  # the statement alone: no BEGIN, no COMMIT
        assert not await create("two")  # the key exists: nothing, and nothing comes with nothing
        assert len(statements) == 2 and sent == [], (statements, sent)
        async with database.unit_of_work() as session:  # the control: an ordinary unit of work is a transaction
            await session.execute(select(func.count()).select_from(keyed_items))
        assert any(query.startswith("BEGIN") for query in sent) and "COMMIT;" in sent, sent
        # Objects would be flushed in as many statements, each its own transaction: refused, even on an autoflush.
        with pytest.raises(RuntimeError):
            async with database.one_statement() as session:
                item = KeyedItem()
                item.token = "flushed"
                session.add(item)
                await session.execute(select(func.count()).select_from(keyed_items))
        async with database.sessionmaker() as session:
            assert (await session.execute(select(func.count()).select_from(keyed_items))).scalar_one() == 2
            assert (await session.execute(select(func.count()).select_from(audit.table))).scalar_one() == 2
            assert (await session.execute(select(func.count()).select_from(outbox.table))).scalar_one() == 2
    finally:
        await database.dispose()


async def test_side_rows_are_never_lost_nor_left_over_however_the_session_ends(database_url: str) -> None:
    database = Database(database_url, pool_size=1)  # no outbox handed over: its events are written all the same
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        async with database.sessionmaker() as session:
            # A path outside the unit of work that commits by itself (a background job) writes them too.
            await session.execute(items.insert().values(token="kept"))
            outbox.emit(session, "test.item_created", {"token": "kept"}, agency="test")
            await session.commit()
            # Rolled back with the change they describe, and not written by the next commit of the same session.
            await session.execute(items.insert().values(token="dropped"))
            outbox.emit(session, "test.item_created", {"token": "dropped"}, agency="test")
            await audit.record(session, SUBJECT, "create", "item", "dropped")
            await session.rollback()
            await session.execute(items.insert().values(token="later"))
            await session.commit()
        async with database.sessionmaker() as session:
            tokens = set((await session.execute(select(items.c.token))).scalars())
            events = list((await session.execute(select(outbox.table.c.payload["token"].astext))).scalars())
            lines = (await session.execute(select(func.count()).select_from(audit.table))).scalar_one()
        assert tokens == {"kept", "later"} and events == ["kept"] and lines == 0
    finally:
        await database.dispose()


async def test_a_connection_the_server_ended_is_replaced_before_a_request_uses_it(database_url: str) -> None:
    database = Database(database_url, pool_size=1)
    try:
        async with database.engine.connect() as connection:
            pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            pooled = (await connection.get_raw_connection()).driver_connection
        admin = Database(database_url, pool_size=1)
        async with admin.engine.connect() as other:  # as an operator or a restart would
            await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await admin.dispose()

        async def noticed() -> bool:  # the driver learns of it from its socket, without a round trip
            return bool(pooled.is_closed())

        await eventually(noticed)
        async with database.unit_of_work() as session:  # no 503: the pool hands out a new connection
            assert (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one() != pid
    finally:
        await database.dispose()

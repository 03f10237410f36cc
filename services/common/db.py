"""The async engine on asyncpg and one unit of work per request.

Services `flush()`, never `commit()`: the request's session dependency commits once the handler has returned,
before the response is sent, and rolls back on any error. The rows a unit of work adds on the side, its audit lines
and its events, wait in the session (`add_pending_rows`) and go to the database with the commit, all in one
statement: a request then pays four round trips (BEGIN, its own statement, the side rows, COMMIT), not one more per
table. Any commit of a session of this kit writes them, also one that bypasses the unit of work; a rollback drops
them. A unit of work whose write is a single statement (intake) can carry them in that statement and run it without
BEGIN and COMMIT (`Database.one_statement`): one round trip.

Every connection of every pool carries bounds (`DatabaseTimeouts`), so no request hangs and no connection is left
waiting or idle in a transaction: a request that waits too long for a row another request holds gives up (409,
`concurrent-change`: read again and retry), a statement that runs too long is cancelled (503 with Retry-After), and
a transaction left idle is ended by the server. The answers are given in one place, `errors._internal_error`.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import (
    ARRAY,
    Executable,
    FromClause,
    Insert,
    MetaData,
    Table,
    bindparam,
    event,
    func,
    insert,
    select,
    true,
)
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from services.common.errors import connection_lost, database_unavailable

if TYPE_CHECKING:
    from services.common.outbox import Outbox

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


PENDING_ROWS = "pending_rows"
ONE_STATEMENT = "one_statement"  # session.info key of a session of `Database.one_statement`
Rows = dict[Table, list[dict[str, Any]]]


def add_pending_rows(session: AsyncSession | Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Rows to insert with this session's commit (every row of one table with the same keys)."""
    session.info.setdefault(PENDING_ROWS, {}).setdefault(table, []).extend(rows)


Shape = tuple[tuple[Table, tuple[str, ...]], ...]


@dataclass(frozen=True)
class PendingRows:
    """A session's pending rows, taken out of it: their `shape` (tables and columns, which names the statement that
    inserts them, see `pending_inserts`) and that statement's parameters (one array per column)."""

    shape: Shape
    params: dict[str, Any]


def take_pending_rows(session: AsyncSession | Session) -> PendingRows | None:
    """Take the session's pending rows out of it, for a statement of the caller's that writes them itself."""
    pending: Rows = session.info.pop(PENDING_ROWS, {})
    if not pending:
        return None
    shape = tuple((table, tuple(rows[0])) for table, rows in pending.items())
    params = {f"t{t}_{column}": [row[column] for row in rows]
              for t, rows in enumerate(pending.values()) for column in rows[0]}
    return PendingRows(shape, params)


@lru_cache(maxsize=64)
def pending_inserts(shape: Shape, guard: FromClause | None = None) -> tuple[Insert, ...]:
    """One INSERT per table of `shape`: one array per column, unnested into rows. Its text depends on the tables and
    columns only, not on how many rows there are, so SQLAlchemy compiles it once and PostgreSQL keeps it prepared.

    With `guard` (a CTE of the caller's statement, say the row it inserted), the rows are inserted only if the guard
    yields a row: its audit line and events come with the caller's write, and nothing comes with nothing."""

    def rows_of(t: int, table: Table, columns: tuple[str, ...]) -> Insert:
        arrays = [bindparam(f"t{t}_{c}", type_=ARRAY(table.c[c].type)) for c in columns]
        source = func.unnest(*arrays).table_valued(*columns).render_derived()
        rows = select(*(source.c[c] for c in columns))
        if guard is not None:
            rows = rows.select_from(guard.join(source, true()))
        return insert(table).from_select(list(columns), rows)

    return tuple(rows_of(t, table, columns) for t, (table, columns) in enumerate(shape))


def _take_pending(session: AsyncSession | Session) -> tuple[Executable, dict[str, Any]] | None:
    if (pending := take_pending_rows(session)) is None:
        return None
    return _insert_statement(pending.shape), pending.params


@lru_cache(maxsize=64)
def _insert_statement(shape: Shape) -> Executable:
    """One statement inserting every pending row: the first tables as data-modifying CTEs of the last one's INSERT."""
    *earlier, last = pending_inserts(shape)
    statement = last
    for t, table_insert in enumerate(earlier):
        statement = statement.add_cte(table_insert.cte(f"w{t}"))
    return statement


async def write_pending_rows(session: AsyncSession) -> None:
    """Write the pending rows now (the commit does it otherwise)."""
    if (pending := _take_pending(session)) is not None:
        await session.execute(*pending)


class UnitOfWorkSession(Session):
    """The sessions of this kit: pending rows are written by whatever commits them, and dropped by a rollback."""


@event.listens_for(UnitOfWorkSession, "before_commit")
def _write_pending_at_commit(session: Session) -> None:
    if (pending := _take_pending(session)) is not None:
        session.execute(*pending)


@event.listens_for(UnitOfWorkSession, "before_flush")
def _refuse_flush_in_one_statement(session: Session, *_: Any) -> None:
    if session.info.get(ONE_STATEMENT):
        raise RuntimeError("a one-statement unit of work writes through its statement only, not through objects")


@event.listens_for(UnitOfWorkSession, "after_rollback")
def _drop_pending_at_rollback(session: Session) -> None:
    session.info.pop(PENDING_ROWS, None)


def _replace_closed(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry,
                    proxy: PoolProxiedConnection) -> None:
    """A connection the server ended (a restart, an idle-in-transaction timeout) is known to the driver as soon as
    it happens: the pool replaces it at checkout. This costs nothing, where `pool_pre_ping` costs three round trips
    on every checkout (BEGIN, a query, ROLLBACK); a connection that dies unnoticed fails its request with 503 once,
    and the pool then replaces every connection older than that failure."""
    if proxy.driver_connection is None or proxy.driver_connection.is_closed():
        raise DisconnectionError("the server closed this connection")


@dataclass(frozen=True)
class DatabaseTimeouts:
    """How long one unit of work may wait for or hold the database, in seconds."""

    lock: float = 5.0  # waiting for a row or table lock another transaction holds (lock_timeout)
    statement: float = 30.0  # one statement (statement_timeout); longer work goes in batches
    idle_in_transaction: float = 60.0  # a transaction open with nothing running: the server ends the session
    pool: float = 10.0  # waiting for a free connection of the pool

    def server_settings(self) -> dict[str, str]:
        milliseconds = {"lock_timeout": self.lock, "statement_timeout": self.statement,
                        "idle_in_transaction_session_timeout": self.idle_in_transaction}
        return {name: str(max(1, round(seconds * 1000))) for name, seconds in milliseconds.items()}


class Database:
    def __init__(self, url: str, *, pool_size: int = 10, outbox: "Outbox | None" = None,
                 timeouts: DatabaseTimeouts = DatabaseTimeouts()):
        self.timeouts = timeouts
        self.engine: AsyncEngine = create_async_engine(
            # A fixed pool: connections beyond it would be opened for a burst and closed right after (a backend
            # start, the driver's setup), which costs more CPU than waiting a moment for a free one.
            url, pool_size=pool_size, max_overflow=0, pool_recycle=1800, pool_timeout=timeouts.pool,
            # Set at connect, so they hold for every statement of every session of this pool. The client-side
            # bound is a little longer than the server's: it only ends a wait on a connection that stopped answering.
            connect_args={"server_settings": timeouts.server_settings(), "command_timeout": timeouts.statement + 5},
        )
        event.listen(self.engine.sync_engine, "checkout", _replace_closed)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=True,
                                               sync_session_class=UnitOfWorkSession)
        self.outbox = outbox

    async def commit(self, session: AsyncSession) -> None:
        # The pending rows go first, as their own statement: a failure there (a unique violation, say) is reported
        # as itself rather than as a failed commit.
        if self.outbox is not None:
            await self.outbox.write_pending(session)
        else:
            await write_pending_rows(session)
        await session.commit()

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[AsyncSession]:
        """A session committed when the block ends and rolled back if it raises.

        A context manager rather than a bare generator: the exception a handler raises reaches the `except` below
        as itself (a lost connection then answers 503), where a generator closed by `aclosing` saw only
        GeneratorExit and let the original error through as a 500.
        """
        async with self._unit() as session:
            yield session

    @asynccontextmanager
    async def one_statement(self) -> AsyncIterator[AsyncSession]:
        """A unit of work whose write is one statement, run by the server as its own transaction (autocommit): no
        BEGIN and no COMMIT around it, one round trip instead of three, on the hottest path (intake). The statement
        carries the session's pending rows itself (`take_pending_rows`, `pending_inserts`), so the write, its audit
        line and its events still land together or not at all.

        Reads may come before or after it, each in its own snapshot. Pending rows added after the statement (the
        audit line of a read) are written at the end, in a statement of their own. Objects added to the session
        are refused: their flush could take several statements, each its own transaction."""
        async with self._unit({"isolation_level": "AUTOCOMMIT"}) as session:
            session.info[ONE_STATEMENT] = True
            yield session

    @asynccontextmanager
    async def _unit(self, execution_options: dict[str, Any] | None = None) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as session:
            try:
                # Take the connection now: a database that is down or restarting answers 503, not a 500 later.
                await session.connection(execution_options=execution_options)
            except (OSError, DBAPIError) as exc:
                raise database_unavailable() from exc
            try:
                yield session
                await self.commit(session)
            except BaseException as exc:
                lost = connection_lost(exc)
                try:
                    await session.rollback()
                except (OSError, DBAPIError):
                    if not lost:
                        raise
                if lost:
                    raise database_unavailable() from exc
                raise

    async def dispose(self) -> None:
        await self.engine.dispose()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    database: Database = request.app.state.db
    # FastAPI throws the handler's exception in at this `yield`: the unit of work sees it, rolls back, and turns a
    # lost connection into a 503 before the error response is written.
    async with database.unit_of_work() as session:
        yield session


async def get_statement_session(request: Request) -> AsyncIterator[AsyncSession]:
    database: Database = request.app.state.db
    async with database.one_statement() as session:
        yield session


# scope="function": the commit runs when the handler returns, so a 2xx is only sent for committed work.
DbSession = Annotated[AsyncSession, Depends(get_session, scope="function")]
# A route whose write is one statement (`Database.one_statement`).
DbStatementSession = Annotated[AsyncSession, Depends(get_statement_session, scope="function")]

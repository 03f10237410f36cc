"""The async engine on asyncpg and one unit of work per request.

Services `flush()`, never `commit()`: the request's session dependency writes pending outbox events and commits
once the handler has returned, before the response is sent, and rolls back on any error.

Every connection of every pool carries bounds (`DatabaseTimeouts`), so no request hangs and no connection is left
waiting or idle in a transaction: a request that waits too long for a row another request holds gives up (409,
`concurrent-change`: read again and retry), a statement that runs too long is cancelled (503 with Retry-After), and
a transaction left idle is ended by the server. The answers are given in one place, `errors._internal_error`.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy import MetaData
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

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
            url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, pool_recycle=1800,
            pool_timeout=timeouts.pool,
            # Set at connect, so they hold for every statement of every session of this pool. The client-side
            # bound is a little longer than the server's: it only ends a wait on a connection that stopped answering.
            connect_args={"server_settings": timeouts.server_settings(), "command_timeout": timeouts.statement + 5},
        )
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=True)
        self.outbox = outbox

    async def commit(self, session: AsyncSession) -> None:
        if self.outbox is not None:
            await self.outbox.write_pending(session)
        elif session.info.get("outbox"):
            # Committing would silently drop the events: the service forgot to give its outbox to the database.
            raise RuntimeError("events were emitted in a unit of work whose database has no outbox")
        await session.commit()

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[AsyncSession]:
        """A session committed when the block ends and rolled back if it raises.

        A context manager rather than a bare generator: the exception a handler raises reaches the `except` below
        as itself (a lost connection then answers 503), where a generator closed by `aclosing` saw only
        GeneratorExit and let the original error through as a 500.
        """
        async with self.sessionmaker() as session:
            try:
                # Take the connection now: a database that is down or restarting answers 503, not a 500 later.
                await session.connection()
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


# scope="function": the commit runs when the handler returns, so a 2xx is only sent for committed work.
DbSession = Annotated[AsyncSession, Depends(get_session, scope="function")]

"""The async engine on asyncpg and one unit of work per request.

Services `flush()`, never `commit()`: the request's session dependency writes pending outbox events and commits
once the handler has returned, before the response is sent, and rolls back on any error.
"""

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy import MetaData
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from services.common.errors import ServiceUnavailable

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


class Database:
    def __init__(self, url: str, *, pool_size: int = 10, outbox: "Outbox | None" = None):
        self.engine: AsyncEngine = create_async_engine(
            url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, pool_recycle=1800
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

    async def unit_of_work(self) -> AsyncIterator[AsyncSession]:
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


def connection_lost(exc: BaseException) -> bool:
    """The database went away under a request (a crash, a restart, a broken network), as opposed to a bad query."""
    if isinstance(exc, OSError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
    return bool(exc.connection_invalidated) or sqlstate.startswith(("08", "57P"))


def database_unavailable() -> ServiceUnavailable:
    return ServiceUnavailable("the database is unavailable; retry shortly", headers={"Retry-After": "2"})


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    database: Database = request.app.state.db
    # aclosing: an error raised in the handler leaves `async for` without resuming the unit of work, which would
    # then roll back only when garbage-collected, after the error response, still holding its connection.
    async with aclosing(database.unit_of_work()) as work:
        async for session in work:
            yield session


# scope="function": the commit runs when the handler returns, so a 2xx is only sent for committed work.
DbSession = Annotated[AsyncSession, Depends(get_session, scope="function")]

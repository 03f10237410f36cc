"""Consuming another service's event feed, exactly once.

The consumer's cursor lives in its own database and is updated in the same transaction as whatever it derives
from the events, with the cursor row locked: a crash mid-batch rolls both back, and two replicas never apply the
same batch twice.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime

import httpx
from sqlalchemy import BigInteger, Column, DateTime, MetaData, String, Table, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.clients import ServiceTokenProvider
from services.common.clock import utcnow
from services.common.db import Database
from services.common.errors import ServiceUnavailable
from services.common.logging import get_logger
from services.common.metrics import FEED_LAG_SECONDS, FEED_POSITION
from services.common.outbox import Event, EventPage

logger = get_logger("consumer")
ApplyEvents = Callable[[AsyncSession, list[Event]], Awaitable[None]]


def feed_cursor_table(metadata: MetaData) -> Table:
    return Table(
        "feed_cursor",
        metadata,
        Column("feed", String(50), primary_key=True),
        Column("position", BigInteger, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    )


PAGE_LIMIT = 1000  # the most events a producer's feed answers in one page (services/common/feed.py)


class FeedConsumer:
    """Applies a feed in batches of up to `batch_size` events, one transaction each; a batch larger than a page is
    read in several pages. With `read_ahead`, the next page is fetched while a batch is being applied (it is used
    only if the cursor is where it was asked from), so a consumer catching up never waits for the network and the
    database one after the other."""

    def __init__(self, *, feed: str, url: str, database: Database, cursor_table: Table,
                 tokens: ServiceTokenProvider, apply: ApplyEvents,
                 batch_size: int = 500, idle_seconds: float = 1.0, read_ahead: bool = False,
                 page_size: int = PAGE_LIMIT):
        self.feed, self.url, self.database, self.cursors = feed, url, database, cursor_table
        self.tokens, self.apply = tokens, apply
        self.batch_size, self.idle_seconds = batch_size, idle_seconds
        self.page_size = min(batch_size, page_size, PAGE_LIMIT)
        self.read_ahead = read_ahead
        self._ahead: tuple[int, asyncio.Task[EventPage]] | None = None
        self.last_success: datetime | None = None
        self.caught_up = False  # the last batch read everything the producer had

    async def _lock_cursor(self, session: AsyncSession) -> int | None:
        """The cursor, locked until this transaction ends; None while another replica is applying a batch of this
        feed (it holds the row): waiting for it would only hold a connection, and could outlast the lock timeout."""
        await session.execute(
            insert(self.cursors)
            .values(feed=self.feed, position=0, updated_at=utcnow())
            .on_conflict_do_nothing(index_elements=["feed"])
        )
        row = await session.execute(
            select(self.cursors.c.position).where(self.cursors.c.feed == self.feed).with_for_update(skip_locked=True)
        )
        position = row.scalar_one_or_none()
        return None if position is None else int(position)

    async def fetch(self, after: int) -> EventPage:
        response = await self.tokens.request("GET", self.url, params={"after": after, "limit": self.page_size})
        response.raise_for_status()
        # Parsed and validated in one step by pydantic-core: catching up spent a fifth of its time in json.loads
        # and validating the parsed dicts.
        return EventPage.model_validate_json(response.content)

    async def _page(self, after: int) -> EventPage:
        """The page after `after`: the one read ahead when it was read from there, else fetched now."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            position, task = ahead
            if position == after:
                with contextlib.suppress(httpx.HTTPError, OSError, ValueError):
                    return await task
            else:
                task.cancel()
        return await self.fetch(after)

    def _read_ahead(self, after: int) -> None:
        if self.read_ahead:
            self._ahead = (after, asyncio.create_task(self.fetch(after)))

    def stop_reading_ahead(self) -> None:
        if self._ahead is not None:
            self._ahead[1].cancel()
            self._ahead = None

    async def run_once(self) -> int:
        """Apply one batch. Returns how many events were applied."""
        async with self.database.sessionmaker() as session, session.begin():
            position = await self._lock_cursor(session)
            if position is None:
                return 0
            events: list[Event] = []
            cursor, has_more = position, True
            while has_more and len(events) < self.batch_size:
                page = await self._page(cursor)
                events.extend(page.events)
                cursor, has_more = page.next_cursor, page.has_more and bool(page.events)
            if has_more:
                self._read_ahead(cursor)
            if events:
                await self.apply(session, events)
            await session.execute(
                self.cursors.update()
                .where(self.cursors.c.feed == self.feed)
                .values(position=cursor, updated_at=utcnow())
            )
        self.last_success, self.caught_up = utcnow(), not has_more
        FEED_POSITION.labels(self.feed).set(cursor)
        behind = (self.last_success - events[-1].occurred_at).total_seconds() if has_more else 0.0
        FEED_LAG_SECONDS.labels(self.feed).set(behind)
        return len(events)

    async def run_forever(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    applied = await self.run_once()
                except (httpx.HTTPError, OSError, ServiceUnavailable, DBAPIError) as exc:
                    logger.warning("feed unavailable", extra={"feed": self.feed, "error_type": type(exc).__name__})
                    applied = 0
                    await _sleep_or_stop(stop, 2.0)
                except Exception:
                    logger.exception("feed batch failed", extra={"feed": self.feed})
                    applied = 0
                    await _sleep_or_stop(stop, 2.0)
                if applied < self.batch_size:
                    await _sleep_or_stop(stop, self.idle_seconds)
        finally:
            self.stop_reading_ahead()


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)

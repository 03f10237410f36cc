"""A feed consumer in its own process, so that a test can SIGKILL it in the middle of a batch.

Run as `python -m tests.common.consumer_process FEED_URL TOKEN_URL DATABASE_URL PAUSE`. It applies batches until the
feed has nothing more, printing `applying <first seq> <last seq>` (flushed) once a batch's rows are written but not
yet committed, then pausing for PAUSE seconds inside that transaction.
"""

import asyncio
import sys
from collections.abc import Callable

from sqlalchemy import Column, Integer, MetaData, Table
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.clients import ServiceTokenProvider
from services.common.consumer import ApplyEvents, FeedConsumer, feed_cursor_table
from services.common.db import Database, new_metadata
from services.common.http import new_http_client
from services.common.outbox import Event

BATCH_SIZE = 10
CLIENT_ID, CLIENT_SECRET = "consumer-test", "consumer-test-secret"


def consumer_tables(metadata: MetaData) -> tuple[Table, Table]:
    """The consumer's derived data: how many times each event was applied (exactly once means 1 for each)."""
    applied = Table("applied_event", metadata, Column("event_id", UUID(as_uuid=True), primary_key=True),
                    Column("times", Integer, nullable=False))
    return feed_cursor_table(metadata), applied


def count_applications(applied: Table, pause: float = 0.0,
                       on_written: Callable[[list[Event]], None] | None = None) -> ApplyEvents:
    async def apply(session: AsyncSession, events: list[Event]) -> None:
        for event in events:
            statement = insert(applied).values(event_id=event.id, times=1)
            await session.execute(statement.on_conflict_do_update(
                index_elements=[applied.c.event_id], set_={"times": applied.c.times + 1}))
        if on_written is not None:
            on_written(events)
        if pause:
            await asyncio.sleep(pause)

    return apply


async def main(feed_url: str, token_url: str, database_url: str, pause: float) -> None:
    metadata = new_metadata()
    cursors, applied = consumer_tables(metadata)
    database = Database(database_url, pool_size=2)

    def announce(events: list[Event]) -> None:
        print(f"applying {events[0].seq} {events[-1].seq}", flush=True)

    async with new_http_client() as client:
        consumer = FeedConsumer(
            feed="producer", url=feed_url, database=database, cursor_table=cursors,
            tokens=ServiceTokenProvider(client, token_url, CLIENT_ID, CLIENT_SECRET, ["events:read"]),
            apply=count_applications(applied, pause, announce), batch_size=BATCH_SIZE,
        )
        while await consumer.run_once():
            pass
    await database.dispose()
    print("caught up", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))

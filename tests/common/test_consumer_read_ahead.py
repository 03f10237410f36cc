"""Batches of several pages, and the next page read while a batch is applied: still every event exactly once, and a
page read ahead is thrown away when another replica moved the cursor meanwhile."""

from services.common.clients import ServiceTokenProvider
from services.common.consumer import FeedConsumer
from services.common.db import Database, new_metadata
from services.common.http import new_http_client
from tests.common.consumer_process import CLIENT_ID, CLIENT_SECRET, consumer_tables, count_applications
from tests.common.test_consumer import Producer, consumer_state, create_consumer_tables, producer  # noqa: F401

PAGE = 7


async def test_pages_read_ahead_are_used_only_from_where_the_cursor_is(
        producer: Producer, second_database_url: str) -> None:  # noqa: F811 (the fixture)
    _, applied = await create_consumer_tables(second_database_url)
    cursors = consumer_tables(new_metadata())[0]
    await producer.emit(100)
    database = Database(second_database_url, pool_size=2)
    async with new_http_client() as client:
        tokens = ServiceTokenProvider(client, producer.token_url, CLIENT_ID, CLIENT_SECRET, ["events:read"])
        common = {"feed": "producer", "url": producer.feed_url, "database": database, "cursor_table": cursors,
                  "tokens": tokens, "apply": count_applications(applied)}
        reading_ahead = FeedConsumer(**common, batch_size=3 * PAGE, page_size=PAGE, read_ahead=True)
        other_replica = FeedConsumer(**common, batch_size=PAGE)

        assert await reading_ahead.run_once() == 3 * PAGE  # one batch of three pages; the fourth is read ahead
        assert await reading_ahead.run_once() == 3 * PAGE  # from the page read ahead
        assert await other_replica.run_once() == PAGE  # moves the cursor past the page `reading_ahead` holds
        assert await reading_ahead.run_once() == 3 * PAGE  # from where the other replica left the cursor
        while await reading_ahead.run_once():
            pass
        reading_ahead.stop_reading_ahead()
    await database.dispose()
    state = await consumer_state(second_database_url)
    assert len(state.applications) == 100, "an event was lost"
    assert set(state.applications.values()) == {1}, "an event was applied twice"
    assert state.position == await producer.last_seq()


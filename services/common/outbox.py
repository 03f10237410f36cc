"""Transactional outbox and its feed.

An event row is written in the same transaction as the change it describes, and records that transaction's id
(`xid`, PostgreSQL's `pg_current_xact_id()`, a column default, so every insert path sets it). Writers take no
lock: any number of transactions write events at once.

The feed is ordered by (xid, seq), and a reader takes only events whose transaction is older than every
transaction still running in this database (the *frontier*, read from the same snapshot as the events). Those
transactions have all ended, so the events before the frontier can no longer change: a reader never passes an event
that appears later. Sequence numbers alone would not do: they are handed out at insert, not at commit, so a
transaction can commit a smaller one after a reader has passed a larger one.

A reader's cursor stays the seq of the last event it applied: that event's xid is looked up, which gives its place
(xid, seq) in the feed. Events written before the xid was recorded carry xid 0 and come first in their old order,
so a cursor kept from that time keeps its meaning.

Transactions of other databases on the same server are left out of the frontier (they cannot write here), so a
long transaction elsewhere does not hold this feed back; a long transaction in this database does, until it ends
(statement and idle-in-transaction timeouts bound how long, see `db.py`). Whenever the owner of a running
transaction cannot be told, it counts as this database's: the frontier errs on the side of waiting.
"""

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    func,
    literal,
    literal_column,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import UserDefinedType

from services.common.clock import utcnow
from services.common.db import add_pending_rows, write_pending_rows
from services.common.errors import BadRequest
from services.common.logging import get_logger

EVENT_SCHEMA_VERSION = 1
logger = get_logger("outbox")

# The oldest transaction that may still write to this database, as of the statement's own snapshot: the smallest
# running xid not known to belong to another database, else the snapshot's xmax (every xid below it has ended).
# pg_stat_activity tells each backend's database and xid to any caller; a transaction that ended meanwhile is no
# longer listed there and so stays in (waiting once more is harmless).
FRONTIER_SQL = """(
SELECT coalesce(
  (SELECT min(running) FROM pg_snapshot_xip(s.snap) AS running
   WHERE NOT EXISTS (SELECT FROM pg_stat_activity a
                     WHERE a.backend_xid = running::xid
                       AND a.datid <> (SELECT oid FROM pg_database WHERE datname = current_database()))),
  pg_snapshot_xmax(s.snap))
FROM (SELECT pg_current_snapshot() AS snap) AS s)"""


class XID8(UserDefinedType[int]):
    """PostgreSQL's 64-bit transaction id (`xid8`, never wraps around); asyncpg reads it as an int."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "xid8"


class Event(BaseModel):
    """An event as it travels between services: versioned JSON, never personal data."""

    seq: int
    xid: int = Field(0, description="The producing transaction's id; the feed is ordered by (xid, seq)")
    id: uuid.UUID
    type: str
    version: int
    occurred_at: datetime
    agency: str | None
    source: str
    payload: dict[str, Any]


class EventPage(BaseModel):
    events: list[Event]
    next_cursor: int = Field(description="Pass as `after` for the next page: the seq of this page's last event")
    has_more: bool = Field(description="More events can be read now (later ones may appear at any time)")


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox_event",
        metadata,
        Column("seq", BigInteger, Identity(always=True), primary_key=True),
        Column("xid", XID8(), nullable=False, server_default=text("pg_current_xact_id()")),
        Column("id", UUID(as_uuid=True), nullable=False, unique=True),
        Column("type", String(100), nullable=False),
        Column("version", Integer, nullable=False),
        Column("occurred_at", DateTime(timezone=True), nullable=False),
        Column("agency", String(50), nullable=True),
        Column("payload", JSONB, nullable=False),
        Index("ix_outbox_event_feed_order", "xid", "seq"),
    )


class Outbox:
    def __init__(self, metadata: MetaData, source: str):
        self.table = outbox_table(metadata)
        self.source = source
        self.restored_checked = False

    def emit(self, session: AsyncSession, type: str, payload: dict[str, Any], *, agency: str | None) -> None:
        """Queue an event; it is written in this session's transaction, with the commit (`db.add_pending_rows`)."""
        add_pending_rows(session, self.table, [{
            "id": uuid.uuid4(), "type": type, "version": EVENT_SCHEMA_VERSION, "occurred_at": utcnow(),
            "agency": agency, "payload": payload}])

    async def write_pending(self, session: AsyncSession) -> None:
        """Write the queued events (and the session's other pending rows) now rather than at the commit."""
        await write_pending_rows(session)

    async def adopt_restored_events(self, session: AsyncSession) -> int:
        """Events restored from a logical dump of another server carry that server's transaction ids, which can be
        larger than any this server has handed out: they would stay behind the frontier, and new events would sort
        before them. No committed event of this server can have an xid at or past the snapshot's xmax, so those are
        the restored ones: they become xid 0 (before every new event, in seq order). Consumers then replay the feed
        once (docs/operations.md, Restore). Returns how many were adopted."""
        t = self.table
        adopted = (await session.execute(
            update(t).where(t.c.xid >= func.pg_snapshot_xmax(func.pg_current_snapshot()))
            .values(xid=literal_column("'0'::xid8")))).rowcount  # type: ignore[attr-defined]
        if adopted:
            logger.warning("restored events adopted", extra={"events": adopted})
        return int(adopted)

    async def read(self, session: AsyncSession, after: int, limit: int) -> EventPage:
        """The events after the one numbered `after` (0: from the start), in feed order."""
        t = self.table
        if not self.restored_checked:  # once per process: a restore happens while the services are stopped
            self.restored_checked = await self.adopt_restored_events(session) == 0
        after_xid = 0
        if after:
            after_xid = (await session.execute(select(t.c.xid).where(t.c.seq == after))).scalar_one_or_none()
            if after_xid is None:
                # Never a position this feed gave: a consumer ahead of a producer restored from an older backup.
                raise BadRequest("no event of this feed has that number; the cursor is not valid here")
        rows = (
            await session.execute(
                select(t)
                .where(tuple_(t.c.xid, t.c.seq) > tuple_(literal(after_xid, XID8()), literal(after)))
                .where(t.c.xid < literal_column(FRONTIER_SQL))
                .order_by(t.c.xid, t.c.seq)
                .limit(limit + 1)
            )
        ).mappings().all()
        has_more = len(rows) > limit
        events = [Event(source=self.source, **row) for row in rows[:limit]]
        return EventPage(events=events, next_cursor=events[-1].seq if events else after, has_more=has_more)

"""Transactional outbox and its feed.

An event row is written in the same transaction as the change it describes. The feed must never skip an event
whose transaction commits after a later sequence number was already read. Writers take a transaction-level
advisory lock just before they insert their events and hold it until commit, so sequence numbers are handed out
in commit order and every reader sees a gap-free prefix. The insert happens at commit time (see `Database.commit`),
so the lock is held only for the last moments of a transaction.
"""

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import BigInteger, Column, DateTime, Identity, Integer, MetaData, String, Table, select, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncSession

OUTBOX_LOCK_KEY = 0x0C_B0_0B_0C  # any constant; one outbox per database
EVENT_SCHEMA_VERSION = 1


@dataclass
class PendingEvent:
    type: str
    payload: dict[str, Any]
    agency: str | None
    version: int = EVENT_SCHEMA_VERSION
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class Event(BaseModel):
    """An event as it travels between services: versioned JSON, never personal data."""

    seq: int
    id: uuid.UUID
    type: str
    version: int
    occurred_at: datetime
    agency: str | None
    source: str
    payload: dict[str, Any]


class EventPage(BaseModel):
    events: list[Event]
    next_cursor: int
    has_more: bool


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox_event",
        metadata,
        Column("seq", BigInteger, Identity(always=True), primary_key=True),
        Column("id", UUID(as_uuid=True), nullable=False, unique=True),
        Column("type", String(100), nullable=False),
        Column("version", Integer, nullable=False),
        Column("occurred_at", DateTime(timezone=True), nullable=False),
        Column("agency", String(50), nullable=True),
        Column("payload", JSONB, nullable=False),
    )


class Outbox:
    def __init__(self, metadata: MetaData, source: str):
        self.table = outbox_table(metadata)
        self.source = source

    def emit(self, session: AsyncSession, type: str, payload: dict[str, Any], *, agency: str | None) -> None:
        """Queue an event; it is written in this session's transaction when the unit of work commits."""
        session.info.setdefault("outbox", []).append(PendingEvent(type=type, payload=payload, agency=agency))

    async def write_pending(self, session: AsyncSession) -> None:
        pending: list[PendingEvent] = session.info.pop("outbox", [])
        if not pending:
            return
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": OUTBOX_LOCK_KEY})
        await session.execute(
            self.table.insert(),
            [
                {"id": e.id, "type": e.type, "version": e.version, "occurred_at": e.occurred_at,
                 "agency": e.agency, "payload": e.payload}
                for e in pending
            ],
        )

    async def read(self, session: AsyncSession, after: int, limit: int) -> EventPage:
        rows = (
            await session.execute(
                select(self.table).where(self.table.c.seq > after).order_by(self.table.c.seq).limit(limit + 1)
            )
        ).mappings().all()
        has_more = len(rows) > limit
        events = [Event(source=self.source, **row) for row in rows[:limit]]
        return EventPage(events=events, next_cursor=events[-1].seq if events else after, has_more=has_more)

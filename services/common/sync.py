"""Offline sync for phones: the records a caller can see that changed since a cursor, with tombstones.

Each service keeps a `sync_change` log: one row per change of a synced record and per place (commune, province)
that could see it, written by database triggers in the transaction of the change (the service's migration). A
trigger rather than service code: every writer is covered (a workflow step, a note, a task update, the deadline
check, an import, code added tomorrow), and an update sees the row before and after it, so a record that leaves a
commune (a transfer, a move) logs the old commune as well as the new one. That row is what turns into a tombstone
for the old commune's phones.

The log is read in the order of the outbox (`services/common/outbox.py`): by (transaction id, seq), and only rows of
transactions older than every transaction still running. A row can then never appear behind a cursor already
handed out, which ordering by `seq` alone would allow (a slow transaction commits a smaller seq after a reader
passed a larger one): no change is skipped under concurrency.

The service reads each record of a page as it is now, through its one access filter: a record the caller can read
is sent whole (an upsert: applying it twice is harmless); one the caller cannot read any more is a tombstone with
the reason, sent to the callers who could have held it (the service decides: a commune's people, an agency with a
task in the case). Rows are filtered by the caller's jurisdiction before they are read (indexed), so a commune's
phone scans its commune's changes only. A tombstone may still name a record the phone never held (it left before
the phone's first sync): ids only, which the app ignores.

The cursor is opaque: the position in the log and a fingerprint of who the caller is (user, role, agency,
jurisdiction). A cursor of another identity answers 410 Gone: the phone drops its replica and syncs from the start,
which is also how a role or jurisdiction change (access lost wholesale) reaches it.
"""

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    MetaData,
    String,
    Table,
    func,
    literal,
    literal_column,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.auth import Subject
from services.common.errors import Gone
from services.common.outbox import FRONTIER_SQL, XID8
from services.common.pagination import CursorInt, CursorText, decode_cursor, encode_cursor

T = TypeVar("T")
MAX_SYNC_PAGE = 200
TombstoneReason = Literal["out_of_reach", "expired", "merged"]


def sync_change_table(metadata: MetaData) -> Table:
    return Table(
        "sync_change",
        metadata,
        Column("seq", BigInteger, Identity(always=True), primary_key=True),
        Column("xid", XID8(), nullable=False, server_default=text("pg_current_xact_id()")),
        Column("record_id", UUID(as_uuid=True), nullable=False),
        Column("province_code", String(2), nullable=False),
        Column("commune_code", String(5), nullable=False),
        # Why a row was logged without a change of the record ("expired": out of the phones' retention window).
        Column("reason", String(20), nullable=True),
        Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Index("ix_sync_change_order", "xid", "seq"),
        Index("ix_sync_change_province", "province_code", "xid", "seq"),
        Index("ix_sync_change_commune", "commune_code", "xid", "seq"),
        Index("ix_sync_change_record", "record_id"),
    )


class SyncItem(BaseModel, Generic[T]):
    """One record of the replica: its current version, or a tombstone (`deleted`) saying it left your reach."""

    id: uuid.UUID
    deleted: bool = Field(description="A tombstone: remove the record from the replica")
    reason: TombstoneReason | None = Field(
        None, description="Why it left: out_of_reach (moved to another commune, access lost), expired (closed "
                          "longer than the retention window), merged (into `merged_into`)")
    merged_into: uuid.UUID | None = None
    etag: str | None = Field(None, description="The ETag to send as If-Match when changing the record")
    record: T | None = Field(None, description="The record as GET answers it to you; null for a tombstone")


class SyncPage(BaseModel, Generic[T]):
    """A page of the feed; `T` is the service's `SyncItem` subclass."""

    items: list[T]
    next_cursor: str = Field(description="Keep it with the replica; pass it as `cursor` next time")
    has_more: bool = Field(description="More changes can be read now: ask again at once")


@dataclass(frozen=True)
class Changes:
    """The records named by a page of the log, in log order (each once), and where the next page starts."""

    record_ids: list[uuid.UUID]
    next_cursor: str
    has_more: bool


class SyncReset(Gone):
    title, type_suffix = "Sync again from the start", "sync-reset"


def fingerprint(subject: Subject) -> str:
    place = subject.jurisdiction
    who = "|".join((subject.id, subject.role.value, subject.agency.value, place.level, place.province or "",
                    place.commune or ""))
    return hashlib.sha256(who.encode()).hexdigest()[:16]


def _position(cursor: str | None, subject: Subject) -> tuple[int, int]:
    values = decode_cursor(cursor, 3, (CursorInt, CursorInt, CursorText))
    if values is None:
        return 0, 0
    xid, seq, owner = values
    if owner != fingerprint(subject):
        raise SyncReset("this cursor belongs to another user or to your former role or place: drop the replica "
                        "and sync from the start (no cursor)")
    return int(xid), int(seq)


class SyncLog:
    def __init__(self, metadata: MetaData):
        self.table = sync_change_table(metadata)

    async def changes(self, session: AsyncSession, subject: Subject, cursor: str | None, limit: int) -> Changes:
        """The records that changed after `cursor` at a place within the caller's jurisdiction."""
        t = self.table
        after_xid, after_seq = _position(cursor, subject)
        rows = (await session.execute(
            select(t.c.xid, t.c.seq, t.c.record_id)
            .where(tuple_(t.c.xid, t.c.seq) > tuple_(literal(after_xid, XID8()), literal(after_seq)))
            .where(t.c.xid < literal_column(FRONTIER_SQL))
            .where(subject.jurisdiction.filter(t.c.province_code, t.c.commune_code))
            .order_by(t.c.xid, t.c.seq)
            .limit(limit + 1)
        )).all()
        page = rows[:limit]
        last_xid, last_seq = (page[-1].xid, page[-1].seq) if page else (after_xid, after_seq)
        return Changes(record_ids=_distinct_last(row.record_id for row in page),
                       next_cursor=encode_cursor([int(last_xid), int(last_seq), fingerprint(subject)]),
                       has_more=len(rows) > limit)


def _distinct_last(ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
    """Each id once, where it last appears: the record is sent as it is now, after all its changes of the page."""
    order: dict[uuid.UUID, None] = {}
    for record_id in ids:
        order.pop(record_id, None)
        order[record_id] = None
    return list(order)

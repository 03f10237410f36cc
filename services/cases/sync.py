"""The cases sync feed for offline phones (docs/clients.md): each case the caller can read that changed since the
cursor, with its tasks and notes as the caller sees them, or a tombstone when it left the caller's reach (a transfer
to another commune, an access lost) or was closed longer ago than the retention window.

The log is written by triggers (services/common/sync.py); what each caller sees is decided here, through
`access.readable`, the same filter as every other read of a case. Every case sent is audited as read.
"""

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, exists, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.cases import service
from services.cases.access import reach_anywhere, readable, visibility
from services.cases.models import Case, CaseNote, audit, sync_log
from services.cases.settings import CasesSettings
from services.cases.vocabulary import State
from services.common.auth import Subject
from services.common.clock import utcnow
from services.common.db import Database
from services.common.logging import get_logger
from services.common.sync import TombstoneReason

logger = get_logger("cases.sync")


@dataclass
class Replica:
    """What a phone holds of one case: the case as GET answers it to the caller, and the notes the caller sees."""

    detail: service.CaseDetail
    notes: list[CaseNote]


@dataclass
class Change:
    case_id: uuid.UUID
    replica: Replica | None
    reason: TombstoneReason | None


@dataclass
class ChangePage:
    changes: list[Change]
    next_cursor: str
    has_more: bool


async def changes(session: AsyncSession, subject: Subject, cursor: str | None, limit: int,
                  settings: CasesSettings) -> ChangePage:
    page = await sync_log.changes(session, subject, cursor, limit)
    found = {case.id: case for case in (await session.execute(
        readable(subject).where(Case.id.in_(page.record_ids)))).scalars()} if page.record_ids else {}
    # A case out of reach is a tombstone for the callers who could have held it: the commune's people, or an agency
    # with a task in it; an agency's phone is not told of every case of its province it never saw.
    missing = [case_id for case_id in page.record_ids if case_id not in found]
    gone = set((await session.execute(
        select(Case.id).where(Case.id.in_(missing), reach_anywhere(subject)))).scalars()) if missing else set()
    expired_before = utcnow() - timedelta(days=settings.sync_closed_retention_days)
    result: list[Change] = []
    for case_id in page.record_ids:
        case = found.get(case_id)
        if case is None:
            if case_id in gone:
                result.append(Change(case_id, None, "out_of_reach"))
        elif case.closed_at is not None and case.closed_at < expired_before:
            result.append(Change(case_id, None, "expired"))
        else:
            view = visibility(subject, case)
            notes = list((await session.execute(
                select(CaseNote).where(CaseNote.case_id == case.id, view.notes_filter(subject))
                .order_by(CaseNote.at, CaseNote.id))).scalars())
            result.append(Change(case_id, Replica(await service.detail(session, subject, case), notes), None))
    sent = [str(change.case_id) for change in result if change.replica is not None]
    if sent:
        await audit.record(session, subject, "read", "case", sent, purpose="sync")
    return ChangePage(result, page.next_cursor, page.has_more)


async def expire_closed(database: Database, settings: CasesSettings, batch: int = 500) -> int:
    """Log a row for each case closed longer ago than the retention window and not logged so yet: the feed then
    sends the phones of its commune its tombstone. Returns how many were logged."""
    t = sync_log.table
    cutoff = utcnow() - timedelta(days=settings.sync_closed_retention_days)
    due = (select(Case.id, Case.province_code, Case.commune_code, literal("expired"))
           .where(Case.state == State.CLOSED.value, Case.closed_at < cutoff,
                  ~exists().where(and_(t.c.record_id == Case.id, t.c.reason == "expired")))
           .limit(batch))
    async with database.unit_of_work() as session:
        result = await session.execute(
            insert(t).from_select(["record_id", "province_code", "commune_code", "reason"], due))
        return int(result.rowcount)  # type: ignore[attr-defined]


async def keep_expiring(database: Database, settings: CasesSettings, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            while await expire_closed(database, settings) and not stop.is_set():
                pass
        except Exception as exc:  # the next round retries
            logger.warning("closed-case expiry failed", extra={"error_type": type(exc).__name__})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=settings.sync_expiry_seconds)

"""Applying the registry's and the cases service's events to the fact tables.

Events are snapshots with a `revision` (docs/events.md): a fact row is replaced only by a newer revision, so
applying a batch twice, or replaying a feed from zero, leaves the same rows. Everything here runs inside the
consumer's transaction, which also moves the feed cursor: a crash mid-batch leaves nothing half-applied.

Each batch bumps the data version of every commune whose facts changed (the old and the new commune of a child
who moved), of their provinces and of the nation, in a fixed order so the two consumers never deadlock.
"""

import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from functools import cache, lru_cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)
from sqlalchemy import Table, any_, bindparam, delete, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, UUID, insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.clock import utcnow
from services.common.locations import communes
from services.common.logging import get_logger
from services.common.outbox import Event
from services.reporting.indicators import INTERVENTION_DEADLINES, INTERVENTION_STATES
from services.reporting.models import (
    CaseDeadline,
    CaseFact,
    CaseSeparation,
    ChildFact,
    ChildSpecialGroup,
    FeedProgress,
    RejectedEvent,
)

logger = get_logger("reporting.ingest")
NATION = "VN"
CHILD_SNAPSHOT_EVENTS = {"child.registered", "child.changed"}
# Anything a snapshot carries must fit the columns, or one bad event would fail its batch forever.
MAX_REVISION = 2**31 - 1
CASE_SNAPSHOT_EVENTS = {"case.received", "case.changed", "case.deadline_missed"}
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
ANALYZE_EVERY = 100_000  # events applied between two refreshes of the planner's statistics


class _Snapshot(BaseModel):
    model_config = ConfigDict(extra="ignore")

    revision: int = Field(ge=0, le=MAX_REVISION)
    province_code: str = Field(pattern=r"^\d{2}$")
    commune_code: str = Field(pattern=r"^\d{5}$")

    @field_validator("commune_code")
    @classmethod
    def _official_commune(cls, value: str) -> str:
        if value not in communes():
            raise ValueError("not an official commune code")
        return value


class SpecialGroupSpell(BaseModel):
    model_config = ConfigDict(extra="ignore")

    group: Literal["a", "b", "c", "d", "dd", "e", "g", "h", "i", "k", "l", "m", "n", "o"]
    start: date
    end: date | None = None
    supported: bool = False


class ChildSnapshot(_Snapshot):
    child_id: uuid.UUID
    sex: Literal["male", "female"]
    birth_month: str = Field(pattern=r"^(19|20)\d{2}-(0[1-9]|1[0-2])$")
    status: str = Field(max_length=20)
    status_date: date | None = None
    birth_registered: bool = False
    birth_registered_on: date | None = None
    health_insurance_valid_until: date | None = None
    disability: bool = False
    special_groups: list[SpecialGroupSpell] = Field(default_factory=list, max_length=100)
    at_risk: bool = False


class ChildMerged(BaseModel):
    model_config = ConfigDict(extra="ignore")

    child_id: uuid.UUID
    merged_child_id: uuid.UUID
    revision: int = Field(ge=0, le=MAX_REVISION)


# Far-off instants would overflow when converted to local days. Checked by pydantic-core itself: a Python validator
# per timestamp cost a quarter of validating a case snapshot.
Moment = Annotated[AwareDatetime, Field(ge=datetime(1900, 1, 1, tzinfo=UTC), lt=datetime(2101, 1, 1, tzinfo=UTC))]


class DeadlineState(BaseModel):
    model_config = ConfigDict(extra="ignore")

    due_at: Moment
    met_at: Moment | None = None
    missed: bool = False


Code = Annotated[str, StringConstraints(min_length=1, max_length=30, pattern=r"^[a-z0-9_+-]+$")]
CommuneCode = Annotated[str, StringConstraints(pattern=r"^\d{5}$")]


class EmergencyMeasure(BaseModel):
    model_config = ConfigDict(extra="ignore")

    taken_at: Moment
    agency: Code | None = None


class Separation(BaseModel):
    """A temporary separation (Decree 56 Art. 32): at most 15 days unless a competent authority asks for more."""

    model_config = ConfigDict(extra="ignore")

    decided_at: Moment
    ends_at: Moment | None = None
    ended_at: Moment | None = None
    extended_days: int = Field(default=0, ge=0, le=3650)
    competent_authority_extension: bool = False


class CaseSnapshot(_Snapshot):
    """A case snapshot (docs/events.md). Fields added in 2026 are optional: an older event leaves them unknown."""

    case_id: uuid.UUID
    received_at: Moment
    child_sex: str = Field(max_length=10)
    child_age_group: str = Field(max_length=10)
    child_id: uuid.UUID | None = None
    abuse_forms: list[Annotated[str, StringConstraints(min_length=1, max_length=30)]] = Field(
        default_factory=list, max_length=20)
    environment: str | None = Field(default=None, max_length=30)
    state: str = Field(max_length=40)
    emergency: bool | None = None  # null until the emergency test was made
    closure_reason: str | None = Field(default=None, max_length=40)
    closed_at: Moment | None = None
    deadlines: dict[Annotated[str, StringConstraints(min_length=1, max_length=40)], DeadlineState] = Field(
        default_factory=dict, max_length=50)
    category: Literal["abused", "at_risk", "special_circumstances"] | None = None
    risk_forms: list[Code] = Field(default_factory=list, max_length=10)
    special_groups: list[Literal["a", "b", "c", "d", "dd", "e", "g", "h", "i", "k", "l", "m", "n", "o"]] = Field(
        default_factory=list, max_length=14)
    channel: Code | None = None
    intake_agency: Code | None = None
    incident_commune_code: CommuneCode | None = None
    residence_commune_code: CommuneCode | None = None
    perpetrator_relationship: Code | None = None
    child_age_years: int | None = Field(default=None, ge=0, le=25)
    child_views_taken: bool | None = None
    parent_views: Code | None = None
    emergency_measure: EmergencyMeasure | None = None
    separations: list[Separation] = Field(default_factory=list, max_length=50)
    plan_approved_at: Moment | None = None
    closure_kind: Literal["review", "early"] | None = None


class Ingestor:
    """Applies one feed's events; `zone` is the time zone whose calendar days the reports count."""

    def __init__(self, zone: str = "Asia/Ho_Chi_Minh"):
        self.zone = ZoneInfo(zone)
        self._offset = lru_cache(maxsize=4096)(self._offset_at)
        self._since_analyze = 0

    def _offset_at(self, day: int) -> int | None:
        """The zone's offset in seconds throughout a UTC day (days since 1970), or None when it changes that day."""
        start, end = (datetime.fromtimestamp(moment, UTC).astimezone(self.zone).utcoffset()
                      for moment in (day * 86400, day * 86400 + 86399))
        return int(start.total_seconds()) if start == end and start is not None else None

    def local_day(self, moment: datetime) -> date:
        # The offset is looked up once per day and days are counted from the POSIX timestamp: a time-zone conversion
        # per timestamp cost a tenth of catching up. Only the days a zone's offset changes are converted one by one.
        seconds = moment.timestamp()
        offset = self._offset(int(seconds // 86400))
        if offset is None:
            return moment.astimezone(self.zone).date()
        return date.fromordinal(EPOCH_ORDINAL + int((seconds + offset) // 86400))

    async def apply_registry_events(self, session: AsyncSession, events: list[Event]) -> None:
        await _relax_durability(session)
        snapshots: dict[uuid.UUID, tuple[ChildSnapshot, date]] = {}
        merges: list[ChildMerged] = []
        for event in events:
            try:
                if event.type in CHILD_SNAPSHOT_EVENTS:
                    snapshot = ChildSnapshot.model_validate(event.payload)
                    seen = self.local_day(event.occurred_at)
                    previous = snapshots.get(snapshot.child_id)
                    first_seen = min(seen, previous[1]) if previous else seen
                    if previous is None or snapshot.revision > previous[0].revision:
                        snapshots[snapshot.child_id] = (snapshot, first_seen)
                    else:
                        snapshots[snapshot.child_id] = (previous[0], first_seen)
                elif event.type == "child.merged":
                    merges.append(ChildMerged.model_validate(event.payload))
            except (ValueError, OverflowError) as exc:  # ValidationError is a ValueError
                await _reject(session, "registry", event, exc)
        touched = await self._upsert_children(session, list(snapshots.values()))
        touched |= await self._retire_merged(session, merges)
        await _bump_versions(session, touched)
        await _record_progress(session, "registry", events)
        await self._keep_statistics(session, len(events))

    async def apply_cases_events(self, session: AsyncSession, events: list[Event]) -> None:
        await _relax_durability(session)
        snapshots: dict[uuid.UUID, CaseSnapshot] = {}
        for event in events:
            if event.type not in CASE_SNAPSHOT_EVENTS:
                continue
            try:
                snapshot = CaseSnapshot.model_validate(event.payload)
            except ValidationError as exc:
                await _reject(session, "cases", event, exc)
                continue
            previous = snapshots.get(snapshot.case_id)
            if previous is None or snapshot.revision > previous.revision:
                snapshots[snapshot.case_id] = snapshot
        touched = await self._upsert_cases(session, list(snapshots.values()))
        await _bump_versions(session, touched)
        await _record_progress(session, "cases", events)
        await self._keep_statistics(session, len(events))

    async def _keep_statistics(self, session: AsyncSession, applied: int) -> None:
        """Refresh the planner's statistics while catching up: a million rows written faster than autovacuum looks
        at them leave estimates of a few rows, and the counting queries then choose nested loops that take minutes
        instead of hash joins that take a second."""
        self._since_analyze += applied
        if self._since_analyze >= ANALYZE_EVERY:
            self._since_analyze = 0
            await session.execute(text("ANALYZE child_fact, child_special_group, case_fact, case_deadline"))

    async def _upsert_children(self, session: AsyncSession,
                               snapshots: list[tuple[ChildSnapshot, date]]) -> set[str]:
        if not snapshots:
            return set()
        table = ChildFact.__table__
        existing = {
            row.child_id: row
            for row in await session.execute(
                select(table.c.child_id, table.c.revision, table.c.commune_code, table.c.followed_since)
                .where(table.c.child_id == any_(_uuids([s.child_id for s, _ in snapshots])))
                .with_for_update()
            )
        }
        newer = [(s, seen) for s, seen in snapshots
                 if s.child_id not in existing or s.revision > existing[s.child_id].revision]
        touched = {existing[s.child_id].commune_code for s, _ in newer if s.child_id in existing}
        if not newer:
            return touched
        rows = []
        for snapshot, seen in newer:
            before = existing.get(snapshot.child_id)
            year, month = (int(part) for part in snapshot.birth_month.split("-"))
            rows.append({
                "child_id": snapshot.child_id, "revision": snapshot.revision,
                "province_code": _province(snapshot.commune_code), "commune_code": snapshot.commune_code,
                "sex": snapshot.sex, "birth_month": date(year, month, 1), "birth_index": year * 12 + month - 1,
                "status": snapshot.status,
                "status_date": snapshot.status_date, "birth_registered": snapshot.birth_registered,
                "birth_registered_on": snapshot.birth_registered_on,
                "health_insurance_valid_until": snapshot.health_insurance_valid_until,
                "disability": snapshot.disability, "at_risk": snapshot.at_risk,
                "followed_since": min(seen, before.followed_since) if before else seen,
            })
            touched.add(snapshot.commune_code)
        await _copy_upsert(session, table, "child_id", rows)
        groups = ChildSpecialGroup.__table__
        await session.execute(delete(groups).where(groups.c.child_id == any_(_uuids([s.child_id for s, _ in newer]))))
        spells = {
            (s.child_id, g.group, g.start): {"child_id": s.child_id, "group_code": g.group, "start": g.start,
                                             "end": g.end, "supported": g.supported,
                                             "commune_code": s.commune_code}
            for s, _ in newer for g in s.special_groups
        }
        if spells:
            await _copy_insert(session, groups, list(spells.values()))
        return touched

    async def _retire_merged(self, session: AsyncSession, merges: list[ChildMerged]) -> set[str]:
        touched: set[str] = set()
        table = ChildFact.__table__
        for merge in merges:
            if merge.merged_child_id == merge.child_id:
                continue
            retired = await session.execute(
                update(table)
                .where(table.c.child_id == merge.merged_child_id, table.c.merged_into.is_(None))
                .values(merged_into=merge.child_id)
                .returning(table.c.commune_code)
            )
            touched.update(retired.scalars())
        return touched

    async def _upsert_cases(self, session: AsyncSession, snapshots: list[CaseSnapshot]) -> set[str]:
        if not snapshots:
            return set()
        table = CaseFact.__table__
        existing = {
            row.case_id: row
            for row in await session.execute(
                select(table.c.case_id, table.c.revision, table.c.commune_code)
                .where(table.c.case_id == any_(_uuids([s.case_id for s in snapshots])))
                .with_for_update()
            )
        }
        newer = [s for s in snapshots if s.case_id not in existing or s.revision > existing[s.case_id].revision]
        touched = {existing[s.case_id].commune_code for s in newer if s.case_id in existing}
        if not newer:
            return touched
        touched.update(s.commune_code for s in newer)
        await _copy_upsert(session, table, "case_id", [self._case_row(s) for s in newer])
        ids = _uuids([s.case_id for s in newer])
        deadlines = CaseDeadline.__table__
        await session.execute(delete(deadlines).where(deadlines.c.case_id == any_(ids)))
        deadline_rows = [
            {"case_id": s.case_id, "name": name, "commune_code": s.commune_code, "due_at": d.due_at,
             "due_on": self.local_day(d.due_at), "met_at": d.met_at, "missed": d.missed}
            for s in newer for name, d in s.deadlines.items()
        ]
        if deadline_rows:
            await _copy_insert(session, deadlines, deadline_rows)
        separations = CaseSeparation.__table__
        await session.execute(delete(separations).where(separations.c.case_id == any_(ids)))
        separation_rows = [self._separation_row(s, number, spell)
                           for s in newer for number, spell in enumerate(s.separations, start=1)]
        if separation_rows:
            await _copy_insert(session, separations, separation_rows)
        # A child's abuse cases are counted once, in the commune of its latest case (indicator 0101): a new case of a
        # linked child can move the child out of the communes of its other cases, so their figures change too.
        children = [s.child_id for s in newer if s.child_id is not None]
        if children:
            touched.update((await session.execute(
                select(table.c.commune_code).distinct().where(table.c.child_id == any_(_uuids(children)))
            )).scalars())
        return touched

    def _separation_row(self, s: CaseSnapshot, number: int, spell: Separation) -> dict[str, Any]:
        decided = self.local_day(spell.decided_at)
        ended = self.local_day(spell.ended_at) if spell.ended_at else None
        return {"case_id": s.case_id, "number": number, "commune_code": s.commune_code, "decided_on": decided,
                "ended_on": ended, "days": (ended - decided).days if ended else None,
                "extended_days": spell.extended_days,
                "competent_authority_extension": spell.competent_authority_extension}

    def _case_row(self, s: CaseSnapshot) -> dict[str, Any]:
        approved = s.plan_approved_at or (s.deadlines["plan_approval"].met_at if "plan_approval" in s.deadlines
                                          else None)
        intervened = s.state in INTERVENTION_STATES or approved is not None or any(
            s.deadlines[name].met_at is not None for name in INTERVENTION_DEADLINES if name in s.deadlines
        )
        abuse = s.category == "abused" or (s.category is None and bool(s.abuse_forms))
        emergency_kept = _emergency_kept(s)
        settled, timely = _intervention_timeliness(s, emergency_kept)
        return {
            "case_id": s.case_id, "revision": s.revision, "province_code": _province(s.commune_code),
            "commune_code": s.commune_code, "received_at": s.received_at,
            "received_on": self.local_day(s.received_at), "child_sex": s.child_sex,
            "child_age_group": s.child_age_group, "child_id": s.child_id,
            "abuse_forms": sorted(set(s.abuse_forms)), "environment": s.environment or "unknown",
            "state": s.state, "emergency": bool(s.emergency), "intervened": intervened,
            "closure_reason": (s.closure_reason or "unknown") if s.closed_at else s.closure_reason,
            "closed_on": self.local_day(s.closed_at) if s.closed_at else None,
            "category": s.category or "unknown", "risk_forms": sorted(set(s.risk_forms)),
            "special_groups": sorted(set(s.special_groups)), "channel": s.channel or "unknown",
            "intake_agency": s.intake_agency or "unknown", "perpetrator": s.perpetrator_relationship or "unknown",
            "incident_commune_code": s.incident_commune_code, "residence_commune_code": s.residence_commune_code,
            "child_age_years": s.child_age_years, "child_views_taken": s.child_views_taken,
            "parent_views": s.parent_views, "plan_approved_at": approved,
            "closure_kind": (s.closure_kind or "unknown") if s.closed_at else s.closure_kind,
            "counted_abused": abuse and s.closure_reason not in NOT_ABUSE_CLOSURES,
            "supported": intervened, "emergency_kept": emergency_kept,
            "intervention_settled": settled, "intervention_timely": timely,
        }


# A report closed as unfounded or duplicate was never an abused child (contract 2; docs/reporting.md).
NOT_ABUSE_CLOSURES = ("unfounded", "duplicate")
EMERGENCY_LIMIT = timedelta(hours=12)  # Decree 56 Art. 26(3): within 12 hours of receiving the information


def _kept(deadline: DeadlineState | None) -> bool | None:
    """Whether a deadline was kept; None while it is neither met nor missed."""
    if deadline is None or (deadline.met_at is None and not deadline.missed):
        return None
    return deadline.met_at is not None and deadline.met_at <= deadline.due_at


def _emergency_kept(s: CaseSnapshot) -> bool | None:
    """Emergency protection within 12 hours of receipt: from the measure itself when the event carries it (the law's
    clock, whatever the producer's deadline says), else from the producer's deadline; None while not settled."""
    if not s.emergency:
        return None
    if s.emergency_measure is not None:
        return s.emergency_measure.taken_at - s.received_at <= EMERGENCY_LIMIT
    return _kept(s.deadlines.get("emergency_protection"))


def _intervention_timeliness(s: CaseSnapshot, emergency_kept: bool | None) -> tuple[bool, bool]:
    """(settled, timely) of the whole intervention: emergency protection within 12 hours when the case needed it,
    the plan drafted within 5 working days of the initial assessment (Decree 56 Art. 28(1)) and approved within 2
    more (Art. 28(4)). Settled once every part is kept or missed."""
    parts = [_kept(s.deadlines.get("plan_drafted")), _kept(s.deadlines.get("plan_approval"))]
    if s.emergency:
        parts.append(emergency_kept)
    if any(part is None for part in parts):
        return False, False
    return True, all(parts)


async def _relax_durability(session: AsyncSession) -> None:
    # Everything here is derived from the producers' feeds and commits atomically with the cursor: a crash can only
    # lose the last batches together with their cursor position, and they are fetched again. So the batch need not
    # wait for its WAL flush (PostgreSQL still never applies it partly).
    await session.execute(text("SET LOCAL synchronous_commit TO off"))


async def _driver(session: AsyncSession) -> Any:
    """The asyncpg connection under the session, inside the same transaction."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection


@cache
def _staging_statements(table: Table, key: str, columns: tuple[str, ...]) -> tuple[str, str]:
    """A session-local staging table shaped like `table` (emptied at each commit: one merge per table and batch),
    and the statement that merges it into `table`, replacing a row only by a newer revision."""
    stage = f"stage_{table.name}"
    create = f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table.name}) ON COMMIT DELETE ROWS"
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != key)
    listed = ", ".join(columns)
    merge = (f"INSERT INTO {table.name} ({listed}) SELECT {listed} FROM {stage} "  # noqa: S608 (names are ours)
             f"ON CONFLICT ({key}) DO UPDATE SET {updates} WHERE {table.name}.revision < excluded.revision")
    return create, merge


async def _copy_upsert(session: AsyncSession, table: Table, key: str, rows: list[dict[str, Any]]) -> None:
    """COPY a batch into a staging table, then one INSERT ... SELECT merges it: catching up costs a COPY and a
    statement per table and batch, not a round trip per row."""
    columns = tuple(rows[0])
    create, merge = _staging_statements(table, key, columns)
    driver = await _driver(session)
    await driver.execute(create)
    await driver.copy_records_to_table(f"stage_{table.name}", columns=list(columns),
                                       records=[tuple(row[c] for c in columns) for row in rows])
    await driver.execute(merge)


async def _copy_insert(session: AsyncSession, table: Table, rows: list[dict[str, Any]]) -> None:
    columns = list(rows[0])
    driver = await _driver(session)
    await driver.copy_records_to_table(table.name, columns=columns,
                                       records=[tuple(row[c] for c in columns) for row in rows])


def _uuids(ids: list[uuid.UUID]) -> Any:
    # One array parameter instead of an IN list of a thousand: the statement compiles once and is cached.
    return bindparam("ids", ids, type_=ARRAY(UUID(as_uuid=True)))


def _province(commune_code: str) -> str:
    # The official list is the authority on which province a commune belongs to, not the event.
    return communes()[commune_code].province_code


# One statement whatever the number of places, rows locked in code order.
BUMP_VERSIONS = text("""
INSERT INTO data_version (location_code, province_code, version, changed_at)
SELECT code, province, 1, :now
FROM unnest(CAST(:codes AS varchar[]), CAST(:provinces AS varchar[])) AS place(code, province)
ORDER BY code
ON CONFLICT (location_code) DO UPDATE SET version = data_version.version + 1, changed_at = excluded.changed_at
""")


async def _bump_versions(session: AsyncSession, communes_touched: Iterable[str]) -> None:
    codes = sorted(set(communes_touched))
    if not codes:
        return
    provinces = sorted({_province(code) for code in codes})
    places = sorted([(code, _province(code)) for code in codes] + [(code, code) for code in provinces]
                    + [(NATION, None)])
    await session.execute(BUMP_VERSIONS, {"now": utcnow(), "codes": [code for code, _ in places],
                                          "provinces": [province for _, province in places]})


async def _record_progress(session: AsyncSession, feed: str, events: list[Event]) -> None:
    if not events:
        return
    last = events[-1]
    table = FeedProgress.__table__
    statement = insert(table).values(feed=feed, last_seq=last.seq, last_event_at=last.occurred_at,
                                     applied_at=utcnow())
    await session.execute(statement.on_conflict_do_update(
        index_elements=["feed"],
        set_={"last_seq": statement.excluded.last_seq, "last_event_at": statement.excluded.last_event_at,
              "applied_at": statement.excluded.applied_at},
    ))


async def _reject(session: AsyncSession, feed: str, event: Event, error: Exception) -> None:
    # Field locations and messages only: the submitted values could be anything.
    if isinstance(error, ValidationError):
        reason = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()[:5])[:500]
    else:
        reason = f"unusable value ({type(error).__name__})"
    logger.warning("event rejected", extra={"feed": feed, "seq": event.seq, "event_type": event.type})
    table = RejectedEvent.__table__
    await session.execute(insert(table).values(feed=feed, seq=event.seq, event_type=event.type[:100], reason=reason,
                                               rejected_at=utcnow()).on_conflict_do_nothing())

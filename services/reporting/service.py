"""Reading figures: who may see which place, materialised counts, suppression, revisions and report rows.

Every read goes through `readable_location()`, the one place that checks the caller's jurisdiction.
Counts are materialised per commune and period (`commune_figures`) and per province and period
(`province_figures`), each tagged with the data version it was computed from. In memory, `ProvinceViews` keeps the
latest view of each province and period family (its communes' counts and what suppression hides), so a read while
nothing changed counts nothing, and after a change only the communes whose version moved are read or recounted.
"""

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.auth import Subject
from services.common.clock import utcnow
from services.common.db import Database
from services.common.errors import BadRequest, NotFound
from services.common.locations import communes, provinces
from services.reporting.figures import Counts, add_counts, commune_counts_of_periods, province_counts
from services.reporting.indicators import BY_CODE, INDICATORS, LOCALITY, Indicator
from services.reporting.ingest import NATION
from services.reporting.models import CommuneFigures, DataVersion, ProvinceFigures
from services.reporting.periods import Period, parse_period, period_family
from services.reporting.settings import ReportingSettings
from services.reporting.suppression import Cell, Layout, cell_count, suppress_family
from services.reporting.vocabulary import label

EPOCH = datetime(1970, 1, 1).astimezone()


@dataclass(frozen=True)
class Place:
    """National (`VN`), a province (2 digits) or a commune (5 digits): the official code and name."""

    code: str
    level: str
    name: str
    province: str | None

    @property
    def version_key(self) -> str:
        # A commune's published figures depend on its whole province (suppression across communes).
        return self.province or NATION


def place(code: str) -> Place | None:
    if code == NATION:
        return Place(NATION, "national", "Việt Nam", None)
    if code in provinces():
        return Place(code, "province", provinces()[code].name, code)
    commune = communes().get(code)
    if commune is not None:
        return Place(code, "commune", commune.name, commune.province_code)
    return None


def readable_location(subject: Subject, code: str | None) -> Place:
    """The place the caller asked for, or its own jurisdiction; outside its jurisdiction answers 404."""
    jurisdiction = subject.jurisdiction
    if code is None:
        code = {"national": NATION, "province": jurisdiction.province, "commune": jurisdiction.commune}[
            jurisdiction.level] or ""
    found = place(code)
    if found is None:
        raise NotFound("no such location in your jurisdiction")
    allowed = (jurisdiction.level == "national"
               or (jurisdiction.level == "province" and found.province == jurisdiction.province)
               or (jurisdiction.level == "commune" and found.code == jurisdiction.commune))
    if not allowed:
        raise NotFound("no such location in your jurisdiction")
    return found


def is_own_view(subject: Subject, where: Place) -> bool:
    """A commune's own officers read their own commune's figures as they are: they run those cases already, and
    suppression is for what leaves the commune. Their view is marked for use inside the commune only."""
    return subject.jurisdiction.level == "commune" and where.level == "commune"


def check_publishable(period: Period, where: Place, own: bool, settings: ReportingSettings) -> None:
    if where.level == "commune" and not own and period.kind not in settings.commune_period_kinds:
        raise BadRequest(f"commune figures are published for {', '.join(settings.commune_period_kinds)} only: "
                         "smaller periods beside them would let hidden counts be recovered by subtraction")


@dataclass(frozen=True)
class Version:
    number: int
    changed_at: datetime

    def etag(self, *parts: str) -> str:
        digest = hashlib.sha256("|".join((str(self.number), *parts)).encode()).hexdigest()[:32]
        return f'W/"{digest}"'


# The version of a place and the state of every feed in one round trip: all a 304 needs.
POLL_STATE = text("""
SELECT 'version' AS kind, location_code AS name, version AS position, changed_at AS checked_at,
       NULL::timestamptz AS last_event_at
FROM data_version WHERE location_code = :code
UNION ALL
SELECT 'feed', c.feed, c.position, c.updated_at, p.last_event_at
FROM feed_cursor c LEFT JOIN feed_progress p ON p.feed = c.feed
""")


@dataclass(frozen=True)
class PollState:
    version: Version
    freshness: dict[str, dict[str, Any]]

    @property
    def data_as_of(self) -> str | None:
        """The oldest 'last event applied' of the feeds: figures include everything the producers did before it."""
        moments = [state["last_event_at"] for state in self.freshness.values() if state.get("last_event_at")]
        return min(moments) if moments else None


async def poll_state(session: AsyncSession, where: Place) -> PollState:
    """The data version of a place, and per feed: the last position applied, when that event happened at the
    producer, and when the feed was last checked."""
    version, fresh = Version(0, EPOCH), {}
    for row in await session.execute(POLL_STATE, {"code": where.version_key}):
        if row.kind == "version":
            version = Version(row.position, row.checked_at)
        else:
            fresh[row.name] = {"position": row.position, "checked_at": row.checked_at.isoformat(),
                               "last_event_at": row.last_event_at.isoformat() if row.last_event_at else None}
    return PollState(version, fresh)


async def data_version(session: AsyncSession, where: Place) -> Version:
    return (await poll_state(session, where)).version


Versioned = dict[str, tuple[int, Counts]]  # commune -> (data version, counts at that version)


async def _store_commune_counts(session: AsyncSession, counted: dict[str, dict[str, Counts]],
                                versions: dict[str, int]) -> None:
    """Stores fresh counts (period id -> commune -> counts), each with the version of the data it was counted from."""
    rows = [{"period_id": period_id, "commune_code": code, "province_code": communes()[code].province_code,
             "version": versions[code], "figures": by_commune[code]}
            for period_id, by_commune in sorted(counted.items()) for code in sorted(by_commune)]
    if not rows:
        return
    statement = insert(CommuneFigures.__table__)
    await session.execute(
        statement.on_conflict_do_update(index_elements=["period_id", "commune_code"],
                                        set_={"version": statement.excluded.version,
                                              "figures": statement.excluded.figures}), rows)


async def _current_counts(session: AsyncSession, periods: list[Period], versions: dict[str, int],
                          known: dict[str, Versioned] | None = None) -> dict[str, Versioned]:
    """Current counts (period id -> commune -> (version, counts)) of the communes in `versions` (commune -> its data
    version) for each of `periods`. Counts already `known` at the current version are reused; the others are read
    from `commune_figures`, or recounted (every period's children in one pass) and stored there."""
    known = known or {}
    needed = {p.id: {code for code, version in versions.items()
                     if known.get(p.id, {}).get(code, (None,))[0] != version} for p in periods}
    stored: dict[str, Versioned] = {p.id: {} for p in periods}
    wanted = sorted(set().union(*needed.values()))
    if wanted:
        table = CommuneFigures.__table__
        for row in await session.execute(
            select(table.c.period_id, table.c.commune_code, table.c.version, table.c.figures)
            .where(table.c.period_id.in_([p.id for p in periods]), table.c.commune_code.in_(wanted))
        ):
            if row.commune_code in needed[row.period_id]:
                stored[row.period_id][row.commune_code] = (row.version, row.figures)
    stale = {p.id: sorted(code for code in needed[p.id] if stored[p.id].get(code, (None,))[0] != versions[code])
             for p in periods}
    stale_periods = [p for p in periods if stale[p.id]]
    fresh = await commune_counts_of_periods(session, sorted(set().union(*stale.values())), stale_periods)
    fresh = {period_id: {code: fresh[period_id][code] for code in stale[period_id]} for period_id in fresh}
    await _store_commune_counts(session, fresh, versions)
    result: dict[str, Versioned] = {}
    for period in periods:
        current: Versioned = {}
        for code, version in versions.items():
            if code in fresh.get(period.id, {}):
                current[code] = (version, fresh[period.id][code])
            elif code in stored[period.id]:
                current[code] = (version, stored[period.id][code][1])
            else:
                current[code] = (version, known[period.id][code][1])
        result[period.id] = current
    return result


async def _commune_versions(session: AsyncSession, province: str | None) -> dict[str, int]:
    table = DataVersion.__table__
    query = select(table.c.location_code, table.c.version).where(func.length(table.c.location_code) == 5)
    if province is not None:
        query = query.where(table.c.province_code == province)
    return {code: version for code, version in (await session.execute(query)).all()}


NATIONAL_WORK_MEM = "256MB"


async def province_totals(session: AsyncSession, periods: list[Period]) -> dict[str, dict[str, Counts]]:
    """Every province's totals for each of `periods` (period id -> province -> counts): stored totals where still
    current; the outdated ones of all the periods are counted together, grouped by province, in one pass over the
    children (and stored)."""
    versions_table, stored_table = DataVersion.__table__, ProvinceFigures.__table__
    versions = {code: version for code, version in (await session.execute(
        select(versions_table.c.location_code, versions_table.c.version)
        .where(versions_table.c.location_code.in_(sorted(provinces())))
    )).all()}
    stored: dict[tuple[str, str], tuple[int, Counts]] = {
        (row.period_id, row.province_code): (row.version, row.figures)
        for row in await session.execute(
            select(stored_table.c.period_id, stored_table.c.province_code, stored_table.c.version,
                   stored_table.c.figures)
            .where(stored_table.c.period_id.in_([p.id for p in periods]),
                   stored_table.c.province_code.in_(list(versions)))
        )
    }
    result = {p.id: {code: stored[p.id, code][1] for code, version in versions.items()
                     if stored.get((p.id, code), (None,))[0] == version} for p in periods}
    stale_periods = [p for p in periods if len(result[p.id]) < len(versions)]
    if not stale_periods:
        return result
    # One pass over the children counts every outdated province of every outdated period: counting a province that
    # was still current in one of them costs nothing more, and its fresh count is as good.
    outdated = sorted({code for p in stale_periods for code in versions if code not in result[p.id]})
    # Grouping a million children joined to each period: with the default 4 MB the aggregate spills to disk and
    # takes four times as long (46 s against 12.5 s for four periods, measured on a loaded machine).
    await session.execute(text(f"SET LOCAL work_mem = '{NATIONAL_WORK_MEM}'"))
    counted = await province_counts(session, outdated, stale_periods)
    rows = []
    for period in stale_periods:
        for province in outdated:
            result[period.id][province] = counted[period.id][province]
            rows.append({"period_id": period.id, "province_code": province, "version": versions[province],
                         "figures": counted[period.id][province]})
    statement = insert(stored_table)
    await session.execute(statement.on_conflict_do_update(
        index_elements=["period_id", "province_code"],
        set_={"version": statement.excluded.version, "figures": statement.excluded.figures}), rows)
    return result


async def place_totals(session: AsyncSession, periods: list[Period], where: Place) -> dict[str, Counts]:
    """The totals of a place for each of `periods` (period id -> counts), from stored counts: the provinces' for the
    nation, the communes' otherwise (recounting only the communes whose data changed since they were stored)."""
    if where.level == "national":
        by_period = await province_totals(session, periods)
        return {p.id: add_counts(list(by_period[p.id].values())) for p in periods}
    versions = await _commune_versions(session, where.province)
    if where.level == "commune":
        versions = {code: version for code, version in versions.items() if code == where.code}
    current = await _current_counts(session, periods, versions)
    return {p.id: add_counts([counts for _, counts in current[p.id].values()]) for p in periods}


async def keep_national_ready(database: Database, periods: list[Period], chunk: int = 4) -> int:
    """Counts the provinces' totals of `periods` wherever they are outdated, a few periods per transaction, so the
    first national request for any of them reads stored totals instead of counting a million children. Returns how
    many periods needed counting. `database` is a pool of its own whose statements may take longer than a
    request's."""
    counted = 0
    for start in range(0, len(periods), chunk):
        part = periods[start:start + chunk]
        async with database.sessionmaker() as session, session.begin():
            stale = await outdated_periods(session, part)
            if stale:
                await province_totals(session, stale)
                counted += len(stale)
    return counted


async def outdated_periods(session: AsyncSession, periods: list[Period]) -> list[Period]:
    found = await session.execute(OUTDATED_PERIODS, {"periods": [p.id for p in periods],
                                                     "provinces": sorted(provinces())})
    outdated = set(found.scalars())
    return [p for p in periods if p.id in outdated]


# The periods that lack a province's totals at its current data version.
OUTDATED_PERIODS = text("""
SELECT p.period_id FROM unnest(CAST(:periods AS varchar[])) AS p(period_id)
WHERE EXISTS (
    SELECT 1 FROM data_version v LEFT JOIN province_figures f
        ON f.period_id = p.period_id AND f.province_code = v.location_code AND f.version = v.version
    WHERE v.location_code IN (SELECT unnest(CAST(:provinces AS varchar[]))) AND f.period_id IS NULL)
""")


@dataclass(frozen=True)
class ProvinceView:
    """The communes of one province for a family of periods, at one data version of the province: their counts,
    what suppression hides in each (decided for the whole family together), and the cells a report shows."""

    version: int
    versioned: dict[str, Versioned]  # period id -> commune counts
    counts: dict[str, dict[str, Counts]]  # period id -> every official commune -> counts
    hidden: dict[str, dict[str, dict[Cell, str]]]  # period id -> commune -> hidden cells
    layout: Layout

    def total(self, period_id: str) -> Counts:
        return add_counts(list(self.counts[period_id].values()))


class ProvinceViews:
    """The latest `ProvinceView` per (period family, province), in memory: commune reports of a province share it,
    and after a change only the communes whose version moved are read again."""

    def __init__(self, size: int = 64):
        self.size = size
        self.entries: OrderedDict[tuple[tuple[str, ...], str], ProvinceView] = OrderedDict()

    async def get(self, session: AsyncSession, period: Period, province: str, version: int,
                  settings: ReportingSettings) -> ProvinceView:
        published = period.kind in settings.commune_period_kinds
        family = period_family(period, settings.commune_period_kinds) if published else [period]
        entry_key = (tuple(p.id for p in family), province)
        previous = self.entries.get(entry_key)
        if previous is not None and previous.version == version:
            self.entries.move_to_end(entry_key)
            return previous
        versions = await _commune_versions(session, province)
        versioned = await _current_counts(session, family, versions, previous.versioned if previous else None)
        official = [code for code, c in communes().items() if c.province_code == province]
        counts = {p.id: {code: versioned[p.id][code][1] if code in versioned[p.id] else {} for code in official}
                  for p in family}
        if previous is not None and previous.counts == counts:
            # The province changed, but not in these periods (a case of another year, a child's record that moves
            # no figure of them): suppression depends on nothing else, so what it hid still holds.
            layout, hidden = previous.layout, previous.hidden
        else:
            layout = Layout.of(part for by_commune in counts.values() for part in by_commune.values())
            hidden = (suppress_family(counts, family, layout, settings.suppression_threshold) if published
                      else {p.id: {code: {} for code in official} for p in family})
        view = ProvinceView(version, versioned, counts, hidden, layout)
        self.entries[entry_key] = view
        self.entries.move_to_end(entry_key)
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)
        return view


@dataclass
class ValueRow:
    indicator: str
    breakdown: str | None
    category: str | None
    value: float | int | None
    display: str
    numerator: int | None = None
    denominator: int | None = None
    suppressed: bool = False

    def labels(self) -> dict[str, str | None]:
        if self.breakdown is None or self.category is None:
            return {"category_vi": "Tổng số", "category_en": "Total"}
        if self.breakdown == LOCALITY:
            found = place(self.category)
            name = found.name if found else self.category
            return {"category_vi": name, "category_en": name}
        return {"category_vi": label(self.breakdown, self.category, "vi"),
                "category_en": label(self.breakdown, self.category, "en")}

    def as_dict(self, period: str, location: str) -> dict[str, Any]:
        return {"indicator": self.indicator, "period": period, "location": location, "breakdown": self.breakdown,
                "category": self.category, **self.labels(), "value": self.value, "display": self.display,
                "numerator": self.numerator, "denominator": self.denominator, "suppressed": self.suppressed}


def _row(indicator: Indicator, counts: Counts, cell: Cell, hidden: bool, settings: ReportingSettings) -> ValueRow:
    code, breakdown, category = cell
    number, denominator = cell_count(indicator, counts, cell)
    if hidden:
        return ValueRow(code, breakdown or None, category or None, None, settings.suppressed_label, suppressed=True)
    if indicator.is_ratio:
        factor = 100.0 if indicator.unit == "percent" else 1.0
        ratio = round(factor * number / denominator, 1) if denominator else None
        return ValueRow(code, breakdown or None, category or None, ratio, "" if ratio is None else f"{ratio:.1f}",
                        number, denominator)
    return ValueRow(code, breakdown or None, category or None, number, str(number))


@dataclass(frozen=True)
class PlaceFigures:
    """What a report of one place and period is made of."""

    counts: Counts
    layout: Layout
    hidden: dict[Cell, str]
    localities: list[tuple[str, Counts, dict[Cell, str]]]  # (code, counts, hidden cells) per commune or province


async def place_figures(session: AsyncSession, period: Period, where: Place, version: Version,
                        settings: ReportingSettings, views: ProvinceViews) -> PlaceFigures:
    """The counts of a place and what its published report hides."""
    if where.level == "commune":
        assert where.province is not None
        view = await views.get(session, period, where.province, version.number, settings)
        return PlaceFigures(view.counts[period.id][where.code], view.layout, view.hidden[period.id][where.code], [])
    if where.level == "province":
        view = await views.get(session, period, where.code, version.number, settings)
        localities: list[tuple[str, Counts, dict[Cell, str]]] = []
        if period.kind in settings.commune_period_kinds:  # commune figures are published for these periods only
            localities = [(code, view.counts[period.id][code], view.hidden[period.id][code])
                          for code in sorted(view.counts[period.id])]
        return PlaceFigures(view.total(period.id), view.layout, {}, localities)
    by_province = (await province_totals(session, [period]))[period.id]
    everyone = {code: by_province.get(code, {}) for code in sorted(provinces())}
    total = add_counts(list(everyone.values()))
    return PlaceFigures(total, Layout.of([total]), {}, [(code, part, {}) for code, part in everyone.items()])


def rows_of(figures: PlaceFigures, settings: ReportingSettings, indicators: list[Indicator] | None = None,
            breakdown: str | None = None, own: bool = False) -> list[ValueRow]:
    """The report's cells; the commune's own view shows what the published one hides."""
    hidden = {} if own else figures.hidden
    rows: list[ValueRow] = []
    for indicator in indicators or list(INDICATORS):
        for cell in figures.layout.cells[indicator.code]:
            if breakdown is not None and cell[1] != breakdown:
                continue
            rows.append(_row(indicator, figures.counts, cell, cell in hidden, settings))
        if indicator.breakdown(LOCALITY) and figures.localities and breakdown in (None, LOCALITY):
            for code, part, locality_hidden in figures.localities:
                total_cell = (indicator.code, "", "")
                row = _row(indicator, part, total_cell, total_cell in locality_hidden, settings)
                row.breakdown, row.category = LOCALITY, code
                rows.append(row)
    return rows


async def report_rows(session: AsyncSession, period: Period, where: Place, version: Version,
                      settings: ReportingSettings, views: ProvinceViews,
                      indicators: list[Indicator] | None = None, breakdown: str | None = None,
                      own: bool = False) -> list[ValueRow]:
    """Every cell of the wanted indicators for one place and period, suppressed where the place is a commune (except
    in the commune's own view)."""
    figures = await place_figures(session, period, where, version, settings, views)
    return rows_of(figures, settings, indicators, breakdown, own)


@dataclass(frozen=True)
class Revision:
    number: int
    first_published_at: datetime
    revised_at: datetime

    def describe(self) -> dict[str, Any]:
        return {"number": self.number, "first_published_at": self.first_published_at.isoformat(),
                "revised_at": self.revised_at.isoformat()}


PUBLISH = text("""
INSERT INTO report_revision (period_id, location_code, revision, digest, first_published_at, revised_at)
VALUES (:period, :location, 1, :digest, :now, :now)
ON CONFLICT (period_id, location_code) DO UPDATE
SET revision = report_revision.revision + 1, digest = excluded.digest, revised_at = excluded.revised_at
WHERE report_revision.digest <> excluded.digest
RETURNING revision, first_published_at, revised_at
""")
CURRENT_REVISION = text("""
SELECT revision, first_published_at, revised_at FROM report_revision
WHERE period_id = :period AND location_code = :location
""")


class Revisions:
    """The published revision of each (period, place): recorded when a report's figures are first produced, moved on
    when they differ from the last produced ones (a case later found unfounded changes the past). Checked once per
    data version of the place."""

    def __init__(self, size: int = 4096):
        self.size = size
        self.seen: OrderedDict[tuple[str, str, int], Revision] = OrderedDict()

    async def of(self, session: AsyncSession, period: Period, where: Place, version: Version,
                 figures: PlaceFigures) -> Revision:
        cache_key = (period.id, where.code, version.number)
        if cache_key in self.seen:
            return self.seen[cache_key]
        # The figures as published: counts, what is hidden, and the localities' counts.
        digest = hashlib.sha256(orjson.dumps(
            [sorted(figures.counts.items()), sorted("|".join(cell) for cell in figures.hidden),
             [(code, sorted(part.items()), sorted("|".join(cell) for cell in hidden))
              for code, part, hidden in figures.localities]])).hexdigest()
        params = {"period": period.id, "location": where.code}
        found = (await session.execute(PUBLISH, {**params, "digest": digest, "now": utcnow()})).first()
        if found is None:  # unchanged since the last publication
            found = (await session.execute(CURRENT_REVISION, params)).one()
        revision = Revision(found.revision, found.first_published_at, found.revised_at)
        self.seen[cache_key] = revision
        while len(self.seen) > self.size:
            self.seen.popitem(last=False)
        return revision


def indicator_list(codes: str | None) -> list[Indicator]:
    if not codes:
        return list(INDICATORS)
    wanted = [code.strip() for code in codes.split(",") if code.strip()]
    unknown = [code for code in wanted if code not in BY_CODE]
    if unknown:
        raise NotFound("unknown indicator: see GET /v1/indicators")
    return [BY_CODE[code] for code in dict.fromkeys(wanted)]


def period_list(value: str, limit: int) -> list[Period]:
    periods = [parse_period(p.strip()) for p in dict.fromkeys(value.split(",")) if p.strip()]
    if not periods or len(periods) > limit:
        raise BadRequest(f"give between 1 and {limit} periods")
    return periods

"""Reading figures: who may see which place, materialised counts, suppression, and report rows.

Every read goes through `readable_location()`, the one place that checks the caller's jurisdiction.
Counts are materialised per commune and period (`commune_figures`) and per province and period
(`province_figures`), each tagged with the data version it was computed from. In memory, `ProvinceViews` keeps the
latest view of each province and period (its communes' counts and what suppression hides), so a read while nothing
changed counts nothing, and after a change only the communes whose version moved are read or recounted.
"""

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.auth import Subject
from services.common.errors import NotFound
from services.common.locations import communes, provinces
from services.reporting.figures import Counts, add_counts, commune_counts
from services.reporting.indicators import BY_CODE, INDICATORS, LOCALITY, Indicator
from services.reporting.ingest import NATION
from services.reporting.models import CommuneFigures, DataVersion, ProvinceFigures
from services.reporting.periods import Period
from services.reporting.settings import ReportingSettings
from services.reporting.suppression import COMPLEMENTARY, Cell, Layout, cell_count, suppress

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


async def _commune_counts_of_province(session: AsyncSession, period: Period, province: str,
                                      known: Versioned | None = None) -> Versioned:
    """Current counts of every commune of a province that has data. Counts already `known` at the current version
    are reused; the others are read from `commune_figures`, or recounted and stored there when out of date."""
    versions_table, stored_table = DataVersion.__table__, CommuneFigures.__table__
    versions = {
        row.location_code: row.version
        for row in await session.execute(
            select(versions_table.c.location_code, versions_table.c.version)
            .where(versions_table.c.province_code == province, func.length(versions_table.c.location_code) == 5)
        )
    }
    known = known or {}
    needed = [code for code, version in versions.items() if known.get(code, (None,))[0] != version]
    stored: Versioned = {}
    if needed:
        stored = {
            row.commune_code: (row.version, row.figures)
            for row in await session.execute(
                select(stored_table.c.commune_code, stored_table.c.version, stored_table.c.figures)
                .where(stored_table.c.period_id == period.id, stored_table.c.commune_code.in_(needed))
            )
        }
    stale = sorted(code for code in needed if stored.get(code, (None,))[0] != versions[code])
    fresh = await commune_counts(session, stale, period)
    if stale:
        statement = insert(stored_table)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["period_id", "commune_code"],
                set_={"version": statement.excluded.version, "figures": statement.excluded.figures},
            ),
            [{"period_id": period.id, "commune_code": code, "province_code": province, "version": versions[code],
              "figures": fresh[code]} for code in stale],
        )
    result: Versioned = {}
    for code, version in versions.items():
        if code in fresh:
            result[code] = (version, fresh[code])
        elif code in stored:
            result[code] = (version, stored[code][1])
        else:
            result[code] = (version, known[code][1])
    return result


async def _province_counts(session: AsyncSession, period: Period, provinces_wanted: list[str]) -> dict[str, Counts]:
    versions_table, stored_table = DataVersion.__table__, ProvinceFigures.__table__
    versions = {
        row.location_code: row.version
        for row in await session.execute(
            select(versions_table.c.location_code, versions_table.c.version)
            .where(versions_table.c.location_code.in_(provinces_wanted))
        )
    }
    stored = {
        row.province_code: (row.version, row.figures)
        for row in await session.execute(
            select(stored_table.c.province_code, stored_table.c.version, stored_table.c.figures)
            .where(stored_table.c.period_id == period.id, stored_table.c.province_code.in_(list(versions)))
        )
    }
    result: dict[str, Counts] = {}
    for province, version in versions.items():
        if stored.get(province, (None,))[0] == version:
            result[province] = stored[province][1]
            continue
        by_commune = await _commune_counts_of_province(session, period, province)
        total = add_counts([counts for _, counts in by_commune.values()])
        statement = insert(stored_table).values(period_id=period.id, province_code=province, version=version,
                                                figures=total)
        await session.execute(statement.on_conflict_do_update(
            index_elements=["period_id", "province_code"],
            set_={"version": statement.excluded.version, "figures": statement.excluded.figures},
        ))
        result[province] = total
    return result


@dataclass(frozen=True)
class ProvinceView:
    """The communes of one province for one period, at one data version of the province: their counts, what
    suppression hides in each, and the cells a report shows."""

    version: int
    versioned: Versioned
    communes: dict[str, Counts]
    hidden: dict[str, dict[Cell, str]]
    layout: Layout
    total: Counts


class ProvinceViews:
    """The latest `ProvinceView` per (period, province), in memory: commune reports of a province share it, and
    after a change only the communes whose version moved are read again."""

    def __init__(self, size: int = 64):
        self.size = size
        self.entries: OrderedDict[tuple[str, str], ProvinceView] = OrderedDict()

    async def get(self, session: AsyncSession, period: Period, province: str, version: int,
                  threshold: int) -> ProvinceView:
        entry_key = (period.id, province)
        previous = self.entries.get(entry_key)
        if previous is not None and previous.version == version:
            self.entries.move_to_end(entry_key)
            return previous
        versioned = await _commune_counts_of_province(session, period, province,
                                                      previous.versioned if previous else None)
        everyone = {code: versioned[code][1] if code in versioned else {}
                    for code, c in communes().items() if c.province_code == province}
        layout = Layout.of(everyone.values())
        view = ProvinceView(version, versioned, everyone, suppress(everyone, layout, threshold), layout,
                            add_counts(list(everyone.values())))
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
    suppressed: str | None = None

    def as_dict(self, period: str, location: str) -> dict[str, Any]:
        return {"indicator": self.indicator, "period": period, "location": location, "breakdown": self.breakdown,
                "category": self.category, "value": self.value, "display": self.display,
                "numerator": self.numerator, "denominator": self.denominator, "suppressed": self.suppressed}


def _row(indicator: Indicator, counts: Counts, cell: Cell, hidden: str | None,
         settings: ReportingSettings) -> ValueRow:
    code, breakdown, category = cell
    number, denominator = cell_count(indicator, counts, cell)
    if hidden:
        label = settings.complementary_label if hidden == COMPLEMENTARY else settings.suppressed_label
        return ValueRow(code, breakdown or None, category or None, None, label, suppressed=hidden)
    if indicator.is_rate:
        rate = round(100.0 * number / denominator, 1) if denominator else None
        return ValueRow(code, breakdown or None, category or None, rate, "" if rate is None else f"{rate:.1f}",
                        number, denominator)
    return ValueRow(code, breakdown or None, category or None, number, str(number))


async def report_rows(session: AsyncSession, period: Period, where: Place, version: Version,
                      settings: ReportingSettings, views: ProvinceViews,
                      indicators: list[Indicator] | None = None, breakdown: str | None = None) -> list[ValueRow]:
    """Every cell of the wanted indicators for one place and period, suppressed where the place is a commune."""
    hidden: dict[Cell, str] = {}
    localities: list[tuple[str, Counts, str | None]] = []
    if where.level == "commune":
        assert where.province is not None
        view = await views.get(session, period, where.province, version.number,
                                      settings.suppression_threshold)
        counts, hidden, layout = view.communes[where.code], view.hidden[where.code], view.layout
    elif where.level == "province":
        view = await views.get(session, period, where.code, version.number, settings.suppression_threshold)
        counts, layout = view.total, view.layout
        localities = [(code, view.communes[code], view.hidden[code].get(("0101", "", "")))
                      for code in sorted(view.communes)]
    else:
        by_province = await _province_counts(session, period, sorted(provinces()))
        everyone_provinces = {code: by_province.get(code, {}) for code in sorted(provinces())}
        counts = add_counts(list(everyone_provinces.values()))
        layout = Layout.of([counts])
        localities = [(code, part, None) for code, part in everyone_provinces.items()]

    rows: list[ValueRow] = []
    for indicator in indicators or list(INDICATORS):
        for cell in layout.cells[indicator.code]:
            if breakdown is not None and cell[1] != breakdown:
                continue
            rows.append(_row(indicator, counts, cell, hidden.get(cell), settings))
        if indicator.breakdown(LOCALITY) and localities and breakdown in (None, LOCALITY):
            for code, part, locality_hidden in localities:
                row = _row(indicator, part, (indicator.code, "", ""), locality_hidden, settings)
                row.breakdown, row.category = LOCALITY, code
                rows.append(row)
    return rows


def indicator_list(codes: str | None) -> list[Indicator]:
    if not codes:
        return list(INDICATORS)
    wanted = [code.strip() for code in codes.split(",") if code.strip()]
    unknown = [code for code in wanted if code not in BY_CODE]
    if unknown:
        raise NotFound(f"unknown indicator {unknown[0][:20]!r}: see GET /v1/indicators")
    return [BY_CODE[code] for code in dict.fromkeys(wanted)]

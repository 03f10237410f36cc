"""Small counts below province level are hidden, and so is whatever would let them be recovered by subtraction."""

import random
import uuid
from datetime import UTC, datetime

from services.common.db import Database
from services.common.locations import communes
from services.common.outbox import Event
from services.reporting.figures import Counts
from services.reporting.indicators import BY_CODE, INDICATORS, LOCALITY, key
from services.reporting.ingest import Ingestor
from services.reporting.periods import parse_period
from services.reporting.service import ProvinceViews, data_version, place, report_rows
from services.reporting.settings import ReportingSettings
from services.reporting.suppression import COMPLEMENTARY, PRIMARY, Layout, cell_count, suppress

THRESHOLD = 5


def children(male: int, female: int) -> Counts:
    return {key("TE01"): male + female, key("TE01", "sex", "male"): male, key("TE01", "sex", "female"): female,
            key("TE01", "age_group", "6-10"): male + female}


def equations(province: dict[str, Counts], layout: Layout) -> list[list[tuple[str, tuple[str, str, str]]]]:
    """What an outsider can subtract: each additive breakdown against its total within a commune, and each cell
    across the communes against the published province figure."""
    found = []
    for code, cells in layout.cells.items():
        indicator = BY_CODE[code]
        found += [[(commune, cell) for commune in province] for cell in cells]
        if indicator.is_rate:
            continue
        for breakdown in indicator.breakdowns:
            if breakdown.additive and breakdown.code != LOCALITY:
                found += [[(commune, cell) for cell in cells if cell[1] in ("", breakdown.code)]
                          for commune in province]
    return found


def assert_safe(province: dict[str, Counts], hidden: dict[str, dict]) -> None:
    layout = Layout.of(province.values())
    for commune, counts in province.items():
        for code, cells in layout.cells.items():
            for cell in cells:
                number, denominator = cell_count(BY_CODE[code], counts, cell)
                small = [number] if denominator is None else [number, denominator, denominator - number]
                if any(0 < n < THRESHOLD for n in small):
                    assert hidden[commune].get(cell) == PRIMARY, (commune, cell, number)
    for equation in equations(province, layout):
        unknown = [member for member in equation if member[1] in hidden[member[0]]]
        assert len(unknown) != 1, unknown


def test_a_small_count_and_its_complements_are_hidden() -> None:
    province = {"A": children(3, 9), "B": children(10, 10), "C": children(0, 0)}
    hidden = suppress(province, Layout.of(province.values()), THRESHOLD)
    assert hidden["A"][("TE01", "sex", "male")] == PRIMARY
    # 12 - 9 would give 3 back: female is hidden in A; and B's male, or the province total minus B would.
    assert hidden["A"][("TE01", "sex", "female")] == COMPLEMENTARY
    assert hidden["B"][("TE01", "sex", "male")] == COMPLEMENTARY
    assert hidden["B"][("TE01", "sex", "female")] == COMPLEMENTARY
    assert ("TE01", "", "") not in hidden["A"] and ("TE01", "", "") not in hidden["B"]
    assert not hidden["C"]
    assert_safe(province, hidden)


def test_a_small_rate_is_hidden_in_every_form() -> None:
    province = {"A": {key("TE04") + "|n": 10, key("TE04") + "|d": 12}, "B": {key("TE04") + "|n": 50,
                                                                              key("TE04") + "|d": 50}}
    hidden = suppress(province, Layout.of(province.values()), THRESHOLD)
    assert hidden["A"][("TE04", "", "")] == PRIMARY  # two children not registered: 12 - 10
    assert hidden["B"][("TE04", "", "")] == COMPLEMENTARY
    assert_safe(province, hidden)


def test_random_small_provinces_never_leave_a_lone_hidden_cell() -> None:
    rng = random.Random(7)
    for _ in range(200):
        province = {}
        for commune in range(rng.randrange(1, 7)):
            counts: Counts = {}
            for indicator in INDICATORS:
                for breakdown in indicator.breakdowns:
                    if breakdown.code == LOCALITY:
                        continue
                    for category in breakdown.categories:
                        value = rng.choice([0, 0, 1, 2, 3, 4, 5, 7, 12, 40])
                        if indicator.is_rate:
                            counts[key(indicator.code, breakdown.code, category) + "|d"] = value
                            counts[key(indicator.code, breakdown.code, category) + "|n"] = rng.randrange(value + 1)
                        else:
                            counts[key(indicator.code, breakdown.code, category)] = value
                additive = [b for b in indicator.breakdowns if b.additive and b.code != LOCALITY]
                if indicator.is_rate:
                    counts[key(indicator.code) + "|d"] = rng.choice([0, 3, 30])
                    counts[key(indicator.code) + "|n"] = rng.randrange(counts[key(indicator.code) + "|d"] + 1)
                elif additive:
                    # Every additive breakdown of a count sums to the same total.
                    total = sum(counts[key(indicator.code, additive[0].code, c)] for c in additive[0].categories)
                    counts[key(indicator.code)] = total
                    for other in additive[1:]:
                        parts = [0] * len(other.categories)
                        for _ in range(total):
                            parts[rng.randrange(len(parts))] += 1
                        for category, part in zip(other.categories, parts, strict=True):
                            counts[key(indicator.code, other.code, category)] = part
                else:
                    counts[key(indicator.code)] = rng.choice([0, 2, 9])
            province[f"c{commune}"] = counts
        # The service always includes every official commune of the province (at least 38), most of them empty.
        province |= {"empty-1": {}, "empty-2": {}}
        assert_safe(province, suppress(province, Layout.of(province.values()), THRESHOLD))


def case_event(commune: str, forms: list[str]) -> Event:
    payload = {"case_id": str(uuid.uuid4()), "revision": 1, "province_code": commune[:2], "commune_code": commune,
               "received_at": "2024-03-05T03:00:00+00:00", "child_sex": "female", "child_age_group": "6-10",
               "child_id": None, "abuse_forms": forms, "environment": "home", "state": "received",
               "emergency": False, "closure_reason": None, "closed_at": None, "deadlines": {}}
    return Event(seq=1, id=uuid.uuid4(), type="case.received", version=1, occurred_at=datetime.now(UTC),
                 agency="hotline", source="cases", payload=payload)


async def test_province_localities_and_commune_reports_hide_the_same_cells(reporting_db: Database) -> None:
    small, medium, large = [code for code, c in communes().items() if c.province_code == "04"][:3]
    async with reporting_db.sessionmaker() as session, session.begin():
        await Ingestor().apply_cases_events(session, [case_event(small, ["violence"]) for _ in range(2)]
                                            + [case_event(medium, ["neglect"]) for _ in range(7)]
                                            + [case_event(large, ["violence"]) for _ in range(12)])
    settings, views, period = ReportingSettings(), ProvinceViews(), parse_period("2024Q1")
    shown: dict[str, dict] = {}
    async with reporting_db.sessionmaker() as session:
        for code in ("04", small, medium, large):
            where = place(code)
            assert where is not None
            rows = await report_rows(session, period, where, await data_version(session, where), settings,
                                     views, [BY_CODE["0101"]])
            shown[code] = {(r.breakdown, r.category): r for r in rows}
    localities = {category: row for (breakdown, category), row in shown["04"].items() if breakdown == LOCALITY}
    assert shown["04"][(None, None)].value == 21  # the province itself is published in full
    assert localities[small].display == "<5" and shown[small][(None, None)].display == "<5"
    # The smallest other commune hides its total too, else 21 - 12 - 7 would give 2 back.
    assert localities[medium].display == "x" and shown[medium][(None, None)].display == "x"
    assert localities[large].value == 12 and shown[large][(None, None)].value == 12
    # Within the small commune, its only form of abuse would equal the hidden total: hidden as well.
    assert shown[small][("abuse_form", "violence")].value is None
    for code in (small, medium, large):
        for row in shown[code].values():
            assert row.suppressed or row.value is None or row.value == 0 or row.value >= THRESHOLD

"""Published figures: a hidden count cannot be recovered from anything else published at the same time or for an
overlapping place or period (issue 16's class). Checked as an attacker would: every published number and every
equation linking them (breakdowns to totals, communes to the province, half-years to the year, a ratio's parts to
the counts they equal, the same day's stock in two periods) go into one linear system, solved exactly; no hidden
small count may be determined, not by an outsider and not by a commune's own officers knowing their own figures.
"""

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.common.db import Database
from services.common.locations import communes
from services.common.outbox import Event
from services.reporting.figures import Counts
from services.reporting.indicators import BY_CODE, LOCALITY, key
from services.reporting.ingest import Ingestor
from services.reporting.periods import Period, parse_period, period_family, tilings
from services.reporting.service import ProvinceViews, data_version, place, report_rows
from services.reporting.settings import ReportingSettings
from services.reporting.suppression import PRIMARY, Cell, Layout, cell_count, is_small, suppress_family

THRESHOLD = 5
PRIME = 2_147_483_647
FAMILY = [parse_period("2024S1"), parse_period("2024S2"), parse_period("2024")]


# --- a province made of records, so every published equation really holds ---

@dataclass
class Commune:
    children: list[dict] = field(default_factory=list)  # as of 30 June and as of 31 December
    cases: dict[str, list[dict]] = field(default_factory=dict)  # half-year -> cases received


def _make_province(rng: random.Random, size: int) -> dict[str, Commune]:
    province = {}
    for number in range(size):
        commune = Commune()
        for _ in range(rng.choice([0, 1, 2, 3, 6, 14])):
            commune.children.append({"sex": rng.choice(["male", "female"]), "age": rng.choice(["0-5", "6-10"]),
                                     "registered_s1": rng.random() < 0.8, "registered_s2": rng.random() < 0.9,
                                     "group": rng.choice([None, None, "a", "d"]), "supported": rng.random() < 0.6})
        for half in ("2024S1", "2024S2"):
            commune.cases[half] = [{"sex": rng.choice(["male", "female", "unknown"]),
                                    "channel": rng.choice(["phone", "in_person"]), "views": rng.choice([None, 0, 1])}
                                   for _ in range(rng.choice([0, 0, 1, 2, 3, 5, 9]))]
        province[f"c{number}"] = commune
    return province


def _counts(commune: Commune, period: Period) -> Counts:
    counts: Counts = {}

    def add(name: str, value: int = 1) -> None:
        counts[name] = counts.get(name, 0) + value

    as_of = "s1" if period.id == "2024S1" else "s2"
    for child in commune.children:
        for breakdown, category in (("", ""), ("sex", child["sex"]), ("age_group", child["age"])):
            add(key("HT-TE01", breakdown, category))
            add(key("HT-TE04", breakdown, category) + "|d")
            if child[f"registered_{as_of}"]:
                add(key("HT-TE04", breakdown, category) + "|n")
        if child["group"]:
            add(key("HT-TE02"))
            add(key("HT-TE02", "special_group", child["group"]))
            for breakdown, category in (("sex", child["sex"]), ("age_group", child["age"])):
                add(key("HT-TE02", breakdown, category))
            add(key("HT-TE03") + "|d")
            add(key("HT-TE03", "special_group", child["group"]) + "|d")
            if child["supported"]:
                add(key("HT-TE03") + "|n")
                add(key("HT-TE03", "special_group", child["group"]) + "|n")
    halves = ["2024S1", "2024S2"] if period.id == "2024" else [period.id]
    for half in halves:
        for case in commune.cases[half]:
            for breakdown, category in (("", ""), ("sex", case["sex"]), ("channel", case["channel"])):
                add(key("HT-VV01", breakdown, category))
            if case["views"] is not None:
                for breakdown, category in (("", ""), ("sex", case["sex"])):
                    add(key("HT-KT06", breakdown, category) + "|d")
                    add(key("HT-KT06", breakdown, category) + "|n", case["views"])
    add(key("HT-TE08") + "|n", counts.get(key("HT-TE02"), 0))
    add(key("HT-TE08") + "|d", counts.get(key("HT-TE01"), 0))
    return {name: value for name, value in counts.items() if value}


CODES = ("HT-TE01", "HT-TE02", "HT-TE03", "HT-TE04", "HT-TE08", "HT-VV01", "HT-KT06")


def _layout() -> Layout:
    full = Layout.of([])
    cells = {}
    for code in CODES:
        wanted = {"HT-VV01": ("", "sex", "channel"), "HT-TE02": ("", "special_group", "sex", "age_group"),
                  "HT-TE03": ("", "special_group")}.get(code)
        cells[code] = [c for c in full.cells[code] if wanted is None or c[1] in wanted]
        if code in ("HT-TE02", "HT-TE03"):
            cells[code] = [c for c in cells[code] if c[1] != "special_group" or c[2] in ("a", "d")]
        if code == "HT-VV01":
            cells[code] = [c for c in cells[code] if c[1] != "channel" or c[2] in ("phone", "in_person")]
    return Layout(cells)


# --- the attacker ---

def _equations(counts: dict[str, dict[str, Counts]], layout: Layout) -> list[tuple[dict[tuple, int], int]]:
    """Every linear equation an outsider knows, over variables (period, commune, cell, part), part n/d/c."""
    equations = []
    communes_ = list(next(iter(counts.values())))
    for period in FAMILY:
        for code, cells in layout.cells.items():
            indicator = BY_CODE[code]
            for cell in cells:  # columns: the province's published cell
                for part in ("n", "d") if indicator.is_ratio else ("c",):
                    known = sum(_value(counts[period.id][c], cell, part) for c in communes_)
                    equations.append(({(period.id, c, cell, part): 1 for c in communes_}, known))
            for breakdown in indicator.breakdowns:
                if not breakdown.additive or breakdown.code == LOCALITY:
                    continue
                parts = [c for c in cells if c[1] == breakdown.code]
                if len(parts) < len(breakdown.categories):  # the test's layout leaves this breakdown out
                    continue
                for commune in communes_:
                    for part in ("n", "d") if indicator.is_ratio else ("c",):
                        row = {(period.id, commune, (code, "", ""), part): 1}
                        row.update({(period.id, commune, c, part): -1 for c in parts})
                        equations.append((row, 0))
            for other in (indicator.numerator_same_as, indicator.denominator_same_as):
                if other is None or other not in layout.cells:
                    continue
                part = "n" if other == indicator.numerator_same_as else "d"
                for cell in cells:
                    if (other, cell[1], cell[2]) in layout.cells[other]:
                        for commune in communes_:
                            equations.append(({(period.id, commune, cell, part): 1,
                                               (period.id, commune, (other, cell[1], cell[2]), "c"): -1}, 0))
    for whole, parts in tilings(FAMILY):
        for code, cells in layout.cells.items():
            if not BY_CODE[code].additive_over_time:
                continue
            for cell in cells:
                for commune in communes_:
                    for part in ("n", "d") if BY_CODE[code].is_ratio else ("c",):
                        row = {(whole.id, commune, cell, part): 1}
                        row.update({(p.id, commune, cell, part): -1 for p in parts})
                        equations.append((row, 0))
    for code, cells in layout.cells.items():  # 2024S2 and 2024 end on the same day
        if BY_CODE[code].stock:
            for cell in cells:
                for commune in communes_:
                    for part in ("n", "d") if BY_CODE[code].is_ratio else ("c",):
                        equations.append(({("2024S2", commune, cell, part): 1, ("2024", commune, cell, part): -1}, 0))
    return equations


def _value(counts: Counts, cell: Cell, part: str) -> int:
    name = key(*cell)
    return counts.get(name if part == "c" else f"{name}|{part}", 0)


def _determined(equations: list[tuple[dict[tuple, int], int]], unknown: set[tuple],
                value: dict[tuple, int]) -> set[tuple]:
    """The unknowns whose value the equations fix: Gaussian elimination modulo a large prime (coefficients are
    small integers, so the rank is the rational rank). Zeros forced by non-negativity (hidden cells of one sign
    whose known sum is 0) are fed in first."""
    forced = []
    for coefficients, constant in equations:
        hidden = {v: c for v, c in coefficients.items() if v in unknown}
        residual = constant - sum(c * value.get(v, 0) for v, c in coefficients.items() if v not in unknown)
        if hidden and residual == 0 and (all(c > 0 for c in hidden.values()) or all(c < 0 for c in hidden.values())):
            forced += [({v: 1}, 0) for v in hidden]
    rows = []
    for coefficients, _ in [*forced, *equations]:
        row = {v: c % PRIME for v, c in coefficients.items() if v in unknown and c % PRIME}
        if row:
            rows.append(row)
    pivots: dict[tuple, dict[tuple, int]] = {}
    for row in rows:
        row = dict(row)
        for variable in list(row):
            if variable in pivots and variable in row:
                factor = row[variable]
                for v, c in pivots[variable].items():
                    row[v] = (row.get(v, 0) - factor * c) % PRIME
                    if row[v] == 0:
                        del row[v]
        if not row:
            continue
        lead = min(row, key=str)
        inverse = pow(row[lead], PRIME - 2, PRIME)
        row = {v: c * inverse % PRIME for v, c in row.items()}
        for other in pivots.values():
            if lead in other:
                factor = other[lead]
                for v, c in row.items():
                    other[v] = (other.get(v, 0) - factor * c) % PRIME
                    if other[v] == 0:
                        del other[v]
        pivots[lead] = row
    return {lead for lead, row in pivots.items() if len(row) == 1}


def _hidden_variables(hidden: dict, layout: Layout) -> set[tuple]:
    found = set()
    for period_id, by_commune in hidden.items():
        for commune, cells in by_commune.items():
            for cell in cells:
                for part in ("n", "d") if BY_CODE[cell[0]].is_ratio else ("c",):
                    found.add((period_id, commune, cell, part))
    return found


def _small_variables(counts: dict[str, dict[str, Counts]], layout: Layout) -> set[tuple]:
    """What is protected: every number from 1 to THRESHOLD - 1 of a small cell (a zero is published anyway)."""
    found = set()
    for period_id, by_commune in counts.items():
        for commune, part in by_commune.items():
            for code, cells in layout.cells.items():
                indicator = BY_CODE[code]
                for cell in cells:
                    number, denominator = cell_count(indicator, part, cell)
                    if not is_small(indicator, number, denominator, THRESHOLD):
                        continue
                    parts = (("n", number), ("d", denominator)) if indicator.is_ratio else (("c", number),)
                    found.update((period_id, commune, cell, p) for p, value in parts if 0 < value < THRESHOLD)
                    if indicator.is_ratio and denominator is not None and 0 < denominator - number < THRESHOLD:
                        found.add((period_id, commune, cell, "n-d"))
    return found


def audit(counts: dict[str, dict[str, Counts]], hidden: dict, layout: Layout, insiders: bool = False) -> list[str]:
    """What an outsider (and, with `insiders`, each commune's officers knowing their own figures) can recover of
    the small counts."""
    problems = []
    equations = _equations(counts, layout)
    value = {(period, commune, cell, part): _value(part_counts, cell, part)
             for period, by_commune in counts.items() for commune, part_counts in by_commune.items()
             for cells in layout.cells.values() for cell in cells for part in ("c", "n", "d")}
    unknown = _hidden_variables(hidden, layout)
    small = _small_variables(counts, layout)
    assert {v for v in small if v[3] != "n-d"} <= unknown, sorted(small - unknown)[:5]
    for who in [None, *(next(iter(counts.values())) if insiders else [])]:
        visible_to_them = {v for v in unknown if v[1] == who}
        determined = _determined(equations, unknown - visible_to_them, value)
        determined |= {(*v[:3], "n-d") for v in determined if v[3] == "n" and (*v[:3], "d") in determined}
        recovered = determined & small
        recovered -= visible_to_them
        if recovered:
            problems.append(f"{who or 'an outsider'} recovers {sorted(recovered)[:3]}")
    return problems


def _suppressed(province: dict[str, Commune], layout: Layout) -> tuple[dict, dict]:
    counts = {p.id: {name: _counts(commune, p) for name, commune in province.items()} for p in FAMILY}
    return counts, suppress_family(counts, FAMILY, layout, THRESHOLD)


def test_the_family_of_a_half_year_is_its_year_and_both_halves() -> None:
    kinds = ReportingSettings().commune_period_kinds
    assert [p.id for p in period_family(parse_period("2024S1"), kinds)] == ["2024S1", "2024S2", "2024"]
    assert [p.id for p in period_family(parse_period("2024AY"), kinds)] == ["2024AS1", "2024AS2", "2024AY"]
    assert [(w.id, [p.id for p in ps]) for w, ps in tilings(FAMILY)] == [("2024", ["2024S1", "2024S2"])]


def test_a_hidden_half_year_is_not_the_year_minus_the_other_half() -> None:
    """One commune's 3 reports in the first half and 9 in the second: the year's 12 and the second half's 9 would
    give 3 back, so one of them is hidden too."""
    layout = Layout({"HT-VV01": [("HT-VV01", "", "")]})
    counts = {"2024S1": {"a": {key("HT-VV01"): 3}, "b": {key("HT-VV01"): 20}, "c": {}, "d": {}},
              "2024S2": {"a": {key("HT-VV01"): 9}, "b": {key("HT-VV01"): 20}, "c": {}, "d": {}},
              "2024": {"a": {key("HT-VV01"): 12}, "b": {key("HT-VV01"): 40}, "c": {}, "d": {}}}
    hidden = suppress_family(counts, FAMILY, layout, THRESHOLD)
    assert hidden["2024S1"]["a"][("HT-VV01", "", "")] == PRIMARY
    assert ("HT-VV01", "", "") in hidden["2024S2"]["a"] or ("HT-VV01", "", "") in hidden["2024"]["a"]
    assert not audit(counts, hidden, layout)


def test_a_rates_denominator_cannot_reveal_a_hidden_count_nor_the_reverse() -> None:
    """HT-TE04's denominators are HT-TE01's children: hiding one hides the other."""
    layout = Layout({"HT-TE01": [("HT-TE01", "", "")], "HT-TE04": [("HT-TE04", "", "")]})
    one_commune = {"a": {key("HT-TE01"): 3, key("HT-TE04") + "|n": 3, key("HT-TE04") + "|d": 3},
                   "b": {key("HT-TE01"): 40, key("HT-TE04") + "|n": 38, key("HT-TE04") + "|d": 40},
                   "c": {key("HT-TE01"): 25, key("HT-TE04") + "|n": 25, key("HT-TE04") + "|d": 25}, "d": {}}
    counts = {p.id: one_commune for p in FAMILY}
    hidden = suppress_family(counts, FAMILY, layout, THRESHOLD)
    for period in FAMILY:
        assert ("HT-TE01", "", "") in hidden[period.id]["a"] and ("HT-TE04", "", "") in hidden[period.id]["a"]
    assert not audit(counts, hidden, layout)


def test_ratio_breakdowns_add_up_so_their_rows_are_protected_too() -> None:
    """Birth registration by sex: numerators and denominators of the sexes add up to the total's."""
    layout = Layout({"HT-TE04": [("HT-TE04", "", ""), ("HT-TE04", "sex", "male"), ("HT-TE04", "sex", "female")]})
    part = {key("HT-TE04") + "|n": 30, key("HT-TE04") + "|d": 32, key("HT-TE04", "sex", "male") + "|n": 2,
            key("HT-TE04", "sex", "male") + "|d": 2, key("HT-TE04", "sex", "female") + "|n": 28,
            key("HT-TE04", "sex", "female") + "|d": 30}
    big = {name: value * 10 for name, value in part.items()}
    counts = {p.id: {"a": part, "b": big, "c": big, "d": {}} for p in FAMILY}
    hidden = suppress_family(counts, FAMILY, layout, THRESHOLD)
    for period in FAMILY:
        cells = hidden[period.id]["a"]
        assert ("HT-TE04", "sex", "male") in cells
        assert len([c for c in cells if c[1] in ("", "sex")]) >= 2  # the total or the other sex hidden with it
    assert not audit(counts, hidden, layout)


def test_a_neighbour_who_knows_its_own_figures_cannot_subtract_another_communes_hidden_cell() -> None:
    layout = Layout({"HT-VV01": [("HT-VV01", "", "")]})
    one = {"a": {key("HT-VV01"): 2}, "b": {key("HT-VV01"): 8}, "c": {key("HT-VV01"): 30}, "d": {}, "e": {}}
    counts = {p.id: one for p in FAMILY[:1]}
    hidden = suppress_family(counts, FAMILY[:1], layout, THRESHOLD)
    column = [commune for commune, cells in hidden["2024S1"].items() if cells]
    assert "a" in column and len(column) >= 3


def test_random_small_provinces_never_let_a_small_count_be_recovered() -> None:
    rng = random.Random(20261128)
    layout = _layout()
    checked = 0
    for _ in range(25):
        province = _make_province(rng, rng.randrange(3, 6))
        counts, hidden = _suppressed(province, layout)
        problems = audit(counts, hidden, layout)
        assert not problems, problems
        checked += len(_small_variables(counts, layout))
    assert checked > 200  # the provinces really had small counts to protect


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
    settings, views, period = ReportingSettings(), ProvinceViews(), parse_period("2024S1")
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
    assert localities[small].suppressed and shown[small][(None, None)].suppressed
    # The column needs at least three hidden cells: the medium commune's 7 goes, with a commune showing zero.
    assert localities[medium].suppressed and shown[medium][(None, None)].suppressed
    assert sum(1 for row in localities.values() if row.suppressed) >= 3
    for code in (small, medium, large):  # a commune's report and the province's locality row agree
        assert localities[code].display == shown[code][(None, None)].display
    # Within the small commune, its only form of abuse would equal the hidden total: hidden as well.
    assert shown[small][("abuse_form", "violence")].suppressed
    for code in (small, medium, large):
        for row in shown[code].values():
            assert row.suppressed or row.value is None or row.value == 0 or row.value >= THRESHOLD


async def test_suppression_is_decided_again_only_when_the_periods_figures_moved(reporting_db: Database) -> None:
    """A change in the province that moves no figure of the family (a case of another year) keeps what was hidden;
    a change within the family's periods decides suppression again, on the new figures."""
    small, large = [code for code, c in communes().items() if c.province_code == "04"][:2]
    async with reporting_db.sessionmaker() as session, session.begin():
        await Ingestor().apply_cases_events(session, [case_event(small, ["violence"]) for _ in range(2)]
                                            + [case_event(large, ["violence"]) for _ in range(12)])
    settings, views, period = ReportingSettings(), ProvinceViews(), parse_period("2024S1")
    where = place("04")
    assert where is not None

    async def view() -> tuple[int, dict]:
        async with reporting_db.sessionmaker() as session:
            version = await data_version(session, where)
            await report_rows(session, period, where, version, settings, views, [BY_CODE["0101"]])
            entry = views.entries[(tuple(p.id for p in FAMILY), "04")]
            return version.number, entry.hidden

    first_version, first_hidden = await view()
    assert first_hidden["2024S1"][small]  # the small commune's 2 cases are hidden
    another_year = case_event(small, ["violence"])
    another_year.payload["received_at"] = "2022-03-05T03:00:00+00:00"
    async with reporting_db.sessionmaker() as session, session.begin():
        await Ingestor().apply_cases_events(session, [another_year])
    second_version, second_hidden = await view()
    assert second_version > first_version and second_hidden is first_hidden

    async with reporting_db.sessionmaker() as session, session.begin():
        await Ingestor().apply_cases_events(session, [case_event(small, ["violence"]) for _ in range(10)])
    third_version, third_hidden = await view()
    assert third_version > second_version and third_hidden is not first_hidden
    rows = await _rows_of(reporting_db, small, period, settings, views)
    assert not rows[(None, None)].suppressed and rows[(None, None)].value == 12  # 2 + 10: no longer small


async def _rows_of(database: Database, code: str, period: Period, settings: ReportingSettings,
                   views: ProvinceViews) -> dict:
    where = place(code)
    assert where is not None
    async with database.sessionmaker() as session:
        rows = await report_rows(session, period, where, await data_version(session, where), settings, views,
                                 [BY_CODE["0101"]])
    return {(r.breakdown, r.category): r for r in rows}

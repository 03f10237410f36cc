"""Reporting periods (kỳ báo cáo), named as in DHIS2, plus the administrative periods with a cut-off day.

Calendar periods: month `202405`, quarter `2024Q2`, half-year `2024S1`, year `2024`.
Administrative periods (Decree 09/2019/NĐ-CP, Art. 12: data are cut off on the 15th):
`2024AS1` = 15 Dec 2023 to 14 Jun 2024, `2024AS2` = 15 Jun 2024 to 14 Dec 2024, `2024AY` = 15 Dec 2023 to
14 Dec 2024. Every period is a closed range of Vietnamese calendar days.

A period's report is due a configurable number of days after the period ends; a province may set its own dates
(the seed plans' "before 10 May", "before 10 November").

Identifiers are ASCII only: a period written with Arabic-Indic or full-width digits is refused, not read.
"""

import re
from dataclasses import dataclass
from datetime import date, timedelta

from services.common.errors import BadRequest

MIN_YEAR, MAX_YEAR = 2000, 2100
PERIOD_KINDS = ("month", "quarter", "half_year", "year", "admin_half_year", "admin_year")
DUE_KEYS = ("M", "Q1", "Q2", "Q3", "Q4", "S1", "S2", "Y", "AS1", "AS2", "AY")
# [0-9] rather than \d: Python's \d also matches "٢٠٢٤" and "２０２４".
_PATTERN = re.compile(r"(?P<year>[0-9]{4})(?:(?P<month>[0-9]{2})|Q(?P<quarter>[1-4])|S(?P<half>[12])"
                      r"|AS(?P<ahalf>[12])|(?P<ayear>AY))?", re.ASCII)
DHIS2_PERIOD_KINDS = {"month": "Monthly", "quarter": "Quarterly", "half_year": "SixMonthly", "year": "Yearly"}


@dataclass(frozen=True)
class Period:
    id: str
    kind: str  # one of PERIOD_KINDS
    start: date
    end: date
    due_key: str  # which entry of a province's own due dates applies

    @property
    def year(self) -> int:
        return int(self.id[:4])

    def due_date(self, lags: dict[str, int], own_dates: dict[str, str] | None = None) -> date | None:
        """The province's own date for this kind of period when it has one, else the lag after the period's end."""
        if own_dates and self.due_key in own_dates:
            month, day = (int(part) for part in own_dates[self.due_key].split("-"))
            return date(self.year, month, min(day, _month_end(self.year, month).day))
        if self.kind not in lags:
            return None
        return self.end + timedelta(days=lags[self.kind])

    def describe(self, lags: dict[str, int], own_dates: dict[str, str] | None = None) -> dict[str, object]:
        due = self.due_date(lags, own_dates)
        return {"id": self.id, "kind": self.kind, "start": self.start.isoformat(), "end": self.end.isoformat(),
                "due_date": due.isoformat() if due else None,
                "due_rule": "province" if own_dates and self.due_key in own_dates else "lag"}

    @property
    def dhis2_period_type(self) -> str | None:
        """DHIS2 has no period type starting on 15 December: administrative periods have none."""
        return DHIS2_PERIOD_KINDS.get(self.kind)

    def previous(self, count: int) -> list["Period"]:
        """This period and the `count - 1` periods of the same kind before it, oldest first."""
        found = [self]
        while len(found) < count:
            found.insert(0, parse_period(_previous_id(found[0])))
        return found


def _month_end(year: int, month: int) -> date:
    first_of_next = date(year + month // 12, month % 12 + 1, 1)
    return first_of_next - timedelta(days=1)


def _previous_id(period: Period) -> str:
    year = period.year
    if period.kind == "month":
        month = int(period.id[4:6])
        return f"{year - 1}12" if month == 1 else f"{year}{month - 1:02d}"
    if period.kind == "quarter":
        quarter = int(period.id[-1])
        return f"{year - 1}Q4" if quarter == 1 else f"{year}Q{quarter - 1}"
    if period.kind == "half_year":
        return f"{year - 1}S2" if period.id.endswith("1") else f"{year}S1"
    if period.kind == "admin_half_year":
        return f"{year - 1}AS2" if period.id.endswith("1") else f"{year}AS1"
    if period.kind == "admin_year":
        return f"{year - 1}AY"
    return str(year - 1)


def parse_period(value: str) -> Period:
    match = _PATTERN.fullmatch(value) if value.isascii() else None
    if match is None:
        raise BadRequest("unknown period: use 202405, 2024Q2, 2024S1, 2024, 2024AS1 or 2024AY (ASCII digits)")
    year = int(match["year"])
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise BadRequest(f"period year must be between {MIN_YEAR} and {MAX_YEAR}")
    if match["month"]:
        month = int(match["month"])
        if not 1 <= month <= 12:
            raise BadRequest("period month must be 01 to 12")
        return Period(value, "month", date(year, month, 1), _month_end(year, month), "M")
    if match["quarter"]:
        quarter = int(match["quarter"])
        return Period(value, "quarter", date(year, 3 * quarter - 2, 1), _month_end(year, 3 * quarter),
                      f"Q{quarter}")
    if match["half"]:
        half = int(match["half"])
        return Period(value, "half_year", date(year, 6 * half - 5, 1), _month_end(year, 6 * half), f"S{half}")
    if match["ahalf"]:
        if match["ahalf"] == "1":
            return Period(value, "admin_half_year", date(year - 1, 12, 15), date(year, 6, 14), "AS1")
        return Period(value, "admin_half_year", date(year, 6, 15), date(year, 12, 14), "AS2")
    if match["ayear"]:
        return Period(value, "admin_year", date(year - 1, 12, 15), date(year, 12, 14), "AY")
    return Period(value, "year", date(year, 1, 1), date(year, 12, 31), "Y")


def period_family(period: Period, kinds: tuple[str, ...]) -> list[Period]:
    """The periods of `kinds` that lie inside the same calendar (or administrative) year as `period`: the tables an
    outsider could subtract from one another. Suppression is decided for them together."""
    year = period.year
    if period.kind.startswith("admin"):
        candidates = [f"{year}AS1", f"{year}AS2", f"{year}AY"]
    else:
        candidates = ([f"{year}{m:02d}" for m in range(1, 13)] + [f"{year}Q{q}" for q in range(1, 5)]
                      + [f"{year}S1", f"{year}S2", str(year)])
    found = [parse_period(identifier) for identifier in candidates]
    return [p for p in found if p.kind in kinds or p.id == period.id]


def tilings(family: list[Period]) -> list[tuple[Period, list[Period]]]:
    """Each period of the family with every set of smaller periods of one kind in the family that tile it exactly."""
    result = []
    for whole in family:
        by_kind: dict[str, list[Period]] = {}
        for part in family:
            if part.kind != whole.kind and whole.start <= part.start and part.end <= whole.end:
                by_kind.setdefault(part.kind, []).append(part)
        for parts in by_kind.values():
            days = sum((p.end - p.start).days + 1 for p in parts)
            if days == (whole.end - whole.start).days + 1:
                result.append((whole, sorted(parts, key=lambda p: p.start)))
    return result


def recent_periods(today: date, years: int) -> list[Period]:
    """Every period of every kind that has begun by `today` and ends in one of the last `years` calendar years (this
    one included), newest first: the periods whose national figures are kept ready."""
    found = []
    for year in range(today.year, today.year - years, -1):
        names = ([f"{year + 1}AS1", f"{year + 1}AY", f"{year}AS2", f"{year}AS1", f"{year}AY", str(year)]
                 + [f"{year}S{h}" for h in (2, 1)] + [f"{year}Q{q}" for q in range(4, 0, -1)]
                 + [f"{year}{m:02d}" for m in range(12, 0, -1)])
        found += [p for p in map(parse_period, names) if p.start <= today and p.end.year > today.year - years]
    return sorted(set(found), key=lambda p: (p.end, p.start), reverse=True)

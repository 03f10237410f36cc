"""Reporting periods (ky bao cao), named as in DHIS2, plus the administrative periods with a cut-off day.

Calendar periods: month `202405`, quarter `2024Q2`, half-year `2024S1`, year `2024`.
Administrative periods (Decree 09/2019/ND-CP, Art. 12: data are cut off on the 15th):
`2024AS1` = 15 Dec 2023 to 14 Jun 2024, `2024AS2` = 15 Jun 2024 to 14 Dec 2024, `2024AY` = 15 Dec 2023 to
14 Dec 2024. Every period is a closed range of Vietnamese calendar days.
"""

import re
from dataclasses import dataclass
from datetime import date, timedelta

from services.common.errors import BadRequest

MIN_YEAR, MAX_YEAR = 2000, 2100
_PATTERN = re.compile(r"^(?P<year>\d{4})(?:(?P<month>\d{2})|Q(?P<quarter>[1-4])|S(?P<half>[12])|AS(?P<ahalf>[12])"
                      r"|(?P<ayear>AY))?$")


@dataclass(frozen=True)
class Period:
    id: str
    kind: str  # month, quarter, half_year, year, admin_half_year, admin_year
    start: date
    end: date
    due_key: str | None  # which `report_due_dates` entry applies

    def due_date(self, due_dates: dict[str, str]) -> date | None:
        if self.due_key is None or self.due_key not in due_dates:
            return None
        month, day = (int(part) for part in due_dates[self.due_key].split("-"))
        return date(int(self.id[:4]), month, day)

    def describe(self, due_dates: dict[str, str]) -> dict[str, object]:
        due = self.due_date(due_dates)
        return {"id": self.id, "kind": self.kind, "start": self.start.isoformat(), "end": self.end.isoformat(),
                "due_date": due.isoformat() if due else None}


def _month_end(year: int, month: int) -> date:
    first_of_next = date(year + month // 12, month % 12 + 1, 1)
    return first_of_next - timedelta(days=1)


def parse_period(value: str) -> Period:
    match = _PATTERN.fullmatch(value)
    if match is None:
        raise BadRequest(f"unknown period {value[:20]!r}: use 202405, 2024Q2, 2024S1, 2024, 2024AS1 or 2024AY")
    year = int(match["year"])
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise BadRequest(f"period year must be between {MIN_YEAR} and {MAX_YEAR}")
    if match["month"]:
        month = int(match["month"])
        if not 1 <= month <= 12:
            raise BadRequest("period month must be 01 to 12")
        return Period(value, "month", date(year, month, 1), _month_end(year, month), None)
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

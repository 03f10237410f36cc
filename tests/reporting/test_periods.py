"""Period identifiers: DHIS2 calendar periods and the Decree 09/2019 administrative periods."""

from datetime import date

import pytest

from services.common.errors import BadRequest
from services.reporting.periods import parse_period
from services.reporting.settings import ReportingSettings


@pytest.mark.parametrize(("identifier", "kind", "start", "end"), [
    ("202402", "month", date(2024, 2, 1), date(2024, 2, 29)),
    ("202412", "month", date(2024, 12, 1), date(2024, 12, 31)),
    ("2024Q2", "quarter", date(2024, 4, 1), date(2024, 6, 30)),
    ("2024S1", "half_year", date(2024, 1, 1), date(2024, 6, 30)),
    ("2024S2", "half_year", date(2024, 7, 1), date(2024, 12, 31)),
    ("2024", "year", date(2024, 1, 1), date(2024, 12, 31)),
    ("2024AS1", "admin_half_year", date(2023, 12, 15), date(2024, 6, 14)),
    ("2024AS2", "admin_half_year", date(2024, 6, 15), date(2024, 12, 14)),
    ("2024AY", "admin_year", date(2023, 12, 15), date(2024, 12, 14)),
])
def test_periods_cover_the_right_days(identifier: str, kind: str, start: date, end: date) -> None:
    period = parse_period(identifier)
    assert (period.kind, period.start, period.end) == (kind, start, end)


def test_due_dates_come_from_settings() -> None:
    due = ReportingSettings().report_due_dates
    assert parse_period("2024S1").due_date(due) == date(2024, 5, 10)
    assert parse_period("2024AY").due_date(due) == date(2024, 11, 10)
    assert parse_period("202405").due_date(due) is None
    assert parse_period("2024").due_date({"Y": "11-20"}) == date(2024, 11, 20)
    with pytest.raises(ValueError, match="unknown period kind"):
        ReportingSettings(report_due_dates={"W1": "01-01"})


@pytest.mark.parametrize("identifier", ["202413", "202400", "2024Q5", "2024S3", "24", "1999", "2024AS3", "2024-05",
                                        "", "2024 ", "2024\n", "2024W1"])
def test_unknown_periods_are_bad_requests(identifier: str) -> None:
    with pytest.raises(BadRequest):
        parse_period(identifier)

"""Period identifiers: DHIS2 calendar periods and the Decree 09/2019 administrative periods."""

from datetime import date

import pytest

from services.common.errors import BadRequest
from services.reporting.periods import parse_period, recent_periods
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


def test_a_report_is_due_a_configurable_lag_after_its_period_ends() -> None:
    settings = ReportingSettings()
    lags = settings.report_due_lag_days
    # The old default made 2025S1 due on 10 May 2025, before the half-year ended.
    assert parse_period("2025S1").due_date(lags) == date(2025, 7, 20)
    assert parse_period("2025S1").due_date(lags) > parse_period("2025S1").end
    assert parse_period("2024AS1").due_date(lags) == date(2024, 7, 4)  # the cut-off period ends on 14 June
    assert parse_period("2024AY").due_date(lags) == date(2025, 1, 13)
    assert parse_period("202405").due_date(lags) == date(2024, 6, 10)
    assert parse_period("2024").due_date({"year": 45}) == date(2025, 2, 14)
    for identifier in ("202402", "2024Q1", "2024S2", "2024", "2024AS2", "2024AY"):
        assert parse_period(identifier).due_date(lags) > parse_period(identifier).end
    with pytest.raises(ValueError, match="invalid due lag"):
        ReportingSettings(report_due_lag_days={"week": 3})


def test_a_province_can_keep_its_own_deadlines() -> None:
    """The seed plans' own dates: 6-month report before 10 May, annual report before 10 (or 20) November."""
    settings = ReportingSettings(province_due_dates={"38": {"S1": "05-10", "AS1": "05-10", "Y": "11-10",
                                                            "AY": "11-20"}})
    own = settings.province_due_dates["38"]
    assert parse_period("2024S1").due_date(settings.report_due_lag_days, own) == date(2024, 5, 10)
    assert parse_period("2024AY").due_date(settings.report_due_lag_days, own) == date(2024, 11, 20)
    assert parse_period("2024Q3").due_date(settings.report_due_lag_days, own) == date(2024, 10, 15)  # the lag
    assert parse_period("2024S1").describe(settings.report_due_lag_days, own)["due_rule"] == "province"
    for bad in ({"380": {"S1": "05-10"}}, {"38": {"W1": "05-10"}}, {"38": {"S1": "13-10"}}):
        with pytest.raises(ValueError):
            ReportingSettings(province_due_dates=bad)


def test_previous_periods_for_a_trend() -> None:
    assert [p.id for p in parse_period("2025Q2").previous(6)] == ["2024Q1", "2024Q2", "2024Q3", "2024Q4",
                                                                   "2025Q1", "2025Q2"]
    assert [p.id for p in parse_period("202502").previous(3)] == ["202412", "202501", "202502"]
    assert [p.id for p in parse_period("2025AS1").previous(3)] == ["2024AS1", "2024AS2", "2025AS1"]


@pytest.mark.parametrize("identifier", ["202413", "202400", "2024Q5", "2024S3", "24", "1999", "2024AS3", "2024-05",
                                        "", "2024 ", "2024\n", "2024W1",
                                        "٢٠٢٤S1", "۲۰۲۴", "２０２４S1", "2024Ｓ1", "２０２４０５", "2024Q٢", "߂߀߂߄"])
def test_unknown_periods_are_bad_requests(identifier: str) -> None:
    with pytest.raises(BadRequest):
        parse_period(identifier)


def test_the_periods_kept_ready_are_every_kind_begun_by_today_in_the_last_years() -> None:
    found = recent_periods(date(2026, 11, 28), 3)
    ids = [p.id for p in found]
    assert len(ids) == len(set(ids))
    assert all(p.start <= date(2026, 11, 28) and p.end.year >= 2024 for p in found)
    assert {"2024S2", "2024Q3", "202410", "2024", "2024AY", "2025AS1", "202611", "2026Q4", "2026", "2026AY"} <= set(ids)
    assert not {"2023S2", "202312", "202612", "2027AS1", "2027AY"} & set(ids)  # too old, or not begun
    # 35 months, 12 quarters, 6 half-years, 3 years, 6 administrative half-years, 3 administrative years
    assert len(ids) == 35 + 12 + 6 + 3 + 6 + 3
    assert [p.end for p in found] == sorted((p.end for p in found), reverse=True)
    assert recent_periods(date(2026, 11, 28), 0) == []

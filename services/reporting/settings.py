"""Reporting settings (env prefix REPORTING_)."""

import hashlib
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings
from services.reporting.periods import DUE_KEYS, PERIOD_KINDS


class ReportingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REPORTING_", extra="ignore")

    port: int = 8003
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/reporting"
    registry_url: str = "http://127.0.0.1:8001"
    cases_url: str = "http://127.0.0.1:8002"
    # Events per batch: each batch is one transaction with one COPY per table, read in pages of at most 1,000 (the
    # producers' limit) while the previous batch is applied.
    feed_batch_size: int = Field(default=5000, ge=1, le=20_000)
    # How long a caught-up consumer waits before asking its feed again: a change shows in the figures at most this
    # long after its producer committed it, plus the batch.
    feed_idle_seconds: float = Field(default=0.25, gt=0, le=60)

    # The national figures of every period that ends in the last `national_ready_years` years are counted ahead
    # (province by province, only where a province's data changed) once the feeds are caught up, then again after
    # each pause: a first national request for such a period reads stored totals. 0 turns this off.
    national_ready_years: int = Field(default=3, ge=0, le=20)
    national_ready_pause_seconds: float = Field(default=30.0, gt=0)
    # Provinces x periods whose commune counts and suppression are kept in memory (a few MB each).
    province_views_cached: int = Field(default=64, ge=1)
    # Reporting days are Vietnamese calendar days: event timestamps are converted to this zone.
    timezone: str = "Asia/Ho_Chi_Minh"
    # Below province level, counts from 1 to `suppression_threshold - 1` are not published (primary suppression).
    suppression_threshold: int = Field(default=5, ge=2, le=100)
    # What every hidden cell shows, whatever the reason it is hidden (a small count, or a cell hidden so that one
    # cannot be worked out): two marks would tell a reader which hidden cells are small, and bound them.
    suppressed_label: str = Field(default="x", max_length=10)
    # A period's report is due this many days after the period ends, per kind of period (month, quarter, half_year,
    # year, admin_half_year, admin_year). No statute in shared/law fixes these lags: they are configuration.
    report_due_lag_days: dict[str, int] = Field(default_factory=lambda: {
        "month": 10, "quarter": 15, "half_year": 20, "year": 30, "admin_half_year": 20, "admin_year": 30})
    # A province's own deadlines, which win over the lag: province code -> kind of period ("S1", "S2", "Y",
    # "AS1", "AS2", "AY", "Q1".."Q4", "M") -> "MM-DD" in the year the period is named after. The seed plans' "6-month
    # report before 10 May, annual report before 10 (or 20, or 3) November" is for example
    # {"38": {"S1": "05-10", "AS1": "05-10", "Y": "11-10", "AY": "11-10"}}.
    province_due_dates: dict[str, dict[str, str]] = Field(default_factory=dict)
    # Periods whose figures are published below province level to readers outside the commune. Months and quarters
    # are left out by default: beside a commune's half-years and years they would multiply the tables an outsider
    # can subtract from one another, and nearly every monthly commune cell would be hidden anyway.
    commune_period_kinds: tuple[str, ...] = ("half_year", "year", "admin_half_year", "admin_year")
    # Confidentiality marking of every output (Decree 56/2017 Art. 24(3): periodic reports state their level of
    # confidentiality and to whom they may be given). The law names no level for these reports: configuration.
    marking_public: str = Field(default="Hạn chế phạm vi cung cấp: chỉ cung cấp cho cơ quan quản lý nhà nước về "
                                        "trẻ em và cơ quan thống kê có thẩm quyền", max_length=300)
    marking_commune_own: str = Field(default="Mật — số liệu của xã chưa che số nhỏ: chỉ sử dụng trong Ủy ban "
                                             "nhân dân cấp xã, không công bố, không sao chép", max_length=300)
    # The child-friendly commune assessment (Decision 06/QĐ-TTg, 2019): the pass marks are the decision's; the points
    # of most criteria were not found in shared/law, so computed criteria score by these rules (criterion -> list of
    # {measure, min, points}) and every criterion without a rule is entered by the commune with its evidence.
    child_friendly_pass_marks: dict[str, int] = Field(default_factory=lambda: {
        "urban_ward": 900, "mountain_island_or_difficult": 800, "other": 850})
    child_friendly_scoring: dict[str, list[dict[str, Any]]] = Field(default_factory=lambda: {
        "6": [{"measure": "special_supported_rate", "min": 95, "points": 50},
              {"measure": "criterion_6_plan_rate", "min": 100, "points": 75}]})
    # Which period of the assessment year the computed criteria count: the calendar year or the administrative
    # year (15 Dec - 14 Dec, Decree 09/2019); the decision's own period was not found.
    child_friendly_period: str = Field(default="AY", pattern=r"^(Y|AY)$")

    @field_validator("report_due_lag_days")
    @classmethod
    def _valid_lags(cls, value: dict[str, int]) -> dict[str, int]:
        for kind, days in value.items():
            if kind not in PERIOD_KINDS or not 0 <= days <= 366:
                raise ValueError(f"invalid due lag {kind!r}: {days!r}")
        return value

    @field_validator("province_due_dates")
    @classmethod
    def _valid_due_dates(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for province, dates in value.items():
            if not (len(province) == 2 and province.isascii() and province.isdigit()):
                raise ValueError(f"invalid province code {province!r}")
            for kind, month_day in dates.items():
                if kind not in DUE_KEYS:
                    raise ValueError(f"unknown period kind {kind!r}")
                month, day = (int(part) for part in month_day.split("-"))
                if not (1 <= month <= 12 and 1 <= day <= 31):
                    raise ValueError(f"invalid due date {month_day!r}")
        return value

    @field_validator("commune_period_kinds")
    @classmethod
    def _valid_kinds(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = set(value) - set(PERIOD_KINDS)
        if unknown:
            raise ValueError(f"unknown period kinds {sorted(unknown)}")
        return value

    @property
    def representation_key(self) -> str:
        """What a response depends on besides the data and the request: part of every ETag."""
        return hashlib.sha256(self.model_dump_json(include={
            "suppression_threshold", "suppressed_label", "timezone", "report_due_lag_days",
            "province_due_dates", "commune_period_kinds", "marking_public", "marking_commune_own",
            "child_friendly_pass_marks", "child_friendly_scoring", "child_friendly_period",
        }).encode()).hexdigest()[:16]

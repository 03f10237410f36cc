"""Reporting settings (env prefix REPORTING_)."""

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class ReportingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REPORTING_", extra="ignore")

    port: int = 8003
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/reporting"
    registry_url: str = "http://127.0.0.1:8001"
    cases_url: str = "http://127.0.0.1:8002"
    feed_batch_size: int = Field(default=500, ge=1, le=1000)
    feed_idle_seconds: float = 1.0

    # Provinces x periods whose commune counts and suppression are kept in memory (a few MB each).
    province_views_cached: int = Field(default=64, ge=1)
    # Reporting days are Vietnamese calendar days: event timestamps are converted to this zone.
    timezone: str = "Asia/Ho_Chi_Minh"
    # Below province level, counts from 1 to `suppression_threshold - 1` are not published (primary suppression).
    suppression_threshold: int = Field(default=5, ge=1)
    suppressed_label: str = "<5"
    # Cells hidden only so a suppressed one cannot be recovered by subtraction (secondary suppression).
    complementary_label: str = "x"
    # Due dates of periodic reports, "MM-DD" in the year the period is named after, per kind of period
    # (S = calendar half-year, Y = year, AS = administrative half-year, AY = administrative year; 1 or 2 = half).
    # The seed plans ask for 6-month reports before 10 May and annual ones before 10 November.
    report_due_dates: dict[str, str] = Field(
        default_factory=lambda: {"S1": "05-10", "AS1": "05-10", "Y": "11-10", "AY": "11-10"})

    @field_validator("report_due_dates")
    @classmethod
    def _valid_due_dates(cls, value: dict[str, str]) -> dict[str, str]:
        for kind, month_day in value.items():
            if kind not in {"S1", "S2", "AS1", "AS2", "Y", "AY", "Q1", "Q2", "Q3", "Q4"}:
                raise ValueError(f"unknown period kind {kind!r}")
            month, day = (int(part) for part in month_day.split("-"))
            if not (1 <= month <= 12 and 1 <= day <= 31):
                raise ValueError(f"invalid due date {month_day!r}")
        return value

    @property
    def representation_key(self) -> str:
        """What a response depends on besides the data and the request: part of every ETag."""
        due = ",".join(f"{kind}={day}" for kind, day in sorted(self.report_due_dates.items()))
        return (f"{self.suppression_threshold}|{self.suppressed_label}|{self.complementary_label}|{self.timezone}"
                f"|{due}")

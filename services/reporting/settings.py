"""Reporting settings (env prefix REPORTING_)."""

from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class ReportingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REPORTING_", extra="ignore")

    port: int = 8003
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/reporting"
    registry_url: str = "http://127.0.0.1:8001"
    cases_url: str = "http://127.0.0.1:8002"
    feed_batch_size: int = 500
    feed_idle_seconds: float = 1.0

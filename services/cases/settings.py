"""Cases settings (env prefix CASES_)."""

from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class CasesSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CASES_", extra="ignore")

    port: int = 8002
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/cases"
    registry_url: str = "http://127.0.0.1:8001"

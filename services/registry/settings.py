"""Registry settings (env prefix REGISTRY_)."""

import tempfile
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class RegistrySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REGISTRY_", extra="ignore")

    port: int = 8001
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/registry"
    # Asked whether a case or task another agency names involves it and the child it wants to read.
    cases_url: str = "http://127.0.0.1:8002"
    cases_timeout_seconds: float = Field(5.0, gt=0)

    # The hotline's match searches per operator and hour (shared by every replica: counted in the database).
    match_searches_per_hour: int = Field(60, ge=1)
    # How often the registry marks the records of children who turned 16 as aged out.
    aged_out_check_seconds: float = Field(3600.0, gt=0)
    aged_out_check_batch: int = Field(500, ge=1)

    # Bulk import: uploads wait on local disk until their job has read them.
    import_dir: Path = Path(tempfile.gettempdir()) / "registry-imports"
    import_max_bytes: int = 30_000_000
    import_max_rows: int = 200_000
    import_batch_rows: int = 2_000
    # Jobs running at once in one process (one per jurisdiction), and the time one job may take.
    import_workers: int = Field(2, ge=1)
    import_max_seconds: float = Field(900.0, gt=0)

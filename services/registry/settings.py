"""Registry settings (env prefix REGISTRY_)."""

import tempfile
from pathlib import Path

from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class RegistrySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REGISTRY_", extra="ignore")

    port: int = 8001
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/registry"
    # Asked whether a case or task another agency names involves it and the child it wants to read.
    cases_url: str = "http://127.0.0.1:8002"

    # Bulk import: uploads wait on local disk until their job has read them.
    import_dir: Path = Path(tempfile.gettempdir()) / "registry-imports"
    import_max_bytes: int = 30_000_000
    import_max_rows: int = 200_000
    import_batch_rows: int = 2_000

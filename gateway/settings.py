"""Gateway settings (env prefix GATEWAY_)."""

import json
from functools import cached_property
from typing import Any

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import DEVELOPMENT_SECRET, ServiceSettings


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    port: int = 8000
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/gateway"
    registry_url: str = "http://127.0.0.1:8001"
    cases_url: str = "http://127.0.0.1:8002"
    reporting_url: str = "http://127.0.0.1:8003"
    public_url: str = "http://127.0.0.1:8000"

    access_token_ttl_seconds: int = 900
    service_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 14 * 24 * 3600

    # Failed logins: after `login_max_failures` in a row the account is locked for `login_lock_seconds`.
    login_max_failures: int = 5
    login_lock_seconds: int = 900

    # Requests per minute per user and per client address; 0 switches a limit off.
    rate_limit_per_user: int = 600
    rate_limit_per_address: int = 1200
    max_body_bytes: int = 1_000_000
    max_upload_bytes: int = 50_000_000
    # Case files (attachments): streamed to the cases service, which holds each file to its own limit
    # (CASES_ATTACHMENT_MAX_BYTES, 20 MiB); this one also leaves room for the form fields around the file.
    max_attachment_bytes: int = 21 * 1024 * 1024
    upstream_timeout_seconds: float = 30.0
    cors_origins: list[str] = Field(default_factory=list)

    # Service accounts, JSON: {"cases": {"secret": "...", "scopes": ["registry:service_read", ...]}, ...}
    service_clients_json: str = "{}"

    seed_demo_users: bool = False
    demo_password: str = "demo"

    @cached_property
    def service_clients(self) -> dict[str, dict[str, Any]]:
        return json.loads(self.service_clients_json)

    def secret_values(self) -> dict[str, str]:
        values = {f"service client {name}": str(c.get("secret", "")) for name, c in self.service_clients.items()}
        if self.seed_demo_users:
            values["seed_demo_users"] = DEVELOPMENT_SECRET  # demo users never exist in production
        return values

    @property
    def upstreams(self) -> dict[str, str]:
        return {"registry": self.registry_url, "cases": self.cases_url, "reporting": self.reporting_url}


def get_settings() -> GatewaySettings:
    return GatewaySettings()

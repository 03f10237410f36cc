"""Settings base: one pydantic-settings class per service, each with its own env prefix."""

import json
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.auth import TrustedIssuer

Environment = Literal["development", "test", "production"]

# Values that ship in the code. Anything outside development must override them.
DEVELOPMENT_SECRET = "development-only-secret"


class ServiceSettings(BaseSettings):
    """What every service reads. Subclasses set `env_prefix` (REGISTRY_, CASES_, ...)."""

    # hide_input_in_errors: a refused setting must not print the other settings (real secrets among them).
    model_config = SettingsConfigDict(extra="ignore", env_file=None, hide_input_in_errors=True)

    environment: Environment = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    database_pool_size: int = 10
    log_level: str = "INFO"
    # json: one JSON object a line (production, log collectors); console: readable lines (the run command).
    log_format: Literal["json", "console"] = "json"
    # Where the gateway publishes this service ("/cases"): put in front of every path the service hands out
    # (Location, problem instance, links in bodies; services/common/links.py). Empty: called directly.
    public_path_prefix: str = Field("", pattern=r"^(/[A-Za-z0-9._~-]+)*$", max_length=200)

    # Token verification: every service checks tokens itself against the gateway's keys.
    jwt_issuer: str = "http://127.0.0.1:8000"
    jwt_audience: str = "child-protection"
    jwks_url: str = "http://127.0.0.1:8000/.well-known/jwks.json"
    gateway_url: str = "http://127.0.0.1:8000"
    # Provincial identity providers whose tokens are accepted too: a JSON list of
    # {issuer, jwks_url, audience, claims: {role, agency, jurisdiction}, role_values: {their role: our role}}.
    trusted_issuers_json: str = "[]"

    # Observability: a bearer token for /metrics (empty: loopback callers only), and an OTLP/HTTP endpoint for
    # traces (empty: tracing off), e.g. http://otel-collector:4318/v1/traces.
    metrics_token: str = ""
    otel_exporter_endpoint: str = ""

    # This service's own OAuth2 client, used when it calls another service.
    service_client_id: str = ""
    service_client_secret: str = DEVELOPMENT_SECRET

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> "ServiceSettings":
        if self.environment != "development":
            for name, value in self.secret_values().items():
                if value == DEVELOPMENT_SECRET or not value:
                    raise ValueError(f"{name} must be set outside development")
        return self

    @property
    def trusted_issuers(self) -> list[TrustedIssuer]:
        return [TrustedIssuer(**item) for item in json.loads(self.trusted_issuers_json)]

    def secret_values(self) -> dict[str, str]:
        """Secrets this service needs; subclasses add theirs."""
        if self.service_client_id:
            return {"service_client_secret": self.service_client_secret}
        return {}

"""Gateway settings (env prefix GATEWAY_)."""

import json
from functools import cached_property
from typing import Any

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import SettingsConfigDict

from services.common.permissions import PERMISSIONS, Action, Role
from services.common.settings import DEVELOPMENT_SECRET, ServiceSettings

# Reading any of these is reading case or child content: such roles need a second factor unless configured otherwise.
CONTENT_ACTIONS = {Action.CHILD_READ, Action.CHILD_SEARCH, Action.CHILD_EXPORT, Action.CHILD_HISTORY,
                   Action.CASE_READ, Action.DOCUMENT_READ}


def roles_reading_content() -> list[Role]:
    """Every role that reads case or child content, and the admin, who can make a user who does."""
    return [role for role, actions in PERMISSIONS.items()
            if role == Role.ADMIN or (role != Role.SERVICE and CONTENT_ACTIONS & actions.keys())]


class OAuthClient(BaseModel):
    """A registered public client (the mobile app, the web app): no secret, PKCE required, exact redirect URIs.

    A redirect URI on the loopback address (`http://127.0.0.1/...`) matches any port, for native apps and command
    line tools (RFC 8252 7.3); every other one must match character for character."""

    model_config = {"extra": "forbid"}

    name: str = Field(min_length=1, max_length=100)
    redirect_uris: list[str] = Field(min_length=1, max_length=20)
    # The deprecated password grant, for this client only, in production (development and tests allow it anyway).
    password_grant: bool = False

    @field_validator("redirect_uris")
    @classmethod
    def _absolute_without_fragment(cls, uris: list[str]) -> list[str]:
        for uri in uris:
            if ":" not in uri or "#" in uri or len(uri) > 500:
                raise ValueError("a redirect URI is absolute, without a fragment, at most 500 characters")
        return uris


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    port: int = 8000
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/gateway"
    registry_url: str = "http://127.0.0.1:8001"
    cases_url: str = "http://127.0.0.1:8002"
    reporting_url: str = "http://127.0.0.1:8003"
    public_url: str = "http://127.0.0.1:8000"

    access_token_ttl_seconds: int = Field(900, ge=60, le=3600)
    service_token_ttl_seconds: int = Field(900, ge=60, le=3600)
    refresh_token_ttl_seconds: int = 14 * 24 * 3600

    # Sign-in throttling (per username and client address, with growing delays) and the account lock, which needs
    # much stronger evidence: `login_lock_failures` failures for one username within the window, from any addresses.
    login_free_failures: int = 3
    login_delay_seconds: float = 2.0
    login_max_delay_seconds: int = 900
    login_lock_failures: int = 50
    login_lock_seconds: int = 3600
    login_failure_window_seconds: int = 24 * 3600
    totp_free_failures: int = 5

    # Second factor (TOTP): the roles that must use one; the name authenticator apps show.
    mfa_required_roles: list[Role] = Field(default_factory=roles_reading_content)
    totp_issuer_name: str = "Bảo vệ trẻ em"

    # Public OAuth clients, JSON: {"cp-web": {"name": "...", "redirect_uris": ["https://..."]}, ...}
    oauth_clients_json: str = "{}"
    authorization_code_ttl_seconds: int = Field(60, ge=10, le=600)
    sign_in_ttl_seconds: int = Field(600, ge=60, le=3600)

    # Requests per minute per user and per client address; 0 switches a limit off. With `redis_url` the counts are
    # shared by every gateway replica; without it each replica counts alone (only right for one replica).
    rate_limit_per_user: int = 600
    rate_limit_per_address: int = 1200
    redis_url: str = ""
    redis_prefix: str = "cp:gateway:"
    max_body_bytes: int = 1_000_000
    max_upload_bytes: int = 50_000_000
    # Case files (attachments): streamed to the cases service, which holds each file to its own limit
    # (CASES_ATTACHMENT_MAX_BYTES, 20 MiB); this one also leaves room for the form fields around the file.
    max_attachment_bytes: int = 21 * 1024 * 1024
    # Time budget of a call to a service, until its answer starts; per service or route prefix:
    # {"reporting": 20, "registry/v1/children/export": 60}. The routes that build documents or exports (a
    # province's report as XLSX or PDF, a commune's export) get a longer default budget: on a busy machine they
    # can take more than the 15 s meant for a screen's call.
    upstream_timeout_seconds: float = 15.0
    upstream_timeouts_json: str = '{"reporting/v1/reports": 60, "registry/v1/children/export": 60}'
    # Circuit breaker per service: after this many timeouts in a row, answer 503 at once for
    # `breaker_open_seconds`, then let one call through to try again.
    breaker_failures: int = 5
    breaker_open_seconds: float = 10.0
    cors_origins: list[str] = Field(default_factory=list)
    # Prometheus metrics on their own listener (0: none; then /metrics on the public port needs METRICS_TOKEN).
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"

    # Service accounts, JSON: {"cases": {"secret": "...", "scopes": ["registry:service_read", ...]}, ...}
    service_clients_json: str = "{}"

    seed_demo_users: bool = False
    demo_password: str = "demo"

    @cached_property
    def service_clients(self) -> dict[str, dict[str, Any]]:
        return json.loads(self.service_clients_json)

    @cached_property
    def oauth_clients(self) -> dict[str, OAuthClient]:
        return {client_id: OAuthClient.model_validate(config)
                for client_id, config in json.loads(self.oauth_clients_json).items()}

    @cached_property
    def upstream_timeouts(self) -> dict[str, float]:
        """Time budgets by service (`"registry"`) and by route prefix (`"registry/v1/children/export"`); every
        service has one."""
        budgets = {name: self.upstream_timeout_seconds for name in self.upstreams}
        budgets |= {key.strip("/"): float(seconds) for key, seconds in json.loads(self.upstream_timeouts_json).items()}
        return budgets

    def password_grant_allowed(self, client_id: str | None) -> bool:
        """The password grant is deprecated (RFC 9700 2.4): kept for development and tests, and in production only
        for a client registered with `password_grant: true`."""
        if self.environment != "production":
            return True
        client = self.oauth_clients.get(client_id or "")
        return client is not None and client.password_grant

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

"""The four services as a deployment sees them: which module serves each, which settings class it reads, and under
which environment prefix. The one table the container entry points use, checked against the code by the tests."""

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the health check imports this table and must stay light
    from services.common.settings import ServiceSettings


@dataclass(frozen=True)
class Service:
    name: str
    app_module: str  # has `create_app()` and `MIGRATIONS`
    settings_class: str  # "module:Class"
    env_prefix: str
    port: int  # the default of the settings class; containers keep it

    def settings_type(self) -> "type[ServiceSettings]":
        module, _, name = self.settings_class.partition(":")
        settings_type: type[ServiceSettings] = getattr(importlib.import_module(module), name)
        return settings_type

    def migrations_dir(self) -> Path:
        migrations: Path = importlib.import_module(self.app_module).MIGRATIONS
        return migrations


SERVICES: dict[str, Service] = {
    s.name: s
    for s in (
        Service("gateway", "gateway.app", "gateway.settings:GatewaySettings", "GATEWAY_", 8000),
        Service("registry", "services.registry.app", "services.registry.settings:RegistrySettings", "REGISTRY_", 8001),
        Service("cases", "services.cases.app", "services.cases.settings:CasesSettings", "CASES_", 8002),
        Service("reporting", "services.reporting.app", "services.reporting.settings:ReportingSettings",
                "REPORTING_", 8003),
    )
}

# Set in every container: which of the four services this one is.
SERVICE_ENV = "CP_SERVICE"


def resolve(name: str | None) -> Service:
    if not name:
        raise SystemExit(f"name the service as an argument or in {SERVICE_ENV} (one of {', '.join(SERVICES)})")
    try:
        return SERVICES[name]
    except KeyError:
        raise SystemExit(f"unknown service {name!r} (one of {', '.join(SERVICES)})") from None

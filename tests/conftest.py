"""Fixtures shared by every test.

The tests use the PostgreSQL on 127.0.0.1:5432 when it answers and an embedded one otherwise, always with fresh
databases made for this run and dropped after it. End-to-end tests start the four services as real processes, and
a SeaweedFS of their own (on free ports, data under var/, removed afterwards) as the object store.
"""

import logging
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from scripts.stack import (
    ROOT,
    SERVICES,
    ObjectStoreAccess,
    Postgres,
    SeaweedFS,
    Stack,
    choose_postgres,
    create_databases,
    drop_databases,
    free_port,
    local_redis_answers,
    new_client_secrets,
)
from services.common.storage import new_master_keys_json
from tests.collector import TraceCollector
from tests.helpers import Api
from tests.idp import ProvinceIdp

RUN_ID = uuid.uuid4().hex[:8]
REDIS_URL = "redis://127.0.0.1:6379/0"
# pgserver logs from an atexit hook, after pytest has closed the streams it captured.
logging.getLogger("pgserver").disabled = True


@pytest.fixture(scope="session")
def pg() -> Postgres:
    return choose_postgres(ROOT / "var" / "pg-test", prefer_local=True)


@pytest.fixture(scope="session")
def fresh_database(pg: Postgres) -> Iterator[object]:
    """A factory of empty databases for this run: `fresh_database("outbox")` returns a URL."""
    made: list[str] = []

    def make(label: str) -> str:
        name = f"test_{RUN_ID}_{label}_{len(made)}"
        create_databases(pg, [name], drop_first=True)
        made.append(name)
        return pg.url(name)

    yield make
    drop_databases(pg, made)


@pytest.fixture(scope="session")
def province_idp() -> Iterator[ProvinceIdp]:
    idp = ProvinceIdp()
    yield idp
    idp.close()


@pytest.fixture(scope="session")
def trace_collector() -> Iterator[TraceCollector]:
    collector = TraceCollector()
    yield collector
    collector.close()


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[SeaweedFS]:
    """The real object store for this run (SeaweedFS), stopped with a grace period and its data removed after."""
    logs = ROOT / "var" / "test-logs"
    logs.mkdir(parents=True, exist_ok=True)
    server = SeaweedFS(ROOT / "var" / f"test-seaweedfs-{RUN_ID}", access_key=uuid.uuid4().hex[:20],
                       secret_key=uuid.uuid4().hex, log_path=logs / f"seaweedfs-{RUN_ID}.log")
    server.start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def object_store_access(seaweedfs: SeaweedFS) -> ObjectStoreAccess:
    return seaweedfs.access(new_master_keys_json("test1"))


@pytest.fixture(scope="session")
def stack(pg: Postgres, province_idp: ProvinceIdp, trace_collector: TraceCollector,
          object_store_access: ObjectStoreAccess) -> Iterator[Stack]:
    names = {s.name: f"test_{RUN_ID}_{s.name}" for s in SERVICES}
    create_databases(pg, list(names.values()), drop_first=True)
    extra_env = {s.name: {f"{s.env_prefix}TRUSTED_ISSUERS_JSON": province_idp.config(),
                          f"{s.env_prefix}OTEL_EXPORTER_ENDPOINT": trace_collector.endpoint} for s in SERVICES}
    extra_env["reporting"]["REPORTING_FEED_IDLE_SECONDS"] = "0.2"
    # Access tokens are cached for the whole session by the fixtures; a loaded CI machine can take longer than the
    # default 15 minutes for the suite, so the test system's tokens live an hour.
    extra_env["gateway"] |= {"GATEWAY_RATE_LIMIT_PER_USER": "100000", "GATEWAY_RATE_LIMIT_PER_ADDRESS": "100000",
                             "GATEWAY_ACCESS_TOKEN_TTL_SECONDS": "3600"}
    if local_redis_answers():  # the rate limits shared by replicas, as in production
        extra_env["gateway"] |= {"GATEWAY_REDIS_URL": REDIS_URL, "GATEWAY_REDIS_PREFIX": f"cp-test-{RUN_ID}:"}
    running = Stack(pg=pg, database_names=names, ports={s.name: free_port() for s in SERVICES},
                    client_secrets=new_client_secrets(), environment="development", seed_demo=True,
                    log_dir=ROOT / "var" / "test-logs" / RUN_ID, extra_env=extra_env,
                    object_store=object_store_access)
    running.migrate_all()
    try:
        running.start_all()
        yield running
    finally:
        running.stop_all()
        drop_databases(pg, list(names.values()))


@pytest.fixture(scope="session")
async def api(stack: Stack) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=stack.url("gateway"), timeout=30.0) as client:
        yield Api(client, stack)

"""The restore drill of docs/operations.md, automated: dump the four databases one after another in the documented
order (reporting first) while the system keeps taking writes, restore the dumps into empty databases, start a second
system on them, and show that its reports become identical to the live system's once reporting has replayed the
events it had not yet seen when it was dumped.

Province 86 (Vinh Long) is used by no other test.
"""

import functools
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from scripts.stack import (
    SERVICES,
    Postgres,
    Stack,
    create_databases,
    drop_databases,
    free_port,
    new_client_secrets,
)
from tests.helpers import Api, eventually, letters

PROVINCE = "86"
COMMUNES = ["29641", "29653"]
# Consumers before producers, cases before the registry (docs/operations.md, Backups).
DUMP_ORDER = ["reporting", "cases", "registry", "gateway"]


def libpq_uri(pg: Postgres, database: str) -> str:
    return pg.url(database).replace("postgresql+asyncpg://", "postgresql://")


@functools.cache
def server_major(admin_uri: str) -> int:
    out = subprocess.run([tool("psql", 0), "-XAtq", "-d", admin_uri, "-c", "SHOW server_version_num"],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    return int(out.strip()) // 10000


@functools.cache
def tool(name: str, major: int) -> str:
    """A PostgreSQL client program at least as new as the server: the system's, or the one pgserver ships."""
    import pgserver

    candidates = [shutil.which(name), str(Path(pgserver.__file__).parent / "pginstall" / "bin" / name)]
    for candidate in filter(None, candidates):
        version = subprocess.run([candidate, "--version"], capture_output=True, text=True, timeout=10).stdout
        found = re.search(r"PostgreSQL\) (\d+)", version)
        if found and int(found.group(1)) >= major:
            return candidate
    pytest.fail(f"no {name} of PostgreSQL {major} or newer")


def client_tool(pg: Postgres, name: str) -> str:
    return tool(name, server_major(libpq_uri(pg, "postgres")))


def dump(pg: Postgres, database: str, target: Path) -> None:
    subprocess.run([client_tool(pg, "pg_dump"), "--format=custom", "--no-owner", f"--file={target}",
                    f"--dbname={libpq_uri(pg, database)}"], check=True, capture_output=True, timeout=120)


def restore(pg: Postgres, source: Path, database: str) -> None:
    result = subprocess.run([client_tool(pg, "pg_restore"), "--no-owner", "--exit-on-error",
                             f"--dbname={libpq_uri(pg, database)}", str(source)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


async def add_children_and_cases(api: Api, count: int) -> None:
    hotline = await api.as_demo("hotline_operator")
    for index in range(count):
        commune = COMMUNES[index % len(COMMUNES)]
        officer = await api.commune_user("child_protection_officer", commune)
        child = await api.client.post("/registry/v1/children", headers=officer, json={
            "full_name": f"Trần Thị Drill {letters(8)}", "sex": "female", "date_of_birth": "2015-03-02",
            "commune_code": commune, "birth_registered": True, "birth_registered_on": "2015-04-01",
            "confirm_not_duplicate": True})
        assert child.status_code == 201, child.text
        case = await api.client.post("/cases/v1/cases", headers=hotline, json={
            "incident_commune_code": commune, "environment": "home", "abuse_forms": ["neglect"],
            "description": "Restore drill", "child": {"sex": "female", "child_id": child.json()["id"]}})
        assert case.status_code == 201, case.text


async def figures(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """Every value of this year and this half-year (the periods commune figures are published for), for the province
    and each commune."""
    now = datetime.now(UTC)
    result = {}
    for location in [PROVINCE, *COMMUNES]:
        response = await client.get("/reporting/v1/values", headers=headers, params={
            "period": f"{now.year},{now.year}S{1 if now.month <= 6 else 2}", "location": location})
        assert response.status_code == 200, response.text
        result[location] = response.json()["values"]
    return result


def totals(values: dict[str, list[dict[str, Any]]]) -> tuple[Any, Any]:
    year = str(datetime.now(UTC).year)
    rows = {r["indicator"]: r["value"] for r in values[PROVINCE] if r["breakdown"] is None and r["period"] == year}
    return rows["HT-TE01"], rows["HT-VV01"]


@pytest.fixture
def restored_names(pg: Postgres) -> Iterator[dict[str, str]]:
    names = {s.name: f"test_restore_{uuid.uuid4().hex[:8]}_{s.name}" for s in SERVICES}
    create_databases(pg, list(names.values()), drop_first=True)
    yield names
    drop_databases(pg, list(names.values()))


@pytest.mark.slow
async def test_a_restored_backup_reports_exactly_what_the_live_system_does(
        api: Api, pg: Postgres, restored_names: dict[str, str], tmp_path: Path) -> None:
    statistician = await api.province_user("province_statistician", PROVINCE)
    live = api.stack
    await add_children_and_cases(api, 3)
    await eventually(lambda: _counts_are(api.client, statistician, (3, 3)), timeout=60)

    # Reporting is dumped first; the writes after it exist only in the producers' dumps.
    dump(pg, live.database_names["reporting"], tmp_path / "reporting.dump")
    await add_children_and_cases(api, 2)
    for service in DUMP_ORDER[1:]:
        dump(pg, live.database_names[service], tmp_path / f"{service}.dump")
    await eventually(lambda: _counts_are(api.client, statistician, (5, 5)), timeout=60)
    expected = await figures(api.client, statistician)

    for service in DUMP_ORDER:
        restore(pg, tmp_path / f"{service}.dump", restored_names[service])
    # As restored, reporting has not seen the producers' last events: what follows is a replay.
    behind = await feed_positions(pg, restored_names)
    assert behind["cases"][0] < behind["cases"][1] and behind["registry"][0] < behind["registry"][1], behind
    # The same issuer as the live system: the restored signing keys then accept the live tokens.
    issuer = live.url("gateway")
    extra = {s.name: {f"{s.env_prefix}JWT_ISSUER": issuer} for s in SERVICES}
    extra["reporting"]["REPORTING_FEED_IDLE_SECONDS"] = "0.2"
    restored = Stack(pg=pg, database_names=restored_names, ports={s.name: free_port() for s in SERVICES},
                     client_secrets=new_client_secrets(), extra_env=extra,
                     log_dir=live.log_dir.parent / f"restored-{uuid.uuid4().hex[:6]}" if live.log_dir else None)
    try:
        restored.start_all()
        async with httpx.AsyncClient(base_url=restored.url("gateway"), timeout=30) as client:
            # The restored reporting starts behind (3 and 3) and replays the feeds up to the dumps.
            await eventually(lambda: _counts_are(client, statistician, (5, 5)), timeout=60)
            assert await figures(client, statistician) == expected
        caught_up = await feed_positions(pg, restored_names)
        assert all(cursor == last for cursor, last in caught_up.values()), caught_up
    finally:
        restored.stop_all()


async def feed_positions(pg: Postgres, names: dict[str, str]) -> dict[str, tuple[int, int]]:
    """Per producer: (reporting's cursor on its feed, the seq of the producer's last event in feed order)."""
    positions: dict[str, tuple[int, int]] = {}
    reporting = create_async_engine(pg.url(names["reporting"]))
    try:
        async with reporting.connect() as connection:
            cursors = dict((await connection.execute(text("SELECT feed, position FROM feed_cursor"))).all())
    finally:
        await reporting.dispose()
    for producer in ("registry", "cases"):
        engine = create_async_engine(pg.url(names[producer]))
        try:
            async with engine.connect() as connection:
                last = await connection.scalar(text(
                    "SELECT coalesce((SELECT seq FROM outbox_event ORDER BY xid DESC, seq DESC LIMIT 1), 0)"))
        finally:
            await engine.dispose()
        positions[producer] = (int(cursors.get(producer, 0)), int(last))
    return positions


async def _counts_are(client: httpx.AsyncClient, headers: dict[str, str], wanted: tuple[int, int]) -> bool:
    return totals(await figures(client, headers)) == wanted

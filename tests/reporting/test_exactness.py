"""Figures are exact: a random population published as events, consumed over HTTP, compared cell by cell with an
independent count; replaying, re-delivering and crashing mid-batch change nothing."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from scripts.stack import ROOT, free_port
from services.common.consumer import FeedConsumer
from services.common.db import Database
from services.common.locations import communes
from services.reporting.figures import commune_counts
from services.reporting.indicators import BY_CODE, LOCALITY
from services.reporting.ingest import Ingestor
from services.reporting.models import DataVersion, feed_cursors
from services.reporting.periods import parse_period
from services.reporting.service import (
    ProvinceViews,
    ValueRow,
    data_version,
    keep_national_ready,
    outdated_periods,
    place,
    report_rows,
)
from services.reporting.settings import ReportingSettings
from tests.reporting.conftest import consumers, drain
from tests.reporting.feeds import FeedServer
from tests.reporting.population import Expected, Population, expected_counts, generate

PLACES = {"01": ["00070", "00004", "00008"], "24": ["07210", "07627"], "96": ["32002"]}
COMMUNES_USED = [code for codes in PLACES.values() for code in codes]
PERIODS = ["2024", "2024S1", "2024S2", "2024Q3", "202406", "202407", "2024AS1", "2024AY", "2023", "2025S1"]
SETTINGS = ReportingSettings()


@pytest.fixture(scope="module")
def population() -> Population:
    return generate(seed=20261125, communes_used=COMMUNES_USED, children=500, cases=250)


async def _load(database: Database, population: Population, client: httpx.AsyncClient, batch_size: int = 37,
                **options: Any) -> None:
    async with FeedServer(population.registry, population.cases) as server:
        await drain(consumers(database, server, Ingestor(), client, batch_size, **options))


def _check_place(rows: list[ValueRow], expected: Expected, level: str, locality: dict[str, int]) -> None:
    seen = set()
    for row in rows:
        if row.breakdown == LOCALITY:
            if not row.suppressed:
                assert row.value == locality.get(row.category or "", 0), row
            continue
        cell = (row.indicator, row.breakdown or "", row.category or "")
        seen.add(cell)
        indicator = BY_CODE[row.indicator]
        rate = indicator.is_ratio
        wanted = expected.get(cell, (0, 0) if rate else 0)
        if row.suppressed:
            assert level == "commune", row
            assert row.value is None and row.numerator is None and row.display == SETTINGS.suppressed_label
        elif rate:
            assert (row.numerator, row.denominator) == wanted, (row, wanted)
            factor = 100 if indicator.unit == "percent" else 1
            assert row.value == (round(factor * wanted[0] / wanted[1], 1) if wanted[1] else None)
        else:
            assert row.value == wanted, (row, wanted)
    missing = set(expected) - seen
    assert not missing, missing


async def test_every_indicator_period_place_and_breakdown_matches_an_independent_count(
        reporting_db: Database, population: Population, http_client: httpx.AsyncClient) -> None:
    await _load(reporting_db, population, http_client)
    views = ProvinceViews()
    places = ["VN", *PLACES, *COMMUNES_USED, "00103"]  # the last: a commune with no data at all
    for period_id in PERIODS:
        period = parse_period(period_id)
        per_commune = {code: expected_counts(population, period.start, period.end, {code}) for code in COMMUNES_USED}
        for code in places:
            where = place(code)
            assert where is not None
            scope = ({c for c in COMMUNES_USED if communes()[c].province_code == code} if where.level == "province"
                     else {code} if where.level == "commune" else set(COMMUNES_USED))
            expected = expected_counts(population, period.start, period.end, scope)
            if where.level == "province":
                locality = {c: per_commune[c].get(("0101", "", ""), 0) for c in scope} \
                    if period.kind in SETTINGS.commune_period_kinds else {}
            else:
                locality = {p: sum(per_commune[c].get(("0101", "", ""), 0) for c in cs) for p, cs in PLACES.items()}
            async with reporting_db.sessionmaker() as session:
                version = await data_version(session, where)
                rows = await report_rows(session, period, where, version, SETTINGS, views)
                await session.commit()
            _check_place(rows, expected, where.level, locality)


async def _all_counts(database: Database) -> dict[str, dict[str, dict[str, int]]]:
    async with database.sessionmaker() as session:
        return {p: await commune_counts(session, COMMUNES_USED, parse_period(p)) for p in PERIODS}


async def test_replay_from_zero_and_redelivery_give_identical_figures(
        reporting_db: Database, other_reporting_db: Database, population: Population,
        http_client: httpx.AsyncClient) -> None:
    first, second = reporting_db, other_reporting_db
    await _load(first, population, http_client, batch_size=37)
    # Batches of several pages, each next page read while a batch is applied (as the service runs).
    await _load(second, population, http_client, batch_size=120, page_size=29, read_ahead=True)
    reference = await _all_counts(first)
    assert reference == await _all_counts(second)
    assert any(reference["2024"].values())

    # Replaying every event again from position zero is harmless, and bumps no version (ETags stay valid).
    async with first.sessionmaker() as session:
        versions = (await session.execute(select(DataVersion.__table__))).all()
        await session.execute(update(feed_cursors).values(position=0))
        await session.commit()
    await _load(first, population, http_client, batch_size=50)
    assert await _all_counts(first) == reference
    async with first.sessionmaker() as session:
        assert (await session.execute(select(DataVersion.__table__))).all() == versions


async def test_national_figures_counted_ahead_are_exact_and_recounted_after_a_change(
        reporting_db: Database, http_client: httpx.AsyncClient) -> None:
    population = generate(seed=20261128, communes_used=COMMUNES_USED, children=200, cases=100)
    await _load(reporting_db, population, http_client)
    periods = [parse_period(p) for p in PERIODS]
    nation = place("VN")
    assert nation is not None
    async with reporting_db.sessionmaker() as session:
        assert await outdated_periods(session, periods) == periods  # nothing counted yet
    assert await keep_national_ready(reporting_db, periods, chunk=3) == len(periods)
    assert await keep_national_ready(reporting_db, periods) == 0  # nothing changed: nothing to count

    async def check() -> None:
        async with reporting_db.sessionmaker() as session:
            assert await outdated_periods(session, periods) == []
            for period in periods:
                expected = expected_counts(population, period.start, period.end, set(COMMUNES_USED))
                locality = {p: sum(expected_counts(population, period.start, period.end, {c}).get(("0101", "", ""), 0)
                                   for c in cs) for p, cs in PLACES.items()}
                rows = await report_rows(session, period, nation, await data_version(session, nation), SETTINGS,
                                         ProvinceViews())
                _check_place(rows, expected, "national", locality)

    await check()
    # A child of province 01 moves to province 24: their totals are outdated in every period, and counted again.
    child_id, child = next((i, c) for i, c in population.children.items()
                           if c["commune_code"] == "00070" and i not in population.retired)
    moved = {**child, "revision": child["revision"] + 1, "commune_code": "07210", "province_code": "24"}
    population.registry.emit("child.changed", moved, datetime(2026, 1, 10, tzinfo=UTC))
    population.children[child_id] = moved
    await _load(reporting_db, population, http_client)
    async with reporting_db.sessionmaker() as session:
        assert await outdated_periods(session, periods) == periods
    assert await keep_national_ready(reporting_db, periods) == len(periods)
    await check()


class Crash(Exception):
    pass


async def test_a_crash_mid_batch_leaves_nothing_half_applied_and_a_restart_catches_up(
        reporting_db: Database, other_reporting_db: Database, population: Population,
        http_client: httpx.AsyncClient) -> None:
    crashed, clean = reporting_db, other_reporting_db
    await _load(clean, population, http_client)
    ingestor = Ingestor()
    async with FeedServer(population.registry, population.cases) as server:
        registry, cases = consumers(crashed, server, ingestor, http_client, batch_size=40)
        for _ in range(3):
            await registry.run_once()
        await cases.run_once()
        before = await _all_counts(crashed)

        async def apply_then_die(session, events) -> None:  # the process dies after writing, before commit
            await ingestor.apply_registry_events(session, events)
            raise Crash

        dying = FeedConsumer(feed="registry", url=server.url("registry"), database=crashed,
                             cursor_table=feed_cursors, tokens=registry.tokens,
                             apply=apply_then_die, batch_size=40)
        with pytest.raises(Crash):
            await dying.run_once()
        assert await _all_counts(crashed) == before
        async with crashed.sessionmaker() as session:
            position = await session.scalar(select(feed_cursors.c.position).where(feed_cursors.c.feed == "registry"))
        assert position == 120

        await drain(consumers(crashed, server, Ingestor(), http_client, batch_size=40))
    assert await _all_counts(crashed) == await _all_counts(clean)


def test_population_covers_what_it_should(population: Population) -> None:
    """The generator really produces moves, merges, closures and cases across the Vietnamese midnight."""
    assert population.retired
    assert len({c["commune_code"] for c in population.children.values()}) == len(COMMUNES_USED)
    assert any(c["closed_at"] for c in population.case_snapshots.values())
    year = expected_counts(population, date(2024, 1, 1), date(2024, 12, 31), set(COMMUNES_USED))
    for cell in [("HT-VV01", "", ""), ("0101", "", ""), ("HT-VV01", "category", "unknown"),
                 ("HT-VV01", "category", "at_risk"), ("HT-VV01", "intake_agency", "hotline"), ("HT-CL01", "", ""),
                 ("HT-VV04", "", ""), ("HT-VV06", "", ""), ("HT-VV03", "closure_reason", "unfounded")]:
        assert year.get(cell), cell
    for ratio in ("HT-KT01", "HT-KT05", "HT-KT06", "HT-CL02", "HT-TE07"):
        assert year[(ratio, "", "")][1] > 0, ratio
    # A linked child with abuse cases in two communes in one period: the case the test of distinctness needs.
    by_child: dict[str, set[str]] = {}
    for case in population.case_snapshots.values():
        if case["child_id"] and case["abuse_forms"]:
            by_child.setdefault(case["child_id"], set()).add(case["commune_code"])
    assert any(len(places) > 1 for places in by_child.values())


def _start_service(database_url: str, server: FeedServer, log: Path) -> subprocess.Popen[bytes]:
    base = server.token_url.removesuffix("/auth/token")
    env = os.environ | {
        "REPORTING_DATABASE_URL": database_url, "REPORTING_PORT": str(free_port()), "REPORTING_GATEWAY_URL": base,
        "REPORTING_JWKS_URL": f"{base}/jwks", "REPORTING_REGISTRY_URL": f"{base}/registry",
        "REPORTING_CASES_URL": f"{base}/cases", "REPORTING_SERVICE_CLIENT_ID": "reporting",
        "REPORTING_FEED_BATCH_SIZE": "20", "REPORTING_FEED_IDLE_SECONDS": "0.1",
    }
    return subprocess.Popen([sys.executable, "-m", "uvicorn", "services.reporting.app:create_app", "--factory",
                             "--host", "127.0.0.1", "--port", env["REPORTING_PORT"]],
                            cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


async def _positions(database: Database) -> dict[str, int]:
    async with database.sessionmaker() as session:
        return dict((await session.execute(select(feed_cursors.c.feed, feed_cursors.c.position))).all())


async def _wait_for(database: Database, wanted: dict[str, int], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while (reached := await _positions(database)) != wanted:
        assert time.monotonic() < deadline, f"feeds at {reached}, waiting for {wanted}"
        await asyncio.sleep(0.05)


async def test_killing_the_service_process_mid_feed_then_restarting_gives_the_same_figures(
        reporting_url: str, reporting_db: Database, other_reporting_db: Database, population: Population,
        http_client: httpx.AsyncClient, tmp_path: Path) -> None:
    await _load(other_reporting_db, population, http_client)
    ends = {"registry": len(population.registry.events), "cases": len(population.cases.events)}
    # The producers hold back everything after a third of their events: the service is certainly mid-feed when it
    # is killed, whatever the machine's speed.
    held = {"registry": ends["registry"] // 3, "cases": ends["cases"] // 3}
    population.registry.available, population.cases.available = held["registry"], held["cases"]
    try:
        async with FeedServer(population.registry, population.cases) as server:
            process = _start_service(reporting_url, server, tmp_path / "reporting.log")
            try:
                await _wait_for(reporting_db, held)
                process.send_signal(signal.SIGKILL)  # no shutdown: whatever transaction is open is lost
                process.wait(timeout=30)
                assert await _positions(reporting_db) == held

                population.registry.available = population.cases.available = None
                process = _start_service(reporting_url, server, tmp_path / "reporting.log")
                await _wait_for(reporting_db, ends)
            finally:
                process.terminate()
                process.wait(timeout=30)
    finally:
        population.registry.available = population.cases.available = None
    assert await _all_counts(reporting_db) == await _all_counts(other_reporting_db)

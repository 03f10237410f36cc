"""Reporting benchmark: catch-up from zero, a province's half-year report, a 304 poll, and freshness.

Starts a synthetic producer (bench/reporting_feed.py: the registry and cases feeds, the token endpoint, the JWKS)
and the real reporting service as a uvicorn process on a fresh database. The service catches up with every event
from zero; then a province statistician's token polls the half-year report of the largest province over HTTP.
The report is compared with computing the same figures by direct aggregate queries over the raw fact rows.

    .venv/bin/python -m bench.reporting --children 1000000 --cases 100000

Writes bench/results/reporting.md.
"""

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import text

from bench.common import load_remark
from scripts.stack import ROOT, choose_postgres, create_databases, drop_databases, free_port, migrate
from services.common import tokens
from services.common.db import Database, DatabaseTimeouts
from services.common.http import new_http_client
from services.common.locations import communes, provinces
from services.reporting.app import MIGRATIONS
from services.reporting.figures import commune_counts, province_counts
from services.reporting.periods import parse_period, recent_periods
from services.reporting.service import outdated_periods

ISSUER, AUDIENCE = "http://bench-issuer", "child-protection"
PERIOD = "2025S1"
NEW_PERIODS = ("2024S2", "2024Q3", "202410")  # national reports asked for the first time
OLD_PERIOD = "2023S1"  # ends before the years whose national figures are kept ready
READY_YEARS = 3


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def user_token(key: tokens.SigningKey, province: str | None) -> str:
    now = tokens.now()
    jurisdiction = {"level": "province", "province": province} if province else {"level": "national"}
    return tokens.sign({"sub": "bench-statistician", "role": "province_statistician", "agency": "statistics",
                        "jur": jurisdiction, "iss": ISSUER, "aud": AUDIENCE,
                        "iat": now, "exp": now + 3600, "jti": uuid.uuid4().hex}, key)


def wait_for(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


async def catch_up(database: Database, children: int, cases: int, started: float) -> float:
    while True:
        async with database.sessionmaker() as session:
            positions = dict((await session.execute(text("SELECT feed, position FROM feed_cursor"))).all())
        done = positions.get("registry", 0) >= children and positions.get("cases", 0) >= cases
        elapsed = time.perf_counter() - started
        print(f"  {elapsed:6.0f} s  registry {positions.get('registry', 0):>9}  cases {positions.get('cases', 0):>7}",
              flush=True)
        if done:
            return elapsed
        await asyncio.sleep(5 if elapsed > 10 else 1)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def backend_cpu(database: Database) -> float:
    """CPU time used so far by the PostgreSQL backends serving the service (its pooled connections)."""
    async with database.sessionmaker() as session:
        pids = (await session.execute(text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ))).scalars().all()
    return sum(cpu_seconds(pid) for pid in pids)


async def national_ready(database: Database) -> float:
    """Seconds until the service has counted the national figures of every recent period (after catching up)."""
    started = time.perf_counter()
    periods = recent_periods(datetime.now(UTC).date(), READY_YEARS)
    while True:
        async with database.sessionmaker() as session:
            outdated = await outdated_periods(session, periods)
        if not outdated:
            return time.perf_counter() - started
        await asyncio.sleep(1)


async def raw_insert(database: Database) -> float:
    """The floor under catching up: the same fact rows the service wrote, copied with COPY into empty tables of
    the same shape, one transaction per 1,000 rows (as the feed's batches), with no feed, validation or merge."""
    tables = ("child_fact", "child_special_group", "case_fact", "case_deadline", "case_separation")
    async with database.sessionmaker() as session:
        connection = await (await session.connection()).get_raw_connection()
        raw = connection.driver_connection
        batches = {}
        for table in tables:
            records = await raw.fetch(f"SELECT * FROM {table}")
            columns = list(records[0].keys()) if records else []
            batches[table] = (columns, [tuple(r) for r in records])
            await raw.execute(f"DROP TABLE IF EXISTS raw_{table}; CREATE TABLE raw_{table} (LIKE {table} "
                              "INCLUDING INDEXES)")
        await session.commit()
        started = time.perf_counter()
        for table, (columns, records) in batches.items():
            for start in range(0, len(records), 1000):
                async with raw.transaction():
                    await raw.copy_records_to_table(f"raw_{table}", columns=columns,
                                                    records=records[start:start + 1000])
        elapsed = time.perf_counter() - started
        for table in tables:
            await raw.execute(f"DROP TABLE raw_{table}")
        await session.commit()
    return elapsed


async def timed_get(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = await client.get(url, headers=headers)
    return (time.perf_counter() - started) * 1000, response


async def measure(args: argparse.Namespace, database: Database, service: str, feed: str,
                  key: tokens.SigningKey, started: float) -> dict[str, object]:
    results: dict[str, object] = {"load_start": os.getloadavg()[0]}
    catch_up_seconds = await catch_up(database, args.children, args.cases, started)
    events = args.children + args.cases
    results["catch_up"] = (catch_up_seconds, events)
    results["catch_up_cpu"] = {"service": cpu_seconds(args.service_pid), "producer": cpu_seconds(args.feed_pid),
                               "postgres": await backend_cpu(database)}
    results["load_caught_up"] = os.getloadavg()[0]
    async with database.sessionmaker() as session:
        results["rows"] = (await session.scalar(text("SELECT count(*) FROM child_fact")),
                           await session.scalar(text("SELECT count(*) FROM case_fact")))
    results["raw_insert"] = await raw_insert(database)
    results["national_ready"] = await national_ready(database)
    results["ready_periods"] = len(recent_periods(datetime.now(UTC).date(), READY_YEARS))

    headers = {"Authorization": f"Bearer {user_token(key, args.province)}"}
    report = f"{service}/v1/reports/{PERIOD}?location={args.province}"
    client = new_http_client(timeout=120)
    try:
        cold_ms, first = await timed_get(client, report, headers)
        assert first.status_code == 200, first.text
        results["cold_ms"] = cold_ms
        followed = next(v["value"] for i in first.json()["indicators"] if i["code"] == "HT-TE01"
                        for v in i["values"] if v["breakdown"] is None)
        results["followed"] = followed

        warm = [(await timed_get(client, report, headers))[0] for _ in range(args.requests)]
        results["warm"] = warm
        etag = first.headers["etag"]
        polls = []
        for _ in range(args.requests * 2):
            elapsed, response = await timed_get(client, report, {**headers, "If-None-Match": etag})
            assert response.status_code == 304, response.status_code
            polls.append(elapsed)
        results["poll_304"] = polls

        # A change in one commune of the province, alternately a child's record and a case (closed as unfounded):
        # how long until a poll sees it, and what that poll costs.
        visible: dict[str, list[float]] = {"registry": [], "cases": []}
        after_change = []
        for number in range(args.changes):
            source = ("registry", "cases")[number % 2]
            current = (await client.get(report, headers=headers)).headers["etag"]
            await client.post(f"{feed}/{source}/append", params={"province": args.province})
            changed_at = time.perf_counter()
            while True:
                elapsed, response = await timed_get(client, report, {**headers, "If-None-Match": current})
                if response.status_code == 200:
                    visible[source].append(time.perf_counter() - changed_at)
                    after_change.append(elapsed)
                    break
                await asyncio.sleep(0.05)
        results["visible_s"], results["after_change"] = visible, after_change

        # The report (warm) against the same figures by direct aggregate queries over the raw fact rows of the
        # province's communes, in alternating rounds (A, B, A, B...): the ratio of each round, then its median.
        period = parse_period(PERIOD)
        province_communes = sorted(c for c, unit in communes().items() if unit.province_code == args.province)
        ratios, direct = [], []
        for _ in range(args.direct_runs):
            report_round = [(await timed_get(client, report, headers))[0] for _ in range(20)]
            async with database.sessionmaker() as session:
                begin = time.perf_counter()
                await commune_counts(session, province_communes, period)
                direct.append((time.perf_counter() - begin) * 1000)
            ratios.append(direct[-1] / statistics.median(report_round))
        results["direct"], results["ratios"] = direct, ratios
        results["communes"] = len(province_communes)

        national = {"Authorization": f"Bearer {user_token(key, None)}"}
        firsts = []
        for new_period in NEW_PERIODS:  # each asked for the first time
            nation_report = f"{service}/v1/reports/{new_period}?location=VN"
            firsts.append((await timed_get(client, nation_report, national))[0])
        results["national_cold"] = firsts
        async with database.sessionmaker() as session:
            begin = time.perf_counter()
            await province_counts(session, sorted(provinces()), [parse_period(NEW_PERIODS[0])])
            results["national_direct"] = time.perf_counter() - begin
        results["national_old"] = (await timed_get(client, f"{service}/v1/reports/{OLD_PERIOD}?location=VN",
                                                   national))[0]
        nation_report = f"{service}/v1/reports/{PERIOD}?location=VN"
        results["national_warm"] = [(await timed_get(client, nation_report, national))[0] for _ in range(20)]

        pdf = f"{service}/v1/reports/{PERIOD}?location={args.province}&format=pdf"
        pdf_times = []
        for _ in range(args.pdfs):
            elapsed, response = await timed_get(client, pdf, headers)
            assert response.status_code == 200, response.text
            pdf_times.append(elapsed)
        results["pdf"], results["pdf_bytes"] = pdf_times, len(response.content)
        results["load_end"] = os.getloadavg()[0]
    finally:
        await client.aclose()
    return results


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), "?")
    return f"{os.cpu_count()} cores ({cpu}), {int(memory) // 1024 // 1024} GiB RAM, Python {platform.python_version()}"


def write_results(args: argparse.Namespace, results: dict, postgres: str) -> str:
    seconds, events = results["catch_up"]
    warm, polls, after, direct = results["warm"], results["poll_304"], results["after_change"], results["direct"]
    ratios = sorted(results["ratios"])
    raw = results["raw_insert"]
    lines = [
        "# Reporting benchmark",
        "",
        f"Command: `.venv/bin/python -m bench.reporting --children {args.children} --cases {args.cases} "
        f"--province {args.province} --requests {args.requests} --changes {args.changes} "
        f"--direct-runs {args.direct_runs} --pdfs {args.pdfs} --batch {args.batch} --idle {args.idle}`",
        "",
        f"Machine: {machine()}; {postgres}. Run on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
        "The synthetic producer, the reporting service (one uvicorn process) and PostgreSQL share the machine; "
        f"load average at the start {results['load_start']:.1f}, at the end {results['load_end']:.1f} "
        f"({load_remark(results['load_start'], results['load_end'])}).",
        "",
        "Setup: a synthetic producer serves the registry feed (one `child.registered` per child) and the cases feed "
        "(one `case.received` per case, with the 2026 fields) over HTTP, with a token endpoint and a JWKS; the real "
        f"reporting service consumes both feeds from zero into an empty database (batches of {args.batch:,} events "
        "read in pages of 1,000, the next page read while a batch is applied, one COPY per table and batch), then a "
        f"province statistician's signed token polls `GET /v1/reports/{PERIOD}?location={args.province}` over HTTP, "
        "one request at a time.",
        "",
        "| measure | result | baseline in the same run | target |",
        "|---|---|---|---|",
        f"| catch-up from zero: {events:,} events ({args.children:,} children, {args.cases:,} cases) | "
        f"{seconds:.0f} s ({events / seconds:,.0f} events/s) | COPY of the same {sum(results['rows']):,} fact rows "
        f"and their spells, deadlines and separations, 1,000 rows a transaction: {raw:.1f} s "
        f"({events / raw:,.0f} rows/s); catch-up / raw = {seconds / raw:.1f}x | < 300 s |",
        f"| CPU used while catching up (load average {results['load_caught_up']:.1f} when it ended) | service "
        f"{results['catch_up_cpu']['service']:.0f} s, its PostgreSQL backends {results['catch_up_cpu']['postgres']:.0f}"
        f" s, synthetic producer {results['catch_up_cpu']['producer']:.0f} s | | |",
        f"| national figures of the {results['ready_periods']} periods of the last {READY_YEARS} years counted ahead, "
        f"after catching up | ready {results['national_ready']:.0f} s after the raw COPY above ended | | |",
        f"| province {args.province} ({results['communes']} communes, {results['followed']:,} children followed), "
        f"half-year report, median of {len(warm)} | {statistics.median(warm):.1f} ms (p95 {percentile(warm, 95):.1f}) "
        f"| direct aggregate over the fact rows: median {statistics.median(direct):.0f} ms; direct / report, "
        f"median of {len(ratios)} alternating rounds: {statistics.median(ratios):.0f}x "
        f"(spread {ratios[0]:.0f}x-{ratios[-1]:.0f}x) | < 50 ms |",
        f"| same, first request after a change in one commune, median of {len(after)} | "
        f"{statistics.median(after):.0f} ms (max {max(after):.0f}) | | |",
        f"| same, very first request (counts every commune of the year's half-years and year, decides suppression "
        f"for the family) | {results['cold_ms']:.0f} ms | | |",
        f"| national report, first request for a period never asked before ({', '.join(NEW_PERIODS)}) | "
        f"{' / '.join(f'{ms / 1000:.2f} s' for ms in results['national_cold'])} | counting the nation for "
        f"{NEW_PERIODS[0]} on request (what a first request did before): {results['national_direct']:.2f} s; "
        f"then, median of {len(results['national_warm'])}: {statistics.median(results['national_warm']):.1f} ms "
        "| < 1 s |",
        f"| national report of {OLD_PERIOD}, older than the periods counted ahead, first request | "
        f"{results['national_old'] / 1000:.2f} s | | |",
        f"| province {args.province} PDF report ({results['pdf_bytes'] // 1024} KiB, trend over 12 periods, tables "
        f"of {results['communes']} communes), median of {len(results['pdf'])} | "
        f"{statistics.median(results['pdf']) / 1000:.2f} s (first {results['pdf'][0] / 1000:.2f} s, max "
        f"{max(results['pdf']) / 1000:.2f} s) | | < 3 s |",
        f"| poll answered 304, median of {len(polls)} | {statistics.median(polls):.2f} ms "
        f"(p95 {percentile(polls, 95):.2f}) | | < 5 ms |",
        *(f"| a change of a {what} visible to a poller (feed polled every {args.idle} s), median / max of "
          f"{len(results['visible_s'][source])} | {statistics.median(results['visible_s'][source]):.2f} s / "
          f"{max(results['visible_s'][source]):.2f} s | | < 10 s |"
          for source, what in (("registry", "child's record"), ("cases", "case (closed as unfounded)"))
          if results["visible_s"][source]),
        "",
        "Latencies are measured by the client over HTTP on 127.0.0.1 and include token verification. The report "
        "reads materialised per-commune counts (`commune_figures`, `province_figures`) tagged with the data version "
        "they were computed from, and keeps the latest view of each province in memory; after a change only the "
        "communes whose version moved are recounted, and suppression is decided again for the province.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--children", type=int, default=1_000_000)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--province", default="79", help="the province whose report is timed")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--direct-runs", type=int, default=7)
    parser.add_argument("--pdfs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=5000, help="REPORTING_FEED_BATCH_SIZE")
    parser.add_argument("--idle", type=float, default=0.25, help="REPORTING_FEED_IDLE_SECONDS")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "reporting.md"))
    parser.add_argument("--database", default="bench_reporting")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards (for profiling)")
    args = parser.parse_args()

    pg = choose_postgres(ROOT / "var" / "pg-bench", prefer_local=True)
    name = args.database
    create_databases(pg, [name], drop_first=True)
    url = pg.url(name)
    migrate(url, MIGRATIONS)
    key = tokens.SigningKey.generate()
    feed_port, service_port = free_port(), free_port()
    feed_url, service_url = f"http://127.0.0.1:{feed_port}", f"http://127.0.0.1:{service_port}"
    log_dir = ROOT / "var" / "bench-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    feed = subprocess.Popen([sys.executable, "-m", "bench.reporting_feed", "--port", str(feed_port),
                             "--children", str(args.children), "--cases", str(args.cases),
                             "--jwk", json.dumps(key.public_jwk())], cwd=ROOT)
    service = None
    try:
        wait_for(f"{feed_url}/.well-known/jwks.json", timeout=180)
        env = os.environ | {
            "REPORTING_DATABASE_URL": url, "REPORTING_PORT": str(service_port), "REPORTING_JWT_ISSUER": ISSUER,
            "REPORTING_JWKS_URL": f"{feed_url}/.well-known/jwks.json", "REPORTING_GATEWAY_URL": feed_url,
            "REPORTING_REGISTRY_URL": f"{feed_url}/registry", "REPORTING_CASES_URL": f"{feed_url}/cases",
            "REPORTING_SERVICE_CLIENT_ID": "reporting", "REPORTING_FEED_BATCH_SIZE": str(args.batch),
            "REPORTING_FEED_IDLE_SECONDS": str(args.idle), "REPORTING_LOG_LEVEL": "WARNING",
            "REPORTING_NATIONAL_READY_YEARS": str(READY_YEARS), "REPORTING_NATIONAL_READY_PAUSE_SECONDS": "5",
        }
        started = time.perf_counter()
        service = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "services.reporting.app:create_app", "--factory", "--host", "127.0.0.1",
             "--port", str(service_port), "--no-access-log", "--loop", "uvloop", "--http", "httptools"],
            cwd=ROOT, env=env, stdout=(log_dir / "reporting.log").open("wb"), stderr=subprocess.STDOUT)
        wait_for(f"{service_url}/healthz", timeout=180)
        args.service_pid, args.feed_pid = service.pid, feed.pid
        # The raw copy reads and writes a million rows per statement: longer than a request's statement timeout.
        database = Database(url, pool_size=2, timeouts=DatabaseTimeouts(statement=1800, idle_in_transaction=1800))

        async def run() -> dict[str, object]:
            try:
                async with database.sessionmaker() as session:
                    postgres = await session.scalar(text("SHOW server_version"))
                measured = await measure(args, database, service_url, feed_url, key, started)
                measured["postgres"] = f"PostgreSQL {postgres}"
                return measured
            finally:
                await database.dispose()

        results = asyncio.run(run())
        report = write_results(args, results, str(results["postgres"]))
        Path(args.output).write_text(report)
        print(report)
    finally:
        for process in (service, feed):
            if process is not None:
                process.terminate()
                process.wait(timeout=15)
        if not args.keep:
            drop_databases(pg, [name])


if __name__ == "__main__":
    main()

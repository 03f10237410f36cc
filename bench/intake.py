"""Hotline intake through the gateway, as a share of what the database does for the same rows.

    .venv/bin/python -m bench.intake [--cases 100000] [--workers 16] [--rounds 8] [--seconds 5] [--replicas 1]
                                     [--profile DIR]

Starts the whole system on fresh databases (local PostgreSQL if it answers, else embedded) and stores `--cases`
cases with their history and deadlines (COPY, as `bench/cases.py`). Then, at the same concurrency, alternates short
rounds of two sides:

- raw: `--workers` asyncpg connections, each looping over one transaction per intake that inserts the same rows the
  service writes for one (the case, its history row, its deadline, its audit row, its event), copied from rows an
  intake through the gateway wrote, with new ids. No HTTP, no Python service, no ORM: the database's own price.
- gateway: `--workers` clients posting `POST /cases/v1/cases` through the gateway with a hotline token and a new
  `Idempotency-Key` each, as a phone does.

The gateway and the cases service run `--replicas` worker processes each (one by default; deploy/k8s runs two
replicas at least, which on two shared cores measured no better).

Each pair of rounds gives a ratio (gateway intakes per second / raw transactions per second); the result is the
median ratio with its spread, the gateway's p99 over all its rounds, the load average at the start and the end.
Writes `bench/results/intake.md`.

`--profile DIR` (with `py-spy` installed: `.venv/bin/pip install py-spy`) then records the gateway and the cases
service during one more gateway round and writes their stacks to DIR (`<service>.txt`, collapsed: load them into
speedscope or flamegraph.pl) and the functions that use the most CPU themselves to the console.
"""

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench.cases import INTAKE, bulk_load, machine
from bench.common import running_stack
from scripts.stack import ROOT, Stack

RESULTS = ROOT / "bench" / "results" / "intake.md"
# What one intake writes, table by table, and how its rows are found from the case id.
COPIED_TABLES = {
    "case_record": "id = $1::uuid",
    "case_history": "case_id = $1::uuid",
    "case_deadline": "case_id = $1::uuid",
    "audit_entry": "object_type = 'case' AND object_id = $1::uuid::text",
    "outbox_event": "type = 'case.received' AND payload->>'case_id' = $1::uuid::text",
}


@dataclass
class Round:
    side: str
    count: int
    errors: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # per process group, during the round

    @property
    def rate(self) -> float:
        return self.count / self.seconds


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


@dataclass
class Template:
    """The rows one intake wrote, to be inserted again with fresh ids by the raw side."""

    statements: list[tuple[str, list[str], list[Any]]]  # (INSERT ..., columns, values) per row

    @classmethod
    async def of(cls, connection: asyncpg.Connection, case_id: uuid.UUID) -> "Template":
        statements = []
        for table, where in COPIED_TABLES.items():
            generated = {row["column_name"] for row in await connection.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = $1 AND (is_identity = 'YES' "
                "OR column_default LIKE 'nextval%' OR column_default LIKE 'pg_current_xact_id%')",
                table)}
            rows = await connection.fetch(f"SELECT * FROM {table} WHERE {where}", case_id)
            assert rows, f"the intake wrote nothing to {table}"
            for row in rows:
                columns = [c for c in row.keys() if c not in generated]  # noqa: SIM118 (a Record iterates values)
                placeholders = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
                statements.append((f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})",
                                   columns, [row[c] for c in columns]))
        return cls(statements)

    def fresh(self, old_case: uuid.UUID) -> list[tuple[str, list[Any]]]:
        """The same rows for a new case: new ids, no idempotency key, the new case id wherever the old one was."""
        new_case = uuid.uuid4()
        result = []
        for statement, columns, values in self.statements:
            row = []
            for column, value in zip(columns, values, strict=True):
                if value == old_case:
                    value = new_case
                elif value == str(old_case):
                    value = str(new_case)
                elif column == "id" and isinstance(value, uuid.UUID):
                    value = uuid.uuid4()
                elif column == "idempotency_key":
                    value = None
                elif column == "payload":
                    value = value.replace(str(old_case), str(new_case))
                row.append(value)
            result.append((statement, row))
        return result


def cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # the process ended meanwhile
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """A service's CPU: its process and its worker processes (uvicorn --workers)."""
    children: list[int] = []
    for children_file in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            children += [int(child) for child in children_file.read_text().split()]
        except OSError:
            continue
    return cpu_seconds(pid) + sum(tree_cpu_seconds(child) for child in children)


class CpuMeter:
    """CPU used by the driver, each service process and the PostgreSQL backends serving this run's databases (the
    server is shared: other backends are someone else's)."""

    def __init__(self, stack: Stack, admin_dsn: str):
        self.stack, self.admin_dsn = stack, admin_dsn
        self.databases = list(stack.database_names.values())

    async def snapshot(self) -> dict[str, float]:
        connection = await asyncpg.connect(self.admin_dsn)
        try:
            backends = [row["pid"] for row in await connection.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = ANY($1::text[])", self.databases)]
            sessions = await connection.fetchval(
                "SELECT sum(sessions) FROM pg_stat_database WHERE datname = ANY($1::text[])", self.databases)
        finally:
            await connection.close()
        processes = {name: tree_cpu_seconds(process.pid) for name, process in self.stack.processes.items()}
        return {"driver": cpu_seconds(os.getpid()), **processes,
                "postgres": sum(cpu_seconds(pid) for pid in backends), "connections opened": float(sessions or 0)}

    async def during(self, work: Any) -> tuple[Round, dict[str, float]]:
        before = await self.snapshot()
        result: Round = await work
        after = await self.snapshot()
        # Backends that ended during the round took their CPU with them: the raw side closes its connections, so
        # its PostgreSQL share is read before that (see raw_round).
        return result, {name: max(0.0, after.get(name, 0.0) - before.get(name, 0.0)) for name in after}


async def raw_round(dsn: str, template: Template, old_case: uuid.UUID, workers: int, seconds: float) -> Round:
    connections = [await asyncpg.connect(dsn) for _ in range(workers)]
    count = errors = 0
    deadline = time.perf_counter() + seconds

    async def loop(connection: asyncpg.Connection) -> None:
        nonlocal count, errors
        while time.perf_counter() < deadline:
            try:
                async with connection.transaction():
                    for statement, values in template.fresh(old_case):
                        await connection.execute(statement, *values)
                count += 1
            except asyncpg.PostgresError:
                errors += 1

    pids = [connection.get_server_pid() for connection in connections]
    before = sum(cpu_seconds(pid) for pid in pids)
    started = time.perf_counter()
    try:
        await asyncio.gather(*(loop(c) for c in connections))
        backends = sum(cpu_seconds(pid) for pid in pids) - before
    finally:
        for connection in connections:
            await connection.close()
    return Round("raw", count, errors, time.perf_counter() - started, cpu_seconds={"raw backends": backends})


async def gateway_round(session: aiohttp.ClientSession, url: str, headers: dict[str, str], workers: int,
                        seconds: float) -> Round:
    result = Round("gateway", 0, 0, 0.0)
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                async with session.post(url, json=INTAKE,
                                        headers=headers | {"Idempotency-Key": uuid.uuid4().hex}) as response:
                    await response.read()
                    ok = response.status == 201
            except aiohttp.ClientError:
                ok = False
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            if ok:
                result.count += 1
            else:
                result.errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(workers)))
    result.seconds = time.perf_counter() - started
    return result


async def profile(stack: Stack, session: aiohttp.ClientSession, url: str, headers: dict[str, str], workers: int,
                  seconds: float, directory: Path) -> None:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    directory.mkdir(parents=True, exist_ok=True)
    recorders = {name: subprocess.Popen(
        [py_spy, "record", "--pid", str(stack.processes[name].pid), "--subprocesses", "--duration",
         str(round(seconds)), "--rate", "250", "--format", "raw", "--nonblocking", "--output",
         str(directory / f"{name}.txt")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for name in ("gateway", "cases")}
    await gateway_round(session, url, headers, workers, seconds + 1)
    for name, recorder in recorders.items():
        recorder.wait(timeout=60)
        print(f"\n{name}: the functions that use the most CPU themselves (share of samples)")
        for frame, share in top_frames(directory / f"{name}.txt"):
            print(f"  {share:6.1%}  {frame}")


def top_frames(collapsed: Path, count: int = 25) -> list[tuple[str, float]]:
    """The innermost frame of each sample (self time), summed from py-spy's collapsed stacks."""
    totals: Counter[str] = Counter()
    for line in collapsed.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if samples.isdigit():
            totals[stack.rsplit(";", 1)[-1]] += int(samples)
    everything = sum(totals.values()) or 1
    return [(frame, n / everything) for frame, n in totals.most_common(count)]


async def measure(stack: Stack, workers: int, rounds: int, seconds: float,
                  profile_to: Path | None = None) -> dict[str, Any]:
    dsn = stack.database_url("cases").replace("postgresql+asyncpg://", "postgresql://")
    url = f"{stack.url('gateway')}/cases/v1/cases"
    connector = aiohttp.TCPConnector(limit=workers * 2)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        async with session.post(f"{stack.url('gateway')}/auth/token", data={
                "grant_type": "password", "username": "demo-hotline_operator", "password": "demo"}) as response:
            headers = {"Authorization": f"Bearer {(await response.json())['access_token']}"}
        async with session.post(url, json=INTAKE, headers=headers | {"Idempotency-Key": uuid.uuid4().hex}) as first:
            assert first.status == 201, await first.text()
            old_case = uuid.UUID((await first.json())["id"])
        connection = await asyncpg.connect(dsn)
        try:
            template = await Template.of(connection, old_case)
        finally:
            await connection.close()
        # Warm both sides: connections, caches, the planner.
        await raw_round(dsn, template, old_case, workers, 2)
        await gateway_round(session, url, headers, workers, 2)
        meter = CpuMeter(stack, stack.pg.admin_dsn())
        load_start = os.getloadavg()
        pairs = []
        for _ in range(rounds):
            raw, used = await meter.during(raw_round(dsn, template, old_case, workers, seconds))
            raw.cpu_seconds = {"driver": used["driver"], "postgres": raw.cpu_seconds["raw backends"]}
            through, used = await meter.during(gateway_round(session, url, headers, workers, seconds))
            through.cpu_seconds = used
            pairs.append((raw, through))
        load_end = os.getloadavg()
        if profile_to is not None:
            await profile(stack, session, url, headers, workers, 20, profile_to)
    connection = await asyncpg.connect(dsn)
    try:
        stored = await connection.fetchval("SELECT count(*) FROM case_record")
    finally:
        await connection.close()
    return {"pairs": pairs, "load_start": load_start, "load_end": load_end, "stored_after": stored}


CPU_GROUPS = ("driver", "gateway", "cases", "registry", "reporting", "postgres")


def cpu_per_intake(pairs: list[tuple[Round, Round]]) -> dict[str, dict[str, float]]:
    costs = {}
    for index, side in enumerate(("raw", "gateway")):
        rounds = [pair[index] for pair in pairs]
        count = sum(r.count for r in rounds) or 1
        costs[side] = {group: sum(r.cpu_seconds.get(group, 0.0) for r in rounds) * 1000 / count
                       for group in CPU_GROUPS}
    return costs


def render(args: argparse.Namespace, results: dict[str, Any], loaded_in: float, command: str) -> str:
    pairs: list[tuple[Round, Round]] = results["pairs"]
    ratios = sorted(through.rate / raw.rate for raw, through in pairs)
    latencies = [ms for _, through in pairs for ms in through.latencies_ms]
    p99 = percentile(latencies, 99)
    median_ratio = statistics.median(ratios)
    errors = sum(raw.errors + through.errors for raw, through in pairs)
    met = median_ratio >= 0.25 and p99 < 150 and errors == 0
    load_start, load_end = results["load_start"], results["load_end"]
    lines = [
        "# Intake through the gateway against the raw database",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}; the load driver, the gateway, the four "
        "services and PostgreSQL share the machine with other work.",
        "",
        f"Command: `{command}`",
        "",
        f"Stored before the run: {args.cases:,} cases with their history, deadlines and tasks (COPY, "
        f"{loaded_in:.1f} s); "
        f"{results['stored_after']:,} after it. The gateway and the cases service run {args.replicas} worker "
        f"process{'es' if args.replicas > 1 else ''} each. "
        f"{args.workers} concurrent workers on each side, {args.rounds} pairs of "
        f"{args.seconds:g} s rounds, raw first in each pair. Load average (1, 5, 15 min): "
        f"{' / '.join(f'{v:.2f}' for v in load_start)} at the start, {' / '.join(f'{v:.2f}' for v in load_end)} "
        "at the end.",
        "",
        "- raw: one asyncpg transaction per intake inserting the rows one intake writes (case, history, deadline, "
        "audit, event), copied from an intake's own rows with new ids;",
        "- gateway: `POST /cases/v1/cases` through the gateway with a hotline token and a new `Idempotency-Key`.",
        "",
        f"**Intake through the gateway: {median_ratio:.2f} of raw (median; spread {ratios[0]:.2f} to "
        f"{ratios[-1]:.2f}), p99 {p99:.0f} ms, {errors} errors. Target >= 0.25 of raw, p99 < 150 ms: "
        f"{'met' if met else 'NOT met'}.**",
        "",
        "| pair | raw tx/s | gateway intakes/s | ratio | gateway p50 ms | gateway p99 ms | errors (raw, gateway) |",
        "|---|---|---|---|---|---|---|",
        *[f"| {n} | {raw.rate:.0f} | {through.rate:.0f} | {through.rate / raw.rate:.2f} | "
          f"{statistics.median(through.latencies_ms):.1f} | {percentile(through.latencies_ms, 99):.1f} | "
          f"{raw.errors}, {through.errors} |" for n, (raw, through) in enumerate(pairs, 1)],
        "",
        "Absolute rates differ 3-4x between machines of this kind and with the load of the moment; the ratio of the "
        "two sides measured moments apart is the figure that holds (`../shared/performance.md`).",
        "",
        "CPU per intake, in milliseconds (all rounds of a side; PostgreSQL: the backends serving this run's "
        "databases):",
        "",
        "| side | " + " | ".join(CPU_GROUPS) + " | total |",
        "|---|" + "---|" * (len(CPU_GROUPS) + 1),
        *[f"| {side} | " + " | ".join(f"{cost.get(group, 0.0):.2f}" for group in CPU_GROUPS)
          + f" | {sum(cost.values()):.2f} |" for side, cost in cpu_per_intake(pairs).items()],
        "",
        "Database connections the services opened during the gateway rounds (each costs a backend start): "
        f"{sum(through.cpu_seconds.get('connections opened', 0.0) for _, through in pairs):.0f}.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--profile", type=Path, help="record the gateway and cases processes with py-spy into DIR")
    parser.add_argument("--replicas", type=int, default=1,
                        help="worker processes of the gateway and of the cases service (deploy/k8s runs 2 at least)")
    args = parser.parse_args()
    command = ".venv/bin/python -m bench.intake " + " ".join(sys.argv[1:])
    with running_stack("intake", workers={"gateway": args.replicas, "cases": args.replicas}) as stack:
        started = time.perf_counter()
        asyncio.run(bulk_load(stack.database_url("cases"), args.cases))
        loaded_in = time.perf_counter() - started
        results = asyncio.run(measure(stack, args.workers, args.rounds, args.seconds, args.profile))
    report = render(args, results, loaded_in, command.strip())
    with open(args.output, "w") as out:
        out.write(report)
    print(report)


if __name__ == "__main__":
    main()

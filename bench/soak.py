"""A soak of the whole system: a realistic mix of calls through the gateway with real tokens, for a fixed time,
with the latency of each kind of call and the memory of every process sampled along the way.

    .venv/bin/python -m bench.soak [--seconds 600] [--workers 12]

The mix: hotline intakes (with an Idempotency-Key), officers' work lists, case actions (with If-Match), registry
searches by name without diacritics, and provinces polling their half-year report (with If-None-Match). Any answer
outside the expected statuses is an error. Memory: the resident size of each service process, sampled every 5 s;
growth compares the median of the second minute with the median of the last minute.
"""

import argparse
import asyncio
import platform
import random
import statistics
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from httpx_aiohttp import AiohttpTransport

from bench.common import LoadResult, running_stack
from scripts.stack import (
    ROOT,
    Stack,
)

RESULTS = ROOT / "bench" / "results" / "soak.md"
COMMUNE = "00070"
FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi"]
GIVEN = ["Văn An", "Thị Bình", "Minh Châu", "Thị Dung", "Quốc Hùng", "Thị Lan", "Văn Nam", "Thị Mai"]
PLAIN = {"Nguyễn": "nguyen", "Trần": "tran", "Lê": "le", "Phạm": "pham", "Hoàng": "hoang", "Vũ": "vu",
         "Đặng": "dang", "Bùi": "bui"}
INTAKE = {"reporter": {"anonymous": True}, "child": {"first_name": "Mai", "approximate_age": 8, "sex": "female"},
          "incident_commune_code": COMMUNE, "abuse_forms": ["violence"], "environment": "home",
          "description": "A neighbour reports that the child is beaten.", "danger_indicators": []}
WEIGHTS = {"hotline intake": 30, "registry search": 25, "province poll": 20, "work list": 15, "case action": 10}


@dataclass
class Soak:
    gateway: str
    headers: dict[str, dict[str, str]]
    results: dict[str, LoadResult] = field(default_factory=lambda: {kind: LoadResult() for kind in WEIGHTS})
    etag: str | None = None

    async def call(self, client: httpx.AsyncClient, kind: str) -> bool:
        g = self.gateway
        if kind == "hotline intake":
            r = await client.post(f"{g}/cases/v1/cases", json=INTAKE,
                                  headers=self.headers["hotline"] | {"Idempotency-Key": uuid.uuid4().hex})
            return r.status_code == 201
        if kind == "registry search":
            q = f"{random.choice(list(PLAIN.values()))} {random.choice(['van', 'thi', 'minh', 'quoc'])}"
            r = await client.get(f"{g}/registry/v1/children", params={"q": q, "commune_code": COMMUNE},
                                 headers=self.headers["officer"])
            return r.status_code == 200
        if kind == "province poll":
            conditional = {"If-None-Match": self.etag} if self.etag else {}
            r = await client.get(f"{g}/reporting/v1/reports/2026S2", params={"location": "01"},
                                 headers=self.headers["statistician"] | conditional)
            if r.status_code == 200:
                self.etag = r.headers.get("etag")
            return r.status_code in (200, 304)
        if kind == "work list":
            r = await client.get(f"{g}/cases/v1/me/work", headers=self.headers["officer"])
            return r.status_code == 200
        # A case action: an officer starts the assessment of a fresh report (its own, so no one else races it).
        created = await client.post(f"{g}/cases/v1/cases", json=INTAKE,
                                    headers=self.headers["officer"] | {"Idempotency-Key": uuid.uuid4().hex})
        if created.status_code != 201:
            return False
        case = created.json()
        r = await client.post(f"{g}/cases/v1/cases/{case['id']}/actions/begin_assessment", json={},
                              headers=self.headers["officer"] | {"If-Match": created.headers["etag"]})
        return r.status_code == 200

    async def worker(self, client: httpx.AsyncClient, deadline: float) -> None:
        kinds, weights = list(WEIGHTS), list(WEIGHTS.values())
        while time.perf_counter() < deadline:
            kind = random.choices(kinds, weights)[0]
            started = time.perf_counter()
            try:
                ok = await self.call(client, kind)
            except httpx.HTTPError:
                ok = False
            result = self.results[kind]
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            result.errors += 0 if ok else 1


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def run(stack: Stack, seconds: float, workers: int) -> tuple[Soak, dict[str, list[tuple[float, float]]]]:
    gateway = stack.url("gateway")
    async with httpx.AsyncClient(transport=AiohttpTransport(), timeout=30) as client:
        async def token(username: str) -> dict[str, str]:
            r = await client.post(f"{gateway}/auth/token", data={"grant_type": "password", "username": username,
                                                                 "password": "demo"})
            return {"Authorization": f"Bearer {r.json()['access_token']}"}

        headers = {"hotline": await token("demo-hotline_operator"),
                   "officer": await token("demo-child_protection_officer"),
                   "statistician": await token("demo-province_statistician")}
        for i in range(300):
            suffix = str(i).translate(str.maketrans("0123456789", "ghklmnpqrs"))  # names hold letters only
            body = {"full_name": f"{FAMILY[i % 8]} {GIVEN[(i // 8) % 8]} {suffix}", "sex": "female",
                    "date_of_birth": f"{2011 + i % 14}-0{1 + i % 9}-1{i % 9}", "commune_code": COMMUNE,
                    "confirm_not_duplicate": True}
            r = await client.post(f"{gateway}/registry/v1/children", json=body, headers=headers["officer"])
            assert r.status_code == 201, r.text
        soak = Soak(gateway, headers)
        memory: dict[str, list[tuple[float, float]]] = {name: [] for name in stack.processes}
        started = time.perf_counter()
        deadline = started + seconds

        async def sample() -> None:
            while time.perf_counter() < deadline:
                for name, process in stack.processes.items():
                    memory[name].append((time.perf_counter() - started, rss_mb(process.pid)))
                await asyncio.sleep(5)

        await asyncio.gather(sample(), *(soak.worker(client, deadline) for _ in range(workers)))
        for result in soak.results.values():
            result.seconds = time.perf_counter() - started
        return soak, memory


def growth(samples: list[tuple[float, float]], seconds: float) -> tuple[float, float, float]:
    second_minute = [mb for t, mb in samples if 60 <= t < 120] or [samples[0][1]]
    last_minute = [mb for t, mb in samples if t >= seconds - 60] or [samples[-1][1]]
    early, late = statistics.median(second_minute), statistics.median(last_minute)
    return early, late, (late - early) / early * 100


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--workers", type=int, default=12)
    args = parser.parse_args()
    with running_stack("soak") as stack:
        soak, memory = asyncio.run(run(stack, args.seconds, args.workers))
    total = sum(r.count for r in soak.results.values())
    errors = sum(r.errors for r in soak.results.values())
    lines = [
        "# Soak: the whole system under a realistic mix",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, Python {platform.python_version()},"
        " 2 cores shared by the load driver, the four services and PostgreSQL.",
        "",
        f"Command: `.venv/bin/python -m bench.soak --seconds {args.seconds:g} --workers {args.workers}`",
        "",
        f"{total} calls in {args.seconds:g} s ({total / args.seconds:.1f}/s) from {args.workers} concurrent "
        f"clients through the gateway, with real tokens; **{errors} errors**.",
        "",
        "| kind of call | share | calls | errors | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, result in soak.results.items():
        s = result.summary() if result.count else {"p50_ms": 0, "p95_ms": 0, "p99_ms": 0}
        lines.append(f"| {kind} | {WEIGHTS[kind]}% | {result.count} | {result.errors} | {s['p50_ms']} | "
                     f"{s['p95_ms']} | {s['p99_ms']} |")
    lines += ["", "A case action is an officer's new report followed by `begin_assessment` with If-Match (two calls).",
              "", "Resident memory of each process (MB), median of the second minute and of the last minute:", "",
              "| process | second minute | last minute | change |", "|---|---|---|---|"]
    for name, samples in memory.items():
        early, late, change = growth(samples, args.seconds)
        lines.append(f"| {name} | {early:.0f} | {late:.0f} | {change:+.1f}% |")
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

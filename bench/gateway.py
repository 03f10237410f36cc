"""What the gateway costs: the same authenticated call made directly to a service and through the gateway, in
alternating short rounds (direct, gateway, direct, gateway, ...), so that the machine's changing load falls on both
sides alike (../shared/performance.md). Reports the median ratio of the two sides' throughput with its spread, and
the load average at the start and the end.

    .venv/bin/python -m bench.gateway [--rounds 10] [--round-seconds 3] [--workers 32]

Starts the whole system on fresh databases (local PostgreSQL if it answers, else embedded), then drives
`GET /v1/children/{id}` (token verification, the revocation check, a database read, an audit write) both ways with
a real token, and the bare hop on `/healthz`.
"""

import argparse
import asyncio
import os
import platform
import statistics
from datetime import UTC, datetime

import httpx
from httpx_aiohttp import AiohttpTransport

from bench.common import drive, running_stack
from scripts.stack import ROOT, Stack

RESULTS = ROOT / "bench" / "results" / "gateway.md"


def load() -> str:
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3


async def measure(stack: Stack, rounds: int, seconds: float, workers: int) -> dict[str, dict[str, list[dict]]]:
    async with httpx.AsyncClient(transport=AiohttpTransport(), timeout=30) as client:
        token = (await client.post(f"{stack.url('gateway')}/auth/token", data={
            "grant_type": "password", "username": "demo-child_protection_officer", "password": "demo"})).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        created = await client.post(f"{stack.url('gateway')}/registry/v1/children", headers=headers, json={
            "full_name": "Bench Child", "sex": "male", "date_of_birth": "2016-01-01", "commune_code": "00070"})
        child = created.json()["id"]
        pairs = {
            "`GET /v1/children/{id}`": (f"{stack.url('registry')}/v1/children/{child}",
                                        f"{stack.url('gateway')}/registry/v1/children/{child}"),
            "`/healthz` (the bare hop)": (f"{stack.url('registry')}/healthz",
                                          f"{stack.url('gateway')}/registry/healthz"),
        }
        results: dict[str, dict[str, list[dict]]] = {}
        for label, (direct_url, gateway_url) in pairs.items():
            sides: dict[str, list[dict]] = {"direct": [], "gateway": []}
            for url in (direct_url, gateway_url):  # warm both up
                async def warm(url: str = url) -> bool:
                    return (await client.get(url, headers=headers)).status_code == 200

                await drive(warm, workers=workers, seconds=1)
            for index in range(rounds):
                order = ("direct", "gateway") if index % 2 == 0 else ("gateway", "direct")  # ABBA: no side first
                for side in order:
                    url = direct_url if side == "direct" else gateway_url

                    async def call(url: str = url) -> bool:
                        return (await client.get(url, headers=headers)).status_code == 200

                    sides[side].append((await drive(call, workers=workers, seconds=seconds)).summary())
            results[label] = sides
        return results


def report(results: dict[str, dict[str, list[dict]]], args: argparse.Namespace, load_start: str,
           load_end: str) -> list[str]:
    lines = [
        "# Gateway overhead",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, Python "
        f"{platform.python_version()}, {os.cpu_count()} cores shared by the driver, the gateway, the registry and "
        "PostgreSQL (and whatever else the machine ran).",
        "",
        f"Command: `.venv/bin/python -m bench.gateway --rounds {args.rounds} --round-seconds {args.round_seconds:g} "
        f"--workers {args.workers}`",
        "",
        f"Load average (1 / 5 / 15 min) at the start: {load_start}; at the end: {load_end}.",
        "",
        f"Each round drives one side for {args.round_seconds:g} s with {args.workers} concurrent clients; the sides "
        f"alternate (direct, gateway, gateway, direct, ...) for {args.rounds} rounds each. The ratio is the "
        "gateway's requests per second over the direct side's in the same round pair.",
        "",
        "| call | gateway / direct throughput: median | quartiles | min – max | direct req/s (median) | "
        "gateway req/s (median) | direct p50 ms | gateway p50 ms | errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, sides in results.items():
        ratios = [g["rps"] / d["rps"] for d, g in zip(sides["direct"], sides["gateway"], strict=True)]
        q1, median, q3 = quartiles(ratios)

        def med(side: str, key: str, sides: dict[str, list[dict]] = sides) -> float:
            return statistics.median(r[key] for r in sides[side])

        errors = sum(r["errors"] for side in sides.values() for r in side)
        lines.append(f"| {label} | **{median:.2f}** | {q1:.2f} – {q3:.2f} | {min(ratios):.2f} – {max(ratios):.2f} | "
                     f"{med('direct', 'rps'):.0f} | {med('gateway', 'rps'):.0f} | {med('direct', 'p50_ms'):.1f} | "
                     f"{med('gateway', 'p50_ms'):.1f} | {errors} |")
    lines += [
        "",
        "What the gateway does on each proxied call: the request id, the rate limits (switched off here: the driver is "
        "one address and one user), the token check (cached) and the session revocation check (an in-memory set, "
        "refreshed every second), the time budget and circuit breaker, and the hop itself on aiohttp. On the bare "
        "`/healthz` the ratio is the price of the hop with three processes sharing two cores; on the real read the "
        "service's own work dilutes it.",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--round-seconds", type=float, default=3)
    parser.add_argument("--workers", type=int, default=32)
    args = parser.parse_args()
    load_start = load()
    with running_stack("bench") as stack:
        results = asyncio.run(measure(stack, args.rounds, args.round_seconds, args.workers))
    lines = report(results, args, load_start, load())
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

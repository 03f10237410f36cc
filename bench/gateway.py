"""What the gateway costs: the same authenticated call made directly to a service and through the gateway.

    .venv/bin/python -m bench.gateway [--seconds 10] [--workers 32]

Starts the whole system on fresh databases (local PostgreSQL if it answers, else embedded), then drives
`GET /v1/children/{id}` (token verification, a database read, an audit write) both ways with real tokens.
"""

import argparse
import asyncio
import platform
from datetime import UTC, datetime

import httpx
from httpx_aiohttp import AiohttpTransport

from bench.common import drive, running_stack
from scripts.stack import (
    ROOT,
    Stack,
)

RESULTS = ROOT / "bench" / "results" / "gateway.md"


async def measure(stack: Stack, seconds: float, workers: int) -> dict[str, dict[str, float]]:
    async with httpx.AsyncClient(transport=AiohttpTransport(), timeout=30) as client:
        token = (await client.post(f"{stack.url('gateway')}/auth/token", data={
            "grant_type": "password", "username": "demo-child_protection_officer", "password": "demo"})).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        created = await client.post(f"{stack.url('gateway')}/registry/v1/children", headers=headers, json={
            "full_name": "Bench Child", "sex": "male", "date_of_birth": "2016-01-01", "commune_code": "00070"})
        child = created.json()["id"]
        results = {}
        for label, url in (("direct to registry", f"{stack.url('registry')}/v1/children/{child}"),
                           ("through the gateway", f"{stack.url('gateway')}/registry/v1/children/{child}"),
                           ("`/healthz` direct (no token, no database)", f"{stack.url('registry')}/healthz"),
                           ("`/healthz` through the gateway", f"{stack.url('gateway')}/registry/healthz")):
            async def call(url: str = url) -> bool:
                return (await client.get(url, headers=headers)).status_code == 200

            await drive(call, workers=workers, seconds=2)  # warm up
            results[label] = (await drive(call, workers=workers, seconds=seconds)).summary()
        return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--workers", type=int, default=32)
    args = parser.parse_args()
    with running_stack("bench") as stack:
        results = asyncio.run(measure(stack, args.seconds, args.workers))
    direct, proxied = results["direct to registry"], results["through the gateway"]
    bare, bare_proxied = results["`/healthz` direct (no token, no database)"], results["`/healthz` through the gateway"]
    lines = [
        "# Gateway overhead",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, {platform.python_version()}, "
        f"2 cores shared by the driver, the gateway, the registry and PostgreSQL.",
        "",
        f"Command: `.venv/bin/python -m bench.gateway --seconds {args.seconds:g} --workers {args.workers}`",
        "",
        "`GET /v1/children/{id}` with a real token (verification, one read, one audit row), "
        f"{args.workers} concurrent clients, {args.seconds:g} s each:",
        "",
        "| path | requests | errors | req/s | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|---|---|",
        *[f"| {label} | {r['requests']} | {r['errors']} | {r['rps']} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} |"
          for label, r in results.items()],
        "",
        f"Throughput through the gateway is {proxied['rps'] / direct['rps']:.0%} of direct; the gateway adds "
        f"{proxied['p50_ms'] - direct['p50_ms']:.1f} ms at the median. On a call that does no work "
        f"(`/healthz`), through the gateway carries {bare_proxied['rps'] / bare['rps']:.0%} of direct: that is the "
        "price of the hop itself, with the gateway, the service and the driver sharing two cores.",
    ]
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

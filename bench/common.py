"""Shared pieces of the benchmark scripts: a bounded async load driver and percentile maths."""

import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from scripts.stack import (
    ROOT,
    SERVICES,
    ObjectStoreAccess,
    Stack,
    choose_postgres,
    create_databases,
    drop_databases,
    free_port,
    new_client_secrets,
)

NO_RATE_LIMITS = {"gateway": {"GATEWAY_RATE_LIMIT_PER_USER": "0", "GATEWAY_RATE_LIMIT_PER_ADDRESS": "0"}}


@contextmanager
def running_stack(label: str, extra_env: dict[str, dict[str, str]] | None = None,
                  object_store: ObjectStoreAccess | None = None,
                  workers: dict[str, int] | None = None) -> Iterator[Stack]:
    """The four services with demo users on fresh databases (local PostgreSQL if it answers, else embedded),
    dropped again afterwards. Rate limits are off: the driver is one address and a few users. `workers`: worker
    processes per service (replicas behind one port)."""
    pg = choose_postgres(ROOT / "var" / "pg-bench", prefer_local=True)
    names = {s.name: f"{label}_{uuid.uuid4().hex[:6]}_{s.name}" for s in SERVICES}
    create_databases(pg, list(names.values()))
    stack = Stack(pg=pg, database_names=names, ports={s.name: free_port() for s in SERVICES},
                  client_secrets=new_client_secrets(), seed_demo=True, log_dir=ROOT / "var" / "bench-logs",
                  extra_env=NO_RATE_LIMITS | (extra_env or {}), object_store=object_store, workers=workers or {})
    stack.migrate_all()
    try:
        stack.start_all()
        yield stack
    finally:
        stack.stop_all()
        drop_databases(pg, list(names.values()))


@dataclass
class LoadResult:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0

    @property
    def count(self) -> int:
        return len(self.latencies_ms)

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    def summary(self) -> dict[str, float]:
        return {"requests": self.count, "errors": self.errors, "rps": round(self.count / self.seconds, 1),
                "p50_ms": round(statistics.median(self.latencies_ms), 2), "p95_ms": round(self.percentile(95), 2),
                "p99_ms": round(self.percentile(99), 2)}


async def drive(call: Callable[[], Awaitable[bool]], *, workers: int, seconds: float) -> LoadResult:
    """Run `call` from `workers` concurrent loops for `seconds`; `call` returns False on an error answer."""
    result = LoadResult()
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                ok = await call()
            except Exception:
                ok = False
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            if not ok:
                result.errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    result.seconds = time.perf_counter() - started
    return result


def load_remark(start: float, end: float) -> str:
    """Say whether the run had the machine to itself: above one runnable task per core, other work competed."""
    if max(start, end) <= (os.cpu_count() or 1):
        return "a quiet machine: the benchmark's own processes only"
    return "other work was competing for the cores: absolute figures are noisy, ratios hold better"

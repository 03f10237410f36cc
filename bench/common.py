"""Shared pieces of the benchmark scripts: a bounded async load driver and percentile maths."""

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


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

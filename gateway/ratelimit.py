"""Per-user and per-address request limits (token buckets, in this process).

Each gateway replica limits on its own; with N replicas behind a balancer the effective limit is up to N times
the setting, which the operations guide accounts for.
"""

import time
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, per_minute: int, max_keys: int = 100_000):
        self.capacity = float(per_minute)
        self.refill_per_second = per_minute / 60.0
        self.max_keys = max_keys
        self.buckets: dict[str, _Bucket] = {}

    def acquire(self, key: str) -> float:
        """Take one request from `key`'s bucket. Returns 0 when allowed, else the seconds to wait."""
        if self.capacity <= 0:
            return 0.0
        now = time.monotonic()
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) >= self.max_keys:
                self._prune(now)
            bucket = self.buckets[key] = _Bucket(self.capacity, now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * self.refill_per_second)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.refill_per_second

    def _prune(self, now: float) -> None:
        full_after = self.capacity / self.refill_per_second
        self.buckets = {k: b for k, b in self.buckets.items() if now - b.updated < full_after}

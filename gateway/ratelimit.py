"""Per-user and per-address request limits (token buckets, GCRA).

With `GATEWAY_REDIS_URL` the buckets live in Redis and every gateway replica counts against the same limit (one
atomic script per request). Without it, each replica counts in its own memory, which is right for one replica
only. If Redis stops answering, the replica falls back to its own memory (and says so in the log) rather than
refusing or letting everything through.
"""

import time
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.common.logging import get_logger

logger = get_logger("ratelimit")


class Limiter(Protocol):
    async def acquire(self, key: str) -> float:
        """Take one request from `key`'s bucket. Returns 0 when allowed, else the seconds to wait."""
        ...


@dataclass
class _Bucket:
    tokens: float
    updated: float


class MemoryRateLimiter:
    def __init__(self, per_minute: int, max_keys: int = 100_000):
        self.capacity = float(per_minute)
        self.refill_per_second = per_minute / 60.0
        self.max_keys = max_keys
        self.buckets: dict[str, _Bucket] = {}

    async def acquire(self, key: str) -> float:
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


# GCRA: the key holds the "theoretical arrival time" in microseconds on Redis's own clock, so replicas whose clocks
# differ still agree. A request is allowed while it arrives no earlier than TAT - burst; it moves TAT one interval on.
_GCRA = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allowed_at = tat - burst
if now < allowed_at then
  return allowed_at - now
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return 0
"""


class RedisRateLimiter:
    def __init__(self, redis: Redis, prefix: str, name: str, per_minute: int):
        self.redis, self.prefix, self.name = redis, prefix, name
        self.per_minute = per_minute
        self.interval_us = 60_000_000 // per_minute if per_minute > 0 else 0
        self.burst_us = self.interval_us * per_minute  # a full minute's worth may come at once, as in memory
        self.fallback = MemoryRateLimiter(per_minute)
        self.script = redis.register_script(_GCRA)
        self._warned = False

    async def acquire(self, key: str) -> float:
        if self.per_minute <= 0:
            return 0.0
        try:
            wait_us = int(await self.script(keys=[f"{self.prefix}rl:{self.name}:{key}"],
                                            args=[self.interval_us, self.burst_us - self.interval_us]))
            self._warned = False
            return wait_us / 1_000_000
        except (RedisError, OSError) as exc:
            if not self._warned:
                logger.warning("redis unavailable; limiting in this replica only",
                               extra={"error_type": type(exc).__name__})
                self._warned = True
            return await self.fallback.acquire(key)

"""Requests per caller, limited by a token bucket each: a minute's allowance, refilled evenly.

A caller is a name such as `key:<prefix>` or `user:<id>`. The buckets live in this process;
idle callers' buckets are dropped once there are many, since a full bucket is the default.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_BUCKETS = 50_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """`per_minute` requests a minute per caller, in bursts of up to `per_minute`."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def retry_after(self, caller: str) -> int | None:
        """Take one request from the caller's bucket: None if allowed, else whole seconds
        until the next request would be."""
        now = self._clock()
        bucket = self._buckets.get(caller)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._drop_full(now)
            bucket = self._buckets[caller] = _Bucket(self.capacity, now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return max(1, math.ceil((1 - bucket.tokens) / self.rate))

    def _drop_full(self, now: float) -> None:
        """Forget the callers whose buckets have refilled: they start full again anyway."""
        refill = self.capacity / self.rate
        self._buckets = {
            caller: bucket
            for caller, bucket in self._buckets.items()
            if now - bucket.updated < refill
        }

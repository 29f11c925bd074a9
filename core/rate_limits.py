"""Token-bucket rate limits kept in one process (per API key in the HTTP layer, per sender in the product).

With N workers behind a balancer a client gets up to N times the configured rate, which bounds abuse without a
shared store on the hot path.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from threadline.core.errors import RateLimitedError

MAX_BUCKETS = 100_000


class RateLimiter:
    """Token buckets: `per_minute` requests a minute per key, in bursts of up to `per_minute`."""

    def __init__(self, per_minute: int) -> None:
        self._rate = per_minute / 60.0
        self._capacity = float(per_minute)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, key: str) -> int | None:
        """Take one token for `key`; None when allowed, else the seconds until the next one."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self._capacity, now))
            tokens = min(self._capacity, tokens + (now - last) * self._rate)
            if tokens >= 1:
                if len(self._buckets) >= MAX_BUCKETS:  # forget idle clients rather than grow without bound
                    self._buckets.clear()
                self._buckets[key] = (tokens - 1, now)
                return None
            self._buckets[key] = (tokens, now)
            return max(1, math.ceil((1 - tokens) / self._rate))

    def check(self, key: str, what: str) -> None:
        """Raise `RateLimitedError` when `key` is over its rate."""
        wait = self.retry_after(key)
        if wait is not None:
            raise RateLimitedError(f"too many requests for this {what}; retry in {wait} s", retry_after_s=wait)

    def forget(self, matches: Callable[[str], bool]) -> int:
        """Drop the buckets whose key `matches` (an erased customer's handles); returns how many went."""
        with self._lock:
            keys = [k for k in self._buckets if matches(k)]
            for key in keys:
                del self._buckets[key]
        return len(keys)

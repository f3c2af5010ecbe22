"""Token-bucket rate limit per device, over an injected clock (pure: no sleeping, no wall clock).

Each device has a bucket of ``burst`` tokens refilled at ``rate_per_s``; a frame takes one.

    >>> from ibet.clock import ManualClock
    >>> limiter = RateLimiter(rate_per_s=2.0, burst=1, clock=ManualClock(start_ns=1))
    >>> limiter.acquire("drone-1"), limiter.acquire("drone-1")
    (0.0, 0.5)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ibet.clock import Clock

_NS = 1_000_000_000


@dataclass
class _Bucket:
    tokens: float
    updated_ns: int


class RateLimiter:
    """Per-key token buckets: ``acquire(key)`` takes a token or says how long until one is there."""

    def __init__(self, rate_per_s: float, burst: int, clock: Clock):
        if not rate_per_s > 0 or burst < 1:
            raise ValueError(f"need rate_per_s > 0 and burst >= 1, got {rate_per_s!r} and {burst!r}")
        self.rate_per_s, self.burst, self._clock = rate_per_s, burst, clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float:
        """Take one token of ``key``'s bucket: 0.0 if allowed, else the seconds until a token is free
        (nothing is taken then, so a refused request does not push the next one further out)."""
        now_ns = self._clock.now_ns()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(float(self.burst), now_ns)
            elapsed_s = max(0, now_ns - bucket.updated_ns) / _NS
            bucket.tokens = min(float(self.burst), bucket.tokens + elapsed_s * self.rate_per_s)
            bucket.updated_ns = max(bucket.updated_ns, now_ns)
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate_per_s

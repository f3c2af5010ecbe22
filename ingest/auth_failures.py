"""Failed authentications per client address: past a limit in a window the client is refused
before any token is looked at (pure over an injected clock).

Wrong tokens cost little now (sha256), but a client that keeps guessing is still told to stop:
after ``max_failures`` failures within ``window_s`` it gets 429 until its oldest failure in the
window ages out. The address comes from :func:`ibet.forwarded.client_address`, so behind an
ingress one guessing client is not every client. Memory is bounded by ``max_clients``.

    >>> from ibet.clock import ManualClock
    >>> limiter = AuthFailureLimiter(max_failures=2, window_s=60, clock=ManualClock(start_ns=1))
    >>> limiter.failed("203.0.113.9"); limiter.failed("203.0.113.9")
    >>> limiter.retry_after_s("203.0.113.9") > 0, limiter.retry_after_s("198.51.100.7")
    (True, 0.0)
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque

from ibet.clock import Clock

_NS = 1_000_000_000


class AuthFailureLimiter:
    """Sliding-window count of failed authentications per client address."""

    def __init__(self, max_failures: int, window_s: float, clock: Clock, max_clients: int = 10_000):
        self.max_failures, self.window_ns, self._clock = max_failures, int(window_s * _NS), clock
        self._max_clients = max_clients
        self._failures: OrderedDict[str, deque[int]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, client: str, now_ns: int) -> deque[int]:
        times = self._failures.get(client, deque())
        while times and times[0] <= now_ns - self.window_ns:
            times.popleft()
        return times

    def retry_after_s(self, client: str) -> float:
        """0.0 if ``client`` may try to authenticate, else the seconds until it may again."""
        now_ns = self._clock.now_ns()
        with self._lock:
            times = self._recent(client, now_ns)
            if len(times) < self.max_failures:
                return 0.0
            return (times[0] + self.window_ns - now_ns) / _NS

    def failed(self, client: str) -> None:
        """Count one failed authentication of ``client``."""
        now_ns = self._clock.now_ns()
        with self._lock:
            times = self._recent(client, now_ns)
            times.append(now_ns)
            self._failures[client] = times
            self._failures.move_to_end(client)
            while len(self._failures) > self._max_clients:
                self._failures.popitem(last=False)

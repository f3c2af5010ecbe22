"""Clocks and event-time helpers.

Stages reason in event time (capture timestamps, integer ns since the Unix epoch, UTC). Wall
clock is used only for delivery retries, acknowledgement timeouts and escalation, always
through an injected :class:`Clock`, so scenarios replay identically and tests need no sleeps.
"""

from __future__ import annotations

import math
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NS_PER_S = 1_000_000_000


@runtime_checkable
class Clock(Protocol):
    """What code that needs wall-clock time receives."""

    def now_ns(self) -> int:
        """Current time, ns since the Unix epoch (UTC)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (s) of this clock's time."""
        ...


class SystemClock:
    """The real clock: :func:`time.time_ns` and :func:`time.sleep`."""

    def now_ns(self) -> int:
        """Current wall-clock time, ns since the Unix epoch."""
        return time.time_ns()

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for ``seconds`` (s)."""
        time.sleep(seconds)


class ManualClock:
    """A clock that moves only when told; ``sleep`` advances it instead of blocking.

    >>> clock = ManualClock(start_ns=1_000)
    >>> clock.advance(0.5); clock.now_ns()
    500001000
    """

    def __init__(self, start_ns: int) -> None:
        if isinstance(start_ns, bool) or not isinstance(start_ns, int):
            raise TypeError(f"start_ns must be an int, got {start_ns!r}")
        self._now_ns = start_ns
        self._lock = threading.Lock()

    def now_ns(self) -> int:
        """The clock's current time, ns."""
        with self._lock:
            return self._now_ns

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (s, >= 0; time never goes back)."""
        step_ns = ns_from_seconds(seconds)
        if step_ns < 0:
            raise ValueError(f"a clock cannot go back: advance({seconds!r})")
        with self._lock:
            self._now_ns += step_ns

    def sleep(self, seconds: float) -> None:
        """Advance by ``seconds`` (s) at once instead of waiting."""
        self.advance(seconds)


def ns_from_seconds(seconds: float) -> int:
    """Seconds to integer ns, rounded to the nearest ns (exact for ints): ``1.5`` -> ``1_500_000_000``.

    A float carries about 16 significant digits, so epoch seconds as float are good to ~0.2 µs.
    Raises ValueError for NaN or infinity.
    """
    if isinstance(seconds, int):
        return seconds * _NS_PER_S
    if not math.isfinite(seconds):
        raise ValueError(f"seconds must be finite, got {seconds!r}")
    return int(round(seconds * _NS_PER_S))


def seconds_from_ns(ns: int) -> float:
    """Integer ns to float seconds: ``1_500_000_000`` -> ``1.5``."""
    return ns / _NS_PER_S


def ns_to_datetime_utc(ns: int) -> datetime:
    """Ns since the Unix epoch to an aware UTC datetime (floored to the microsecond)."""
    return _EPOCH + timedelta(microseconds=ns // 1_000)


def datetime_to_ns(dt: datetime) -> int:
    """An aware datetime (any zone) to ns since the Unix epoch; a naive one raises ValueError."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"datetime must be timezone-aware, got naive {dt.isoformat()}")
    return (dt - _EPOCH) // timedelta(microseconds=1) * 1_000

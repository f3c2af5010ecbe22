"""Plausibility of event time in a sector: one measurement must not move the sector's clock.

Fuse reasons in event time: the sector's watermark follows the newest capture time it has seen
and never goes back (:class:`fuse.tracking.ReorderBuffer`). One frame dated years ahead would move
it there and every later measurement would be "late". :class:`EventTimeGuard` refuses such a batch
before it reaches the tracker (the stage dead-letters it with the reason):

- ahead of the clock: a capture time more than ``max_ahead_s`` ahead of the fuse worker's clock
  is refused (a replay of the past is fine; the future is not);
- a jump: a capture time more than ``max_jump_s`` ahead of where the sector's timeline should be
  now (its newest capture time plus the clock time elapsed since it was seen) is refused, unless
  the timeline itself lags the clock and the frame agrees with the clock (a sector whose first frame
  came from a clock years behind is not blinded by it); one more than ``max_jump_s`` older than the
  newest is refused too (it could only be dropped as late).

Pure: the clock reading is passed in. The guard's anchor (newest capture time, clock time when it
was seen) is saved with the sector's state.

    >>> guard = EventTimeGuard(max_ahead_s=60, max_jump_s=300)
    >>> guard.check(10**18, now_ns=10**18)
    >>> guard.seen(10**18, now_ns=10**18)
    >>> guard.check(10**18 + 3 * 365 * 86400 * 10**9, now_ns=10**18 + 10**9)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    fuse.event_time.ImplausibleEventTimeError: capture time 2004-09-08T01:46:40.000+00:00 is 94607999.0 s ahead of ...
"""

from __future__ import annotations

from typing import Any

from ibet.clock import ns_to_datetime_utc
from ibet.exceptions import IbetError

NS_PER_S = 1_000_000_000


class ImplausibleEventTimeError(IbetError):
    """A detection batch whose capture time would move its sector's event time implausibly."""


def describe_time(ns: int) -> str:
    """``ns`` as an ISO-8601 UTC time, or as ns where it is no representable date."""
    try:
        return ns_to_datetime_utc(ns).isoformat(timespec="milliseconds")
    except (OverflowError, ValueError, OSError):
        return f"{ns} ns"


class EventTimeGuard:
    """The newest plausible capture time of a sector and the clock time it was seen at."""

    def __init__(self, max_ahead_s: float, max_jump_s: float):
        self.max_ahead_ns = int(max_ahead_s * NS_PER_S)
        self.max_jump_ns = int(max_jump_s * NS_PER_S)
        self.newest_ns: int | None = None
        self.seen_at_ns: int | None = None

    def check(self, capture_ts_ns: int, now_ns: int) -> None:
        """ImplausibleEventTimeError naming the capture time and the limit it breaks."""
        ahead = capture_ts_ns - now_ns
        if ahead > self.max_ahead_ns:
            raise ImplausibleEventTimeError(
                f"capture time {describe_time(capture_ts_ns)} is {ahead / NS_PER_S:.1f} s ahead of the fuse clock "
                f"(at most {self.max_ahead_ns / NS_PER_S:g} s): the sensor's clock is wrong")
        if self.newest_ns is None or self.seen_at_ns is None:
            return
        expected = self.newest_ns + max(0, now_ns - self.seen_at_ns)
        if capture_ts_ns - expected > self.max_jump_ns:
            if abs(capture_ts_ns - now_ns) <= self.max_jump_ns and expected < now_ns - self.max_jump_ns:
                return  # the sector's timeline lags the clock and this frame agrees with the clock: the clock decides
            raise ImplausibleEventTimeError(
                f"capture time {describe_time(capture_ts_ns)} jumps {(capture_ts_ns - expected) / NS_PER_S:.1f} s ahead of "
                f"the sector's event time ({describe_time(self.newest_ns)} plus the clock time since; at most "
                f"{self.max_jump_ns / NS_PER_S:g} s): the sensor's clock is wrong")
        if self.newest_ns - capture_ts_ns > self.max_jump_ns:
            raise ImplausibleEventTimeError(
                f"capture time {describe_time(capture_ts_ns)} is {(self.newest_ns - capture_ts_ns) / NS_PER_S:.1f} s older "
                f"than the sector's event time {describe_time(self.newest_ns)} (at most {self.max_jump_ns / NS_PER_S:g} s): "
                "too late to fuse, or the sensor's clock is wrong")

    def seen(self, capture_ts_ns: int, now_ns: int) -> None:
        """Note a capture time that was fused; the anchor follows the newest."""
        if self.newest_ns is None or capture_ts_ns > self.newest_ns:
            self.newest_ns, self.seen_at_ns = capture_ts_ns, now_ns

    def to_state(self) -> dict[str, Any]:
        return {"newest_ns": self.newest_ns, "seen_at_ns": self.seen_at_ns}

    def load_state(self, data: dict[str, Any] | None) -> None:
        data = data or {}
        newest, seen_at = data.get("newest_ns"), data.get("seen_at_ns")
        self.newest_ns = None if newest is None else int(newest)
        self.seen_at_ns = None if seen_at is None else int(seen_at)

"""Is a frame's capture time plausible? Against the ingest clock, and against the sensor's own
recent timeline (pure apart from the small per-sensor memory of :class:`SensorTimelines`).

A capture time is event time for every stage downstream; one frame dated years ahead would
otherwise move its sector's watermark there. Two checks, each refusing with 422 and its own reason:

- skew: the capture time may be at most ``max_ahead_s`` ahead of the ingest clock and at most
  ``max_age_s`` behind it (a drone's clock is GPS time; a frame older than that is no live feed);
- jump: against the sensor's last accepted frame, the capture time must advance about as much as
  the ingest clock did since (within ``max_jump_s``): a sensor whose clock leaps is refused even
  when the leap stays inside the skew allowance.

    >>> timelines = SensorTimelines(max_jump_s=30.0)
    >>> check_skew(10**18, now_ns=10**18 + 5 * 10**9, max_ahead_s=30, max_age_s=600)
    >>> timelines.check("drone-1", 10**18, now_ns=10**18)  # the first frame sets the timeline
"""

from __future__ import annotations

from dataclasses import dataclass

from ingest.exceptions import BadTelemetryError

NS_PER_S = 1_000_000_000


class CaptureTimeSkewError(BadTelemetryError):
    """The capture time is too far ahead of, or behind, the ingest clock."""

    reason = "capture_time_skew"


class CaptureTimeJumpError(BadTelemetryError):
    """The capture time jumps against the sensor's own recent frames."""

    reason = "capture_time_jump"


def _seconds(ns: int) -> str:
    return f"{ns / NS_PER_S:+.3f} s"


def check_skew(capture_ts_ns: int, now_ns: int, max_ahead_s: float, max_age_s: float) -> None:
    """CaptureTimeSkewError unless ``now - max_age_s <= capture <= now + max_ahead_s``."""
    offset_ns = capture_ts_ns - now_ns
    if offset_ns > max_ahead_s * NS_PER_S:
        raise CaptureTimeSkewError("capture_ts_ns", f"{capture_ts_ns} is {_seconds(offset_ns)} from the ingest clock "
                                                    f"(at most {max_ahead_s:g} s ahead): is the sensor's clock set?")
    if -offset_ns > max_age_s * NS_PER_S:
        raise CaptureTimeSkewError("capture_ts_ns", f"{capture_ts_ns} is {_seconds(offset_ns)} from the ingest clock "
                                                    f"(at most {max_age_s:g} s behind): too old for a live feed, "
                                                    "or the sensor's clock is wrong")


@dataclass
class _Timeline:
    capture_ts_ns: int
    seen_ns: int


class SensorTimelines:
    """The last accepted capture time of each sensor, with the ingest clock when it was accepted."""

    def __init__(self, max_jump_s: float):
        self.max_jump_ns = int(max_jump_s * NS_PER_S)
        self._last: dict[str, _Timeline] = {}

    def check(self, sensor_id: str, capture_ts_ns: int, now_ns: int) -> None:
        """CaptureTimeJumpError when ``capture_ts_ns`` strays more than ``max_jump_s`` from where the
        sensor's timeline should be now (its last capture time plus the clock time elapsed since)."""
        last = self._last.get(sensor_id)
        if last is None:
            return
        expected_ns = last.capture_ts_ns + (now_ns - last.seen_ns)
        if abs(capture_ts_ns - expected_ns) > self.max_jump_ns:
            raise CaptureTimeJumpError(
                "capture_ts_ns", f"{capture_ts_ns} jumps {_seconds(capture_ts_ns - expected_ns)} against this "
                                 f"sensor's recent frames (last {last.capture_ts_ns}; at most "
                                 f"{self.max_jump_ns / NS_PER_S:g} s): is the sensor's clock set?")

    def accepted(self, sensor_id: str, capture_ts_ns: int, now_ns: int) -> None:
        """Note a frame that was produced: the sensor's timeline follows it."""
        self._last[sensor_id] = _Timeline(capture_ts_ns, now_ns)

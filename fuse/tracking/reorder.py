"""Reorder buffer: measurements from several sensors, slightly out of order, released in time order."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fuse.tracking.predictor import NS_PER_S
from fuse.tracking.state import measurement_from_dict, measurement_to_dict, restore
from fuse.tracking.types import Measurement


@dataclass(frozen=True)
class Accepted:
    """What :meth:`ReorderBuffer.add` did with a batch: late measurements (dropped) and the duplicate count."""

    late: tuple[Measurement, ...] = ()
    duplicates: int = 0


class ReorderBuffer:
    """Holds measurements until no earlier one can still arrive, then releases them in time order.

    The watermark is the newest event time seen minus ``window_s`` (it never goes back). Every
    buffered measurement older than the watermark is released, sorted by ``Measurement.key``; a
    measurement arriving older than the watermark is late: dropped and counted, never applied
    backwards. An exact repeat of a buffered measurement (same key, e.g. an at-least-once
    redelivery) is ignored and counted. Event time also advances without measurements through
    :meth:`advance` (a frame with nothing detected), and :meth:`flush` releases everything.

    Example: with window 0.5 s, adding t=10.0 s then t=9.8 s releases nothing; adding t=10.4 s
    releases 9.8 s; adding t=9.85 s afterwards is late.

    **Per-sensor watermarks** (when the sector's ``sensors`` are known): each sensor sends its frames
    in capture order, so once every sensor that is reporting has reported past a time, nothing older
    can still come and the buffer releases up to the oldest of their latest times at once, without
    waiting out the window. A sensor counts as reporting while its latest time is within
    ``sensor_live_s`` of the newest; one silent longer (or never heard from, ``sensor_live_s`` after
    the buffer started) no longer holds anything back. The window stays the floor: the watermark is
    never below ``newest - window_s``, so nothing is ever released later than before.

    The price: a frame that arrives behind its own sensor's newer frame (uploads out of order), or
    a sensor's first frame after a silence longer than ``sensor_live_s`` that is older than what the
    others have sent since, is late and dropped (counted in ``dropped_late_total``), where the window
    alone might have kept it. Streams and pulls deliver each sensor in order; pushes normally do.
    """

    def __init__(self, window_s: float = 0.5, sensors: Iterable[str] = (), sensor_live_s: float = 2.0) -> None:
        if not math.isfinite(window_s) or window_s < 0.0:
            raise ValueError(f"window_s must be finite and >= 0, got {window_s!r}")
        if not math.isfinite(sensor_live_s) or sensor_live_s <= 0.0:
            raise ValueError(f"sensor_live_s must be finite and > 0, got {sensor_live_s!r}")
        self.window_s = float(window_s)
        self.window_ns = round(window_s * NS_PER_S)
        self.sensors: tuple[str, ...] = tuple(sorted(set(sensors)))
        self.live_ns = round(sensor_live_s * NS_PER_S)
        self.sensor_latest_ns: dict[str, int] = {}
        self.first_ns: int | None = None
        self.newest_ns: int | None = None
        self.watermark_ns: int | None = None
        self.dropped_late_total = 0
        self.duplicates_total = 0
        self._pending: dict[tuple, Measurement] = {}
        self._dicts: dict[tuple, dict[str, Any]] = {}  # saved form of pending measurements (to_state)

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def pending(self) -> tuple[Measurement, ...]:
        """The buffered measurements in release order."""
        return tuple(self._pending[k] for k in sorted(self._pending))

    def add(self, measurements: Iterable[Measurement]) -> Accepted:
        """Buffer measurements in arrival order; returns those dropped as late and the duplicate count."""
        late: list[Measurement] = []
        duplicates = 0
        seen: list[Measurement] = []
        for meas in measurements:
            self.advance(meas.time_ns)
            key = meas.key
            if meas.time_ns < self.watermark_ns:
                late.append(meas)
            elif key in self._pending:
                duplicates += 1
            else:
                self._pending[key] = meas
            seen.append(meas)
        for meas in seen:  # their frames are in: each sensor has now reported up to its time
            self.advance(meas.time_ns, meas.sensor_id)
        self.dropped_late_total += len(late)
        self.duplicates_total += duplicates
        return Accepted(late=tuple(late), duplicates=duplicates)

    def expect(self, sensors: Iterable[str]) -> None:
        """The sector's sensors (from the registry), for the per-sensor watermarks."""
        self.sensors = tuple(sorted(set(sensors)))

    def advance(self, time_ns: int, sensor_id: str | None = None) -> None:
        """Note that event time has reached ``time_ns`` (ns), from ``sensor_id`` when known (its
        frame at that time is complete); the watermark follows, never backwards."""
        time_ns = int(time_ns)
        self.first_ns = time_ns if self.first_ns is None else min(self.first_ns, time_ns)
        self.newest_ns = time_ns if self.newest_ns is None else max(self.newest_ns, time_ns)
        if sensor_id is not None:
            self.sensor_latest_ns[sensor_id] = max(self.sensor_latest_ns.get(sensor_id, time_ns), time_ns)
        mark = max(self.newest_ns - self.window_ns, self._all_sensors_past())
        self.watermark_ns = mark if self.watermark_ns is None else max(self.watermark_ns, mark)

    def _all_sensors_past(self) -> int:
        """Just after the oldest latest time of the sensors still reporting (see the class doc), or
        a time before everything when the sensors are not known."""
        if not self.sensors or self.newest_ns is None:
            return -(2**62)
        horizon = self.newest_ns - self.live_ns
        silent_since_start = self.first_ns - 1 if self.first_ns is not None else horizon - 1
        latest = [self.sensor_latest_ns.get(s, silent_since_start) for s in self.sensors]
        reporting = [t for t in latest if t >= horizon]
        return min(reporting) + 1 if reporting else -(2**62)

    def release(self) -> list[Measurement]:
        """Remove and return, in time order, every buffered measurement older than the watermark."""
        if self.watermark_ns is None:
            return []
        ready = sorted(k for k in self._pending if k[0] < self.watermark_ns)
        return [self._pending.pop(k) for k in ready]

    def flush(self) -> list[Measurement]:
        """Release everything (end of input); later measurements at or before the newest time are late."""
        if self.newest_ns is not None:
            self.watermark_ns = max(self.watermark_ns, self.newest_ns + 1)
        return self.release()

    def rewind(self, limit_ns: int, floor_ns: int | None = None) -> tuple[Measurement, ...]:
        """Forget event time after ``limit_ns`` (a poisoned clock): buffered measurements after it are
        removed and returned; the newest time becomes the newest one left (pending, or ``floor_ns``:
        e.g. the tracks' newest state), and the watermark follows it down."""
        dropped = tuple(m for k, m in sorted(self._pending.items()) if m.time_ns > limit_ns)
        for meas in dropped:
            del self._pending[meas.key]
        left = [m.time_ns for m in self._pending.values()] + ([floor_ns] if floor_ns is not None else [])
        self.newest_ns = max(left) if left else None
        self.watermark_ns = None if self.newest_ns is None else self.newest_ns - self.window_ns
        if self.newest_ns is None:
            self.sensor_latest_ns, self.first_ns = {}, None
        else:
            self.sensor_latest_ns = {k: min(v, self.newest_ns) for k, v in self.sensor_latest_ns.items()}
        return dropped

    def to_state(self) -> dict[str, Any]:
        """Pending measurements, times and counters as a JSON-ready dict (the window is configuration)."""
        return {
            "newest_ns": self.newest_ns,
            "watermark_ns": self.watermark_ns,
            "dropped_late_total": self.dropped_late_total,
            "duplicates_total": self.duplicates_total,
            "pending": self._pending_dicts(),
            "first_ns": self.first_ns,
            "sensor_latest_ns": dict(sorted(self.sensor_latest_ns.items())),
        }

    def _pending_dicts(self) -> list[dict[str, Any]]:
        """The pending measurements as dicts, in release order. A measurement is immutable, so its
        dict is made once and reused while it waits (callers must not change the dicts)."""
        cache = self._dicts
        self._dicts = {k: cache.get(k) or measurement_to_dict(self._pending[k]) for k in sorted(self._pending)}
        return list(self._dicts.values())

    def load_state(self, data: dict[str, Any]) -> None:
        """Replace this buffer's contents by a saved :meth:`to_state`; TrackerStateError if malformed."""

        def load() -> None:
            pending = [measurement_from_dict(m) for m in data["pending"]]
            newest, mark = data["newest_ns"], data["watermark_ns"]
            self.newest_ns = None if newest is None else int(newest)
            self.watermark_ns = None if mark is None else int(mark)
            self.dropped_late_total = int(data["dropped_late_total"])
            self.duplicates_total = int(data["duplicates_total"])
            self._pending = {m.key: m for m in pending}
            first = data.get("first_ns")  # absent in states saved before the per-sensor watermarks
            self.first_ns = None if first is None else int(first)
            self.sensor_latest_ns = {str(k): int(v) for k, v in (data.get("sensor_latest_ns") or {}).items()}

        restore("reorder buffer", load)

"""Border events from track updates: crossing, approach, loitering, lost near the border.

The geometry of a batch is computed at once by :class:`~fuse.border_relation.BorderModel`; the
rules then walk the updates in order with a small memory per track. Times are the tracks' event
times (``time_ts_ns``), never the wall clock, and event ids come from
:func:`ibet.ids.event_id` over the event time's window, so a replay yields the same events.

Rules (distances in metres from the border line, positive in Canada):

- ``crossing``: the side a track is on is only taken once it is at least ``hysteresis_m`` inside a
  country; the event fires when it then reaches ``hysteresis_m`` inside the other. Time and place
  are interpolated where the signed distance last changed sign, between the two updates around
  it. A crossing is lawful (``port_of_entry_id`` set: recorded, not alerted) only when the point
  where it met the line and the point where it stands in the other country lie in one lane of a
  port for the track's class (a vehicle in a road or rail lane, a person in a pedestrian
  corridor, a boat at a ferry port) while the port is open; any other crossing at or beside a
  port carries ``near_port`` (which port, how far, why not lawful) and is alerted. A crossing seen while the track is tentative is held and sent when it is confirmed.
- ``approach``: within ``approach_distance_m`` and closing faster than ``min_closing_speed_mps``.
- ``loitering``: positions over at least ``loiter_min_s`` all within ``loiter_radius_m`` of one
  point (the centre of their bounding box), while within ``loiter_max_distance_m`` of the line.
- ``lost_near_border``: a confirmed track deleted within ``lost_distance_m`` of the line.

Approach, loitering and lost events are lawful, like crossings, only in a lane of an open port for
the track's class; beside the lanes they carry ``near_port`` and are alerted.

Approach and loitering fire at most once per track per ``event_window_s`` window. Only
confirmed tracks send events; coasting updates (predictions, not measurements) are skipped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from fuse.border_relation import BorderModel, BorderRelation
from fuse.frames import LocalPlane
from ibet.ids import event_id, time_window_start_ns
from ibet.messages import BorderEvent, BorderEventType, BoundaryRef, Direction, TrackSnapshot, TrackStatus, TrackUpdate

STATE_VERSION = 1
_LOITER_SAMPLE_S = 1.0  # loitering keeps one position per second: at most loiter_min_s + 2 per track
_MIN_SIGMA_M = 0.1
_NS = 1_000_000_000


@dataclass
class _Memory:
    """What the detector remembers of one track; plain JSON types only (see to_state)."""

    last_ts_ns: int = 0  # latest update used; older or repeated updates are ignored
    confirmed: bool = False
    side: str | None = None  # "CA"/"US" once at least hysteresis_m inside
    side_confidence: float = 0.0
    prev: list[Any] | None = None  # [ts_ns, lat, lon, signed_m] of the previous update with a known side
    zero: list[Any] | None = None  # [ts_ns, lat, lon] where the signed distance last changed sign
    crossing_window: list[int] = field(default_factory=lambda: [0, 0])  # [window start ns, crossings in it]
    approach_window_ns: int | None = None
    loiter_window_ns: int | None = None
    loiter: list[list[Any]] = field(default_factory=list)  # [[ts_ns, lat, lon], ...] about 1 s apart
    pending: list[dict[str, Any]] = field(default_factory=list)  # crossings seen while tentative


class BorderEventDetector:
    """Turns TrackUpdates into BorderEvents, with memory per track id.

    Defaults are sized for people and vehicles seen by drones and cameras with a few metres of
    position error: a 15 m hysteresis band is several sigma of track noise yet well inside the
    50 m approach distance; loitering is 60 s within 30 m (a person waiting, not walking);
    lost-near-border looks 100 m out (a track dropped that close may have crossed unseen).

    >>> detector = BorderEventDetector(model)
    >>> events = detector.update(track_updates)  # in order; each track's updates by time
    """

    def __init__(self, model: BorderModel, *, approach_distance_m: float = 50.0, hysteresis_m: float = 15.0,
                 loiter_radius_m: float = 30.0, loiter_min_s: float = 60.0, loiter_max_distance_m: float = 150.0,
                 lost_distance_m: float = 100.0, event_window_s: float = 60.0,
                 min_closing_speed_mps: float = 0.2) -> None:
        settings = dict(approach_distance_m=approach_distance_m, hysteresis_m=hysteresis_m,
                        loiter_radius_m=loiter_radius_m, loiter_min_s=loiter_min_s,
                        loiter_max_distance_m=loiter_max_distance_m, lost_distance_m=lost_distance_m,
                        event_window_s=event_window_s, min_closing_speed_mps=min_closing_speed_mps)
        for name, value in settings.items():
            if not (math.isfinite(value) and (value > 0 or (name == "min_closing_speed_mps" and value >= 0))):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        self.model = model
        self.approach_distance_m = approach_distance_m
        self.hysteresis_m = hysteresis_m
        self.loiter_radius_m = loiter_radius_m
        self.loiter_min_s = loiter_min_s
        self.loiter_max_distance_m = loiter_max_distance_m
        self.lost_distance_m = lost_distance_m
        self.event_window_s = event_window_s
        self.min_closing_speed_mps = min_closing_speed_mps
        self._window_ns = int(round(event_window_s * _NS))
        self._tracks: dict[str, _Memory] = {}

    # ---------------------------------------------------------------------------------- public

    def update(self, tracks: Sequence[TrackUpdate]) -> list[BorderEvent]:
        """Events caused by these updates, in input order. An update with status deleted counts
        as :meth:`track_deleted`; coasting updates and updates not newer than the track's last
        one are ignored."""
        if not tracks:
            return []
        relation = self._relation(tracks)
        events: list[BorderEvent] = []
        for i, track in enumerate(tracks):
            if track.status is TrackStatus.DELETED:
                events += self._deleted(track, relation, i)
            elif track.status is not TrackStatus.COASTING:
                events += self._measured(track, relation, i)
        return events

    def track_deleted(self, track: TrackUpdate) -> list[BorderEvent]:
        """Forget a track; a ``lost_near_border`` event when it was confirmed and within lost_distance_m."""
        return self._deleted(track, self._relation([track]), 0)

    def to_state(self) -> dict[str, Any]:
        """The per-track memory as JSON-serialisable data, to save with the committed offsets."""
        # orjson copies the dataclasses to plain JSON types in C (dataclasses.asdict took 60 % of a sector's state)
        return {"version": STATE_VERSION, "tracks": orjson.loads(orjson.dumps(dict(sorted(self._tracks.items()))))}

    @classmethod
    def from_state(cls, model: BorderModel, state: dict[str, Any], **settings: float) -> BorderEventDetector:
        """A detector with ``settings`` (as the constructor's) that continues from ``to_state()`` output.

        Raises ValueError for a state of another version or shape.
        """
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION or not isinstance(state.get("tracks"), dict):
            raise ValueError(f"not a border event detector state of version {STATE_VERSION}")
        detector = cls(model, **settings)
        try:
            detector._tracks = {str(tid): _Memory(**mem) for tid, mem in state["tracks"].items()}
        except TypeError as exc:
            raise ValueError(f"border event detector state: {exc}") from None
        return detector

    @property
    def track_count(self) -> int:
        """Tracks currently remembered."""
        return len(self._tracks)

    # ---------------------------------------------------------------------------------- rules

    def _relation(self, tracks: Sequence[TrackUpdate]) -> BorderRelation:
        return self.model.relation(np.array([t.lat_deg for t in tracks]), np.array([t.lon_deg for t in tracks]),
                                   np.array([t.velocity_east_mps for t in tracks]),
                                   np.array([t.velocity_north_mps for t in tracks]))

    def _measured(self, track: TrackUpdate, rel: BorderRelation, i: int) -> list[BorderEvent]:
        mem = self._tracks.setdefault(track.track_id, _Memory())
        if track.time_ts_ns <= mem.last_ts_ns:
            return []
        mem.last_ts_ns = track.time_ts_ns
        confirmed = track.status is TrackStatus.CONFIRMED
        events: list[BorderEvent] = []
        if confirmed and not mem.confirmed:
            mem.confirmed = True
            events += [BorderEvent.model_validate(e) for e in mem.pending]
            mem.pending = []
        signed, distance = float(rel.signed_distance_m[i]), float(rel.distance_m[i])
        crossing = self._crossing(track, mem, signed)
        if crossing is not None:
            if confirmed:
                events.append(crossing)
            else:
                mem.pending.append(crossing.model_dump(mode="json"))
        if confirmed:
            events += self._approach(track, mem, rel, i)
            events += self._loitering(track, mem, distance)
        return events

    def _crossing(self, track: TrackUpdate, mem: _Memory, signed: float) -> BorderEvent | None:
        if math.isnan(signed):  # off the countries' band: no side; do not interpolate across the gap
            mem.prev = mem.zero = None
            return None
        ts, lat, lon = track.time_ts_ns, track.lat_deg, track.lon_deg
        if mem.prev is not None and np.sign(mem.prev[3]) != np.sign(signed):
            prev_ts, prev_lat, prev_lon, prev_signed = mem.prev
            f = prev_signed / (prev_signed - signed)
            mem.zero = [int(prev_ts) + round(f * (ts - prev_ts)), prev_lat + f * (lat - prev_lat),
                        prev_lon + f * (lon - prev_lon)]
        mem.prev = [ts, lat, lon, signed]
        depth = abs(signed)
        side = "CA" if signed >= self.hysteresis_m else "US" if signed <= -self.hysteresis_m else None
        if side is None:
            return None
        confidence = _normal_cdf(depth / _sigma_m(track))
        if side == mem.side or mem.side is None:
            mem.side_confidence = max(mem.side_confidence, confidence) if side == mem.side else confidence
            mem.side, mem.zero = side, None
            return None
        zero_ts, zero_lat, zero_lon = mem.zero if mem.zero is not None else (ts, lat, lon)
        event_ts = max(1, int(zero_ts))
        window = time_window_start_ns(event_ts, self._window_ns)
        # a second crossing of the track in one window gets its own id: window start + its ordinal (ns)
        nth = mem.crossing_window[1] if mem.crossing_window[0] == window else 0
        mem.crossing_window = [window, nth + 1]
        port = self.model.lawful_port_id([(zero_lat, zero_lon), (lat, lon)], track.class_name, event_ts)
        near = None if port else self.model.near_port(zero_lat, zero_lon, track.class_name, event_ts)
        event = BorderEvent(
            event_id=event_id(track.track_id, BorderEventType.CROSSING, window + nth),
            event_type=BorderEventType.CROSSING, track_id=track.track_id, sector_id=track.sector_id,
            event_ts_ns=event_ts, lat_deg=zero_lat, lon_deg=zero_lon,
            direction=Direction.CA_TO_US if mem.side == "CA" else Direction.US_TO_CA,
            class_name=track.class_name, confidence=mem.side_confidence * confidence,
            sensor_ids=track.sensor_ids, port_of_entry_id=port, near_port=near, track=TrackSnapshot.of(track),
            group_id=track.group_id, group_size=track.group_size, boundary=self._boundary(depth))
        mem.side, mem.side_confidence, mem.zero = side, confidence, None
        return event

    def _boundary(self, depth_m: float) -> BoundaryRef | None:
        """The line a crossing was decided on; ``within_accuracy`` when the track, as it fired, stood
        no further from the line than the line's own accuracy (the shipped line: always)."""
        border = self.model.border
        if not border.version:
            return None
        accuracy = border.accuracy_m
        return BoundaryRef(version=border.version, accuracy_m=accuracy,
                           within_accuracy=accuracy is not None and depth_m <= accuracy)

    def _approach(self, track: TrackUpdate, mem: _Memory, rel: BorderRelation, i: int) -> list[BorderEvent]:
        signed, closing = float(rel.signed_distance_m[i]), float(rel.closing_speed_mps[i])
        if not (signed != 0 and abs(signed) <= self.approach_distance_m and closing > self.min_closing_speed_mps):
            return []  # NaN (no side) fails the comparison too
        window = time_window_start_ns(track.time_ts_ns, self._window_ns)
        if mem.approach_window_ns == window:
            return []
        mem.approach_window_ns = window
        confidence = _normal_cdf((self.approach_distance_m - abs(signed)) / _sigma_m(track))
        direction = Direction.CA_TO_US if signed > 0 else Direction.US_TO_CA
        return [self._event(track, BorderEventType.APPROACH, window, direction, confidence)]

    def _loitering(self, track: TrackUpdate, mem: _Memory, distance: float) -> list[BorderEvent]:
        if not distance <= self.loiter_max_distance_m:  # NaN too
            mem.loiter = []
            return []
        ts = track.time_ts_ns
        rows = [*mem.loiter, [ts, track.lat_deg, track.lon_deg]]
        samples = np.array(rows, dtype=np.float64)
        plane = LocalPlane(track.lat_deg, track.lon_deg)
        east, north = plane.to_en(samples[:, 1], samples[:, 2])
        start = 0
        while not _fits(east[start:], north[start:], self.loiter_radius_m):
            start += 1  # the latest position alone always fits
        min_ns = self.loiter_min_s * _NS
        while start < len(rows) - 2 and rows[start + 1][0] <= ts - min_ns:
            start += 1  # older positions are not needed to show loiter_min_s
        kept = rows[start:]
        if len(kept) >= 2 and kept[-1][0] - kept[-2][0] < _LOITER_SAMPLE_S * _NS:
            kept = kept[:-1]  # keep about one position per second
        mem.loiter = kept
        if ts - rows[start][0] < min_ns:
            return []
        window = time_window_start_ns(ts, self._window_ns)
        if mem.loiter_window_ns == window:
            return []
        mem.loiter_window_ns = window
        e, n = east[start:], north[start:]
        centre_lat, centre_lon = plane.to_latlon((e.min() + e.max()) / 2, (n.min() + n.max()) / 2)
        centre = (float(centre_lat), float(centre_lon))
        confidence = _normal_cdf((self.loiter_max_distance_m - distance) / _sigma_m(track))
        return [self._event(track, BorderEventType.LOITERING, window, Direction.NONE, confidence, at=centre)]

    def _deleted(self, track: TrackUpdate, rel: BorderRelation, i: int) -> list[BorderEvent]:
        mem = self._tracks.pop(track.track_id, None)
        was_confirmed = (mem is not None and mem.confirmed) or track.status in (TrackStatus.CONFIRMED,
                                                                               TrackStatus.COASTING)
        distance = float(rel.distance_m[i])
        if not (was_confirmed and distance <= self.lost_distance_m):
            return []
        signed, closing = float(rel.signed_distance_m[i]), float(rel.closing_speed_mps[i])
        direction = Direction.NONE
        if closing > self.min_closing_speed_mps and signed != 0 and not math.isnan(signed):
            direction = Direction.CA_TO_US if signed > 0 else Direction.US_TO_CA
        window = time_window_start_ns(track.time_ts_ns, self._window_ns)
        confidence = _normal_cdf((self.lost_distance_m - distance) / _sigma_m(track))
        return [self._event(track, BorderEventType.LOST_NEAR_BORDER, window, direction, confidence)]

    def _event(self, track: TrackUpdate, kind: BorderEventType, window_ns: int, direction: Direction,
               confidence: float, at: tuple[float, float] | None = None) -> BorderEvent:
        """An approach, loitering or lost event at ``at`` (default: the track's position). Like a
        crossing, it is lawful (``port_of_entry_id``: recorded, not alerted) only in a lane of an open
        port for the track's class (a vehicle queueing at the booths); anywhere else near a port it
        names the port in ``near_port`` and is alerted (a person loitering beside the road lanes)."""
        lat, lon = at if at is not None else (track.lat_deg, track.lon_deg)
        port = self.model.lawful_port_id([(lat, lon)], track.class_name, track.time_ts_ns)
        near = None if port else self.model.near_port(lat, lon, track.class_name, track.time_ts_ns)
        return BorderEvent(event_id=event_id(track.track_id, kind, window_ns), event_type=kind,
                           track_id=track.track_id, sector_id=track.sector_id, event_ts_ns=track.time_ts_ns,
                           lat_deg=lat, lon_deg=lon, direction=direction, class_name=track.class_name,
                           confidence=confidence, sensor_ids=track.sensor_ids, port_of_entry_id=port,
                           near_port=near, track=TrackSnapshot.of(track), group_id=track.group_id,
                           group_size=track.group_size)


# ------------------------------------------------------------------------------------ helpers

def _sigma_m(track: TrackUpdate) -> float:
    """One-sigma position error (m): the root mean of the covariance's east and north variances."""
    (cee, _), (_, cnn) = track.position_cov_m2
    return max(math.sqrt(max((cee + cnn) / 2.0, 0.0)), _MIN_SIGMA_M)


def _normal_cdf(z: float) -> float:
    return min(1.0, max(0.0, 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))))


def _fits(east: np.ndarray, north: np.ndarray, radius_m: float) -> bool:
    """Whether all points lie within radius_m of the centre of their bounding box."""
    ce, cn = (east.min() + east.max()) / 2, (north.min() + north.max()) / 2
    return bool(np.max(np.hypot(east - ce, north - cn)) <= radius_m)

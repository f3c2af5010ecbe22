"""Scores of a fused run against the simulator's exact truth (pure functions).

An event matches a true event of the same kind and direction within ``match_window_s`` and
``match_distance_m``; events inside a port of entry (lawful crossings, queues approaching the
line) are scored apart and never count as alarms. Distances are computed on the WGS-84 ellipsoid (pyproj.Geod).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pyproj import Geod

from ibet.messages import BorderEvent

_GEOD = Geod(ellps="WGS84")
_NS = 1e9


@dataclass(frozen=True)
class FiredEvent:
    """A fused event and the capture time of the track update that made the stage emit it."""

    event: BorderEvent
    emitted_ts_ns: int


@dataclass(frozen=True)
class TrueEvent:
    kind: str
    direction: str
    ts_ns: int
    lat_deg: float
    lon_deg: float
    target_id: int


def distance_m(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Ellipsoidal distance in metres (vectorised)."""
    _, _, d = _GEOD.inv(np.asarray(lon1, float), np.asarray(lat1, float), np.asarray(lon2, float), np.asarray(lat2, float))
    return np.asarray(d)


def _matches(fired: FiredEvent, truth: TrueEvent, window_s: float, distance_limit_m: float) -> bool:
    e = fired.event
    return (abs(e.event_ts_ns - truth.ts_ns) / _NS <= window_s
            and float(distance_m(e.lat_deg, e.lon_deg, truth.lat_deg, truth.lon_deg)) <= distance_limit_m)


def score_events(fired: Sequence[FiredEvent], truth: Sequence[TrueEvent], duration_s: float,
                 window_s: float = 15.0, distance_limit_m: float = 150.0) -> dict:
    """Crossing recall/precision, lawful crossings, approaches, false alarms per hour, latency."""
    true_crossings = [t for t in truth if t.kind == "crossing"]
    unlawful = [f for f in fired if f.event.event_type == "crossing" and f.event.port_of_entry_id is None]
    lawful = [f for f in fired if f.event.event_type == "crossing" and f.event.port_of_entry_id is not None]
    approaches = [f for f in fired if f.event.event_type == "approach" and f.event.port_of_entry_id is None]

    matched_truth, latencies, true_positive = set(), [], 0
    for f in unlawful:
        hit = next((i for i, t in enumerate(true_crossings) if i not in matched_truth
                    and t.direction == f.event.direction and _matches(f, t, window_s, distance_limit_m)), None)
        if hit is not None:
            matched_truth.add(hit)
            true_positive += 1
            latencies.append((f.emitted_ts_ns - true_crossings[hit].ts_ns) / _NS)
    near_truth = [t for t in truth if t.kind in ("crossing", "approach")]
    false_approaches = [f for f in approaches
                        if not any(_matches(f, t, 4 * window_s, 3 * distance_limit_m) for t in near_truth)]
    false_alarms = (len(unlawful) - true_positive) + len(false_approaches)
    lat = np.array(latencies)
    return {
        "true_crossings": len(true_crossings),
        "crossing_events": len(unlawful),
        "crossing_recall": round(len(matched_truth) / len(true_crossings), 3) if true_crossings else None,
        "crossing_precision": round(true_positive / len(unlawful), 3) if unlawful else None,
        "true_lawful_crossings": sum(t.kind == "lawful_crossing" for t in truth),
        "lawful_crossing_events": len(lawful),
        "true_approaches": sum(t.kind == "approach" for t in truth),
        "approach_events": len(approaches),
        "false_alarms": false_alarms,
        "false_alarms_per_hour": round(false_alarms / (duration_s / 3600.0), 2),
        "time_to_event_p50_s": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
        "time_to_event_p95_s": round(float(np.percentile(lat, 95)), 2) if len(lat) else None,
    }


def identity_switches(track_ids_per_target: dict[int, list[str]]) -> int:
    """How often the track following a true target changed id (consecutive distinct ids)."""
    return sum(sum(1 for a, b in zip(ids, ids[1:], strict=False) if a != b) for ids in track_ids_per_target.values())


def percentiles(values: Sequence[float], qs=(50, 95)) -> list[float | None]:
    arr = np.asarray(values, dtype=float)
    return [round(float(np.percentile(arr, q)), 2) if len(arr) else None for q in qs]

"""Exact ground truth: where every target is at every step, and every true border event.

Crossings are exact: each straight leg of a target's path is intersected with the border line,
and the crossing time follows from the distance along the path at constant speed. A crossing is
lawful only when the scenario says so (the target's ``lawful_port``: it drives or walks through
that port's lanes while it is open); the product's port polygons never decide it. An approach is a target that comes within the
scenario's approach distance of the line and never crosses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import shapely
from shapely.geometry import LineString, Point
from shapely.geometry.base import BaseGeometry

from ibet.border import BorderGeometry, PortOfEntry, country_at
from sim.geo import LocalFrame
from sim.motion import PolylineMotion
from sim.scenario import TargetSpec

_DIRECTION = {("CA", "US"): "CA_TO_US", ("US", "CA"): "US_TO_CA"}


@dataclass(frozen=True)
class TruthEvent:
    """A true border event of one target, in scenario time and in both coordinate systems."""

    kind: str  # crossing | lawful_crossing | approach
    target_id: int
    target_kind: str
    time_s: float
    east_m: float
    north_m: float
    lat_deg: float
    lon_deg: float
    direction: str  # CA_TO_US | US_TO_CA | NONE
    port_of_entry_id: str | None
    distance_to_border_m: float

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Target:
    """A target of one run: its spec, with the seed's speed, start time and appearance."""

    spec: TargetSpec
    motion: PolylineMotion
    appearance: int


def _country(border: BorderGeometry, frame: LocalFrame, xy: np.ndarray) -> np.ndarray:
    lon, lat = frame.to_wgs84(xy[:, 0], xy[:, 1])
    return np.asarray(country_at(border, np.atleast_1d(lon), np.atleast_1d(lat)), dtype=object)


def crossings(target: Target, border: BorderGeometry, border_local: BaseGeometry, frame: LocalFrame,
              ports: Sequence[PortOfEntry]) -> list[TruthEvent]:
    """Every point where the target's path crosses the border line, in path order.

    Lawful only as the target declares (``lawful_port``); ``ports`` only checks that the port it
    names exists. Raises ValueError for an unknown port.
    """
    if target.spec.lawful_port is not None and target.spec.lawful_port not in {p.id for p in ports}:
        raise ValueError(f"target {target.spec.id}: lawful_port {target.spec.lawful_port!r} is not a known port "
                         f"of entry (see config/ports_of_entry.geojson)")
    motion, events = target.motion, []
    cum = motion.cumulative_m
    for i in range(len(motion.points_m) - 1):
        a, b = motion.points_m[i], motion.points_m[i + 1]
        leg = LineString([a, b])
        hits = shapely.get_parts(leg.intersection(border_local))
        points = sorted((p for p in hits if isinstance(p, Point)), key=lambda p: leg.project(p))
        unit = (b - a) / max(np.linalg.norm(b - a), 1e-12)
        for p in points:
            xy = np.array([p.x, p.y])
            before, after = _country(border, frame, np.array([xy - unit, xy + unit]))
            direction = _DIRECTION.get((before, after))
            if direction is None:
                continue  # grazes the line without changing country
            lon, lat = frame.to_wgs84(p.x, p.y)
            port = target.spec.lawful_port
            distance = cum[i] + float(np.linalg.norm(xy - a))
            events.append(TruthEvent(
                "lawful_crossing" if port else "crossing", target.spec.id, target.spec.kind,
                motion.time_at_distance(distance), float(p.x), float(p.y), float(lat), float(lon), direction,
                port, 0.0,
            ))
    return events


def approach(target: Target, border: BorderGeometry, border_local: BaseGeometry, frame: LocalFrame,
             approach_distance_m: float, step_s: float) -> TruthEvent | None:
    """The first moment a never-crossing target comes within ``approach_distance_m`` of the line."""
    motion = target.motion
    t = np.arange(motion.start_s, motion.end_s + step_s, step_s)
    xy, _, _ = motion.position_at(t)
    distance = shapely.distance(shapely.points(xy), border_local)
    close = np.flatnonzero(distance <= approach_distance_m)
    if len(close) == 0:
        return None
    k = close[0]
    lon, lat = frame.to_wgs84(xy[k, 0], xy[k, 1])
    return TruthEvent("approach", target.spec.id, target.spec.kind, float(t[k]), float(xy[k, 0]), float(xy[k, 1]),
                      float(lat), float(lon), "NONE", None, float(distance.min()))


def border_events(targets: Sequence[Target], border: BorderGeometry, border_local: BaseGeometry, frame: LocalFrame,
                  ports: Sequence[PortOfEntry], approach_distance_m: float, step_s: float) -> list[TruthEvent]:
    """All true events of all targets, in time order."""
    events: list[TruthEvent] = []
    for target in targets:
        crossed = crossings(target, border, border_local, frame, ports)
        events += crossed
        if not crossed:
            near = approach(target, border, border_local, frame, approach_distance_m, step_s)
            events += [near] if near else []
    return sorted(events, key=lambda e: (e.time_s, e.target_id))


def target_track_table(targets: Sequence[Target], frame: LocalFrame, duration_s: float, step_s: float) -> list[dict]:
    """Every active target's exact state at every truth step: rows for a CSV."""
    t = np.round(np.arange(0.0, duration_s + 1e-9, step_s), 9)
    rows = []
    for target in targets:
        xy, heading, active = target.motion.position_at(t)
        lon, lat = frame.to_wgs84(xy[:, 0], xy[:, 1])
        for k in np.flatnonzero(active):
            rows.append({"time_s": float(t[k]), "target_id": target.spec.id, "kind": target.spec.kind,
                         "east_m": round(float(xy[k, 0]), 4), "north_m": round(float(xy[k, 1]), 4),
                         "lat_deg": round(float(lat[k]), 8), "lon_deg": round(float(lon[k]), 8),
                         "heading_deg": round(float(heading[k]), 3)})
    return sorted(rows, key=lambda r: (r["time_s"], r["target_id"]))

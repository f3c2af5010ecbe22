"""The world of one scenario run: local frame on the real border, the ground, the targets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import Polygon, box
from shapely.geometry.base import BaseGeometry
from shapely.ops import nearest_points

from ibet.border import BorderGeometry, PortOfEntry, load_border, load_ports_of_entry
from sim.geo import LocalFrame
from sim.motion import PolylineMotion
from sim.scenario import MapSpec, Scenario
from sim.truth import Target
from sim.world_map import WorldMap

DEFAULT_PORTS = Path(__file__).resolve().parents[1] / "config" / "ports_of_entry.geojson"


@dataclass(frozen=True)
class World:
    """Everything fixed during a run: where it is, the border near it, the ground, the ports."""

    frame: LocalFrame
    border: BorderGeometry
    border_local: BaseGeometry
    ports: tuple[PortOfEntry, ...]
    ground: WorldMap
    area_local: Polygon


SNAP_DENSIFY_DEG = 0.0001  # ~10 m: the data's edges are straight in lon/lat, a projected chord is not the edge


def _local_line(frame: LocalFrame, border: BorderGeometry, half_m: float) -> BaseGeometry:
    """The border line near ``frame`` in its metres, densified first so it follows the lon/lat edges."""
    near = border.lines.intersection(box(*_degree_box(frame, half_m)))
    return frame.geometry_to_local(shapely.segmentize(near, SNAP_DENSIFY_DEG))


def snapped_origin(scenario: Scenario, border: BorderGeometry) -> LocalFrame:
    """The scenario's local frame, its origin moved onto the shipped border line if asked.

    The nearest point is found in the frame's metres on the line densified to ~10 m, then found
    again around that point on a short stretch densified to ~1 cm: the origin ends within a
    millimetre or so of the line's lon/lat edge (a 49th-parallel edge is hundreds of km long; its
    chord in metres strays up to ~6 m from it, which the first version snapped onto).
    """
    frame = LocalFrame(scenario.origin.lat_deg, scenario.origin.lon_deg)
    if not scenario.origin.snap_to_border:
        return frame
    for half_m, step_deg in ((20_000, SNAP_DENSIFY_DEG), (200, 1e-7)):
        near = border.lines.intersection(box(*_degree_box(frame, half_m)))
        _, on_line = nearest_points(shapely.Point(0.0, 0.0), frame.geometry_to_local(shapely.segmentize(near, step_deg)))
        lon, lat = frame.to_wgs84(on_line.x, on_line.y)
        frame = LocalFrame(float(lat), float(lon))
    return frame


def _degree_box(frame: LocalFrame, half_m: float) -> tuple[float, float, float, float]:
    lon, lat = frame.to_wgs84(np.array([-half_m, half_m]), np.array([-half_m, half_m]))
    return float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())


def _union(polygons: Sequence[Sequence[tuple[float, float]]]) -> BaseGeometry | None:
    return shapely.union_all([Polygon(p) for p in polygons]) if polygons else None


def ground_map(spec: MapSpec, border_local: BaseGeometry, texture_seed: int,
               land_local: BaseGeometry | None = None) -> WorldMap:
    """The ground of the scenario: forest, fields, water and roads around the border line.

    Where neither country's polygon reaches (``land_local``: the sea) is water too.
    """
    area = box(-spec.half_size_m, -spec.half_size_m, spec.half_size_m, spec.half_size_m)
    water = _union(spec.water)
    if land_local is not None:
        sea = area.buffer(spec.half_size_m).difference(land_local)
        water = sea if water is None else water.union(sea)
    if spec.border_river_half_width_m:
        river = border_local.buffer(spec.border_river_half_width_m).intersection(area.buffer(spec.half_size_m))
        water = river if water is None else water.union(river)
    fields = _union(spec.fields)
    forest = area if spec.all_forest else _union(spec.forest)
    for cleared in (fields, water):
        if forest is not None and cleared is not None:
            forest = forest.difference(cleared)
    roads = tuple((shapely.LineString(r.points_m), r.width_m) for r in spec.roads)
    return WorldMap(border=border_local, water=water, roads=roads, forest=forest, texture_seed=texture_seed)


def seeded_targets(scenario: Scenario, rng: np.random.Generator) -> list[Target]:
    """The scenario's targets with this seed's speed (±10 %), start delay (0-3 s) and appearance."""
    targets = []
    for spec in scenario.targets:
        speed = spec.speed_mps * rng.uniform(0.9, 1.1)
        start = spec.start_s + rng.uniform(0.0, 3.0)
        motion = PolylineMotion(np.asarray(spec.waypoints_m, dtype=float), speed, start)
        targets.append(Target(spec, motion, int(rng.integers(0, 2**31))))
    return targets


def build_world(scenario: Scenario, seed: int, border: BorderGeometry | None = None,
                ports_path: Path | None = None) -> World:
    """The world of ``scenario``: shipped border (or ``border``) and ports of entry."""
    border = border or load_border()
    ports = load_ports_of_entry(ports_path or DEFAULT_PORTS)
    frame = snapped_origin(scenario, border)
    half = scenario.map.half_size_m * 3
    border_local = _local_line(frame, border, half)
    area = box(-scenario.map.half_size_m, -scenario.map.half_size_m, scenario.map.half_size_m, scenario.map.half_size_m)
    near = box(*_degree_box(frame, half))
    land = frame.geometry_to_local(border.canada.intersection(near).union(border.usa.intersection(near)))
    return World(frame, border, border_local, tuple(ports), ground_map(scenario.map, border_local, seed, land), area)

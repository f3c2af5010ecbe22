"""The ground of a scenario and the targets on it, in local ENU metres (x = east, y = north).

A ``WorldMap`` holds shapely geometries: the border line with its cleared vista, water, roads
and forest (everything else is fields). ``ground_raster`` scan-converts its areas once (cv2,
cached) so that ``sim.texture`` can look up what covers any ground point without a shapely call
per pixel. A ``TargetPose`` places one person, vehicle or boat on the ground at one instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache
from typing import Literal

import cv2
import numpy as np
import shapely
from shapely.geometry import LineString, MultiLineString
from shapely.geometry.base import BaseGeometry

TargetKind = Literal["person", "vehicle", "boat"]

TARGET_SIZE_M: dict[str, tuple[float, float, float]] = {
    "person": (0.5, 0.5, 1.75),
    "vehicle": (4.6, 1.9, 1.6),
    "boat": (6.0, 2.3, 1.2),
}
"""Outer size of each target kind: (length along the heading, width, height) in metres."""

NEAR_LINE = 0x80
"""Ground-raster flag: within a band around the border or a road (exact distances apply there)."""
NEAR_EDGE = 0x40
"""Ground-raster flag: within ``EDGE_BAND_M`` of a forest or water edge (edges are warped there)."""
KIND_BITS = 0x3F
EDGE_BAND_M = 2.0

_AREA_MARGIN_M = 200.0
_SHIFT = 3  # fixed-point bits for cv2 drawing: 1/8 of a raster cell
_MAX_CELLS = 64_000_000  # a larger area gets a coarser raster (roads and the vista stay exact)
_BAND_MARGIN_M = 1.5
_MONUMENT_SPACING_M = 300.0


@dataclass(frozen=True)
class WorldMap:
    """Ground of a scenario in ENU metres; flat at ``ground_z_m``.

    - ``border``: the boundary line (LineString or MultiLineString).
    - ``vista_half_width_m``: the cleared strip on each side of the line (~20 ft = 6 m).
    - ``water``: lakes, rivers and sea, polygonal (polygon parts of collections count), or None.
    - ``roads``: (centre line, width in metres) pairs; 5 m or wider is asphalt, narrower gravel.
    - ``forest``: areas with trees, polygonal, or None; everything else is fields.
    - ``texture_seed``: seed of the procedural ground texture.
    - ``bounds_m``: (min_e, min_n, max_e, max_n) of the area the ground texture is rasterised
      over (at ``raster_resolution_m``, coarser if it would exceed 64 M cells); None = the
      bounds of all geometries plus 200 m. Outside it the ground is fields.
    """

    border: LineString | MultiLineString
    vista_half_width_m: float = 6.0
    water: BaseGeometry | None = None
    roads: tuple[tuple[LineString, float], ...] = ()
    forest: BaseGeometry | None = None
    ground_z_m: float = 0.0
    texture_seed: int = 0
    bounds_m: tuple[float, float, float, float] | None = None
    raster_resolution_m: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.border, LineString | MultiLineString) or self.border.is_empty:
            raise ValueError("border must be a non-empty LineString or MultiLineString in ENU metres")
        if self.vista_half_width_m < 0.0:
            raise ValueError(f"vista_half_width_m must be >= 0, got {self.vista_half_width_m}")
        for name in ("water", "forest"):
            geometry = getattr(self, name)
            if geometry is not None and not geometry.is_empty and geometry.area <= 0.0:
                raise ValueError(f"{name} must be polygonal, with an area (buffer lines first); got {geometry.geom_type}")
        for road in self.roads:
            if len(road) != 2 or not isinstance(road[0], LineString) or not road[1] > 0.0:
                raise ValueError(f"each road must be (LineString, width_m > 0), got {road!r}")
        if self.raster_resolution_m <= 0.0:
            raise ValueError(f"raster_resolution_m must be > 0, got {self.raster_resolution_m}")
        object.__setattr__(self, "roads", tuple((line, float(width)) for line, width in self.roads))

    def area_bounds_m(self) -> tuple[float, float, float, float]:
        """(min_e, min_n, max_e, max_n) in metres of the rasterised area."""
        if self.bounds_m is not None:
            return tuple(float(b) for b in self.bounds_m)  # type: ignore[return-value]
        geometries = [self.border, self.water, self.forest, *(line for line, _ in self.roads)]
        min_e, min_n, max_e, max_n = shapely.total_bounds([g for g in geometries if g is not None and not g.is_empty])
        m = _AREA_MARGIN_M
        return (float(min_e - m), float(min_n - m), float(max_e + m), float(max_n + m))


@dataclass(frozen=True)
class TargetPose:
    """One target at one instant.

    ``position_m`` is the ground point (east, north) in metres under the target's centre;
    ``heading_deg`` is clockwise from north (the direction its length points); ``appearance`` is
    a seed choosing its colour variant.
    """

    target_id: int
    kind: TargetKind
    position_m: tuple[float, float]
    heading_deg: float = 0.0
    appearance: int = 0

    def __post_init__(self) -> None:
        if self.kind not in TARGET_SIZE_M:
            raise ValueError(f"kind must be one of {sorted(TARGET_SIZE_M)}, got {self.kind!r}")
        east, north = self.position_m
        object.__setattr__(self, "position_m", (float(east), float(north)))


class GroundKind(IntEnum):
    """What covers the ground at a point."""

    FIELD = 0
    FOREST = 1
    WATER = 2
    VISTA = 3
    ASPHALT = 4
    GRAVEL = 5
    ROAD_LINE = 6
    MONUMENT = 7


@dataclass(frozen=True)
class GroundRaster:
    """Area kinds (FIELD, FOREST, WATER) on a grid, flagged ``NEAR_LINE`` and ``NEAR_EDGE``.

    ``kinds[row, col]`` covers east [min_e + col*res, +res) and north [min_n + row*res, +res).
    Roads, the vista and monuments are not rasterised: their edges come from exact distances to
    the lines (``monuments_m`` (k, 2) holds the monument centres), so they stay crisp up close.
    """

    kinds: np.ndarray
    min_e: float
    min_n: float
    resolution_m: float
    monuments_m: np.ndarray

    def lookup(self, e: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Nearest-cell raw values (n,) uint8 at ENU points; FIELD outside the raster."""
        col = np.floor((e - self.min_e) / self.resolution_m)
        row = np.floor((n - self.min_n) / self.resolution_m)
        rows, cols = self.kinds.shape
        inside = (col >= 0) & (col < cols) & (row >= 0) & (row < rows)
        out = np.full(col.shape, GroundKind.FIELD, dtype=np.uint8)
        out[inside] = self.kinds[row[inside].astype(np.intp), col[inside].astype(np.intp)]
        return out


def _to_fixed(coords: np.ndarray, raster: GroundRaster) -> np.ndarray:
    """ENU coordinates (k, 2) -> int32 cv2 fixed-point cell coordinates (cell centres at integers)."""
    cells = (np.asarray(coords)[:, :2] - [raster.min_e, raster.min_n]) / raster.resolution_m - 0.5
    return np.round(np.clip(cells, -1e6, 1e6) * (1 << _SHIFT)).astype(np.int32)


def _polygons(geometry) -> list:
    """The non-empty polygons of any geometry (collections and multi-parts flattened)."""
    if geometry.is_empty:
        return []
    if geometry.geom_type == "Polygon":
        return [geometry]
    if geometry.geom_type in ("MultiPolygon", "GeometryCollection"):
        return [polygon for part in shapely.get_parts(geometry) for polygon in _polygons(part)]
    return []


def _fill(raster: GroundRaster, geometry, kind: GroundKind) -> None:
    for polygon in _polygons(geometry):
        rings = [polygon.exterior, *polygon.interiors]
        cv2.fillPoly(raster.kinds, [_to_fixed(np.asarray(r.coords), raster) for r in rings], int(kind), cv2.LINE_8, _SHIFT)


def _flag_band(raster: GroundRaster, geometry, half_width_m: float) -> None:
    band = np.zeros_like(raster.kinds)
    thickness = max(1, int(np.ceil(2.0 * (half_width_m + _BAND_MARGIN_M) / raster.resolution_m)))
    for line in shapely.get_parts(geometry):
        if line.is_empty or line.geom_type != "LineString":
            continue
        cv2.polylines(band, [_to_fixed(np.asarray(line.coords), raster)], False, NEAR_LINE, thickness, cv2.LINE_8, _SHIFT)
    np.bitwise_or(raster.kinds, band, out=raster.kinds)


def _monument_points(world: WorldMap) -> np.ndarray:
    """Boundary monuments (k, 2): every 300 m along each border line, on land only."""
    points = [np.empty((0, 2))]
    for line in shapely.get_parts(world.border):
        distances = np.arange(_MONUMENT_SPACING_M / 2.0, line.length, _MONUMENT_SPACING_M)
        points.append(shapely.get_coordinates(shapely.line_interpolate_point(line, distances)))
    xy = np.concatenate(points)
    if world.water is not None and len(xy):
        xy = xy[~shapely.contains_xy(world.water, xy[:, 0], xy[:, 1])]
    return xy


@lru_cache(maxsize=2)
def ground_raster(world: WorldMap) -> GroundRaster:
    """The area-kind raster of a world, scan-converted once with cv2 and cached.

    At ``world.raster_resolution_m``, or coarser where the area would need more than 64 M cells.
    """
    min_e, min_n, max_e, max_n = world.area_bounds_m()
    res = max(world.raster_resolution_m, float(np.sqrt((max_e - min_e) * (max_n - min_n) / _MAX_CELLS)))
    cols, rows = int(np.ceil((max_e - min_e) / res)), int(np.ceil((max_n - min_n) / res))
    raster = GroundRaster(np.full((rows, cols), GroundKind.FIELD, np.uint8), min_e, min_n, res, _monument_points(world))
    if world.forest is not None:
        _fill(raster, world.forest, GroundKind.FOREST)
    if world.water is not None:
        _fill(raster, world.water, GroundKind.WATER)
    reach = 2 * int(np.ceil(EDGE_BAND_M / res)) + 1
    kernel = np.ones((reach, reach), np.uint8)
    edge = cv2.dilate(raster.kinds, kernel) != cv2.erode(raster.kinds, kernel)
    raster.kinds[edge] |= NEAR_EDGE
    _flag_band(raster, world.border, world.vista_half_width_m)
    for line, width_m in world.roads:
        _flag_band(raster, line, width_m / 2.0)
    return raster

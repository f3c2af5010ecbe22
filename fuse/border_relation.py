"""Where points stand relative to the US-Canada border: side, signed distance, closing speed.

:class:`BorderModel` precomputes the border once and answers for whole arrays of points at a time
(Shapely 2 and NumPy, no per-point Python loop).

Metric CRS: EPSG:3978 (NAD83 / Canada Atlas Lambert), a conformal Lambert conic with standard
parallels 49 N and 77 N. One projection covers the whole boundary (41.7 N on Lake Erie to 69.7 N
on the Beaufort Sea), so the line is projected and indexed once, not per call. It is not
distance-preserving: its point scale factor k runs from about 1.035 on Lake Erie to 0.970 at
62 N. Because it is conformal, k is the same in every direction at a point and angles are kept,
so true metres are grid metres divided by k (averaged over the point and its nearest point on
the line; a few mm over 50 km), and a velocity in east/north becomes a grid vector by rotating
it through the meridian convergence (up to 41 degrees at the 141st meridian).

Before projecting, the line is densified to 0.002 degrees: the data's edges are straight in
lon/lat (the 49th parallel is one edge of hundreds of km), as the country polygons that give the
side are, and a long edge projected as a chord would stray by kilometres.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import Proj, Transformer

from ibet.border import MODES_OF_CLASS, BorderGeometry, PortOfEntry
from ibet.messages import NearPort, NearPortReason

METRIC_CRS = "EPSG:3978"
DENSIFY_DEG = 0.002  # at most ~220 m between vertices: a projected chord strays < 1 mm from the edge
LINE_SIDE_BAND_M = 3000.0  # a loaded line's own side rules this close to it (its polygons may be off by ~1 km)
NEAR_PORT_M = 1000.0  # an unlawful crossing this close to a port's lanes (or inside its area) names the port
_COMPASS = ("N", "NE", "E", "SE", "S", "SW", "W", "NW")
ON_LINE_M = 0.01  # a point this close to the line with no country is on it (signed distance 0)
_ALONG_LINE_M = 1e-6  # below this grid distance the direction to the line is the segment normal


@dataclass(frozen=True, slots=True)
class BorderRelation:
    """Parallel arrays over n points, all of shape (n,).

    country: object, ``"CA"``, ``"US"`` or None (on the line, or outside the countries' band)
    distance_m: float64 >= 0, to the nearest point of the line (true metres)
    signed_distance_m: float64, +distance in Canada, -distance in the US, 0 on the line, NaN elsewhere
    closing_speed_mps: float64, rate at which distance_m shrinks (negative when moving away)
    heading_rel_border_deg: float64 in [0, 180], 0 = straight at the line; NaN when not moving or on it
    time_to_border_s: float64, distance_m / closing_speed_mps when closing, inf otherwise, 0 on the line
    port_id: object, id of the port of entry whose area covers the point, or None (the area is
        context: only a port's lanes make a crossing lawful, see BorderModel.lawful_port_id)
    """

    country: np.ndarray
    distance_m: np.ndarray
    signed_distance_m: np.ndarray
    closing_speed_mps: np.ndarray
    heading_rel_border_deg: np.ndarray
    time_to_border_s: np.ndarray
    port_id: np.ndarray

    def __len__(self) -> int:
        return len(self.distance_m)


class BorderModel:
    """The border line, the two countries and the ports of entry, ready for vectorised queries.

    >>> model = BorderModel(load_border(), load_ports_of_entry("config/ports_of_entry.geojson"))
    >>> model.relation(np.array([49.01]), np.array([-100.0]), np.array([0.0]), np.array([-1.0])).country
    array(['CA'], dtype=object)
    """

    def __init__(self, border: BorderGeometry, ports: Sequence[PortOfEntry] = ()) -> None:
        self.border = border
        self.ports = tuple(ports)
        self._to_grid = Transformer.from_crs("EPSG:4326", METRIC_CRS, always_xy=True)
        self._to_lonlat = Transformer.from_crs(METRIC_CRS, "EPSG:4326", always_xy=True)
        self._proj = Proj(METRIC_CRS)
        dense = shapely.segmentize(border.lines, DENSIFY_DEG)
        starts, ends = [], []
        for part in shapely.get_parts(dense):  # a handful of parts; the work inside is vectorised
            xy = np.column_stack(self._to_grid.transform(*shapely.get_coordinates(part).T))
            starts.append(xy[:-1])
            ends.append(xy[1:])
        self._seg_a = np.concatenate(starts)
        self._seg_b = np.concatenate(ends)
        keep = np.any(self._seg_a != self._seg_b, axis=1)  # drop zero-length segments
        self._seg_a, self._seg_b = self._seg_a[keep], self._seg_b[keep]
        self._segments = shapely.linestrings(np.stack([self._seg_a, self._seg_b], axis=1))
        self._segment_tree = shapely.STRtree(self._segments)
        # A line that is not the countries' own shared edge (an agency's surveyed line): near it,
        # the side comes from the line itself, each segment knowing which of its sides is Canada
        self._ca_left = None if border.shipped_demo else self._canada_left_of_segments()
        polygons = np.array([p.polygon for p in self.ports], dtype=object)
        shapely.prepare(polygons)
        self._port_tree = shapely.STRtree(polygons)
        self._port_ids = np.array([p.id for p in self.ports] + [None], dtype=object)  # [-1] = no port
        # every lane of every port, in the grid (metres): which port, which mode
        self._lane_port = np.array([k for k, p in enumerate(self.ports) for _ in p.lanes], dtype=np.int64)
        self._lane_mode = np.array([lane.mode for p in self.ports for lane in p.lanes], dtype=object)
        lanes = [shapely.transform(lane.polygon, lambda xy: np.column_stack(self._to_grid.transform(*xy.T)))
                 for p in self.ports for lane in p.lanes]
        self._lanes = np.array(lanes, dtype=object)
        shapely.prepare(self._lanes)
        self._lane_tree = shapely.STRtree(self._lanes)

    def _canada_left_of_segments(self) -> np.ndarray:
        """Per segment: 1.0 if Canada is on its left (grid), 0.0 if on its right, NaN if the
        countries' polygons do not say (both probes outside them), probed LINE_SIDE_BAND_M out."""
        mid = (self._seg_a + self._seg_b) / 2
        ab = self._seg_b - self._seg_a
        left = np.column_stack([-ab[:, 1], ab[:, 0]]) / np.hypot(ab[:, 0], ab[:, 1])[:, None]
        result = np.full(len(mid), np.nan)
        for side, flip in ((1.0, False), (-1.0, True)):
            x, y = self._to_lonlat.transform(*(mid + side * LINE_SIDE_BAND_M * left).T)
            in_ca = shapely.contains_xy(self.border.canada, x, y)
            in_us = shapely.contains_xy(self.border.usa, x, y)
            says = np.where(in_ca, 1.0, np.where(in_us, 0.0, np.nan))
            says = 1.0 - says if flip else says
            result = np.where(np.isnan(result), says, result)
        return result

    @property
    def segment_count(self) -> int:
        """Number of densified line segments indexed (for reports)."""
        return len(self._segments)

    def relation(self, lat_deg: np.ndarray, lon_deg: np.ndarray, vel_east_mps: np.ndarray,
                 vel_north_mps: np.ndarray) -> BorderRelation:
        """Side, distance, closing speed, heading and time to the line of n points moving at the given velocity.

        All inputs are (n,) arrays (scalars broadcast); positions WGS-84 degrees, velocities m/s
        east and north. Raises ValueError for a non-finite or out-of-range position.
        """
        lat, lon, ve, vn = (np.atleast_1d(np.asarray(a, dtype=np.float64)) for a in
                            np.broadcast_arrays(lat_deg, lon_deg, vel_east_mps, vel_north_mps))
        if not (np.all(np.isfinite(lat)) and np.all(np.isfinite(lon))):
            raise ValueError("positions must be finite")
        if np.any(np.abs(lat) > 90) or np.any(np.abs(lon) > 180):
            raise ValueError("positions must be within lat -90..90 and lon -180..180")
        n = lat.shape[0]
        if n == 0:
            empty = np.empty(0, dtype=np.float64)
            none = np.empty(0, dtype=object)
            return BorderRelation(none, empty, empty.copy(), empty.copy(), empty.copy(), empty.copy(), none.copy())

        # nearest point on the line, in the grid
        px, py = self._to_grid.transform(lon, lat)
        p = np.column_stack([px, py])
        _, nearest = self._segment_tree.query_nearest(shapely.points(p), all_matches=False)
        a, b = self._seg_a[nearest], self._seg_b[nearest]
        ab = b - a
        t = np.clip(np.einsum("ij,ij->i", p - a, ab) / np.einsum("ij,ij->i", ab, ab), 0.0, 1.0)
        q = a + t[:, None] * ab
        to_line = q - p
        grid_distance = np.hypot(to_line[:, 0], to_line[:, 1])

        # grid metres -> true metres: divide by the scale factor, averaged over point and nearest point
        q_lon, q_lat = self._to_lonlat.transform(q[:, 0], q[:, 1])
        here = self._proj.get_factors(lon, lat)
        there = self._proj.get_factors(q_lon, q_lat)
        distance = grid_distance * 0.5 * (1.0 / here.meridional_scale + 1.0 / there.meridional_scale)

        # side from the country polygons (lon/lat, as the data's edges are defined)
        in_ca = shapely.contains_xy(self.border.canada, lon, lat)
        in_us = shapely.contains_xy(self.border.usa, lon, lat)
        country = np.full(n, None, dtype=object)
        country[in_ca] = "CA"
        country[in_us] = "US"
        sign = np.where(in_ca, 1.0, np.where(in_us, -1.0, np.where(distance <= ON_LINE_M, 0.0, np.nan)))
        if self._ca_left is not None:  # near the loaded line, its own side wins over the polygons' edge
            cross = ab[:, 0] * (p[:, 1] - a[:, 1]) - ab[:, 1] * (p[:, 0] - a[:, 0])
            known = np.isfinite(self._ca_left[nearest]) & (distance <= LINE_SIDE_BAND_M) & (distance > ON_LINE_M)
            line_sign = np.where((cross > 0) == (self._ca_left[nearest] > 0), 1.0, -1.0)
            sign = np.where(known, line_sign, sign)
            country = np.where(known, np.where(line_sign > 0, "CA", "US"), country).astype(object)
        signed = sign * distance

        # velocity into the grid: true north has grid bearing -convergence (PROJ's sign convention)
        beta = np.radians(-here.meridian_convergence)
        gx = ve * np.cos(beta) + vn * np.sin(beta)
        gy = vn * np.cos(beta) - ve * np.sin(beta)
        on_line = grid_distance < _ALONG_LINE_M
        safe = np.where(on_line, 1.0, grid_distance)
        ux, uy = to_line[:, 0] / safe, to_line[:, 1] / safe
        closing = gx * ux + gy * uy
        if np.any(on_line):  # on the line the distance can only grow: by the speed across the segment
            seg_len = np.hypot(ab[:, 0], ab[:, 1])
            across = np.abs(gx * -ab[:, 1] + gy * ab[:, 0]) / seg_len
            closing = np.where(on_line, -across, closing)
        speed = np.hypot(ve, vn)
        with np.errstate(invalid="ignore", divide="ignore"):
            heading = np.degrees(np.arccos(np.clip(closing / speed, -1.0, 1.0)))
            heading = np.where((speed > 0) & ~on_line, heading, np.nan)
            time_to = np.where(closing > 0, distance / closing, np.inf)
        time_to = np.where(on_line, 0.0, time_to)
        return BorderRelation(country=country, distance_m=distance, signed_distance_m=signed,
                              closing_speed_mps=closing, heading_rel_border_deg=heading,
                              time_to_border_s=time_to, port_id=self.port_ids(lat, lon))

    def port_ids(self, lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
        """Id of the port of entry covering each point (the first listed where they overlap), or None.

        Object array of shape (n,); the boundary of a port polygon counts as inside.
        """
        lat, lon = (np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in np.broadcast_arrays(lat_deg, lon_deg))
        first = np.full(lat.shape[0], len(self.ports), dtype=np.int64)
        if self.ports and lat.shape[0]:
            point_idx, port_idx = self._port_tree.query(shapely.points(lon, lat), predicate="intersects")
            np.minimum.at(first, point_idx, port_idx)
        first[first == len(self.ports)] = -1
        return self._port_ids[first]

    def _lanes_covering(self, lat_deg: float, lon_deg: float) -> set[int]:
        point = shapely.Point(*self._to_grid.transform(lon_deg, lat_deg))
        return {int(k) for k in self._lane_tree.query(point, predicate="intersects")}

    def lawful_port_id(self, path: Sequence[tuple[float, float]], class_name: str, ts_ns: int) -> str | None:
        """The port through which a crossing along ``path`` is lawful, or None.

        ``path``: (lat, lon) points of the crossing (where it met the line and where it then
        stood inside the other country). Lawful when one lane of a mode for ``class_name`` (see
        ``ibet.border.MODES_OF_CLASS``) covers every point and its port is open at ``ts_ns``.
        """
        modes = MODES_OF_CLASS.get(str(class_name), ())
        common: set[int] | None = None
        for lat, lon in path:
            hits = self._lanes_covering(lat, lon)
            common = hits if common is None else common & hits
        for k in sorted(common or ()):
            port = self.ports[self._lane_port[k]]
            if self._lane_mode[k] in modes and port.hours.is_open(ts_ns):
                return port.id
        return None

    def near_port(self, lat_deg: float, lon_deg: float, class_name: str, ts_ns: int,
                  within_m: float = NEAR_PORT_M) -> NearPort | None:
        """The port an unlawful crossing at (lat, lon) happened at or beside, and why it was not lawful.

        The port whose lanes are nearest, if within ``within_m`` (true metres) or if its area covers
        the point; None when no port is that close.
        """
        if not len(self._lanes):
            return None
        x, y = self._to_grid.transform(lon_deg, lat_deg)
        point = shapely.Point(x, y)
        k = int(self._lane_tree.query_nearest(point, all_matches=False)[0])
        factors = self._proj.get_factors(lon_deg, lat_deg)
        distance = float(shapely.distance(self._lanes[k], point)) / factors.meridional_scale
        port = self.ports[self._lane_port[k]]
        if distance > within_m and not shapely.intersects_xy(port.polygon, lon_deg, lat_deg):
            return None
        modes = MODES_OF_CLASS.get(str(class_name), ())
        here = [j for j in self._lanes_covering(lat_deg, lon_deg) if self._lane_port[j] == self._lane_port[k]]
        if any(self._lane_mode[j] in modes for j in here):
            reason = NearPortReason.CLOSED if not port.hours.is_open(ts_ns) else NearPortReason.OUTSIDE_LANES
        elif here:
            reason = NearPortReason.WRONG_MODE
        else:
            reason = NearPortReason.OUTSIDE_LANES
        gx, gy = shapely.get_coordinates(shapely.shortest_line(self._lanes[k], point))[[0, 1]].T.tolist() if distance \
            else ([0.0, 0.0], [0.0, 0.0])
        dx, dy = gx[1] - gx[0], gy[1] - gy[0]
        beta = np.radians(-factors.meridian_convergence)  # grid -> true: the inverse of relation()'s rotation
        east, north = dx * np.cos(beta) - dy * np.sin(beta), dx * np.sin(beta) + dy * np.cos(beta)
        bearing = _COMPASS[round(float(np.degrees(np.arctan2(east, north))) % 360 / 45) % 8] if distance else "N"
        return NearPort(port_id=port.id, port_name=port.name, distance_m=round(distance, 1), bearing=bearing,
                        reason=reason)

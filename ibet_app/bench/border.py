"""Benchmark of the border relation: :meth:`BorderModel.relation` on arrays vs a per-point GeoPandas loop.

Both compute, for the same random points near the line, the country, the signed distance in true
metres (grid metres of EPSG:3978 over the scale factor) and the port of entry. The loop is what
one would write point by point with GeoPandas: a one-point GeoSeries reprojected and measured
against the (densified, projected) line. Used by ``ibet bench fuse``; not a test.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import Proj

from fuse.border_relation import DENSIFY_DEG, METRIC_CRS, BorderModel
from ibet.border import BorderGeometry, load_border, load_ports_of_entry

DEFAULT_PORTS = Path("config/ports_of_entry.geojson")


def random_points_near_border(border: BorderGeometry, n_points: int, spread_deg: float = 0.02,
                              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n points (lat, lon in degrees) scattered about +-spread_deg (about 2 km) around random places on the line."""
    rng = np.random.default_rng(seed)
    on_line = shapely.line_interpolate_point(border.lines, rng.uniform(0.0, 1.0, n_points), normalized=True)
    xy = shapely.get_coordinates(on_line)
    return xy[:, 1] + rng.uniform(-spread_deg, spread_deg, n_points), xy[:, 0] + rng.uniform(-spread_deg, spread_deg, n_points)


def _loop_signed_distance(model: BorderModel, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """The per-point reference: country, signed distance and port, one GeoSeries per point."""
    line = gpd.GeoSeries([shapely.segmentize(model.border.lines, DENSIFY_DEG)], crs="EPSG:4326").to_crs(METRIC_CRS)[0]
    shapely.prepare(line)
    proj = Proj(METRIC_CRS)
    out = np.empty(len(lat))
    for i, (la, lo) in enumerate(zip(lat, lon, strict=True)):
        here = gpd.GeoSeries([shapely.Point(lo, la)], crs="EPSG:4326")
        grid = here.to_crs(METRIC_CRS)
        distance_grid = float(grid.distance(line).iloc[0])
        nearest = gpd.GeoSeries([shapely.shortest_line(grid.iloc[0], line)], crs=METRIC_CRS).to_crs("EPSG:4326")
        q_lon, q_lat = shapely.get_coordinates(nearest.iloc[0])[1]
        k = 0.5 * (1 / proj.get_factors(lo, la).meridional_scale + 1 / proj.get_factors(q_lon, q_lat).meridional_scale)
        sign = 1.0 if model.border.canada.contains(here.iloc[0]) else -1.0 if model.border.usa.contains(here.iloc[0]) else np.nan
        _ = next((p.id for p in model.ports if p.polygon.intersects(here.iloc[0])), None)
        out[i] = sign * distance_grid * k
    return out


def bench_border(n_points: int = 10_000, loop_points: int | None = 1_000, seed: int = 0,
                 model: BorderModel | None = None) -> dict[str, Any]:
    """Points per second of the vectorised relation and of the per-point loop, and their ratio.

    ``loop_points`` caps how many of the points the (slow) loop measures; its rate is per point,
    so the two are comparable. Returns ``{"bench": "border", "ratio": vectorised / loop, ...}``
    with ``max_abs_diff_m`` between the two answers as a check that they did the same work.
    """
    if model is None:
        model = BorderModel(load_border(), load_ports_of_entry(DEFAULT_PORTS))
    lat, lon = random_points_near_border(model.border, n_points, seed=seed)
    rng = np.random.default_rng(seed + 1)
    ve, vn = rng.normal(0.0, 2.0, n_points), rng.normal(0.0, 2.0, n_points)
    model.relation(lat[:10], lon[:10], ve[:10], vn[:10])  # warm up
    start = time.perf_counter()
    relation = model.relation(lat, lon, ve, vn)
    vectorised_s = time.perf_counter() - start
    m = n_points if loop_points is None else min(n_points, loop_points)
    start = time.perf_counter()
    loop = _loop_signed_distance(model, lat[:m], lon[:m])
    loop_s = time.perf_counter() - start
    vectorised_rate, loop_rate = n_points / vectorised_s, m / loop_s
    diff = np.abs(relation.signed_distance_m[:m] - loop)
    return {"bench": "border", "n_points": n_points, "loop_points": m,
            "vectorised_points_per_s": round(vectorised_rate, 1), "loop_points_per_s": round(loop_rate, 1),
            "ratio": round(vectorised_rate / loop_rate, 1),
            "max_abs_diff_m": float(np.nanmax(diff)) if np.any(np.isfinite(diff)) else None,
            "segments": model.segment_count}

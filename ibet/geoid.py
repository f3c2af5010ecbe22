"""EGM96 geoid heights: mean sea level <-> height above the WGS-84 ellipsoid (pure; the grid loads once).

The grid is NGA's EGM96 15-minute geoid (WW15MGH.DAC), shipped in ``ibet/data/geoid`` (see its
NOTE.md: provenance, licence, how to rebuild, accuracy). Heights between grid nodes are bilinear,
as NGA's own interpolation program does. MISB ST 0601 tag 15 (and EG 0104's altitude) is above
mean sea level; ibet's telemetry is above the ellipsoid: h = H + N.

    >>> round(geoid_height_m(38.628155, -90.220845), 2)  # NGA's check point: -31.628 m (the grid: within 0.06 m)
    -31.61
    >>> round(msl_to_ellipsoid_m(49.0, -122.75, 150.0), 2)  # ST 0601 tag 15 near Blaine WA: N = -20.41 m
    129.59
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import numpy as np

GEOID_MODEL = "EGM96"
GRID_FILE = Path(__file__).parent / "data" / "geoid" / "egm96_15min.npz"
STEP_DEG = 0.25  # 15 minutes
ROWS, COLS = 721, 1440  # 90 N .. 90 S, 0 E .. 359.75 E


@cache
def _grid_m() -> np.ndarray:
    with np.load(GRID_FILE) as data:
        grid = data["heights_cm"].astype(np.float64) / 100.0
    if grid.shape != (ROWS, COLS):
        raise ValueError(f"{GRID_FILE}: grid shape {grid.shape}, expected {(ROWS, COLS)}")
    return grid


def geoid_height_m(lat_deg: float, lon_deg: float) -> float:
    """N, the geoid's height above the WGS-84 ellipsoid at (lat, lon), in metres (EGM96).

    Any longitude (it is taken modulo 360); latitude in [-90, 90]. ValueError for NaN, infinities
    or a latitude out of range.
    """
    if not (math.isfinite(lat_deg) and math.isfinite(lon_deg)):
        raise ValueError(f"geoid height needs a finite position, got ({lat_deg}, {lon_deg})")
    if not -90.0 <= lat_deg <= 90.0:
        raise ValueError(f"latitude {lat_deg} is outside [-90, 90]")
    grid = _grid_m()
    row = (90.0 - lat_deg) / STEP_DEG
    col = (lon_deg % 360.0) / STEP_DEG
    r0 = min(int(math.floor(row)), ROWS - 2)
    c0 = int(math.floor(col)) % COLS
    c1 = (c0 + 1) % COLS
    fr, fc = row - r0, col - math.floor(col)
    top = grid[r0, c0] + (grid[r0, c1] - grid[r0, c0]) * fc
    bottom = grid[r0 + 1, c0] + (grid[r0 + 1, c1] - grid[r0 + 1, c0]) * fc
    return float(top + (bottom - top) * fr)


def geoid_heights_m(lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    """:func:`geoid_height_m` over arrays (same bilinear interpolation); NaN where a position is not finite."""
    lat, lon = np.asarray(lat_deg, dtype=np.float64), np.asarray(lon_deg, dtype=np.float64)
    ok = np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90.0)
    grid = _grid_m()
    row = (90.0 - np.where(ok, lat, 0.0)) / STEP_DEG
    col = (np.where(ok, lon, 0.0) % 360.0) / STEP_DEG
    r0 = np.minimum(np.floor(row).astype(np.int64), ROWS - 2)
    c0 = np.floor(col).astype(np.int64) % COLS
    c1 = (c0 + 1) % COLS
    fr, fc = row - r0, col - np.floor(col)
    top = grid[r0, c0] + (grid[r0, c1] - grid[r0, c0]) * fc
    bottom = grid[r0 + 1, c0] + (grid[r0 + 1, c1] - grid[r0 + 1, c0]) * fc
    return np.where(ok, top + (bottom - top) * fr, np.nan)


def msl_to_ellipsoid_m(lat_deg: float, lon_deg: float, alt_msl_m: float) -> float:
    """Height above the ellipsoid of a point ``alt_msl_m`` above mean sea level (EGM96): H + N."""
    if not math.isfinite(alt_msl_m):
        raise ValueError(f"altitude must be finite, got {alt_msl_m}")
    return alt_msl_m + geoid_height_m(lat_deg, lon_deg)


def ellipsoid_to_msl_m(lat_deg: float, lon_deg: float, alt_hae_m: float) -> float:
    """Height above mean sea level (EGM96) of a point ``alt_hae_m`` above the ellipsoid: h - N."""
    if not math.isfinite(alt_hae_m):
        raise ValueError(f"altitude must be finite, got {alt_hae_m}")
    return alt_hae_m - geoid_height_m(lat_deg, lon_deg)

"""The sectors' DEMs, loaded once at start-up and checked against what they must cover.

A sector's ``dem`` (registry) is read with :func:`fuse.terrain.load_dem`; it must have heights
under every fixed camera of the sector and where each camera's optical axis meets the ground
(the middle of what it watches), else the stage refuses to start, naming the sector, the
camera, the place and the raster's extent. Drones fly anywhere: their rays that leave the raster
fall back to flat ground and are counted.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from fuse.frames import LocalPlane
from fuse.terrain import Dem, DemError, load_dem
from ibet.registry import Registry

AXIS_CHECK_MAX_M = 5000.0  # the axis's ground point is checked if it lands this close


def load_sector_dems(registry: Registry, base_dir: Path) -> dict[str, Dem]:
    """``{sector_id: Dem}`` for every sector with a ``dem``; DemError for any unusable or short one."""
    dems: dict[str, Dem] = {}
    for sector in registry.sectors:
        if sector.dem is None:
            continue
        path = Path(sector.dem.path)
        path = path if path.is_absolute() else base_dir / path
        try:
            dem = load_dem(path, vertical=sector.dem.vertical, sigma_m=sector.dem.sigma_m)
        except DemError as exc:
            raise DemError(f"sector {sector.id}: {exc}") from None
        for place, lat, lon in _must_cover(registry, sector.id, sector.ground_elev_m):
            if not dem.covers(np.array([lat]), np.array([lon]))[0]:
                raise DemError(f"sector {sector.id}: DEM {path} has no height at {place} ({lat:.6f}, {lon:.6f}); "
                               f"it spans {_extent(dem)}: give a DEM that covers the sector's cameras and their view")
        dems[sector.id] = dem
    return dems


def _must_cover(registry: Registry, sector_id: str, ground_elev_m: float):
    for sensor in registry.sensors_in(sector_id):
        pose = sensor.pose
        if sensor.kind != "fixed_camera" or pose is None:
            continue
        yield f"camera {sensor.id}", pose.lat_deg, pose.lon_deg
        if pose.tilt_deg > 0:
            reach = pose.height_m / math.tan(math.radians(pose.tilt_deg))
            if reach <= AXIS_CHECK_MAX_M:
                h = math.radians(pose.heading_deg)
                lat, lon = LocalPlane(pose.lat_deg, pose.lon_deg).to_latlon(reach * math.sin(h), reach * math.cos(h))
                yield f"the ground camera {sensor.id} looks at, {reach:.0f} m out", float(lat), float(lon)


def _extent(dem: Dem) -> str:
    from pyproj import CRS, Transformer

    rows, cols = dem.heights_m.shape
    a, b, c, d, e, f = dem.inverse
    inverse = np.array([[a, b, c], [d, e, f], [0, 0, 1]])
    forward = np.linalg.inv(inverse)
    corners = forward @ np.array([[0, cols, 0, cols], [0, 0, rows, rows], [1, 1, 1, 1]], dtype=float)
    lon, lat = Transformer.from_crs(CRS.from_wkt(dem.crs_wkt), "EPSG:4326", always_xy=True).transform(
        corners[0], corners[1])
    return f"lat {min(lat):.5f}..{max(lat):.5f}, lon {min(lon):.5f}..{max(lon):.5f}"

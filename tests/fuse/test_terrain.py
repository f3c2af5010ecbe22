"""Georeferencing onto the curved Earth and onto a DEM, against references built apart from the code:
pyproj's own geodetic <-> ECEF, the NED axes taken by finite differences of it, and scipy's brentq
on the height above the surface along the ray. DEMs are GeoTIFFs written here with rasterio in
UTM (another CRS than the WGS-84 the pipeline speaks), with an exact surface: a sloping plane
(bilinear is exact on it) and a cone."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import Geod, Transformer
from rasterio.transform import from_origin
from scipy.optimize import brentq

from fuse.georef import georeference_drone, georeference_fixed_pose
from fuse.ground_points import GeorefSigmas
from fuse.terrain import DemError, load_dem
from ibet.messages import Telemetry
from ibet.registry import FixedPose

GEOD = Geod(ellps="WGS84")
TO_ECEF = Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)
TO_GEO = Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True)
TO_UTM = Transformer.from_crs("EPSG:4326", "EPSG:32610", always_xy=True)
NO_ERROR = GeorefSigmas(0.0, 0.0, 0.0, 0.0)
W, H = 1280, 720
LAT0, LON0 = 49.0, -122.75  # Blaine, UTM zone 10N
CENTRE = [[W / 2 - 5, H / 2 - 10, W / 2 + 5, H / 2]]  # bottom-centre on the optical axis


def ned_axes(lat: float, lon: float, h: float) -> np.ndarray:
    """(3, 3) columns north, east, down in ECEF, by finite differences of pyproj's transform."""
    p = np.array(TO_ECEF.transform(lon, lat, h))
    north = np.array(TO_ECEF.transform(lon, lat + 1e-6, h)) - p
    east = np.array(TO_ECEF.transform(lon + 1e-6, lat, h)) - p
    up = np.array(TO_ECEF.transform(lon, lat, h + 1.0)) - p
    return np.stack([north / np.linalg.norm(north), east / np.linalg.norm(east), -up / np.linalg.norm(up)], axis=1)


def reference_hit(lat: float, lon: float, h: float, heading_deg: float, down_deg: float, surface) -> tuple:
    """(lat, lon, range) where the ray ``down_deg`` below the horizon at ``heading_deg`` first meets
    ``surface(lat, lon) -> height above the ellipsoid``: scan every 2 m, then brentq."""
    a, e = math.radians(heading_deg), math.radians(down_deg)
    d = ned_axes(lat, lon, h) @ np.array([math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)])
    o = np.array(TO_ECEF.transform(lon, lat, h))

    def above(t: float) -> float:
        lo, la, hh = TO_GEO.transform(*(o + t * d))
        return hh - surface(la, lo)

    ts = np.arange(0.0, 80_000.0, 2.0)
    x, y, z = (o[:, None] + ts[None, :] * d[:, None])
    lo, la, hh = TO_GEO.transform(x, y, z)
    f = hh - np.array([surface(a_, b_) for a_, b_ in zip(la, lo, strict=True)])
    k = int(np.flatnonzero(f <= 0)[0])
    t = brentq(above, ts[k - 1], ts[k], xtol=1e-4)
    lo, la, _ = TO_GEO.transform(*(o + t * d))
    return la, lo, t


def drone(alt_m: float, heading_deg: float, down_deg: float, lat: float = LAT0, lon: float = LON0) -> Telemetry:
    return Telemetry(sensor_lat_deg=lat, sensor_lon_deg=lon, sensor_alt_m=alt_m, platform_heading_deg=heading_deg,
                     platform_pitch_deg=0.0, platform_roll_deg=0.0, sensor_rel_azimuth_deg=0.0,
                     sensor_rel_elevation_deg=-down_deg, hfov_deg=20.0)


def error_m(lat, lon, points) -> float:
    return GEOD.inv(lon, lat, float(points.lon_deg[0]), float(points.lat_deg[0]))[2]


@pytest.mark.parametrize(("alt_m", "down_deg", "ground_m"), [
    (120.0, 5.0, 20.0), (300.0, 5.0, 0.0), (1500.0, 8.0, 400.0), (1500.0, 2.9, 50.0), (1500.0, 2.6, 0.0),
    (60.0, 0.3, 0.0),
])
@pytest.mark.parametrize("heading_deg", [0.0, 77.0, 200.0])
def test_long_rays_land_where_the_ellipsoid_puts_them(alt_m, down_deg, ground_m, heading_deg) -> None:
    lat, lon, rng = reference_hit(LAT0, LON0, alt_m, heading_deg, down_deg, lambda la, lo: ground_m)
    points = georeference_drone(CENTRE, W, H, drone(alt_m, heading_deg, down_deg), ground_m, NO_ERROR)
    assert points.valid.tolist() == [True]
    assert error_m(lat, lon, points) < 0.5, (rng, error_m(lat, lon, points))
    assert points.range_m[0] == pytest.approx(rng, abs=0.5)


def test_a_30_km_ray_is_where_the_curved_earth_puts_it_not_the_flat_plane() -> None:
    lat, lon, rng = reference_hit(LAT0, LON0, 1500.0, 90.0, 2.6, lambda la, lo: 0.0)
    assert 25_000 < rng < 40_000
    points = georeference_drone(CENTRE, W, H, drone(1500.0, 90.0, 2.6), 0.0, NO_ERROR)
    flat_m = 1500.0 / math.tan(math.radians(2.6))
    assert error_m(lat, lon, points) < 0.5
    assert abs(rng - flat_m) > 2000  # the flat plane would put it 2.2 km short


# ---------------------------------------------------------------------------------------- DEM

def write_dem(path: Path, height_of_xy, *, cell_m: float = 5.0, half_m: float = 3000.0, nodata_box=None,
              crs: str | None = "EPSG:32610", scale=1.0) -> Path:
    x0, y0 = TO_UTM.transform(LON0, LAT0)
    n = int(2 * half_m / cell_m)
    xs = x0 - half_m + (np.arange(n) + 0.5) * cell_m
    ys = y0 + half_m - (np.arange(n) + 0.5) * cell_m
    gx, gy = np.meshgrid(xs, ys)
    z = (height_of_xy(gx, gy) * scale).astype(np.float32)
    if nodata_box is not None:
        (ex0, ex1), (ny0, ny1) = nodata_box
        z[(gx - x0 >= ex0) & (gx - x0 <= ex1) & (gy - y0 >= ny0) & (gy - y0 <= ny1)] = -9999.0
    with rasterio.open(path, "w", driver="GTiff", width=n, height=n, count=1, dtype="float32", crs=crs,
                       transform=from_origin(x0 - half_m, y0 + half_m, cell_m, cell_m), nodata=-9999.0) as dst:
        dst.write(z, 1)
    return path


def utm_surface(height_of_xy):
    def surface(lat, lon):
        x, y = TO_UTM.transform(lon, lat)
        return float(height_of_xy(np.array(x), np.array(y)))
    return surface


X0, Y0 = TO_UTM.transform(LON0, LAT0)


def slope(gx, gy):  # rises 0.2 m per m to the north-east: 100 m + a hill side
    return 100.0 + 0.12 * (gx - X0) + 0.16 * (gy - Y0)


def cone(gx, gy):  # a 300 m hill 800 m east of the drone, flanks 0.5 m/m, on 90 m ground
    r = np.hypot(gx - (X0 + 800.0), gy - Y0)
    return 90.0 + np.maximum(0.0, 300.0 - 0.5 * r)


@pytest.mark.parametrize(("heading_deg", "down_deg"), [(45.0, 30.0), (0.0, 12.0), (225.0, 20.0), (120.0, 60.0)])
def test_rays_onto_a_sloping_plane_to_a_tenth_of_a_metre(tmp_path, heading_deg, down_deg) -> None:
    dem = load_dem(write_dem(tmp_path / "slope.tif", slope))
    alt = 100.0 + 250.0
    lat, lon, rng = reference_hit(LAT0, LON0, alt, heading_deg, down_deg, utm_surface(slope))
    points = georeference_drone(CENTRE, W, H, drone(alt, heading_deg, down_deg), 100.0, NO_ERROR, terrain=dem)
    assert points.valid.tolist() == [True] and not points.fallback[0]
    assert error_m(lat, lon, points) < 0.1, error_m(lat, lon, points)
    flat = georeference_drone(CENTRE, W, H, drone(alt, heading_deg, down_deg), 100.0, NO_ERROR)
    assert error_m(lat, lon, flat) > 1.0  # why a DEM: flat ground misplaces it (2 m looking 60 deg down, 30 m+ at 12)


@pytest.mark.parametrize(("heading_deg", "down_deg"), [(90.0, 10.0), (80.0, 14.0), (100.0, 6.0)])
def test_rays_onto_a_cone_to_a_tenth_of_a_metre(tmp_path, heading_deg, down_deg) -> None:
    dem = load_dem(write_dem(tmp_path / "cone.tif", cone, cell_m=2.0, half_m=2000.0))
    alt = 90.0 + 250.0
    lat, lon, rng = reference_hit(LAT0, LON0, alt, heading_deg, down_deg, utm_surface(cone))
    points = georeference_drone(CENTRE, W, H, drone(alt, heading_deg, down_deg), 90.0, NO_ERROR, terrain=dem)
    assert points.valid.tolist() == [True]
    assert error_m(lat, lon, points) < 0.1, error_m(lat, lon, points)


def test_a_fixed_camera_stands_on_the_dem_and_looks_at_the_hill(tmp_path) -> None:
    dem = load_dem(write_dem(tmp_path / "cone.tif", cone, cell_m=2.0, half_m=2000.0))
    pose = FixedPose(lat_deg=LAT0, lon_deg=LON0, height_m=10.0, heading_deg=90.0, tilt_deg=-5.0, hfov_deg=20.0)
    lat, lon, _ = reference_hit(LAT0, LON0, 90.0 + 10.0, 90.0, -5.0, utm_surface(cone))  # looking up the flank
    points = georeference_fixed_pose(CENTRE, W, H, pose, 90.0, sigmas=NO_ERROR, terrain=dem)
    assert points.valid.tolist() == [True] and error_m(lat, lon, points) < 0.1
    assert not georeference_fixed_pose(CENTRE, W, H, pose, 90.0, sigmas=NO_ERROR).valid[0]  # flat: sky


def test_the_covariance_grows_where_the_ray_grazes_the_slope_and_with_the_dems_error(tmp_path) -> None:
    path = write_dem(tmp_path / "slope.tif", slope)
    sigmas = GeorefSigmas(pixel_sigma_px=1.0, attitude_sigma_deg=0.2, position_sigma_m=0.5, altitude_sigma_m=1.0)
    alt = 100.0 + 200.0

    def spread(heading_deg: float, dem_sigma_m: float) -> float:
        dem = load_dem(path, sigma_m=dem_sigma_m)
        p = georeference_drone(CENTRE, W, H, drone(alt, heading_deg, 25.0), 100.0, sigmas, terrain=dem)
        return float(np.sqrt(np.trace(p.cov_en_m2[0])))

    facing, grazing = spread(45.0, 1.0), spread(225.0, 1.0)  # the slope rises towards 45 deg
    assert grazing > 1.5 * facing
    assert spread(45.0, 10.0) > 2 * spread(45.0, 1.0)


def test_a_hole_in_the_dem_falls_back_to_flat_ground_flagged_with_a_wider_covariance(tmp_path) -> None:
    sigmas = GeorefSigmas(pixel_sigma_px=1.0, attitude_sigma_deg=0.2, position_sigma_m=0.5, altitude_sigma_m=1.0)
    whole = load_dem(write_dem(tmp_path / "whole.tif", slope))
    holed = load_dem(write_dem(tmp_path / "holed.tif", slope, nodata_box=((-400, 400), (-400, 400))))
    t = drone(350.0, 45.0, 30.0)
    good = georeference_drone(CENTRE, W, H, t, 100.0, sigmas, terrain=whole)
    hole = georeference_drone(CENTRE, W, H, t, 100.0, sigmas, terrain=holed)
    assert good.valid[0] and not good.fallback[0]
    assert hole.valid[0] and hole.fallback[0]
    assert np.trace(hole.cov_en_m2[0]) > 4 * np.trace(good.cov_en_m2[0])


def test_geoid_heights_are_raised_to_the_ellipsoid(tmp_path) -> None:
    from ibet.geoid import geoid_height_m

    path = write_dem(tmp_path / "msl.tif", lambda gx, gy: np.full_like(gx, 50.0))
    hae = load_dem(path).height_m(np.array([LAT0]), np.array([LON0]))[0]
    msl = load_dem(path, vertical="egm96").height_m(np.array([LAT0]), np.array([LON0]))[0]
    assert hae == pytest.approx(50.0) and msl == pytest.approx(50.0 + geoid_height_m(LAT0, LON0), abs=0.01)


def test_unusable_dems_are_refused_naming_the_file(tmp_path) -> None:
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(write_dem(tmp_path / "ok.tif", slope).read_bytes()[:2000])
    with pytest.raises(DemError, match="corrupt.tif"):
        load_dem(corrupt)
    with pytest.raises(DemError, match="no CRS"):
        load_dem(write_dem(tmp_path / "nocrs.tif", slope, crs=None))
    with pytest.raises(DemError, match="no heights"):
        load_dem(write_dem(tmp_path / "empty.tif", slope, nodata_box=((-4000, 4000), (-4000, 4000))))
    with pytest.raises(DemError, match="cannot be read"):
        load_dem(tmp_path / "missing.tif")
    with pytest.raises(DemError, match="sigma_m"):
        load_dem(tmp_path / "ok.tif", sigma_m=float("nan"))


@pytest.mark.parametrize(("alt_m", "heading_deg", "down_deg", "dem"), [
    (1500.0, 0.0, 4.0, False), (350.0, 225.0, 25.0, True), (350.0, 45.0, 12.0, True), (350.0, 135.0, 20.0, True)])
def test_the_cast_covariance_matches_finite_differences_of_the_pixel(tmp_path, alt_m, heading_deg, down_deg,
                                                                     dem) -> None:
    """First order on the ground's tangent plane at the hit vs moving the box one sigma and casting
    again (the ellipsoid at 20 km; the sloping DEM looking up and along its slope)."""
    terrain = load_dem(write_dem(tmp_path / "slope.tif", slope, cell_m=2.0), sigma_m=0.0) if dem else None
    only_pixel = GeorefSigmas(pixel_sigma_px=0.5, attitude_sigma_deg=0.0, position_sigma_m=0.0, altitude_sigma_m=0.0)
    t = drone(alt_m, heading_deg, down_deg)
    ground = 100.0 if dem else 0.0
    p = georeference_drone(CENTRE, W, H, t, ground, only_pixel, terrain=terrain)
    assert p.valid[0] and not p.fallback[0]
    columns = []
    for du, dv in ((0.5, 0.0), (0.0, 0.5)):
        moved = [[CENTRE[0][0] + du, CENTRE[0][1] + dv, CENTRE[0][2] + du, CENTRE[0][3] + dv]]
        q = georeference_drone(moved, W, H, t, ground, NO_ERROR, terrain=terrain)
        az, _, dist = GEOD.inv(float(p.lon_deg[0]), float(p.lat_deg[0]), float(q.lon_deg[0]), float(q.lat_deg[0]))
        columns.append([dist * math.sin(math.radians(az)), dist * math.cos(math.radians(az))])
    jacobian = np.array(columns).T
    expected = jacobian @ jacobian.T
    assert p.cov_en_m2[0] == pytest.approx(expected, rel=0.05, abs=0.05 * float(np.trace(expected)))

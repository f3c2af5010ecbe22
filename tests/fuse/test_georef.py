"""Georeferencing against independent cases: nadir, known oblique geometry, OpenCV's projectPoints.

Truth is built here without fuse's own rotation code: geometry by hand for the fixed cases,
rotations composed from OpenCV's Rodrigues axis-angle vectors + cv2.projectPoints for random
poses, pyproj.Geod for distances.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pyproj import Geod

from fuse.georef import REQUIRED_TELEMETRY, georeference_drone, georeference_fixed_pose
from fuse.ground_points import GeorefError, GeorefSigmas
from fuse.homography import GroundHomography, fit_homography, georeference_homography
from ibet.messages import Telemetry
from ibet.registry import CameraIntrinsics, FixedPose, GroundControlPoint

GEOD = Geod(ellps="WGS84")
W, H = 1280, 720
LAT, LON = 49.0025, -122.7561  # near Blaine / Surrey
NO_ERROR = GeorefSigmas(pixel_sigma_px=0.0, attitude_sigma_deg=0.0, position_sigma_m=0.0, altitude_sigma_m=0.0)


def telemetry(**changes) -> Telemetry:
    fields = dict(sensor_lat_deg=LAT, sensor_lon_deg=LON, sensor_alt_m=100.0, platform_heading_deg=0.0,
                  platform_pitch_deg=0.0, platform_roll_deg=0.0, sensor_rel_azimuth_deg=0.0,
                  sensor_rel_elevation_deg=-90.0, sensor_rel_roll_deg=0.0, hfov_deg=60.0)
    fields.update(changes)
    return Telemetry(**fields)


def box_at(u: float, v: float) -> list[float]:
    """A box whose bottom-centre is (u, v)."""
    return [u - 6.0, v - 30.0, u + 6.0, v]


def offset_m(lat0, lon0, lat, lon) -> tuple[float, float]:
    """East, north metres from (lat0, lon0) to (lat, lon), along the geodesic."""
    azimuth, _, distance = GEOD.inv(lon0, lat0, lon, lat)
    return distance * math.sin(math.radians(azimuth)), distance * math.cos(math.radians(azimuth))


def distance_m(lat0, lon0, lat, lon) -> float:
    return GEOD.inv(lon0, lat0, lon, lat)[2]


# Shapes and empty input

@pytest.mark.parametrize("boxes", [np.zeros((0, 4)), []])
def test_no_boxes_give_empty_points(boxes):
    points = georeference_drone(boxes, W, H, telemetry(), ground_elev_m=0.0)
    assert len(points) == 0
    assert points.lat_deg.shape == (0,) and points.cov_en_m2.shape == (0, 2, 2) and points.reason.shape == (0,)


def test_result_arrays_are_read_only():
    points = georeference_drone([box_at(640, 360)], W, H, telemetry(), ground_elev_m=0.0)
    with pytest.raises(ValueError):
        points.lat_deg[0] = 0.0


def test_wrong_box_shape_is_refused():
    with pytest.raises(ValueError, match=r"\(n, 4\)"):
        georeference_drone([[1.0, 2.0, 3.0]], W, H, telemetry(), ground_elev_m=0.0)


# Nadir and known geometry

def test_nadir_image_centre_is_below_the_drone():
    points = georeference_drone([box_at(W / 2, H / 2)], W, H, telemetry(sensor_alt_m=350.0), ground_elev_m=250.0,
                                sigmas=NO_ERROR)
    assert points.valid.tolist() == [True] and points.reason.tolist() == [""]
    assert distance_m(LAT, LON, points.lat_deg[0], points.lon_deg[0]) < 0.01
    assert points.range_m[0] == pytest.approx(100.0, abs=1e-6)


@pytest.mark.parametrize(("heading_deg", "expected_east_north"), [
    (0.0, (1.0, 0.0)),     # right edge of the image: east
    (90.0, (0.0, -1.0)),   # heading east: the right side of the image is south
    (180.0, (-1.0, 0.0)),
    (270.0, (0.0, 1.0)),
])
def test_nadir_right_edge_lies_alt_tan_half_hfov_to_the_right(heading_deg, expected_east_north):
    hfov_deg, alt_m = 50.0, 120.0
    points = georeference_drone([box_at(W, H / 2)], W, H,
                                telemetry(platform_heading_deg=heading_deg, hfov_deg=hfov_deg, sensor_alt_m=alt_m),
                                ground_elev_m=0.0, sigmas=NO_ERROR)
    reach_m = alt_m * math.tan(math.radians(hfov_deg / 2))
    east, north = offset_m(LAT, LON, points.lat_deg[0], points.lon_deg[0])
    assert (east, north) == (pytest.approx(expected_east_north[0] * reach_m, abs=0.01),
                             pytest.approx(expected_east_north[1] * reach_m, abs=0.01))


def test_nadir_top_of_image_is_ahead_of_the_drone():
    hfov_deg, alt_m = 60.0, 100.0
    vfov_deg = math.degrees(2 * math.atan(math.tan(math.radians(hfov_deg / 2)) * H / W))
    points = georeference_drone([box_at(W / 2, 0.0)], W, H, telemetry(platform_heading_deg=0.0), ground_elev_m=0.0,
                                sigmas=NO_ERROR)
    east, north = offset_m(LAT, LON, points.lat_deg[0], points.lon_deg[0])
    assert east == pytest.approx(0.0, abs=0.01)
    assert north == pytest.approx(alt_m * math.tan(math.radians(vfov_deg / 2)), abs=0.01)


@pytest.mark.parametrize("heading_deg", [0.0, 30.0, 90.0, 200.0, 315.0])
def test_oblique_45_deg_centre_is_alt_metres_ahead_in_the_heading(heading_deg):
    points = georeference_drone([box_at(W / 2, H / 2)], W, H,
                                telemetry(platform_heading_deg=heading_deg, sensor_rel_elevation_deg=-45.0),
                                ground_elev_m=0.0, sigmas=NO_ERROR)
    azimuth, _, distance = GEOD.inv(LON, LAT, points.lon_deg[0], points.lat_deg[0])
    assert distance == pytest.approx(100.0, abs=0.01)
    assert (azimuth - heading_deg + 180.0) % 360.0 - 180.0 == pytest.approx(0.0, abs=1e-4)
    assert points.range_m[0] == pytest.approx(100.0 * math.sqrt(2), abs=1e-6)


def test_relative_azimuth_adds_to_the_heading():
    # heading 30 + rel az 60 = looking east, 30 deg below the horizon
    points = georeference_drone([box_at(W / 2, H / 2)], W, H,
                                telemetry(platform_heading_deg=30.0, sensor_rel_azimuth_deg=60.0,
                                          sensor_rel_elevation_deg=-30.0),
                                ground_elev_m=0.0, sigmas=NO_ERROR)
    east, north = offset_m(LAT, LON, points.lat_deg[0], points.lon_deg[0])
    assert (east, north) == (pytest.approx(100.0 / math.tan(math.radians(30.0)), abs=0.01), pytest.approx(0.0, abs=0.01))


def test_nose_up_pitch_raises_a_forward_looking_sensor():
    # pitch +10 with rel el -40 (straight ahead) = 30 deg below the horizon, in the heading direction
    points = georeference_drone([box_at(W / 2, H / 2)], W, H,
                                telemetry(platform_heading_deg=180.0, platform_pitch_deg=10.0,
                                          sensor_rel_elevation_deg=-40.0),
                                ground_elev_m=0.0, sigmas=NO_ERROR)
    east, north = offset_m(LAT, LON, points.lat_deg[0], points.lon_deg[0])
    assert (east, north) == (pytest.approx(0.0, abs=0.01), pytest.approx(-100.0 / math.tan(math.radians(30.0)), abs=0.01))


def test_relative_roll_turns_the_image_about_the_line_of_sight():
    # Looking straight down, heading north, the image's right is east and its bottom south. A relative
    # roll of +90 deg (like a right-wing-down roll, about the line of sight) turns the right towards the bottom.
    hfov_deg = 50.0
    points = georeference_drone([box_at(W, H / 2)], W, H,
                                telemetry(sensor_rel_roll_deg=90.0, hfov_deg=hfov_deg), ground_elev_m=0.0,
                                sigmas=NO_ERROR)
    east, north = offset_m(LAT, LON, points.lat_deg[0], points.lon_deg[0])
    reach_m = 100.0 * math.tan(math.radians(hfov_deg / 2))
    assert (east, north) == (pytest.approx(0.0, abs=0.01), pytest.approx(-reach_m, abs=0.01))


def test_platform_roll_right_wing_down_moves_a_nadir_view_to_the_left():
    # Rolling right wing down turns a downward-looking camera's view to the left (west, heading north).
    points = georeference_drone([box_at(W / 2, H / 2)], W, H, telemetry(platform_roll_deg=20.0),
                                ground_elev_m=0.0, sigmas=NO_ERROR)
    east, north = offset_m(LAT, LON, points.lat_deg[0], points.lon_deg[0])
    assert (east, north) == (pytest.approx(-100.0 * math.tan(math.radians(20.0)), abs=0.01), pytest.approx(0.0, abs=0.01))


def test_missing_vfov_is_the_same_as_the_vfov_of_square_pixels():
    vfov_deg = math.degrees(2 * math.atan(math.tan(math.radians(40.0)) * H / W))
    boxes = [box_at(100, 700), box_at(1200, 500), box_at(640, 10)]
    tilted = dict(sensor_rel_elevation_deg=-50.0, platform_heading_deg=12.0, hfov_deg=80.0)
    without = georeference_drone(boxes, W, H, telemetry(**tilted, vfov_deg=None), ground_elev_m=0.0)
    given_vfov = georeference_drone(boxes, W, H, telemetry(**tilted, vfov_deg=vfov_deg), ground_elev_m=0.0)
    np.testing.assert_allclose(without.lat_deg, given_vfov.lat_deg, rtol=0, atol=1e-10)
    np.testing.assert_allclose(without.lon_deg, given_vfov.lon_deg, rtol=0, atol=1e-10)


# Horizon

@pytest.mark.parametrize("rel_elevation_deg", [0.0, 10.0, 90.0])
def test_rays_at_or_above_the_horizon_are_invalid(rel_elevation_deg):
    points = georeference_drone([box_at(W / 2, H / 2)], W, H, telemetry(sensor_rel_elevation_deg=rel_elevation_deg),
                                ground_elev_m=0.0)
    assert points.valid.tolist() == [False]
    assert np.isnan(points.lat_deg[0]) and np.isnan(points.lon_deg[0]) and np.isnan(points.range_m[0])
    assert np.isnan(points.cov_en_m2[0]).all()
    assert "horizon" in points.reason[0]


def test_only_the_boxes_above_the_horizon_are_invalid():
    # Looking 10 deg down with a 60 deg HFOV (33.8 deg VFOV): the top of the image is above the horizon.
    boxes = [box_at(W / 2, 0.0), box_at(W / 2, H / 2 - 1), box_at(W / 2, H), [np.nan, 1.0, 2.0, 3.0]]
    points = georeference_drone(boxes, W, H, telemetry(sensor_rel_elevation_deg=-10.0), ground_elev_m=0.0)
    assert points.valid.tolist() == [False, True, True, False]
    assert np.isfinite(points.lat_deg[1:3]).all() and np.isnan(points.lat_deg[[0, 3]]).all()
    assert points.reason[1] == points.reason[2] == ""
    assert "horizon" in points.reason[0] and "non-finite" in points.reason[3]


def test_a_ray_that_misses_the_curved_earth_is_invalid():
    # From 100 m the horizon dips 0.32 deg: a ray 0.2 deg down never reaches the ground, 0.5 deg down does.
    boxes = [box_at(W / 2, H / 2)]
    grazing = georeference_drone(boxes, W, H, telemetry(sensor_rel_elevation_deg=-0.2), ground_elev_m=0.0)
    steeper = georeference_drone(boxes, W, H, telemetry(sensor_rel_elevation_deg=-0.5), ground_elev_m=0.0,
                                 sigmas=NO_ERROR)
    assert grazing.valid.tolist() == [False] and steeper.valid.tolist() == [True]
    # 11.5 km on a flat plane; on a sphere of the local radius the ground falls away d^2/2R below it:
    # h - d sin(a) = -d^2 / 2R  ->  d = R (sin a - sqrt(sin^2 a - 2h/R)), about 12.97 km
    sin_a, radius = math.sin(math.radians(0.5)), 6_378_137.0 * (1 - 0.00669438 * 0.5) / (1 - 0.00669438 * 0.57)
    curved = radius * (sin_a - math.sqrt(sin_a**2 - 2 * 100.0 / radius))
    assert steeper.range_m[0] == pytest.approx(curved, rel=2e-3)
    assert steeper.range_m[0] > 1.13 * 100.0 / sin_a  # not the flat plane's


# Random poses against OpenCV's projectPoints

def rotation_zyx(z_deg: float, y_deg: float, x_deg: float) -> np.ndarray:
    """Rotate about z, then the new y, then the newer x (MISB order), from axis-angle vectors."""
    about = [cv2.Rodrigues(np.radians(angle) * axis)[0] for angle, axis in
             ((z_deg, np.array([0.0, 0.0, 1.0])), (y_deg, np.array([0.0, 1.0, 0.0])), (x_deg, np.array([1.0, 0.0, 0.0])))]
    return about[0] @ about[1] @ about[2]


def rotation_vector(matrix: np.ndarray) -> np.ndarray:
    return cv2.Rodrigues(matrix)[0].reshape(3)


NED_FROM_CAMERA_AXES = np.array([[0.0, 0.0, 1.0],   # camera z (optical axis) -> sensor forward
                                 [1.0, 0.0, 0.0],   # camera x (image right) -> sensor right
                                 [0.0, 1.0, 0.0]])  # camera y (image down)  -> sensor down


def opencv_camera(t: Telemetry, width_px: int, height_px: int, height_m: float):
    """rvec, tvec, camera matrix of the MISB pose, world = north/east/down metres from the nadir point."""
    platform = rotation_zyx(t.platform_heading_deg, t.platform_pitch_deg, t.platform_roll_deg)
    gimbal = rotation_zyx(t.sensor_rel_azimuth_deg, t.sensor_rel_elevation_deg, t.sensor_rel_roll_deg)
    world_from_camera = platform @ gimbal @ NED_FROM_CAMERA_AXES
    camera_from_world = world_from_camera.T
    centre = np.array([0.0, 0.0, -height_m])
    focal = width_px / 2 / math.tan(math.radians(t.hfov_deg) / 2)
    matrix = np.array([[focal, 0, width_px / 2], [0, focal, height_px / 2], [0, 0, 1]])
    rvec = rotation_vector(camera_from_world)
    return rvec, -camera_from_world @ centre, matrix, world_from_camera


poses = st.fixed_dictionaries({
    "sensor_lat_deg": st.floats(42.0, 60.0),
    "sensor_lon_deg": st.floats(-140.0, -60.0),
    "platform_heading_deg": st.floats(0.0, 360.0, exclude_max=True),
    "platform_pitch_deg": st.floats(-15.0, 15.0),
    "platform_roll_deg": st.floats(-15.0, 15.0),
    "sensor_rel_azimuth_deg": st.floats(0.0, 360.0, exclude_max=True),
    "sensor_rel_elevation_deg": st.floats(-90.0, -15.0),
    "sensor_rel_roll_deg": st.floats(0.0, 360.0, exclude_max=True),
    "hfov_deg": st.floats(10.0, 90.0),
})


@settings(max_examples=300, deadline=None)
@given(pose=poses, height_m=st.floats(20.0, 400.0), ground_elev_m=st.floats(-50.0, 2000.0),
       size=st.sampled_from([(640, 480), (1280, 720), (1920, 1080), (4000, 3000), (720, 1280)]),
       fu=st.floats(0.0, 1.0), fv=st.floats(0.0, 1.0), send_vfov=st.booleans())
def test_random_pose_finds_the_point_projectpoints_sees(pose, height_m, ground_elev_m, size, fu, fv, send_vfov):
    width, height = size
    if send_vfov:
        pose["vfov_deg"] = math.degrees(2 * math.atan(math.tan(math.radians(pose["hfov_deg"] / 2)) * height / width))
    t = Telemetry(**pose, sensor_alt_m=ground_elev_m + height_m)
    rvec, tvec, matrix, world_from_camera = opencv_camera(t, width, height, height_m)

    # A ground point somewhere in the frame: along the camera ray of a random normalised pixel.
    ray = world_from_camera @ np.array([(fu - 0.5) * width / matrix[0, 0], (fv - 0.5) * height / matrix[1, 1], 1.0])
    assume(ray[2] > 0)
    north_m, east_m = height_m * ray[:2] / ray[2]
    # on the tangent plane (slant range < 1 km; beyond it rays are cast on the curved Earth, tested below)
    assume(math.hypot(north_m, east_m) < min(20 * height_m, 900.0))
    lon, lat, _ = GEOD.fwd(t.sensor_lon_deg, t.sensor_lat_deg, math.degrees(math.atan2(east_m, north_m)),
                           math.hypot(north_m, east_m))

    pixel, _ = cv2.projectPoints(np.array([[north_m, east_m, 0.0]]), rvec, tvec, matrix, None)
    u, v = pixel.reshape(2)
    points = georeference_drone([box_at(u, v)], width, height, t, ground_elev_m, sigmas=NO_ERROR)

    assert points.valid.tolist() == [True]
    assert distance_m(lat, lon, points.lat_deg[0], points.lon_deg[0]) < 0.01
    assert points.range_m[0] == pytest.approx(math.sqrt(north_m**2 + east_m**2 + height_m**2), rel=1e-6)


# Uncertainty

def test_covariance_grows_with_range():
    # Looking 20 deg down: the bottom of the image is near, the top far.
    near, far = box_at(W / 2, H), box_at(W / 2, H / 2 - 100)
    points = georeference_drone([near, far], W, H, telemetry(sensor_rel_elevation_deg=-20.0), ground_elev_m=0.0)
    assert points.valid.all() and points.range_m[1] > points.range_m[0]
    trace = np.trace(points.cov_en_m2, axis1=1, axis2=2)
    assert trace[1] > 2 * trace[0]
    for cov in points.cov_en_m2:
        np.testing.assert_array_equal(cov, cov.T)
        assert np.linalg.eigvalsh(cov).min() > 0


def test_covariance_is_elongated_along_the_line_of_sight():
    # Oblique view to the north: range error (north) exceeds cross-range error (east).
    points = georeference_drone([box_at(W / 2, H / 2)], W, H, telemetry(sensor_rel_elevation_deg=-15.0),
                                ground_elev_m=0.0)
    cov = points.cov_en_m2[0]
    assert cov[1, 1] > 3 * cov[0, 0]


def test_position_error_alone_is_isotropic():
    sigmas = GeorefSigmas(pixel_sigma_px=0.0, attitude_sigma_deg=0.0, position_sigma_m=4.0, altitude_sigma_m=0.0)
    points = georeference_drone([box_at(10, 700)], W, H, telemetry(sensor_rel_elevation_deg=-30.0), 0.0, sigmas)
    np.testing.assert_allclose(points.cov_en_m2[0], 16.0 * np.eye(2), atol=1e-12)


def _ground_en(t: Telemetry, u: float, v: float) -> np.ndarray:
    p = georeference_drone([box_at(u, v)], W, H, t, ground_elev_m=0.0, sigmas=NO_ERROR)
    return np.array(offset_m(LAT, LON, p.lat_deg[0], p.lon_deg[0]))


@pytest.mark.parametrize("rel_elevation_deg", [-80.0, -35.0, -12.0])
def test_covariance_matches_finite_differences_of_the_inputs(rel_elevation_deg):
    base = dict(platform_heading_deg=100.0, platform_pitch_deg=4.0, platform_roll_deg=-3.0,
                sensor_rel_azimuth_deg=20.0, sensor_rel_elevation_deg=rel_elevation_deg, sensor_rel_roll_deg=2.0)
    u, v = 900.0, 500.0
    sigmas = GeorefSigmas(pixel_sigma_px=2.0, attitude_sigma_deg=0.5, position_sigma_m=0.0, altitude_sigma_m=3.0)
    step = 1e-3
    columns = []
    for name in list(base) + ["sensor_alt_m"]:
        sigma = sigmas.altitude_sigma_m if name == "sensor_alt_m" else sigmas.attitude_sigma_deg
        value = base.get(name, 100.0)
        plus = _ground_en(telemetry(**{**base, name: value + step}), u, v)
        minus = _ground_en(telemetry(**{**base, name: value - step}), u, v)
        columns.append(sigma * (plus - minus) / (2 * step))
    for du, dv in ((step, 0.0), (0.0, step)):
        plus = _ground_en(telemetry(**base), u + du, v + dv)
        minus = _ground_en(telemetry(**base), u - du, v - dv)
        columns.append(sigmas.pixel_sigma_px * (plus - minus) / (2 * step))
    jacobian = np.stack(columns, axis=1)
    expected = jacobian @ jacobian.T

    points = georeference_drone([box_at(u, v)], W, H, telemetry(**base), ground_elev_m=0.0, sigmas=sigmas)
    np.testing.assert_allclose(points.cov_en_m2[0], expected, rtol=1e-3, atol=1e-4)


# Telemetry problems

@pytest.mark.parametrize("field", list(REQUIRED_TELEMETRY))
def test_missing_telemetry_field_is_named(field):
    with pytest.raises(GeorefError, match=field):
        georeference_drone([box_at(1, 1)], W, H, telemetry(**{field: None}), ground_elev_m=0.0)


def test_no_telemetry_at_all_is_an_error():
    with pytest.raises(GeorefError, match="no telemetry"):
        georeference_drone([box_at(1, 1)], W, H, None, ground_elev_m=0.0)


def test_missing_relative_roll_means_zero():
    boxes = [box_at(100, 600), box_at(1000, 300)]
    sent = georeference_drone(boxes, W, H, telemetry(sensor_rel_elevation_deg=-40.0, sensor_rel_roll_deg=0.0), 0.0)
    absent = georeference_drone(boxes, W, H, telemetry(sensor_rel_elevation_deg=-40.0, sensor_rel_roll_deg=None), 0.0)
    np.testing.assert_array_equal(sent.lat_deg, absent.lat_deg)


def test_sensor_at_or_below_the_ground_is_an_error():
    with pytest.raises(GeorefError, match="not above the ground"):
        georeference_drone([box_at(1, 1)], W, H, telemetry(sensor_alt_m=100.0), ground_elev_m=100.0)


def test_a_180_degree_field_of_view_is_not_a_pinhole():
    with pytest.raises(GeorefError, match="hfov_deg"):
        georeference_drone([box_at(1, 1)], W, H, telemetry(hfov_deg=180.0), ground_elev_m=0.0)


# Fixed camera with a pose

def test_fixed_pose_centre_lies_along_heading_at_height_over_tan_tilt():
    pose = FixedPose(lat_deg=LAT, lon_deg=LON, height_m=12.0, heading_deg=45.0, tilt_deg=20.0, hfov_deg=70.0)
    points = georeference_fixed_pose([box_at(W / 2, H / 2)], W, H, pose, ground_elev_m=30.0, sigmas=NO_ERROR)
    azimuth, _, distance = GEOD.inv(LON, LAT, points.lon_deg[0], points.lat_deg[0])
    assert distance == pytest.approx(12.0 / math.tan(math.radians(20.0)), abs=0.01)
    assert azimuth == pytest.approx(45.0, abs=1e-4)


def test_fixed_pose_intrinsics_of_the_same_camera_give_the_same_points():
    pose = FixedPose(lat_deg=LAT, lon_deg=LON, height_m=8.0, heading_deg=300.0, tilt_deg=15.0, hfov_deg=90.0)
    focal = W / 2 / math.tan(math.radians(45.0))
    # Intrinsics calibrated at twice the delivered resolution: they are scaled to the frame.
    intrinsics = CameraIntrinsics(width_px=2 * W, height_px=2 * H, fx_px=2 * focal, fy_px=2 * focal, cx_px=W, cy_px=H)
    boxes = [box_at(100, 700), box_at(640, 400), box_at(1200, 600)]
    by_fov = georeference_fixed_pose(boxes, W, H, pose, 0.0, None, NO_ERROR)
    by_intrinsics = georeference_fixed_pose(boxes, W, H, pose, 0.0, intrinsics, NO_ERROR)
    np.testing.assert_allclose(by_intrinsics.lat_deg, by_fov.lat_deg, rtol=0, atol=1e-10)
    np.testing.assert_allclose(by_intrinsics.lon_deg, by_fov.lon_deg, rtol=0, atol=1e-10)


def test_fixed_pose_with_distortion_finds_the_point_projectpoints_sees():
    pose = FixedPose(lat_deg=LAT, lon_deg=LON, height_m=15.0, heading_deg=10.0, tilt_deg=25.0, hfov_deg=80.0)
    intrinsics = CameraIntrinsics(width_px=W, height_px=H, fx_px=760.0, fy_px=765.0, cx_px=652.0, cy_px=349.0,
                                  distortion=(-0.28, 0.09, 0.001, -0.0005, -0.012))
    camera = rotation_zyx(pose.heading_deg, -pose.tilt_deg, 0.0)
    world_from_camera = camera @ NED_FROM_CAMERA_AXES
    camera_from_world = world_from_camera.T
    matrix = np.array([[760.0, 0, 652.0], [0, 765.0, 349.0], [0, 0, 1]])
    ground = np.array([[40.0, 5.0, 0.0], [25.0, -8.0, 0.0], [90.0, 30.0, 0.0]])  # north, east, down (m)
    tvec = -camera_from_world @ np.array([0.0, 0.0, -pose.height_m])
    pixels, _ = cv2.projectPoints(ground, rotation_vector(camera_from_world), tvec, matrix,
                                  np.array(intrinsics.distortion))
    pixels = pixels.reshape(-1, 2)
    assert ((pixels >= 0) & (pixels <= [W, H])).all()
    points = georeference_fixed_pose([box_at(u, v) for u, v in pixels], W, H, pose, 0.0, intrinsics, NO_ERROR)
    for (north, east, _), lat, lon in zip(ground, points.lat_deg, points.lon_deg, strict=True):
        assert offset_m(LAT, LON, lat, lon) == (pytest.approx(east, abs=0.01), pytest.approx(north, abs=0.01))


# Fixed camera with ground control points

def gcp_camera():
    """A camera 10 m up looking north-east, 12 deg down; world = north/east/down metres."""
    camera = rotation_zyx(40.0, -12.0, 1.5) @ NED_FROM_CAMERA_AXES
    camera_from_world = camera.T
    tvec = -camera_from_world @ np.array([0.0, 0.0, -10.0])
    matrix = np.array([[900.0, 0, W / 2], [0, 900.0, H / 2], [0, 0, 1]])
    return rotation_vector(camera_from_world), tvec, matrix


def ground_truth(north_east_m: np.ndarray):
    """Lat/lon and pixels of ground points given in metres from the camera's foot."""
    rvec, tvec, matrix = gcp_camera()
    world = np.c_[north_east_m, np.zeros(len(north_east_m))]
    pixels, _ = cv2.projectPoints(world, rvec, tvec, matrix, None)
    azimuth = np.degrees(np.arctan2(north_east_m[:, 1], north_east_m[:, 0]))
    lon, lat, _ = GEOD.fwd(np.full(len(world), LON), np.full(len(world), LAT), azimuth, np.hypot(*north_east_m.T))
    return pixels.reshape(-1, 2), np.asarray(lat), np.asarray(lon)


@pytest.mark.parametrize("ground_m", [
    [[60, 20], [80, 70], [30, 50], [150, 140]],                            # exactly 4
    [[60, 20], [80, 70], [30, 50], [150, 140], [45, 35], [200, 100]],      # more: least squares
])
def test_homography_maps_the_control_points_back(ground_m):
    pixels, lat, lon = ground_truth(np.array(ground_m, dtype=float))
    gcps = [GroundControlPoint(u_px=u, v_px=v, lat_deg=a, lon_deg=o) for (u, v), a, o in zip(pixels, lat, lon, strict=True)]
    points = georeference_homography([box_at(u, v) for u, v in pixels], gcps, pixel_sigma_px=1.0)
    assert points.valid.all() and np.isnan(points.range_m).all()
    for a, o, pa, po in zip(lat, lon, points.lat_deg, points.lon_deg, strict=True):
        assert distance_m(a, o, pa, po) < 0.01

    # A point between the control points comes out where the camera sees it, too.
    probe_pixels, probe_lat, probe_lon = ground_truth(np.array([[70.0, 45.0]]))
    probe = georeference_homography([box_at(*probe_pixels[0])], fit_homography(gcps))
    assert distance_m(probe_lat[0], probe_lon[0], probe.lat_deg[0], probe.lon_deg[0]) < 0.01


def test_homography_point_beyond_its_horizon_is_invalid():
    pixels, lat, lon = ground_truth(np.array([[60, 20], [80, 70], [30, 50], [150, 140]], dtype=float))
    gcps = [GroundControlPoint(u_px=u, v_px=v, lat_deg=a, lon_deg=o) for (u, v), a, o in zip(pixels, lat, lon, strict=True)]
    homography = fit_homography(gcps)
    assert isinstance(homography, GroundHomography)
    # 12 deg down with f = 900 px: the horizon is 191 px above the centre; row 0 is 360 px above it.
    above, below = [W / 2, 60.0], [W / 2, H / 2]
    w = homography.matrix[2] @ [*above, 1.0], homography.matrix[2] @ [*below, 1.0]
    assert w[0] < 0 < w[1]
    points = georeference_homography([box_at(*above), box_at(*below)], homography)
    assert points.valid.tolist() == [False, True]
    assert np.isnan([points.lat_deg[0], points.lon_deg[0]]).all() and "horizon" in points.reason[0]


def test_homography_covariance_grows_with_distance():
    pixels, lat, lon = ground_truth(np.array([[60, 20], [80, 70], [30, 50], [150, 140]], dtype=float))
    gcps = [GroundControlPoint(u_px=u, v_px=v, lat_deg=a, lon_deg=o) for (u, v), a, o in zip(pixels, lat, lon, strict=True)]
    near_far, _, _ = ground_truth(np.array([[20.0, 15.0], [300.0, 250.0]]))
    points = georeference_homography([box_at(u, v) for u, v in near_far], gcps, pixel_sigma_px=2.0)
    trace = np.trace(points.cov_en_m2, axis1=1, axis2=2)
    assert trace[1] > 10 * trace[0] > 0


@pytest.mark.parametrize("last", [(4, 4), (4, 1)])  # four in a line; three of four in a line
def test_collinear_control_points_are_refused(last):
    grid = [(1, 1), (2, 2), (3, 3), last]
    gcps = [GroundControlPoint(u_px=100.0 * i, v_px=100.0 * j, lat_deg=LAT + 1e-4 * j, lon_deg=LON + 1e-4 * i)
            for i, j in grid]
    with pytest.raises(GeorefError, match="no homography"):
        fit_homography(gcps)


def test_too_few_control_points_are_refused():
    gcps = [GroundControlPoint(u_px=10.0 * i, v_px=5.0 * i * i, lat_deg=LAT + 1e-4 * i, lon_deg=LON) for i in range(3)]
    with pytest.raises(GeorefError, match="at least 4"):
        georeference_homography([box_at(1, 1)], gcps)

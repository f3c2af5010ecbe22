"""The simulator's pinhole camera: MISB pointing, projection, rays, ground intersection."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sim.camera import Camera

W, H = 640, 480

poses = st.fixed_dictionaries(
    {
        "position_m": st.tuples(st.floats(-5000, 5000), st.floats(-5000, 5000), st.floats(20, 400)),
        "platform_heading_deg": st.floats(0, 360),
        "platform_pitch_deg": st.floats(-20, 20),
        "platform_roll_deg": st.floats(-20, 20),
        "sensor_rel_azimuth_deg": st.floats(0, 360),
        "sensor_rel_elevation_deg": st.floats(-90, -10),
        "sensor_rel_roll_deg": st.floats(-10, 10),
        "hfov_deg": st.floats(10, 90),
    }
)


def misb(**pose) -> Camera:
    return Camera.from_misb(width_px=W, height_px=H, **pose)


@settings(max_examples=300, deadline=None)
@given(pose=poses, fu=st.floats(0, 1), fv=st.floats(0, 1))
def test_project_then_ground_points_returns_the_ground_point(pose, fu, fv):
    camera = misb(**pose)
    point, valid = camera.ground_points(np.array([[fu * W, fv * H]]))
    assume(valid[0] and np.linalg.norm(point[0, :2] - camera.position_m[:2]) < 20_000.0)

    uv, in_front = camera.project(point)
    again, valid_again = camera.ground_points(uv)

    assert in_front[0] and valid_again[0]
    np.testing.assert_allclose(uv[0], [fu * W, fv * H], rtol=0, atol=1e-6)
    assert np.linalg.norm(again[0] - point[0]) < 0.01


@settings(max_examples=100, deadline=None)
@given(pose=poses, seed=st.integers(0, 2**32 - 1))
def test_project_matches_cv2_project_points(pose, seed):
    camera = misb(**pose)
    rng = np.random.default_rng(seed)
    depth = rng.uniform(5.0, 3000.0, 50)
    in_cam = np.column_stack((rng.uniform(-1.5, 1.5, (50, 2)) * depth[:, None], depth))
    points = in_cam @ camera.r_world_from_cam.T + camera.position_m
    rvec, tvec = camera.opencv_rvec_tvec()

    expected, _ = cv2.projectPoints(points, rvec, tvec, camera.K, None)
    uv, in_front = camera.project(points)

    assert in_front.all()
    np.testing.assert_allclose(uv, expected.reshape(-1, 2), rtol=0, atol=1e-6)


def test_nadir_camera_puts_east_on_the_right_edge_and_north_up():
    camera = Camera.from_misb([0.0, 0.0, 100.0], 0, 0, 0, 0, -90, 0, W, H, 90.0)

    uv, in_front = camera.project(np.array([[100.0, 0.0, 0.0], [0.0, 50.0, 0.0], [0.0, 0.0, 0.0]]))

    assert in_front.all()
    np.testing.assert_allclose(uv[0], [W, H / 2], atol=1e-9)  # 100 m east at 100 m with hfov 90
    assert uv[1, 0] == pytest.approx(W / 2) and uv[1, 1] < H / 2  # north is image-up
    np.testing.assert_allclose(uv[2], [W / 2, H / 2], atol=1e-9)
    assert camera.ground_sample_distance_m(np.array([0.0, 0.0, 0.0])) == pytest.approx(100.0 / camera.fx_px, rel=1e-6)
    gsd = camera.ground_sample_distance_m(np.array([[0.0, 0.0, 50.0], [0.0, 0.0, 200.0]]))
    assert gsd.shape == (2,) and gsd[0] == pytest.approx(50.0 / camera.fx_px, rel=1e-6) and np.isnan(gsd[1])


def test_fixed_camera_horizon_is_fx_tan_tilt_above_the_centre_row():
    camera = Camera.fixed([0.0, 0.0, 30.0], 0.0, 10.0, W, H, 60.0)
    horizon_v = H / 2 - camera.fx_px * np.tan(np.radians(10.0))

    on_horizon = camera.rays(np.array([[W / 2, horizon_v], [0.0, horizon_v], [W, horizon_v]]))
    far_north, _ = camera.project(np.array([[0.0, 1e9, 30.0]]))

    np.testing.assert_allclose(on_horizon[:, 2], 0.0, atol=1e-12)
    assert far_north[0, 1] == pytest.approx(horizon_v, abs=1e-6)
    assert camera.ground_points(np.array([[W / 2, horizon_v + 1.0]]))[1][0]


def test_rays_at_or_above_the_horizon_are_invalid_not_at_infinity():
    camera = Camera.fixed([0.0, 0.0, 30.0], 45.0, 0.0, W, H, 60.0)  # horizon on the middle row

    points, valid = camera.ground_points(np.array([[W / 2, H / 2], [W / 2, 10.0], [W / 2, H - 10.0]]))

    assert valid.tolist() == [False, False, True]
    assert np.isnan(points[:2]).all() and not np.isinf(points).any()
    assert points[2, 2] == 0.0


def test_misb_conventions():
    centre = np.array([[W / 2, H / 2]])
    east = Camera.from_misb([0, 0, 50], 90, 0, 0, 0, 0, 0, W, H, 60)
    np.testing.assert_allclose(east.rays(centre)[0], [1, 0, 0], atol=1e-12)
    # horizon on the middle row, image right = south when looking east
    assert east.rays(np.array([[W, H / 2]]))[0, 1] < 0 and abs(east.rays(np.array([[W, H / 2]]))[0, 2]) < 1e-12

    s10 = np.sin(np.radians(10))
    nose_up = Camera.from_misb([0, 0, 50], 0, 10, 0, 0, -90, 0, W, H, 60).rays(centre)[0]
    np.testing.assert_allclose(nose_up, [0, s10, -np.cos(np.radians(10))], atol=1e-12)  # belly turns forward
    right_wing_down = Camera.from_misb([0, 0, 50], 0, 0, 10, 0, -90, 0, W, H, 60).rays(centre)[0]
    np.testing.assert_allclose(right_wing_down, [-s10, 0, -np.cos(np.radians(10))], atol=1e-12)
    rel_az = Camera.from_misb([0, 0, 50], 30, 0, 0, 60, 0, 0, W, H, 60).rays(centre)[0]
    np.testing.assert_allclose(rel_az, [1, 0, 0], atol=1e-12)  # 30 + 60 clockwise from north = east
    rolled = Camera.from_misb([0, 0, 50], 0, 0, 0, 0, 0, 90, W, H, 60)
    assert rolled.rays(np.array([[W, H / 2]]))[0, 2] < -0.4  # clockwise roll: image right looks down

    fixed = Camera.fixed([1, 2, 3], 123, 17, W, H, 40)
    via_misb = Camera.from_misb([1, 2, 3], 123, 0, 0, 0, -17, 0, W, H, 40)
    np.testing.assert_allclose(fixed.r_world_from_cam, via_misb.r_world_from_cam, atol=1e-15)


def test_intrinsics_and_footprint_of_a_nadir_camera():
    camera = Camera.from_misb([10.0, 20.0, 100.0], 0, 0, 0, 0, -90, 0, W, H, 90.0)

    assert camera.fx_px == pytest.approx(W / 2)
    assert camera.vfov_deg == pytest.approx(np.degrees(2 * np.arctan(H / W)))
    np.testing.assert_allclose(camera.K, [[W / 2, 0, W / 2], [0, W / 2, H / 2], [0, 0, 1]])
    polygon = camera.footprint()
    assert polygon.shape == (64, 2)
    np.testing.assert_allclose(polygon.min(axis=0), [10.0 - 100.0, 20.0 - 75.0], atol=1e-9)
    np.testing.assert_allclose(polygon.max(axis=0), [10.0 + 100.0, 20.0 + 75.0], atol=1e-9)


def test_footprint_of_an_oblique_camera_is_cut_at_max_range():
    camera = Camera.fixed([0.0, 0.0, 20.0], 0.0, 5.0, W, H, 60.0)  # the top of the image sees the sky

    polygon = camera.footprint(max_range_m=2000.0)

    assert np.linalg.norm(polygon, axis=1).max() == pytest.approx(2000.0)
    assert polygon[:, 1].min() > 0.0  # everything seen lies ahead (north)


def test_points_behind_the_camera_are_not_in_front_and_have_no_pixels():
    camera = Camera.fixed([0.0, 0.0, 20.0], 0.0, 5.0, W, H, 60.0)

    uv, in_front = camera.project(np.array([[0.0, -100.0, 0.0], [0.0, 100.0, 0.0]]))

    assert in_front.tolist() == [False, True]
    assert np.isnan(uv[0]).all() and np.isfinite(uv[1]).all()


def test_rejects_a_matrix_that_is_not_a_rotation():
    with pytest.raises(ValueError, match="rotation"):
        Camera(W, H, 60.0, np.zeros(3), np.diag([1.0, 1.0, -1.0]))
    with pytest.raises(ValueError, match="hfov"):
        Camera(W, H, 180.0, np.zeros(3), np.eye(3))

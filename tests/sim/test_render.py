"""The renderer: deterministic frames, truth boxes that match the camera, a visible border vista."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from shapely.geometry import LineString, box

from sim.camera import Camera
from sim.render import render_frame
from sim.texture import ground_colour, ground_kind
from sim.world_map import TARGET_SIZE_M, GroundKind, TargetPose, WorldMap

W, H = 640, 480

# The border runs east-west along n = 0: forest west of e = 0, fields east of it, a lake across
# the line at e = 500..800 and an asphalt road north-south at e = 300.
WORLD = WorldMap(
    border=LineString([(-1000.0, 0.0), (1000.0, 0.0)]),
    water=box(500.0, -200.0, 800.0, 200.0),
    roads=((LineString([(300.0, -1000.0), (300.0, 1000.0)]), 7.0),),
    forest=box(-1000.0, -1000.0, 0.0, 1000.0),
    texture_seed=11,
    bounds_m=(-1000.0, -1000.0, 1000.0, 1000.0),
)

# A tower 200 m south of the border looking north at the field, slightly down.
TOWER = Camera.fixed([200.0, -200.0, 10.0], 0.0, 3.0, W, H, 40.0)


def person(target_id: int, e: float, n: float, heading_deg: float = 90.0) -> TargetPose:
    return TargetPose(target_id, "person", (e, n), heading_deg, appearance=target_id)


def test_render_is_deterministic_for_a_seed():
    targets = [person(1, 200.0, 0.0), TargetPose(2, "vehicle", (300.0, -20.0), 0.0, 3)]

    a = render_frame(TOWER, WORLD, targets, rng=np.random.default_rng(5))
    b = render_frame(TOWER, WORLD, targets, rng=np.random.default_rng(5))
    c = render_frame(TOWER, WORLD, targets, rng=np.random.default_rng(6))

    assert a.image.shape == (H, W, 3) and a.image.dtype == np.uint8
    assert np.array_equal(a.image, b.image) and a.jpeg == b.jpeg and a.boxes == b.boxes
    assert not np.array_equal(a.image, c.image)  # only the sensor noise differs
    assert a.boxes == c.boxes
    decoded = cv2.imdecode(np.frombuffer(a.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (H, W, 3) and np.abs(decoded.astype(int) - a.image).mean() < 4.0


def test_person_200_m_away_has_the_box_the_camera_projects():
    frame = render_frame(TOWER, WORLD, [person(1, 200.0, 0.0)])

    (truth,) = frame.boxes
    x0, y0, x1, y1 = truth.xyxy_px
    gsd_m = TOWER.ground_sample_distance_m(np.array([200.0, 0.0, 0.0]))
    assert truth.target_id == 1 and truth.kind == "person" and truth.visible_fraction == 1.0
    assert y1 - y0 == pytest.approx(TARGET_SIZE_M["person"][2] / gsd_m, rel=0.05)
    assert x1 - x0 == pytest.approx(TARGET_SIZE_M["person"][1] / gsd_m, rel=0.25)
    feet, _ = TOWER.project(np.array([[200.0, 0.0, 0.0]]))
    assert x0 < feet[0, 0] < x1 and y1 == pytest.approx(feet[0, 1], abs=0.5)  # standing on its ground point


def test_box_pixels_differ_from_the_background():
    target = person(1, 200.0, 0.0)
    with_target = render_frame(TOWER, WORLD, [target], rng=np.random.default_rng(1))
    background = render_frame(TOWER, WORLD, [], rng=np.random.default_rng(1))

    x0, y0, x1, y1 = (int(round(v)) for v in with_target.boxes[0].xyxy_px)
    inside = np.abs(with_target.image[y0:y1, x0:x1].astype(int) - background.image[y0:y1, x0:x1]).mean()
    far_away = np.abs(with_target.image[:100].astype(int) - background.image[:100]).mean()

    assert inside > 15.0
    assert far_away == 0.0


def test_targets_behind_or_outside_the_camera_have_no_box():
    behind = person(1, 200.0, -400.0)
    outside = person(2, 600.0, 0.0)  # 63 degrees right of the line of sight, hfov 40
    seen = person(3, 200.0, 0.0)

    frame = render_frame(TOWER, WORLD, [behind, outside, seen])

    assert [b.target_id for b in frame.boxes] == [3]


def test_a_target_across_the_image_edge_is_clipped():
    nadir = Camera.from_misb([0.0, 0.0, 60.0], 0, 0, 0, 0, -90, 0, W, H, 60.0)
    half_width_m = 60.0 * np.tan(np.radians(30.0))
    vehicle = TargetPose(4, "vehicle", (half_width_m, 0.0), 0.0, 2)  # centred on the right edge

    (truth,) = render_frame(nadir, WORLD, [vehicle]).boxes

    assert truth.xyxy_px[2] == W
    assert 0.3 < truth.visible_fraction < 0.7


def test_vehicle_and_boat_boxes_cover_their_size_from_above():
    nadir = Camera.from_misb([650.0, 0.0, 80.0], 0, 0, 0, 0, -90, 0, W, H, 60.0)
    boat = TargetPose(5, "boat", (650.0, 0.0), 90.0, 1)  # length along east = image x

    (truth,) = render_frame(nadir, WORLD, [boat]).boxes
    x0, y0, x1, y1 = truth.xyxy_px
    gsd_m = nadir.ground_sample_distance_m(np.array([650.0, 0.0, 0.0]))

    assert truth.kind == "boat"
    assert x1 - x0 == pytest.approx(TARGET_SIZE_M["boat"][0] / gsd_m, rel=0.1)
    assert y1 - y0 == pytest.approx(TARGET_SIZE_M["boat"][1] / gsd_m, rel=0.1)


def test_border_vista_is_lighter_than_the_forest_along_the_line():
    nadir = Camera.from_misb([-400.0, 0.0, 150.0], 0, 0, 0, 0, -90, 0, W, H, 60.0)
    frame = render_frame(nadir, WORLD, [])

    u, v = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    ground, _ = nadir.ground_points(np.column_stack((u.ravel(), v.ravel())))
    north = np.abs(ground[:, 1]).reshape(H, W)
    grey = frame.image.astype(float).mean(axis=2)

    assert grey[north < 5.0].mean() > grey[north > 12.0].mean() + 30.0


def test_ground_kinds_follow_the_map():
    e = np.array([-400.0, -400.0, 100.0, 650.0, 300.0, 302.0, 303.1, 50.0])
    n = np.array([0.0, 30.0, 30.0, 0.0, 50.0, 50.0, 50.0, 0.0])

    kinds = ground_kind(WORLD, e, n).tolist()

    expected = [
        GroundKind.VISTA,
        GroundKind.FOREST,
        GroundKind.FIELD,
        GroundKind.WATER,  # the vista is not cleared across water
        GroundKind.ASPHALT,
        GroundKind.ASPHALT,
        GroundKind.ROAD_LINE,  # 0.3 m in from the edge of the 7 m road
        GroundKind.MONUMENT,  # every 300 m along the line, from 150 m after its start at e = -1000
    ]
    assert kinds == expected


def test_ground_colour_is_a_pure_function_of_position():
    rng = np.random.default_rng(3)
    e, n = rng.uniform(-900, 900, 2000), rng.uniform(-900, 900, 2000)
    order = rng.permutation(2000)

    colours = ground_colour(WORLD, e, n)

    assert colours.shape == (2000, 3) and colours.dtype == np.uint8
    assert np.array_equal(ground_colour(WORLD, e[order], n[order]), colours[order])
    assert np.array_equal(ground_colour(WORLD, e[:5], n[:5]), colours[:5])

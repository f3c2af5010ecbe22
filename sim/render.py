"""Render one camera frame of a scenario with exact ground-truth boxes.

Inverse mapping for the ground: every pixel's ray (``Camera.rays``) meets the flat ground, which
is coloured by ``sim.texture`` and hazed with distance; rays at or above the horizon see the sky.
Targets are then drawn as sun-shaded convex blocks (people: legs, torso, head; vehicles: body
and cabin; boats: hull and cabin) with their shadows on the ground, far to near, followed by a
slight blur, Gaussian sensor noise and JPEG encoding. Not modelled: occlusion of targets by trees
(forest is ground texture), targets straddling the image plane (dropped).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from sim.camera import Camera
from sim.texture import ground_colour
from sim.world_map import TargetPose, WorldMap

_SHIFT = 4  # fixed-point bits for sub-pixel polygon drawing
_MAX_GROUND_RANGE_M = 50_000.0  # farther ground is drawn as horizon haze
_VISIBILITY_M = 12_000.0
_HAZE_BGR = np.array((212, 204, 196), np.float32)
_SKY_BGR = np.array((205, 152, 112), np.float32)
_SHADOW_FACTOR = 0.5
_BLUR_SIGMA_PX = 0.6

_CLOTHES = ((40, 60, 110), (90, 90, 40), (150, 30, 30), (28, 28, 30), (200, 200, 190), (60, 110, 60), (190, 140, 40), (110, 70, 45))
_TROUSERS = ((40, 48, 66), (30, 30, 32), (84, 78, 60), (60, 66, 46))
_SKIN = ((224, 172, 135), (198, 134, 66), (141, 85, 36), (240, 195, 160))
_PAINT = ((200, 200, 202), (238, 238, 236), (24, 24, 26), (140, 22, 22), (30, 50, 112), (92, 92, 98), (40, 70, 42), (160, 140, 100))
_HULL = ((238, 238, 232), (232, 110, 30), (246, 246, 240), (200, 62, 30))
_GLASS = (34, 44, 56)
_TYRE = (26, 26, 28)


@dataclass(frozen=True)
class TruthBox:
    """Exact box of a target in pixels: ``xyxy_px`` (x0, y0, x1, y1) clipped to the image.

    ``visible_fraction`` = clipped area / unclipped area (1.0 when the box lies inside the image).
    """

    target_id: int
    kind: str
    xyxy_px: tuple[float, float, float, float]
    visible_fraction: float


@dataclass(frozen=True)
class RenderedFrame:
    """``image`` (H, W, 3) uint8 BGR, the same frame as ``jpeg`` bytes, and one ``TruthBox`` per visible target."""

    image: np.ndarray
    jpeg: bytes
    boxes: tuple[TruthBox, ...]


@dataclass(frozen=True)
class _Part:
    """A convex block: ``outline`` (k, 2) (forward, right) metres about its centre, extruded z0..z1 m."""

    outline: tuple[tuple[float, float], ...]
    offset_m: float
    z0_m: float
    z1_m: float
    side_rgb: tuple[int, int, int]
    top_rgb: tuple[int, int, int]
    bottom_scale: float = 1.0
    top_scale: float = 1.0


def _rect(length_m: float, width_m: float) -> tuple[tuple[float, float], ...]:
    a, b = length_m / 2.0, width_m / 2.0
    return ((-a, -b), (a, -b), (a, b), (-a, b))


def _parts(target: TargetPose) -> list[_Part]:
    """The blocks of a target, bottom to top, with colours picked by its ``appearance`` seed."""
    pick = np.random.default_rng([target.appearance & 0xFFFFFFFF, 7]).integers(0, 1 << 30, 4)
    if target.kind == "person":
        clothes, trousers, skin = _CLOTHES[pick[0] % 8], _TROUSERS[pick[1] % 4], _SKIN[pick[2] % 4]
        return [
            _Part(_rect(0.28, 0.36), 0.0, 0.0, 0.85, trousers, trousers),
            _Part(_rect(0.5, 0.5), 0.0, 0.85, 1.5, clothes, clothes, 0.8, 0.9),
            _Part(_rect(0.22, 0.2), 0.0, 1.5, 1.75, skin, (45, 35, 28)),
        ]
    if target.kind == "vehicle":
        paint = _PAINT[pick[0] % 8]
        return [
            _Part(_rect(3.9, 1.84), 0.0, 0.0, 0.35, _TYRE, _TYRE),
            _Part(_rect(4.6, 1.9), 0.0, 0.3, 0.95, paint, paint),
            _Part(_rect(2.4, 1.8), -0.3, 0.95, 1.6, _GLASS, paint, 1.0, 0.8),
        ]
    hull = _HULL[pick[0] % 4]
    bow = ((-3.0, -1.15), (1.6, -1.15), (3.0, 0.0), (1.6, 1.15), (-3.0, 1.15))
    return [
        _Part(bow, 0.0, 0.0, 0.7, hull, tuple((np.add(hull, (205, 192, 168)) // 2).tolist()), 0.85, 1.0),
        _Part(_rect(1.6, 1.4), -0.6, 0.7, 1.2, _GLASS, (240, 240, 236), 1.0, 0.9),
    ]


def _part_rings(part: _Part, target: TargetPose, ground_z_m: float) -> tuple[np.ndarray, np.ndarray]:
    """(bottom, top) vertex rings (k, 3) of a block in ENU metres."""
    h = np.radians(target.heading_deg)
    forward, right = np.array([np.sin(h), np.cos(h)]), np.array([np.cos(h), -np.sin(h)])
    outline = np.asarray(part.outline)
    rings = []
    for scale, z in ((part.bottom_scale, part.z0_m), (part.top_scale, part.z1_m)):
        local = outline * scale
        xy = np.asarray(target.position_m) + np.outer(local[:, 0] + part.offset_m, forward) + np.outer(local[:, 1], right)
        rings.append(np.column_stack((xy, np.full(len(xy), ground_z_m + z))))
    return rings[0], rings[1]


def _sun_direction(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Unit ENU vector towards the sun (azimuth clockwise from north, elevation above the horizon)."""
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    return np.array([np.sin(az) * np.cos(el), np.cos(az) * np.cos(el), np.sin(el)])


def _fixed(uv: np.ndarray) -> np.ndarray:
    """Pixels (k, 2) -> int32 cv2 fixed-point points (cv2 puts pixel centres on integers)."""
    return np.round(np.clip(uv - 0.5, -(1 << 20), 1 << 20) * (1 << _SHIFT)).astype(np.int32)


def _ground_and_sky(camera: Camera, world: WorldMap, sun_elevation_deg: float) -> np.ndarray:
    """(H, W, 3) uint8 BGR: textured, hazed ground below the horizon, a sky gradient above."""
    w, h = camera.width_px, camera.height_px
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    d = camera.rays(np.column_stack((u.ravel(), v.ravel())))
    height_m = camera.position_m[2] - world.ground_z_m
    down = np.maximum(-d[:, 2], 1e-12)
    range_m = np.where(d[:, 2] < 0.0, height_m / down, np.inf)
    ground = np.flatnonzero((range_m < _MAX_GROUND_RANGE_M) & (height_m > 0.0))
    out = np.empty((len(d), 3), np.float32)
    elevation = np.clip(d[:, 2], 0.0, None)
    sky_t = (np.clip(elevation / 0.5, 0.0, 1.0) ** 0.6)[:, None]
    out[:] = _HAZE_BGR * (1.0 - sky_t) + _SKY_BGR * sky_t
    r = range_m[ground]
    points = camera.position_m + d[ground] * r[:, None]
    footprint_m = r / camera.fx_px / np.sqrt(down[ground])  # geometric mean of the pixel's sides on the ground
    light = float(np.clip(0.6 + 0.6 * np.sin(np.radians(sun_elevation_deg)), 0.35, 1.1))
    colour = ground_colour(world, points[:, 0], points[:, 1], footprint_m).astype(np.float32) * light
    haze = (1.0 - np.exp(-r / _VISIBILITY_M))[:, None].astype(np.float32)
    out[ground] = colour * (1.0 - haze) + _HAZE_BGR * haze
    return np.clip(out + 0.5, 0, 255).astype(np.uint8).reshape(h, w, 3)


def _truth_box(camera: Camera, target: TargetPose, vertices: np.ndarray) -> TruthBox | None:
    uv, in_front = camera.project(vertices)
    if not in_front.all():
        return None
    x0, y0 = uv.min(axis=0)
    x1, y1 = uv.max(axis=0)
    cx0, cy0 = max(x0, 0.0), max(y0, 0.0)
    cx1, cy1 = min(x1, float(camera.width_px)), min(y1, float(camera.height_px))
    clipped = max(cx1 - cx0, 0.0) * max(cy1 - cy0, 0.0)
    if clipped <= 0.0:
        return None
    full = (x1 - x0) * (y1 - y0)
    box = (float(cx0), float(cy0), float(cx1), float(cy1))
    return TruthBox(target.target_id, target.kind, box, float(min(clipped / full, 1.0)) if full > 0 else 1.0)


def _draw_shadow(mask: np.ndarray, camera: Camera, vertices: np.ndarray, sun: np.ndarray, ground_z_m: float) -> None:
    """Add the target's shadow (convex hull of its vertices cast along the sun onto the ground) to ``mask``."""
    origin = vertices[:, :2].mean(axis=0)
    cast = vertices[:, :2] - origin - np.outer(vertices[:, 2] - ground_z_m, sun[:2] / sun[2])
    hull = cv2.convexHull(cast.astype(np.float32)).reshape(-1, 2).astype(np.float64) + origin
    uv, in_front = camera.project(np.column_stack((hull, np.full(len(hull), ground_z_m))))
    if in_front.all():
        cv2.fillPoly(mask, [_fixed(uv)], 255, cv2.LINE_AA, _SHIFT)


def _draw_target(image: np.ndarray, camera: Camera, blocks: list[tuple[_Part, np.ndarray, np.ndarray]], sun: np.ndarray) -> None:
    """Draw the sunlit faces of each block that face the camera (back-face culling), bottom block first."""
    for part, bottom, top in blocks:
        centre = np.concatenate((bottom, top)).mean(axis=0)
        k = len(bottom)
        faces = [(top, part.top_rgb)] + [
            (np.array([bottom[i], bottom[(i + 1) % k], top[(i + 1) % k], top[i]]), part.side_rgb) for i in range(k)
        ]
        for face, rgb in faces:
            face_centre = face.mean(axis=0)
            normal = np.cross(face[1] - face[0], face[-1] - face[0])
            normal /= np.linalg.norm(normal)
            if normal @ (face_centre - centre) < 0.0:
                normal = -normal
            if normal @ (camera.position_m - face_centre) <= 0.0:
                continue
            shade = 0.5 + 0.6 * max(float(normal @ sun), 0.0)
            bgr = tuple(float(min(c * shade, 255.0)) for c in rgb[::-1])
            uv, _ = camera.project(face)
            cv2.fillPoly(image, [_fixed(uv)], bgr, cv2.LINE_AA, _SHIFT)


def truth_boxes(camera: Camera, world: WorldMap, targets: Sequence[TargetPose]) -> tuple[TruthBox, ...]:
    """The boxes :func:`render_frame` would give, without drawing the image (for evaluation)."""
    boxes = []
    for target in targets:
        blocks = [(part, *_part_rings(part, target, world.ground_z_m)) for part in _parts(target)]
        vertices = np.concatenate([np.concatenate((b, t)) for _, b, t in blocks])
        box = _truth_box(camera, target, vertices)
        if box is not None:
            boxes.append(box)
    return tuple(boxes)


def render_frame(
    camera: Camera,
    world: WorldMap,
    targets: Sequence[TargetPose],
    sun_azimuth_deg: float = 135.0,
    sun_elevation_deg: float = 40.0,
    noise_sigma: float = 2.0,
    rng: np.random.Generator | None = None,
    jpeg_quality: int = 90,
) -> RenderedFrame:
    """Render what ``camera`` sees of ``world`` and ``targets``, with exact truth boxes.

    Sun azimuth is clockwise from north and elevation above the horizon, in degrees (no shadows
    when the sun is below 1 degree); ``noise_sigma`` is the standard deviation of the sensor noise
    in 8-bit grey levels, drawn from ``rng`` (None = ``np.random.default_rng(0)``), so a frame is
    a pure function of its arguments and the generator's state. A target gets a box when it is
    wholly in front of the camera and its box overlaps the image; boxes follow ``targets`` order.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    image = _ground_and_sky(camera, world, sun_elevation_deg)
    sun = _sun_direction(sun_azimuth_deg, sun_elevation_deg)
    drawn: list[tuple[float, list]] = []
    boxes = []
    shadow = np.zeros(image.shape[:2], np.uint8)
    for target in targets:
        blocks = [(part, *_part_rings(part, target, world.ground_z_m)) for part in _parts(target)]
        vertices = np.concatenate([np.concatenate((b, t)) for _, b, t in blocks])
        if not camera.project(vertices)[1].all():
            continue
        if sun_elevation_deg > 1.0:
            _draw_shadow(shadow, camera, vertices, sun, world.ground_z_m)
        box = _truth_box(camera, target, vertices)
        if box is not None:
            boxes.append(box)
            drawn.append((float(np.linalg.norm(vertices.mean(axis=0) - camera.position_m)), blocks))
    if shadow.any():
        image = (image * (1.0 - (1.0 - _SHADOW_FACTOR) * shadow[..., None] / 255.0) + 0.5).astype(np.uint8)
    for _, blocks in sorted(drawn, key=lambda item: -item[0]):  # painter's order: far to near
        _draw_target(image, camera, blocks, sun)
    frame = cv2.GaussianBlur(image.astype(np.float32), (0, 0), _BLUR_SIGMA_PX)
    frame += rng.standard_normal(frame.shape, dtype=np.float32) * np.float32(noise_sigma)
    image = np.clip(frame + 0.5, 0, 255).astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    if not ok:
        raise RuntimeError("cv2.imencode failed to encode the frame as JPEG")
    return RenderedFrame(image, encoded.tobytes(), tuple(boxes))

"""Georeferencing: where on the ground each detected box stands, with an uncertainty in metres.

Three calibrations, one result (:class:`GroundPoints`, parallel arrays over the boxes):

- :func:`georeference_drone`: MISB ST 0601 telemetry of the frame (sensor position, platform
  heading/pitch/roll, sensor relative azimuth/elevation/roll, fields of view).
- :func:`georeference_fixed_pose`: a fixed camera's surveyed pose and field of view (or intrinsics).
- :func:`fuse.homography.georeference_homography`: a fixed camera's ground control points
  (pixel <-> lat/lon), in its own module.

Conventions (written from MISB ST 0601, independent of the simulator):

- Image: (0, 0) is the top-left corner of the image, x to the right, y down, continuous pixels;
  the ground contact of a box ``x1, y1, x2, y2`` is its bottom-centre ``((x1 + x2) / 2, y2)``.
  Pinhole camera with square pixels; the principal point is the image centre unless intrinsics
  say otherwise; HFOV/VFOV are full angles.
- Attitude, as rotations applied in this order to go from the world (north, east, down) to the
  sensor: platform heading (about down, clockwise from true north seen from above), pitch (nose
  up positive), roll (right wing down positive), then sensor relative azimuth (about the
  platform's down axis, clockwise from the nose), relative elevation (from the platform's
  horizontal plane, negative looks down) and relative roll (about the line of sight). The image
  looks along the line of sight, its x axis to the sensor's right, its y axis to the sensor's down.
- Ground: without a DEM, the ellipsoid raised by ``ground_elev_m`` (the datum of ``sensor_alt_m``).
  A ray whose point on the flat tangent plane (a transverse Mercator centred on the sensor,
  :class:`fuse.frames.LocalPlane`) lies within :data:`fuse.terrain.TANGENT_PLANE_MAX_RANGE_M` is
  solved on that plane (p99 error 0.15 m against the curved Earth); a longer ray is cast on the
  ellipsoid in ECEF (:func:`fuse.terrain.cast_rays`). A ray that does not dip below the geometric
  horizon is invalid (NaN position), never placed far away. With a DEM (``terrain``), every ray
  is cast onto the DEM; one that meets a hole or leaves the raster first falls back to the flat
  ground with the DEM's relief as its height error, and is flagged in ``fallback``.
- Uncertainty: a first-order (Jacobian) propagation of the pixel, attitude, position and
  altitude errors of :class:`GeorefSigmas` into a 2x2 east/north covariance at the ground point,
  so far and oblique detections get larger covariances. On the tangent plane the Jacobian is
  analytic; for cast rays it is first order on the ground's own tangent plane at the hit (the
  DEM's local slope), so a ray grazing a slope, and the DEM's own height error, widen it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce

import cv2
import numpy as np
from numpy.typing import ArrayLike

from fuse.frames import LocalPlane
from fuse.ground_points import REASON_BAD_BOX, GeorefError, GeorefSigmas, GroundPoints, boxes_array, ground_points
from fuse.terrain import TANGENT_PLANE_MAX_RANGE_M, Dem, FlatGround, Terrain, cast_rays, ecef_from_ned, enu_axes
from ibet.messages import Telemetry
from ibet.registry import CameraIntrinsics, FixedPose

EARTH_RADIUS_M = 6_371_008.8  # mean radius (IUGG), used only for the horizon dip

REASON_HORIZON = "ray at or above the horizon"

# Telemetry fields a drone frame must carry, with their MISB ST 0601 tags.
REQUIRED_TELEMETRY: dict[str, int] = {
    "sensor_lat_deg": 13,
    "sensor_lon_deg": 14,
    "sensor_alt_m": 75,
    "platform_heading_deg": 5,
    "platform_pitch_deg": 6,
    "platform_roll_deg": 7,
    "sensor_rel_azimuth_deg": 18,
    "sensor_rel_elevation_deg": 19,
    "hfov_deg": 16,
}


# Drone and fixed pose: a ray per box, intersected with the flat ground

def georeference_drone(boxes_xyxy_px: ArrayLike, image_width_px: int, image_height_px: int,
                       telemetry: Telemetry | None, ground_elev_m: float,
                       sigmas: GeorefSigmas = GeorefSigmas(), terrain: Dem | None = None) -> GroundPoints:
    """Ground points of boxes in a drone frame, from its MISB ST 0601 telemetry.

    boxes_xyxy_px: (n, 4) pixel boxes x1, y1, x2, y2 of a ``image_width_px`` x ``image_height_px``
    frame; ground_elev_m: the flat ground, m above the WGS-84 ellipsoid (``Sector.ground_elev_m``).
    Needs every field of :data:`REQUIRED_TELEMETRY`; ``vfov_deg`` defaults to the HFOV and the
    aspect (square pixels), ``sensor_rel_roll_deg`` to 0. ``terrain``: the sector's DEM, if it
    has one. Raises GeorefError naming what is missing, or when the sensor is not above the ground.

    Example: a drone 100 m up looking straight down sees its nadir at the image centre:

    >>> t = Telemetry(sensor_lat_deg=49.0, sensor_lon_deg=-122.7, sensor_alt_m=100.0,
    ...     platform_heading_deg=0.0, platform_pitch_deg=0.0, platform_roll_deg=0.0,
    ...     sensor_rel_azimuth_deg=0.0, sensor_rel_elevation_deg=-90.0, hfov_deg=60.0)
    >>> p = georeference_drone([[630, 300, 650, 360]], 1280, 720, t, ground_elev_m=0.0)
    >>> round(float(p.lat_deg[0]), 7), round(float(p.lon_deg[0]), 7), float(p.range_m[0])
    (49.0, -122.7, 100.0)
    """
    if telemetry is None:
        raise GeorefError("the frame has no telemetry; a drone frame needs it to be georeferenced")
    missing = [name for name in REQUIRED_TELEMETRY if getattr(telemetry, name) is None]
    if missing:
        fields = ", ".join(f"{name} (MISB ST 0601 tag {REQUIRED_TELEMETRY[name]})" for name in missing)
        raise GeorefError(f"telemetry lacks {fields}, needed to georeference a drone frame")
    _check_finite("ground_elev_m", ground_elev_m)
    height_m = telemetry.sensor_alt_m - _ground_below(terrain, telemetry.sensor_lat_deg, telemetry.sensor_lon_deg,
                                                      ground_elev_m)
    if not height_m > 0.0:
        raise GeorefError(f"sensor_alt_m {telemetry.sensor_alt_m} m is not above the ground "
                          f"({ground_elev_m} m above the ellipsoid); check the telemetry or the sector's ground_elev_m")
    width, height = _image_size(image_width_px, image_height_px)
    fx = _focal_px(width, telemetry.hfov_deg, "hfov_deg")
    fy = fx if telemetry.vfov_deg is None else _focal_px(height, telemetry.vfov_deg, "vfov_deg")
    camera = _Pinhole(fx, fy, width / 2.0, height / 2.0)
    angles_deg = (telemetry.platform_heading_deg, telemetry.platform_pitch_deg, telemetry.platform_roll_deg,
                  telemetry.sensor_rel_azimuth_deg, telemetry.sensor_rel_elevation_deg,
                  telemetry.sensor_rel_roll_deg or 0.0)
    return _cast(boxes_xyxy_px, camera, telemetry.sensor_lat_deg, telemetry.sensor_lon_deg, height_m,
                 angles_deg, (0, 1, 2, 3, 4, 5), sigmas, telemetry.sensor_alt_m, ground_elev_m, terrain)


def georeference_fixed_pose(boxes_xyxy_px: ArrayLike, image_width_px: int, image_height_px: int,
                            pose: FixedPose, ground_elev_m: float, intrinsics: CameraIntrinsics | None = None,
                            sigmas: GeorefSigmas = GeorefSigmas(), terrain: Dem | None = None) -> GroundPoints:
    """Ground points of boxes from a fixed camera with a surveyed pose.

    The optical axis points at ``pose.heading_deg`` (clockwise from true north), ``pose.tilt_deg``
    below the horizon, with no roll, from ``pose.height_m`` above the ground. ``intrinsics``
    (scaled to the frame size, distortion undone) replace the pose's HFOV and the centred
    principal point. The pose's height is measured from the ground under the camera: the DEM's
    there (``terrain``), else the sector's ``ground_elev_m``.
    ``sigmas.attitude_sigma_deg`` applies to heading, tilt and roll.
    """
    _check_finite("ground_elev_m", ground_elev_m)
    width, height = _image_size(image_width_px, image_height_px)
    if intrinsics is None:
        fx = _focal_px(width, pose.hfov_deg, "hfov_deg")
        camera = _Pinhole(fx, fx, width / 2.0, height / 2.0)
    else:
        sx, sy = width / intrinsics.width_px, height / intrinsics.height_px
        camera = _Pinhole(intrinsics.fx_px * sx, intrinsics.fy_px * sy, intrinsics.cx_px * sx,
                          intrinsics.cy_px * sy, intrinsics.distortion)
    angles_deg = (0.0, 0.0, 0.0, pose.heading_deg, -pose.tilt_deg, 0.0)
    sensor_h_m = _ground_below(terrain, pose.lat_deg, pose.lon_deg, ground_elev_m) + pose.height_m
    return _cast(boxes_xyxy_px, camera, pose.lat_deg, pose.lon_deg, pose.height_m, angles_deg, (3, 4, 5), sigmas,
                 sensor_h_m, ground_elev_m, terrain)


def _ground_below(terrain: Dem | None, lat_deg: float, lon_deg: float, ground_elev_m: float) -> float:
    """The ground's height under a sensor: the DEM's where it has one, else the sector's flat ground."""
    if terrain is None:
        return ground_elev_m
    h = float(terrain.height_m(np.array([lat_deg]), np.array([lon_deg]))[0])
    return h if np.isfinite(h) else ground_elev_m


@dataclass(frozen=True, slots=True)
class _Pinhole:
    """Pixel -> direction in the sensor frame (forward, right, down), with its pixel derivative."""

    fx: float
    fy: float
    cx: float
    cy: float
    distortion: tuple[float, ...] = ()

    def rays(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rays (n, 3) with forward component 1, and d ray / d (u, v) as (n, 3, 2) per px."""
        n = len(u)
        rays = np.ones((n, 3))
        drays = np.zeros((n, 3, 2))
        if not any(self.distortion):
            rays[:, 1], rays[:, 2] = (u - self.cx) / self.fx, (v - self.cy) / self.fy
            drays[:, 1, 0], drays[:, 2, 1] = 1.0 / self.fx, 1.0 / self.fy
            return rays, drays
        step_px = 0.25  # central differences through OpenCV's iterative undistortion
        pixels = np.stack([u, v], axis=1)
        rays[:, 1:] = self._undistort(pixels)
        for axis in (0, 1):
            offset = np.zeros(2)
            offset[axis] = step_px
            drays[:, 1:, axis] = (self._undistort(pixels + offset) - self._undistort(pixels - offset)) / (2 * step_px)
        return rays, drays

    def _undistort(self, pixels: np.ndarray) -> np.ndarray:
        matrix = np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])
        criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-10)
        normalised = cv2.undistortPoints(pixels.reshape(-1, 1, 2), matrix, np.array(self.distortion),
                                         criteria=criteria)
        return normalised.reshape(-1, 2)


_GENERATORS = {  # d/da R_axis(a) = K_axis @ R_axis(a)
    "x": np.array([[0.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]),
    "y": np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0], [-1.0, 0.0, 0.0]]),
    "z": np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]),
}
_CHAIN_AXES = ("z", "y", "x", "z", "y", "x")  # heading, pitch, roll, rel azimuth, rel elevation, rel roll


def _rotation(axis: str, angle_rad: float) -> np.ndarray:
    """Active right-handed rotation by ``angle_rad`` about a coordinate axis."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    if axis == "x":
        return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    if axis == "y":
        return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _ned_from_sensor(angles_deg: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The MISB rotation chain: sensor (forward, right, down) -> world (north, east, down).

    Returns the matrix (3, 3) and its derivative by each of the six angles (6, 3, 3), per radian.
    """
    factors = [_rotation(axis, np.radians(a)) for axis, a in zip(_CHAIN_AXES, angles_deg, strict=True)]
    derivatives = np.empty((6, 3, 3))
    for k, axis in enumerate(_CHAIN_AXES):
        left, right = reduce(np.matmul, factors[:k], np.eye(3)), reduce(np.matmul, factors[k:], np.eye(3))
        derivatives[k] = left @ _GENERATORS[axis] @ right
    return reduce(np.matmul, factors), derivatives


def _cast(boxes_xyxy_px: ArrayLike, camera: _Pinhole, lat_deg: float, lon_deg: float, height_m: float,
          angles_deg: Sequence[float], uncertain_angles: Sequence[int], sigmas: GeorefSigmas,
          sensor_h_m: float, ground_elev_m: float, terrain: Dem | None) -> GroundPoints:
    """Intersect the ray through each box's bottom-centre with the ground ``height_m`` below the
    sensor (``sensor_h_m`` above the ellipsoid): on the tangent plane where that is exact enough,
    else cast in ECEF onto the ellipsoid at ``ground_elev_m`` or onto the DEM."""
    boxes = boxes_array(boxes_xyxy_px)
    u, v = (boxes[:, 0] + boxes[:, 2]) / 2.0, boxes[:, 3]
    finite = np.isfinite(u) & np.isfinite(v)
    rays, drays = camera.rays(np.where(finite, u, 0.0), np.where(finite, v, 0.0))
    rotation, drotation = _ned_from_sensor(angles_deg)
    ned = rays @ rotation.T
    down, horizontal = ned[:, 2], np.hypot(ned[:, 0], ned[:, 1])
    dip_rad = np.arccos(EARTH_RADIUS_M / (EARTH_RADIUS_M + height_m))  # horizon dip of a sphere
    valid = finite & np.isfinite(ned).all(axis=1) & (down > horizontal * np.tan(dip_rad))
    down = np.where(valid, down, np.nan)

    # Ground point: east/north = height * (ray east, ray north) / ray down.
    ray_en = ned[:, [1, 0]]
    en = height_m * ray_en / down[:, None]
    range_m = height_m * np.linalg.norm(ned, axis=1) / down

    # d en = (height * d ray_en - en * d ray_down) / ray_down, for each source of error.
    columns = []
    for k in uncertain_angles:
        columns.append(np.radians(sigmas.attitude_sigma_deg) * (rays @ drotation[k].T))
    for axis in (0, 1):
        columns.append(sigmas.pixel_sigma_px * (drays[:, :, axis] @ rotation.T))
    dned = np.stack(columns, axis=2)  # (n, 3, m)
    jacobian = (height_m * dned[:, [1, 0], :] - en[:, :, None] * dned[:, None, 2, :]) / down[:, None, None]
    altitude = sigmas.altitude_sigma_m * en / height_m  # d en / d height = en / height
    cov = (jacobian @ jacobian.transpose(0, 2, 1) + altitude[:, :, None] * altitude[:, None, :]
           + sigmas.position_sigma_m**2 * np.eye(2))

    try:
        plane = LocalPlane(lat_deg, lon_deg)
    except ValueError as exc:
        raise GeorefError(f"cannot georeference from this sensor position: {exc}") from None
    lat, lon = plane.to_latlon(en[:, 0], en[:, 1])
    fallback = np.zeros(len(u), dtype=bool)
    # beyond the tangent plane's bound, or onto a DEM: cast in ECEF, the Jacobian by casting again
    ground: Terrain = terrain if terrain is not None else FlatGround(ground_elev_m)
    recast = (finite & np.isfinite(ned).all(axis=1)) if terrain is not None else valid & (range_m > TANGENT_PLANE_MAX_RANGE_M)
    if recast.any():
        k = np.flatnonzero(recast)
        hit = cast_rays(lat_deg, lon_deg, sensor_h_m, ned[k], ground, ground_elev_m)
        lat[k], lon[k], range_m[k] = hit.lat_deg, hit.lon_deg, hit.range_m
        valid[k] = hit.hit
        fallback[k] = hit.fallback
        cov[k] = _cast_covariance(hit, lat_deg, lon_deg, sensor_h_m, ned[k], dned[k], ground, sigmas)
        valid[k] &= np.isfinite(cov[k]).all(axis=(1, 2))  # a one-sigma ray misses: too near the horizon to place
    reason = np.where(valid, "", np.where(finite, REASON_HORIZON, REASON_BAD_BOX))
    return ground_points(lat, lon, cov, range_m, valid, reason, fallback & valid)


def _cast_covariance(nominal, lat_deg: float, lon_deg: float, sensor_h_m: float, ned: np.ndarray,
                     dned: np.ndarray, ground: Terrain, sigmas: GeorefSigmas) -> np.ndarray:
    """East/north covariance of cast points, first order on the ground's tangent plane at each hit
    (the DEM's local slope there, from its heights one cell around): a ray moved by ``dned``'s
    one-sigma columns, the sensor raised by its altitude sigma, the ground raised by its height
    sigma, each slides the hit along that plane by ``s (dr - r (n.dr) / (n.r))``; so a ray that
    grazes a slope (``n.r`` small) gets a long ellipse. The sensor's horizontal position error is
    added as is. Rays that fell back off a DEM take its relief as their height error."""
    to_ecef = ecef_from_ned(lat_deg, lon_deg)
    lat, lon = nominal.lat_deg, nominal.lon_deg
    basis = np.stack([enu_axes(a, b) for a, b in zip(np.nan_to_num(lat), np.nan_to_num(lon), strict=True)])  # (n, 3, 3)

    def enu(ecef_vectors: np.ndarray) -> np.ndarray:  # (n, 3) ECEF -> (n, 3) east/north/up at each hit
        return np.einsum("nij,nj->ni", basis.transpose(0, 2, 1), ecef_vectors)

    r = enu(ned @ to_ecef.T)
    normal = _ground_normal(ground, lat, lon)  # (n, 3) in ENU
    n_dot_r = np.sum(normal * r, axis=1)
    s = nominal.range_m / np.linalg.norm(r, axis=1)  # P = S + s r

    def slide(dp: np.ndarray) -> np.ndarray:  # a shift dp of the ray (or the surface) -> east/north of the hit
        return (dp - r * (np.sum(normal * dp, axis=1) / n_dot_r)[:, None])[:, :2]

    columns = [slide(s[:, None] * enu(dned[:, :, j] @ to_ecef.T)) for j in range(dned.shape[2])]
    up_at_sensor = enu(np.tile(-to_ecef[:, 2], (len(r), 1)))
    columns.append(slide(sigmas.altitude_sigma_m * up_at_sensor))
    relief = (ground.max_m - ground.min_m) / 2 if isinstance(ground, Dem) else 0.0
    sigma_h = np.where(nominal.fallback, max(relief, ground.sigma_m), ground.sigma_m)
    up = np.zeros_like(r)
    up[:, 2] = 1.0
    columns.append(-slide(sigma_h[:, None] * up))  # the surface up by sigma_h: the ray meets it sooner
    jacobian = np.stack(columns, axis=2)  # (n, 2, m)
    return jacobian @ jacobian.transpose(0, 2, 1) + sigmas.position_sigma_m**2 * np.eye(2)


def _ground_normal(ground: Terrain, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Unit normals (n, 3) east/north/up of the ground at each point: from the DEM's heights one
    cell east, west, north and south (flat ground: straight up)."""
    normal = np.zeros((len(lat), 3))
    normal[:, 2] = 1.0
    if not isinstance(ground, Dem):
        return normal
    step = ground.resolution_m
    dlat = step / 111_132.0
    dlon = step / (111_320.0 * np.cos(np.radians(np.nan_to_num(lat))))
    east = ground.height_m(lat, lon + dlon) - ground.height_m(lat, lon - dlon)
    north = ground.height_m(lat + dlat, lon) - ground.height_m(lat - dlat, lon)
    gx, gy = np.nan_to_num(east / (2 * step)), np.nan_to_num(north / (2 * step))  # a hole there: level
    normal[:, 0], normal[:, 1] = -gx, -gy
    return normal / np.linalg.norm(normal, axis=1, keepdims=True)


# Checks of the ray calibrations

def _image_size(width_px: int, height_px: int) -> tuple[float, float]:
    if not (width_px > 0 and height_px > 0):
        raise GeorefError(f"image size must be positive, got {width_px} x {height_px} px")
    return float(width_px), float(height_px)


def _focal_px(size_px: float, fov_deg: float, name: str) -> float:
    """Focal length (px) of a pinhole whose full field of view ``fov_deg`` spans ``size_px``."""
    if not (0.0 < fov_deg < 180.0):
        raise GeorefError(f"{name} {fov_deg} deg is not the field of view of a pinhole camera (0 < fov < 180)")
    return size_px / 2.0 / np.tan(np.radians(fov_deg) / 2.0)


def _check_finite(name: str, value: float) -> None:
    if not np.isfinite(value):
        raise GeorefError(f"{name} must be finite, got {value}")

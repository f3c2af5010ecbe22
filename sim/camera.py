"""The simulator's own pinhole camera over a flat ENU world.

Independent of the fusion stage's georeferencing on purpose: the simulator is the ground truth
that georeferencing is scored against, so the two must not share code.

Frames and units:

- World: local ENU in metres (x = east, y = north, z = up).
- Camera: OpenCV convention, x right, y down, z forward (along the line of sight).
- Pixels: continuous coordinates with (0, 0) at the top-left corner of the image and
  (width_px, height_px) at the bottom-right corner; the centre of pixel (row i, column j) is at
  (u, v) = (j + 0.5, i + 0.5). The principal point is the image centre (width/2, height/2), pixels
  are square, there is no lens distortion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_R_SENSOR_FROM_CAM = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # columns: cam x,y,z in sensor xyz
_R_ENU_FROM_NED = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
_MIN_DEPTH_M = 1e-6  # points closer to the image plane than this count as not in front


def _rx(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _ry(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rz(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rotation_vector(r: np.ndarray) -> np.ndarray:
    """Axis * angle (3,) of a rotation matrix via its quaternion (Shepperd's method).

    ``cv2.Rodrigues`` loses precision near 180 degrees, the usual angle of a camera looking down.
    """
    trace = np.trace(r)
    i = int(np.argmax([trace, r[0, 0], r[1, 1], r[2, 2]]))
    if i == 0:
        w = np.sqrt(1.0 + trace) / 2.0
        q = np.array([w, (r[2, 1] - r[1, 2]) / (4 * w), (r[0, 2] - r[2, 0]) / (4 * w), (r[1, 0] - r[0, 1]) / (4 * w)])
    else:
        a, b, c = i - 1, i % 3, (i + 1) % 3
        s = np.sqrt(1.0 + r[a, a] - r[b, b] - r[c, c]) * 2.0
        q = np.empty(4)
        q[0] = (r[c, b] - r[b, c]) / s
        q[1 + a], q[1 + b], q[1 + c] = s / 4.0, (r[b, a] + r[a, b]) / s, (r[c, a] + r[a, c]) / s
    q = q if q[0] >= 0.0 else -q
    sin_half = np.linalg.norm(q[1:])
    if sin_half == 0.0:
        return np.zeros(3)
    return q[1:] / sin_half * (2.0 * np.arctan2(sin_half, q[0]))


@dataclass(frozen=True, eq=False)
class Camera:
    """Pinhole camera: image size, horizontal field of view, position and orientation in ENU.

    ``r_world_from_cam`` (3, 3) maps camera-frame vectors (x right, y down, z forward) to ENU;
    its columns are the camera axes expressed in ENU. ``position_m`` (3,) is the centre of
    projection in ENU metres. Equality is identity (the fields are numpy arrays).
    """

    width_px: int
    height_px: int
    hfov_deg: float
    position_m: np.ndarray
    r_world_from_cam: np.ndarray

    def __post_init__(self) -> None:
        if self.width_px <= 0 or self.height_px <= 0:
            raise ValueError(f"image size must be positive, got {self.width_px}x{self.height_px}")
        if not 0.0 < self.hfov_deg < 180.0:
            raise ValueError(f"hfov_deg must be in (0, 180), got {self.hfov_deg}")
        position = np.array(self.position_m, dtype=np.float64).reshape(3)
        rotation = np.array(self.r_world_from_cam, dtype=np.float64).reshape(3, 3)
        if not np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-9) or np.linalg.det(rotation) < 0:
            raise ValueError("r_world_from_cam must be a proper rotation matrix")
        position.flags.writeable = False
        rotation.flags.writeable = False
        object.__setattr__(self, "position_m", position)
        object.__setattr__(self, "r_world_from_cam", rotation)

    @classmethod
    def from_misb(
        cls,
        position_m: np.ndarray,
        platform_heading_deg: float,
        platform_pitch_deg: float,
        platform_roll_deg: float,
        sensor_rel_azimuth_deg: float,
        sensor_rel_elevation_deg: float,
        sensor_rel_roll_deg: float,
        width_px: int,
        height_px: int,
        hfov_deg: float,
    ) -> Camera:
        """Camera from MISB ST 0601 platform attitude and sensor pointing angles (degrees).

        Composition, in a north-east-down (NED) frame, each rotation intrinsic (about the axes as
        already rotated), applied left to right::

            R_ned_from_sensor = Rz(heading) Ry(pitch) Rx(roll) Rz(rel_az) Ry(rel_el) Rx(rel_roll)

        Platform body axes: x = nose, y = right wing, z = down. Heading is clockwise from true
        north, pitch positive nose up, roll positive right wing down. The sensor is then turned by
        relative azimuth (clockwise from the nose in the platform's horizontal plane), relative
        elevation (from that plane; negative looks down) and relative roll (about the line of
        sight, positive clockwise as seen from behind the camera). Sensor axes x = line of sight,
        y = image right, z = image down, which are the OpenCV camera's z, x, y.

        Example: heading 0, el -90 looks straight down with image up = north; heading 90, el 0
        looks east with the horizon on the middle row.
        """
        r_ned_from_sensor = (
            _rz(platform_heading_deg)
            @ _ry(platform_pitch_deg)
            @ _rx(platform_roll_deg)
            @ _rz(sensor_rel_azimuth_deg)
            @ _ry(sensor_rel_elevation_deg)
            @ _rx(sensor_rel_roll_deg)
        )
        rotation = _R_ENU_FROM_NED @ r_ned_from_sensor @ _R_SENSOR_FROM_CAM
        return cls(width_px, height_px, hfov_deg, np.asarray(position_m, dtype=np.float64), rotation)

    @classmethod
    def fixed(
        cls, position_m: np.ndarray, heading_deg: float, tilt_deg: float, width_px: int, height_px: int, hfov_deg: float
    ) -> Camera:
        """Level fixed camera looking along ``heading_deg`` (clockwise from north), ``tilt_deg`` below the horizon."""
        return cls.from_misb(position_m, heading_deg, 0.0, 0.0, 0.0, -tilt_deg, 0.0, width_px, height_px, hfov_deg)

    @property
    def fx_px(self) -> float:
        """Focal length in pixels (fx = fy): (width / 2) / tan(hfov / 2)."""
        return (self.width_px / 2.0) / np.tan(np.radians(self.hfov_deg) / 2.0)

    @property
    def vfov_deg(self) -> float:
        """Vertical field of view in degrees (square pixels)."""
        return float(np.degrees(2.0 * np.arctan((self.height_px / 2.0) / self.fx_px)))

    @property
    def K(self) -> np.ndarray:  # noqa: N802 - the usual name of the intrinsic matrix
        """3x3 intrinsic matrix with the principal point at the image centre."""
        f = self.fx_px
        return np.array([[f, 0.0, self.width_px / 2.0], [0.0, f, self.height_px / 2.0], [0.0, 0.0, 1.0]])

    def to_camera_frame(self, points_m: np.ndarray) -> np.ndarray:
        """ENU points (n, 3) in metres -> camera-frame points (n, 3) in metres (z = depth)."""
        rel = np.asarray(points_m, dtype=np.float64).reshape(-1, 3) - self.position_m
        r = self.r_world_from_cam
        out = np.empty_like(rel)
        for axis in range(3):  # R^T @ (p - c) column by column: no BLAS call on a tall, thin array
            out[:, axis] = r[0, axis] * rel[:, 0] + r[1, axis] * rel[:, 1] + r[2, axis] * rel[:, 2]
        return out

    def project(self, points_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project ENU points (n, 3) in metres to pixels.

        Returns ``uv`` (n, 2) float64 and ``in_front`` (n,) bool; ``uv`` is NaN where the point is
        not in front of the camera. Points outside the image still get their (out-of-range) pixels.
        """
        pc = self.to_camera_frame(points_m)
        depth = pc[:, 2]
        in_front = depth > _MIN_DEPTH_M
        safe = np.where(in_front, depth, 1.0)
        f = self.fx_px
        uv = np.column_stack((f * pc[:, 0] / safe + self.width_px / 2.0, f * pc[:, 1] / safe + self.height_px / 2.0))
        uv[~in_front] = np.nan
        return uv, in_front

    def rays(self, uv: np.ndarray) -> np.ndarray:
        """Pixels (n, 2) -> unit viewing directions (n, 3) in ENU."""
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        f = self.fx_px
        x = (uv[:, 0] - self.width_px / 2.0) / f
        y = (uv[:, 1] - self.height_px / 2.0) / f
        scale = 1.0 / np.sqrt(x * x + y * y + 1.0)
        r = self.r_world_from_cam
        out = np.empty((len(uv), 3))
        for axis in range(3):  # R @ (x, y, 1) row by row: no BLAS call on a tall, thin array
            out[:, axis] = (r[axis, 0] * x + r[axis, 1] * y + r[axis, 2]) * scale
        return out

    def ground_points(self, uv: np.ndarray, ground_z_m: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Intersect the rays through pixels (n, 2) with the plane z = ground_z_m.

        Returns ``points`` (n, 3) ENU metres and ``valid`` (n,) bool. Rays at or above the horizon
        (and any ray when the camera is not above the ground) are invalid and their points NaN.
        """
        d = self.rays(uv)
        height_m = self.position_m[2] - ground_z_m
        valid = (d[:, 2] < 0.0) & (height_m > 0.0)
        t = np.where(valid, -height_m / np.where(valid, d[:, 2], -1.0), np.nan)
        points = self.position_m + t[:, None] * d
        points[valid, 2] = ground_z_m
        return points, valid

    def footprint(self, ground_z_m: float = 0.0, max_range_m: float = 5000.0, samples_per_edge: int = 16) -> np.ndarray:
        """Polygon (k, 2) of the ground seen, in ENU metres, for plots.

        The image border is sampled clockwise from the top-left corner; each border ray is cut
        where it meets the ground or, when it misses the ground or meets it further away, at
        ``max_range_m`` of horizontal distance from the camera along its azimuth.
        """
        w, h = float(self.width_px), float(self.height_px)
        s = np.linspace(0.0, 1.0, samples_per_edge, endpoint=False)
        uv = np.concatenate(
            (
                np.column_stack((s * w, np.zeros_like(s))),
                np.column_stack((np.full_like(s, w), s * h)),
                np.column_stack(((1.0 - s) * w, np.full_like(s, h))),
                np.column_stack((np.zeros_like(s), (1.0 - s) * h)),
            )
        )
        points, valid = self.ground_points(uv, ground_z_m)
        d = self.rays(uv)
        horizontal = np.linalg.norm(d[:, :2], axis=1)
        keep = valid | (horizontal > 1e-9)
        far = self.position_m[:2] + d[:, :2] / np.maximum(horizontal, 1e-9)[:, None] * max_range_m
        range_m = np.linalg.norm(points[:, :2] - self.position_m[:2], axis=1)
        use_ground = valid & (range_m <= max_range_m)
        xy = np.where(use_ground[:, None], points[:, :2], far)
        return xy[keep]

    def opencv_rvec_tvec(self) -> tuple[np.ndarray, np.ndarray]:
        """(rvec (3,), tvec (3,)) such that ``cv2.projectPoints(points, rvec, tvec, camera.K, None)`` matches ``project``."""
        r_cam_from_world = self.r_world_from_cam.T
        return _rotation_vector(r_cam_from_world), -r_cam_from_world @ self.position_m

    def ground_sample_distance_m(self, points_m: np.ndarray) -> np.ndarray | float:
        """Metres per pixel at ENU point(s), across the line of sight.

        That is the slant range times the angle one pixel subtends at the point's pixel
        (geometric mean of its horizontal and vertical angular sizes): the size in metres of one
        pixel on a surface facing the camera, such as a standing person seen from the side. For a
        nadir camera at the image centre it is height / fx. A point (3,) gives a float, points
        (n, 3) an array (n,); NaN where a point is not in front of the camera.
        """
        pts = np.asarray(points_m, dtype=np.float64)
        flat = pts.reshape(-1, 3)
        uv, in_front = self.project(flat)
        uv = np.where(in_front[:, None], uv, 0.0)
        chord_u = np.linalg.norm(self.rays(uv + [0.5, 0.0]) - self.rays(uv - [0.5, 0.0]), axis=1)
        chord_v = np.linalg.norm(self.rays(uv + [0.0, 0.5]) - self.rays(uv - [0.0, 0.5]), axis=1)
        pixel_angle = 2.0 * np.sqrt(np.arcsin(chord_u / 2.0) * np.arcsin(chord_v / 2.0))
        gsd = np.linalg.norm(flat - self.position_m, axis=1) * pixel_angle
        gsd[~in_front] = np.nan
        return float(gsd[0]) if pts.ndim == 1 else gsd

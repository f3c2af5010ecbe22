"""Georeferencing of a fixed camera calibrated by ground control points (pixel <-> lat/lon): a
homography from the image to a local ground plane, fitted once (:func:`fit_homography`) and applied
to the bottom-centre of each box (:func:`georeference_homography`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import ArrayLike

from fuse.frames import LocalPlane
from fuse.ground_points import REASON_BAD_BOX, GeorefError, GroundPoints, boxes_array, ground_points
from ibet.registry import GroundControlPoint

REASON_HOMOGRAPHY_HORIZON = "beyond the horizon line of the homography"


@dataclass(frozen=True, slots=True)
class GroundHomography:
    """A fitted pixel -> ground homography of a fixed camera.

    matrix: (3, 3) float64, maps homogeneous pixels ``(u, v, 1)`` to ``(east, north, w)`` metres on
        :class:`LocalPlane` (``lat0_deg``, ``lon0_deg``); its sign makes w > 0 at the control points
    residual_var_m2: variance of the control points' fit residual per axis (m²), 0 with 4 points
    """

    matrix: np.ndarray
    lat0_deg: float
    lon0_deg: float
    residual_var_m2: float


def fit_homography(gcps: Sequence[GroundControlPoint]) -> GroundHomography:
    """Fit the homography of >= 4 ground control points (least squares over all of them).

    Works in metres on a plane centred at the points' centroid. Raises GeorefError with fewer than
    4 points, with points that fix no homography (three in a line), or with points on both sides
    of its horizon line.
    """
    if len(gcps) < 4:
        raise GeorefError(f"a homography needs at least 4 ground control points, got {len(gcps)}")
    pixels = np.array([[g.u_px, g.v_px] for g in gcps], dtype=np.float64)
    lat = np.array([g.lat_deg for g in gcps], dtype=np.float64)
    lon = np.array([g.lon_deg for g in gcps], dtype=np.float64)
    first = LocalPlane(float(lat[0]), float(lon[0]))
    east, north = first.to_en(lat, lon)
    lat0, lon0 = first.to_latlon(east.mean(), north.mean())
    plane = LocalPlane(float(lat0), float(lon0))
    ground = np.stack(plane.to_en(lat, lon), axis=1)
    matrix = None if _degenerate(pixels, ground) else cv2.findHomography(pixels, ground, method=0)[0]
    if matrix is None or not np.isfinite(matrix).all():
        raise GeorefError("the ground control points fix no homography (are three of four in a line, "
                          "or two the same?)")
    w = np.c_[pixels, np.ones(len(pixels))] @ matrix[2]
    if not ((w > 0).all() or (w < 0).all()):
        raise GeorefError("the ground control points lie on both sides of the homography's horizon line; "
                          "check their pixel and lat/lon pairing")
    matrix = matrix if w[0] > 0 else -matrix
    fitted = _apply_homography(matrix, pixels)
    dof = 2 * len(gcps) - 8
    residual_var = float(((fitted - ground) ** 2).sum() / dof) if dof > 0 else 0.0
    matrix.setflags(write=False)
    return GroundHomography(matrix, float(lat0), float(lon0), residual_var)


def georeference_homography(boxes_xyxy_px: ArrayLike, gcps: Sequence[GroundControlPoint] | GroundHomography,
                            pixel_sigma_px: float = 2.0) -> GroundPoints:
    """Ground points of boxes from a fixed camera calibrated by ground control points.

    ``gcps`` is the list of >= 4 points or a :func:`fit_homography` result (fit once, reuse per
    frame). The covariance carries the pixel error through the homography's Jacobian plus the fit
    residual variance. Boxes at or beyond the horizon line of the homography (w <= 0) are invalid.
    The camera's position is unknown here, so ``range_m`` is NaN.
    """
    if not (np.isfinite(pixel_sigma_px) and pixel_sigma_px >= 0):
        raise ValueError(f"pixel_sigma_px must be finite and >= 0, got {pixel_sigma_px}")
    homography = gcps if isinstance(gcps, GroundHomography) else fit_homography(gcps)
    matrix = homography.matrix
    boxes = boxes_array(boxes_xyxy_px)
    pixels = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2.0, boxes[:, 3]], axis=1)
    finite = np.isfinite(pixels).all(axis=1)
    projective = np.c_[np.where(finite[:, None], pixels, 0.0), np.ones(len(pixels))] @ matrix.T
    w = projective[:, 2]
    valid = finite & (w > 0)
    w = np.where(valid, w, np.nan)
    en = projective[:, :2] / w[:, None]
    valid &= np.isfinite(en).all(axis=1)
    # d en / d (u, v) = (H[:2, :2] - en * H[2, :2]) / w
    jacobian = (matrix[None, :2, :2] - en[:, :, None] * matrix[None, None, 2, :2]) / w[:, None, None]
    cov = pixel_sigma_px**2 * (jacobian @ jacobian.transpose(0, 2, 1)) + homography.residual_var_m2 * np.eye(2)
    lat, lon = LocalPlane(homography.lat0_deg, homography.lon0_deg).to_latlon(en[:, 0], en[:, 1])
    reason = np.where(valid, "", np.where(finite, REASON_HOMOGRAPHY_HORIZON, REASON_BAD_BOX))
    return ground_points(lat, lon, cov, np.full(len(boxes), np.nan), valid, reason)


def _degenerate(pixels: np.ndarray, ground: np.ndarray) -> bool:
    """Whether point pairs fix no invertible homography.

    The direct linear transform of Hartley-normalised points must have rank 8 (else the
    homography is free) and its solution must be invertible (three of four points in a line
    give a unique but singular one).
    """
    normalised = []
    for points in (pixels, ground):
        centred = points - points.mean(axis=0)
        scale = np.sqrt(2.0) / max(np.linalg.norm(centred, axis=1).mean(), 1e-300)
        normalised.append(centred * scale)
    (x, y), (e, n) = normalised[0].T, normalised[1].T
    one, zero = np.ones_like(x), np.zeros_like(x)
    rows = np.concatenate([np.stack([x, y, one, zero, zero, zero, -e * x, -e * y, -e], axis=1),
                           np.stack([zero, zero, zero, x, y, one, -n * x, -n * y, -n], axis=1)])
    _, singular, vt = np.linalg.svd(rows)
    if singular[7] <= 1e-9 * singular[0]:
        return True
    solution = np.linalg.svd(vt[-1].reshape(3, 3), compute_uv=False)
    return bool(solution[2] <= 1e-9 * solution[0])


def _apply_homography(matrix: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    projective = np.c_[pixels, np.ones(len(pixels))] @ matrix.T
    return projective[:, :2] / projective[:, 2:]

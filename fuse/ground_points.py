"""What georeferencing returns, whatever the calibration: :class:`GroundPoints` (parallel arrays
over the boxes), the input errors it propagates (:class:`GeorefSigmas`), :class:`GeorefError`, and the
two helpers every calibration shares (the boxes' array, the read-only result).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ibet.exceptions import IbetError

REASON_BAD_BOX = "box has a non-finite coordinate"


class GeorefError(IbetError):
    """A frame cannot be georeferenced: telemetry or calibration missing or impossible (says which)."""


@dataclass(frozen=True, slots=True)
class GeorefSigmas:
    """One-sigma errors of the georeferencing inputs, each independent.

    pixel_sigma_px: of the box's bottom-centre, along x and along y (px)
    attitude_sigma_deg: of each attitude angle the calibration reports (deg): the six MISB angles
        of a drone, heading/tilt/roll of a fixed pose
    position_sigma_m: of the sensor's horizontal position, east and north (m)
    altitude_sigma_m: of the sensor's height above the ground (m)
    """

    pixel_sigma_px: float = 2.0
    attitude_sigma_deg: float = 0.5
    position_sigma_m: float = 3.0
    altitude_sigma_m: float = 3.0

    def __post_init__(self) -> None:
        for name in ("pixel_sigma_px", "attitude_sigma_deg", "position_sigma_m", "altitude_sigma_m"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0.0):
                raise ValueError(f"GeorefSigmas.{name} must be finite and >= 0, got {value}")


@dataclass(frozen=True, slots=True)
class GroundPoints:
    """Ground positions of n boxes, as parallel read-only arrays.

    lat_deg, lon_deg: (n,) float64, WGS-84 degrees; NaN where not valid
    cov_en_m2: (n, 2, 2) float64, east/north covariance at the point (m²); NaN where not valid
    range_m: (n,) float64, slant range from the sensor (m); NaN where not valid or unknown
        (a homography does not know where the camera is)
    valid: (n,) bool, False for boxes that have no ground point
    reason: (n,) str, why a point is not valid ("" where valid)
    fallback: (n,) bool, True where a DEM had no height along the ray (a hole, off the raster) and
        the point was placed on the sector's flat ground with a wider covariance
    """

    lat_deg: np.ndarray
    lon_deg: np.ndarray
    cov_en_m2: np.ndarray
    range_m: np.ndarray
    valid: np.ndarray
    reason: np.ndarray
    fallback: np.ndarray

    def __len__(self) -> int:
        return len(self.valid)


def boxes_array(boxes_xyxy_px: ArrayLike) -> np.ndarray:
    """Boxes as an (n, 4) float64 array of x1, y1, x2, y2 (px); (0, 4) for none; ValueError for another shape."""
    boxes = np.asarray(boxes_xyxy_px, dtype=np.float64)
    if boxes.size == 0:
        return boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (n, 4) (x1, y1, x2, y2 in px), got {boxes.shape}")
    return boxes


def ground_points(lat: np.ndarray, lon: np.ndarray, cov: np.ndarray, range_m: np.ndarray, valid: np.ndarray,
                  reason: np.ndarray, fallback: np.ndarray | None = None) -> GroundPoints:
    """Assemble read-only GroundPoints with NaN everywhere a point is not valid."""
    invalid = ~valid
    lat, lon, range_m, cov = (np.array(a, dtype=np.float64) for a in (lat, lon, range_m, cov))
    lat[invalid] = lon[invalid] = range_m[invalid] = np.nan
    cov[invalid] = np.nan
    cov = (cov + cov.transpose(0, 2, 1)) / 2.0  # exactly symmetric
    fallback = np.zeros(len(valid), dtype=bool) if fallback is None else np.array(fallback, dtype=bool)
    points = GroundPoints(lat, lon, cov.reshape(-1, 2, 2), range_m, valid.astype(bool), reason.astype(str), fallback)
    for array in (points.lat_deg, points.lon_deg, points.cov_en_m2, points.range_m, points.valid, points.reason,
                  points.fallback):
        array.setflags(write=False)
    return points

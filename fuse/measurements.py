"""From a DetectionBatch to ground measurements: each box's bottom-centre on the ground, with
its uncertainty, by the sensor's own georeferencing (drone telemetry, fixed pose or homography)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from fuse.georef import georeference_drone, georeference_fixed_pose
from fuse.ground_points import GeorefSigmas, GroundPoints
from fuse.homography import georeference_homography
from fuse.terrain import Dem
from ibet.messages import DetectionBatch
from ibet.registry import Registry


@dataclass(frozen=True)
class GroundMeasurement:
    """One detection placed on the ground (WGS-84), with its east/north covariance in m²."""

    sensor_id: str
    capture_ts_ns: int
    lat_deg: float
    lon_deg: float
    cov_en_m2: np.ndarray
    class_name: str
    score: float
    sensor_track_id: int | None
    ref: str


def ground_points(batch: DetectionBatch, registry: Registry, sigmas: GeorefSigmas,
                  fixed_sigmas: GeorefSigmas | None = None, terrains: Mapping[str, Dem] | None = None) -> GroundPoints:
    """Georeference every box of ``batch`` with the method its sensor supports (fixed cameras
    with ``fixed_sigmas``: a surveyed mount knows its pose far better than a drone), onto the
    sector's DEM in ``terrains`` where it has one."""
    sensor = registry.sensor(batch.sensor_id)
    ground_elev_m = registry.sector(sensor.sector_id).ground_elev_m
    terrain = (terrains or {}).get(sensor.sector_id)
    boxes = batch.as_arrays().xyxy
    if sensor.kind == "drone":
        return georeference_drone(boxes, batch.image_width_px, batch.image_height_px, batch.telemetry, ground_elev_m,
                                  sigmas, terrain)
    if sensor.pose is not None:
        return georeference_fixed_pose(boxes, batch.image_width_px, batch.image_height_px, sensor.pose, ground_elev_m,
                                       sensor.intrinsics, fixed_sigmas or sigmas, terrain)
    return georeference_homography(boxes, sensor.ground_control_points, sigmas.pixel_sigma_px)


EDGE_MARGIN_PX = 2.0


def measurements(batch: DetectionBatch, registry: Registry, sigmas: GeorefSigmas,
                 fixed_sigmas: GeorefSigmas | None = None,
                 terrains: Mapping[str, Dem] | None = None) -> tuple[list[GroundMeasurement], int, int]:
    """The valid ground measurements of ``batch``, how many boxes could not be placed, and how many
    of the placed ones fell back to flat ground off the sector's DEM (a hole, off the raster).

    A box whose bottom touches the bottom of the image is cut off by the frame: its ground
    contact point is not in the picture, so it is not placed (it would land metres short).
    """
    if not batch.detections:
        return [], 0, 0
    points = ground_points(batch, registry, sigmas, fixed_sigmas, terrains)
    cut_off = batch.as_arrays().xyxy[:, 3] >= batch.image_height_px - EDGE_MARGIN_PX
    out = []
    for k, det in enumerate(batch.detections):
        if points.valid[k] and not cut_off[k]:
            out.append(GroundMeasurement(batch.sensor_id, batch.capture_ts_ns, float(points.lat_deg[k]),
                                         float(points.lon_deg[k]), np.array(points.cov_en_m2[k]), det.class_name,
                                         det.score, det.sensor_track_id, f"{batch.sensor_id}:{batch.frame_sequence}:{k}"))
    fallback = int(np.count_nonzero(points.fallback & points.valid & ~cut_off))
    return out, len(batch.detections) - len(out), fallback


def sigmas_from(settings) -> tuple[GeorefSigmas, GeorefSigmas]:
    """(drone, fixed camera) georeferencing error models from :class:`ibet.config.FuseSettings`."""
    drone = GeorefSigmas(pixel_sigma_px=settings.pixel_sigma_px, attitude_sigma_deg=settings.attitude_sigma_deg,
                         position_sigma_m=settings.position_sigma_m, altitude_sigma_m=settings.position_sigma_m)
    fixed = GeorefSigmas(pixel_sigma_px=settings.pixel_sigma_px, attitude_sigma_deg=settings.fixed_attitude_sigma_deg,
                         position_sigma_m=settings.fixed_position_sigma_m, altitude_sigma_m=settings.fixed_position_sigma_m)
    return drone, fixed

"""Sensors of a scenario: when each one captures, where its camera truly is, and what it reports.

The renderer uses the true camera; the telemetry carries the scenario's errors (GPS and attitude
noise and bias, timestamp jitter), and dropped frames are never sent. The ground truth stays exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ibet.messages import Telemetry
from sim.camera import Camera
from sim.geo import LocalFrame
from sim.motion import RouteMotion
from sim.scenario import DroneSpec, FixedCameraSpec, SensorErrors


@dataclass(frozen=True)
class SensorFrame:
    """One capture: the true camera at the true time, and what the sensor says about it."""

    sensor_id: str
    sequence: int
    true_time_s: float
    reported_time_s: float
    camera: Camera
    telemetry: Telemetry | None
    dropped: bool


def _drone_angles(spec: DroneSpec, pos_m: np.ndarray, heading_deg: float) -> tuple[float, float]:
    """Gimbal (relative azimuth, relative elevation) in degrees for a level airframe."""
    gimbal = spec.gimbal
    if gimbal.look_at_m is None:
        return gimbal.rel_azimuth_deg, gimbal.rel_elevation_deg
    de, dn = gimbal.look_at_m[0] - pos_m[0], gimbal.look_at_m[1] - pos_m[1]
    azimuth = np.degrees(np.arctan2(de, dn))
    elevation = -np.degrees(np.arctan2(spec.flight.altitude_m, np.hypot(de, dn)))
    return float((azimuth - heading_deg) % 360.0), float(max(-90.0, elevation))


def _reported_telemetry(spec: DroneSpec, frame: LocalFrame, true_pos: np.ndarray, heading: float, rel_az: float,
                        rel_el: float, ground_elev_m: float, errors: SensorErrors, rng: np.random.Generator,
                        capture_us: int) -> Telemetry:
    """The drone's own (noisy) idea of its pose, in MISB ST 0601 terms, with its frame centre."""
    pos = true_pos + np.asarray(errors.gps_bias_m) + rng.normal(0.0, errors.gps_sigma_m, 3)
    att = errors.attitude_bias_deg + rng.normal(0.0, errors.attitude_sigma_deg, 4)
    heading_r = float((heading + att[0]) % 360.0)
    pitch_r, roll_r = float(np.clip(att[1], -90, 90)), float(np.clip(att[2], -180, 180))
    rel_el_r = float(np.clip(rel_el + att[3], -180, 180))
    reported = Camera.from_misb(pos, heading_r, pitch_r, roll_r, rel_az, rel_el_r, 0.0,
                                spec.image.width_px, spec.image.height_px, spec.image.hfov_deg)
    centre, valid = reported.ground_points(np.array([[spec.image.width_px / 2, spec.image.height_px / 2]]))
    lon, lat = frame.to_wgs84(pos[0], pos[1])
    fields = dict(
        precision_ts_us=capture_us, platform_heading_deg=heading_r, platform_pitch_deg=pitch_r,
        platform_roll_deg=roll_r, sensor_lat_deg=float(lat), sensor_lon_deg=float(lon),
        sensor_alt_m=float(ground_elev_m + pos[2]), sensor_rel_azimuth_deg=rel_az, sensor_rel_elevation_deg=rel_el_r,
        sensor_rel_roll_deg=0.0, hfov_deg=spec.image.hfov_deg, vfov_deg=reported.vfov_deg,
    )
    if valid[0]:
        c_lon, c_lat = frame.to_wgs84(centre[0, 0], centre[0, 1])
        fields |= dict(frame_center_lat_deg=float(c_lat), frame_center_lon_deg=float(c_lon),
                       frame_center_elev_m=float(ground_elev_m), slant_range_m=float(np.linalg.norm(centre[0] - pos)))
    return Telemetry(**fields)


def sensor_frames(spec: DroneSpec | FixedCameraSpec, frame: LocalFrame, start_us: int, duration_s: float,
                  ground_elev_m: float, rng: np.random.Generator) -> Iterator[SensorFrame]:
    """Every capture of ``spec`` during the scenario, in time order."""
    errors = spec.errors
    period = 1.0 / spec.frame_rate_hz
    phase = rng.uniform(0.0, period)  # sensors are not synchronised
    route = None
    if isinstance(spec, DroneSpec):
        route = RouteMotion.from_waypoints(np.asarray(spec.flight.waypoints_m, float), spec.flight.speed_mps,
                                           spec.flight.loop)
    for seq, t in enumerate(np.arange(phase, duration_s, period)):
        dropped = bool(rng.random() < errors.drop_rate)
        reported_t = float(t + rng.normal(0.0, errors.timestamp_jitter_ms / 1000.0))
        capture_us = start_us + int(round(reported_t * 1e6))
        if route is None:
            camera = Camera.fixed(np.array([*spec.position_m, spec.height_m]), spec.heading_deg, spec.tilt_deg,
                                  spec.image.width_px, spec.image.height_px, spec.image.hfov_deg)
            telemetry = None
        else:
            xy, heading = route.state_at(np.array([t]))
            pos = np.array([xy[0, 0], xy[0, 1], spec.flight.altitude_m])
            rel_az, rel_el = _drone_angles(spec, pos, float(heading[0]))
            camera = Camera.from_misb(pos, float(heading[0]), 0.0, 0.0, rel_az, rel_el, 0.0,
                                      spec.image.width_px, spec.image.height_px, spec.image.hfov_deg)
            telemetry = _reported_telemetry(spec, frame, pos, float(heading[0]), rel_az, rel_el, ground_elev_m,
                                            errors, rng, capture_us)
        yield SensorFrame(spec.id, seq, float(t), reported_t, camera, telemetry, dropped)

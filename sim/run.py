"""One run of a scenario with one seed: the frames every sensor sends, and the exact truth.

Frames come out in capture order across sensors, one at a time (a generator), so a long run
never holds its video in memory.
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ibet.messages import FrameMeta
from sim.render import TruthBox, render_frame, truth_boxes
from sim.scenario import DroneSpec, Scenario
from sim.sensors import SensorFrame, sensor_frames
from sim.sun import sun_position
from sim.truth import Target, TruthEvent, border_events, target_track_table
from sim.world import World, build_world, seeded_targets
from sim.world_map import TargetPose

INGEST_DELAY_NS = 40_000_000  # a nominal 40 ms from capture to ingest in the simulated metadata


@dataclass(frozen=True)
class SimFrame:
    """A frame as the sensor sends it (JPEG, metadata, KLV) with the truth of what is in it."""

    meta: FrameMeta
    jpeg: bytes
    klv: bytes | None
    true_time_s: float
    truth_boxes: tuple[TruthBox, ...]


@dataclass
class Simulation:
    scenario: Scenario
    seed: int
    world: World
    targets: list[Target]
    events: list[TruthEvent]
    start_ns: int
    dropped: dict[str, int] = field(default_factory=dict)

    def track_table(self) -> list[dict]:
        return target_track_table(self.targets, self.world.frame, self.scenario.duration_s, self.scenario.truth_step_s)

    def sun(self) -> tuple[float, float]:
        env = self.scenario.environment
        if env.sun_azimuth_deg is not None and env.sun_elevation_deg is not None:
            return env.sun_azimuth_deg, env.sun_elevation_deg
        return sun_position(env.start_time, self.world.frame.origin_lat_deg, self.world.frame.origin_lon_deg)

    def captures(self) -> Iterator[SensorFrame]:
        """Every capture of every sensor (dropped ones included), in true time order."""
        start_us = self.start_ns // 1000
        streams = [
            sensor_frames(spec, self.world.frame, start_us, self.scenario.duration_s, self.scenario.map.ground_elev_m,
                          np.random.default_rng([self.seed, 1, index]))
            for index, spec in enumerate(self.scenario.sensors)
        ]
        return heapq.merge(*streams, key=lambda f: f.true_time_s)

    def _dropped(self, capture: SensorFrame) -> bool:
        if capture.dropped:
            self.dropped[capture.sensor_id] = self.dropped.get(capture.sensor_id, 0) + 1
        return capture.dropped

    def poses_at(self, t_s: float) -> list[TargetPose]:
        poses = []
        for target in self.targets:
            xy, heading, active = target.motion.position_at(np.array([t_s]))
            if active[0]:
                poses.append(TargetPose(target.spec.id, target.spec.kind, (float(xy[0, 0]), float(xy[0, 1])),
                                        float(heading[0]), target.appearance))
        return poses

    def frames(self, every_nth: int = 1, sensors: frozenset[str] | None = None) -> Iterator[SimFrame]:
        """The frames the sensors send (dropped frames are not sent), rendered from the truth;
        with ``every_nth`` only every n-th sent frame is rendered and yielded (for datasets);
        with ``sensors`` only those sensors' frames are rendered (the others are not yielded)."""
        from ibet.klv import encode_st0601

        specs = {s.id: s for s in self.scenario.sensors}
        sun_az, sun_el = self.sun()
        for k, capture in enumerate(c for c in self.captures() if not self._dropped(c)):
            if k % every_nth or (sensors is not None and capture.sensor_id not in sensors):
                continue
            spec = specs[capture.sensor_id]
            rendered = render_frame(
                capture.camera, self.world.ground, self.poses_at(capture.true_time_s), sun_az, sun_el,
                self.scenario.environment.image_noise_sigma,
                np.random.default_rng([self.seed, 2, capture.sequence, zlib.crc32(capture.sensor_id.encode())]),
                spec.image.jpeg_quality,
            )
            capture_ns = self.start_ns + int(round(capture.reported_time_s * 1e9))
            meta = FrameMeta(
                sensor_id=capture.sensor_id, sequence=capture.sequence, capture_ts_ns=capture_ns,
                ingest_ts_ns=capture_ns + INGEST_DELAY_NS, width_px=spec.image.width_px,
                height_px=spec.image.height_px, device_frame_id=f"{capture.sensor_id}-{capture.sequence:06d}",
                telemetry=capture.telemetry,
            )
            klv = encode_st0601(capture.telemetry) if isinstance(spec, DroneSpec) and spec.klv and capture.telemetry else None
            yield SimFrame(meta, rendered.jpeg, klv, capture.true_time_s, rendered.boxes)


@dataclass(frozen=True)
class TruthFrame:
    """What a frame would carry, without its pixels: metadata, the true camera and truth boxes."""

    meta: FrameMeta
    true_time_s: float
    camera: object
    truth_boxes: tuple[TruthBox, ...]


def truth_frames(sim: Simulation) -> Iterator[TruthFrame]:
    """Every sent frame of ``sim`` as metadata and exact boxes, without rendering (fast)."""
    specs = {s.id: s for s in sim.scenario.sensors}
    for capture in sim.captures():
        if sim._dropped(capture):
            continue
        spec = specs[capture.sensor_id]
        capture_ns = sim.start_ns + int(round(capture.reported_time_s * 1e9))
        meta = FrameMeta(sensor_id=capture.sensor_id, sequence=capture.sequence, capture_ts_ns=capture_ns,
                         ingest_ts_ns=capture_ns + INGEST_DELAY_NS, width_px=spec.image.width_px,
                         height_px=spec.image.height_px, device_frame_id=f"{capture.sensor_id}-{capture.sequence:06d}",
                         telemetry=capture.telemetry)
        boxes = truth_boxes(capture.camera, sim.world.ground, sim.poses_at(capture.true_time_s))
        yield TruthFrame(meta, capture.true_time_s, capture.camera, boxes)


def simulate(scenario: Scenario, seed: int | None = None, world: World | None = None) -> Simulation:
    """Set up a run of ``scenario`` with ``seed`` (default: the scenario's own)."""
    seed = scenario.seed if seed is None else seed
    world = world or build_world(scenario, seed)
    targets = seeded_targets(scenario, np.random.default_rng([seed, 0]))
    events = border_events(targets, world.border, world.border_local, world.frame, world.ports,
                           scenario.approach_distance_m, scenario.truth_step_s)
    start_ns = int(scenario.environment.start_time.timestamp() * 1e9)
    return Simulation(scenario, seed, world, targets, events, start_ns)

"""``ibet eval SCENARIO``: a scenario through fusion, scored against the simulator's truth.

Detections come from the simulator's exact boxes degraded like a real detector
(:mod:`fuse.degrade`: misses, false boxes, jitter, no true ids); the stage's own code places
them on the ground, tracks them and applies the border rules. Per seed and overall: crossing
recall and precision, false alarms per hour, time from the true crossing to the event's
emission (capture time of the frame that triggered it), georeferencing error, identity switches.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fuse.border_relation import BorderModel
from fuse.degrade import DetectorModel, degrade, detection_batch
from fuse.measurements import measurements, sigmas_from
from fuse.scoring import FiredEvent, TrueEvent, distance_m, identity_switches, percentiles, score_events
from fuse.sector_fusion import SectorFusion
from fuse.terrain import Dem
from ibet.border import BorderGeometry, load_border
from ibet.config import FuseSettings
from ibet.exceptions import IbetError
from ibet.registry import Registry
from sim.run import simulate, truth_frames
from sim.scenario import Scenario
from sim.world import snapped_origin


class ScenarioMismatch(IbetError):
    """A scenario whose sensors are not the registry's (unknown, or of another sector or kind)."""


POSE_TOLERANCE = {"position": 1.0, "height_m": 0.1, "heading_deg": 0.1, "tilt_deg": 0.1, "hfov_deg": 0.1}


def check_against_registry(scenario: Scenario, registry: Registry, border: BorderGeometry | None = None) -> None:
    """ScenarioMismatch naming every sensor of ``scenario`` the registry does not have as it is there:
    unknown ids, another sector, another kind, or a fixed camera standing or looking elsewhere
    (more than ``POSE_TOLERANCE``: 1 m, 0.1 m of height, 0.1 degree); the fusion would place
    their detections wrongly."""
    known = {s.id: s for s in registry.sensors}
    problems = []
    if scenario.sector_id not in {s.id for s in registry.sectors}:
        problems.append(f"sector {scenario.sector_id!r} is not in the registry")
    frame = None
    for spec in scenario.sensors:
        sensor = known.get(spec.id)
        if sensor is None:
            problems.append(f"sensor {spec.id!r} is not in the registry (add it with its pose, or use a registered id)")
        elif sensor.sector_id != scenario.sector_id:
            problems.append(f"sensor {spec.id!r} is in sector {sensor.sector_id!r} in the registry, "
                            f"not {scenario.sector_id!r}")
        elif sensor.kind != spec.kind:
            problems.append(f"sensor {spec.id!r} is a {sensor.kind} in the registry, a {spec.kind} in the scenario")
        elif spec.kind == "fixed_camera" and sensor.pose is not None:
            frame = frame or snapped_origin(scenario, border or load_border())
            problems += _pose_differences(spec, sensor.pose, frame)
    if problems:
        raise ScenarioMismatch(f"scenario {scenario.name}: " + "; ".join(problems))


def _pose_differences(spec, pose, frame) -> list[str]:
    lon, lat = frame.to_wgs84(*spec.position_m)
    east, north = frame.to_local(pose.lon_deg, pose.lat_deg)
    off = float(np.hypot(east - spec.position_m[0], north - spec.position_m[1]))
    found = []
    if off > POSE_TOLERANCE["position"]:
        found.append(f"stands {off:.1f} m from its registry pose (scenario at {float(lat):.7f}, {float(lon):.7f}; "
                     f"registry {pose.lat_deg}, {pose.lon_deg})")
    heading_off = abs((spec.heading_deg - pose.heading_deg + 180) % 360 - 180)
    for name, ours, theirs, diff in (("height_m", spec.height_m, pose.height_m, abs(spec.height_m - pose.height_m)),
                                     ("heading_deg", spec.heading_deg, pose.heading_deg, heading_off),
                                     ("tilt_deg", spec.tilt_deg, pose.tilt_deg, abs(spec.tilt_deg - pose.tilt_deg)),
                                     ("hfov_deg", spec.image.hfov_deg, pose.hfov_deg,
                                      abs(spec.image.hfov_deg - pose.hfov_deg))):
        if diff > POSE_TOLERANCE[name]:
            found.append(f"{name} {ours} in the scenario, {theirs} in the registry")
    return [f"camera {spec.id!r} " + "; ".join(found)] if found else []


@dataclass
class SeedResult:
    seed: int
    fired: list[FiredEvent]
    truth: list[TrueEvent]
    georef_errors_m: list[float]
    track_ids_per_target: dict[int, list[str]]


def run_seed(scenario: Scenario, seed: int, registry: Registry, model: BorderModel, settings: FuseSettings,
             detector: DetectorModel, terrains: Mapping[str, Dem] | None = None) -> SeedResult:
    sim = simulate(scenario, seed)
    fusion = SectorFusion(scenario.sector_id, model, settings)
    fusion.expect_sensors([s.id for s in registry.sensors_in(scenario.sector_id)])
    sigmas, fixed_sigmas = sigmas_from(settings)
    rng = np.random.default_rng([seed, 99])
    fired, errors, followers = [], [], defaultdict(list)
    for frame in truth_frames(sim):
        dets, truth_ids = degrade(frame.truth_boxes, frame.meta.width_px, frame.meta.height_px, detector, rng)
        batch = detection_batch(frame, scenario.sector_id, dets)
        placed, _, _ = measurements(batch, registry, sigmas, fixed_sigmas, terrains)
        refs = {f"{batch.sensor_id}:{batch.frame_sequence}:{k}": tid for k, tid in enumerate(truth_ids)}
        for m in placed:  # georeferencing error against the true target at the true capture time
            tid = refs.get(m.ref)
            if tid is not None:
                lat, lon = _true_position(sim, tid, frame.true_time_s)
                errors.append(float(distance_m(m.lat_deg, m.lon_deg, lat, lon)))
        updates, events = fusion.process(placed, batch.capture_ts_ns, sensor_id=batch.sensor_id)
        fired += [FiredEvent(e, batch.capture_ts_ns) for e in events]
        for target in sim.targets:  # which confirmed track follows each target (nearest within 10 m)
            lat, lon = _true_position(sim, target.spec.id, frame.true_time_s)
            if lat is None:
                continue
            live = [u for u in updates if u.status == "confirmed"]
            if live:
                d = distance_m([u.lat_deg for u in live], [u.lon_deg for u in live], [lat] * len(live), [lon] * len(live))
                k = int(np.argmin(d))
                if d[k] <= 10.0:
                    followers[target.spec.id].append(live[k].track_id)
    truth = [TrueEvent(e.kind, e.direction, sim.start_ns + int(round(e.time_s * 1e9)), e.lat_deg, e.lon_deg, e.target_id)
             for e in sim.events]
    return SeedResult(seed, fired, truth, errors, dict(followers))


def _true_position(sim, target_id: int, t_s: float) -> tuple[float | None, float | None]:
    target = next(t for t in sim.targets if t.spec.id == target_id)
    xy, _, active = target.motion.position_at(np.array([t_s]))
    if not active[0]:
        return None, None
    lon, lat = sim.world.frame.to_wgs84(xy[0, 0], xy[0, 1])
    return float(lat), float(lon)


def evaluate(scenario: Scenario, seeds: Sequence[int], registry: Registry, model: BorderModel,
             settings: FuseSettings | None = None, detector: DetectorModel | None = None,
             terrains: Mapping[str, Dem] | None = None) -> dict:
    """Scores over ``seeds`` (events pooled across seeds), as one flat JSON-ready dict; fused
    onto the sectors' DEMs in ``terrains`` (as the fuse stage does), else flat ground."""
    settings, detector = settings or FuseSettings(), detector or DetectorModel()
    results = [run_seed(scenario, s, registry, model, settings, detector, terrains) for s in seeds]
    fired = [f for r in results for f in r.fired]
    truth = [t for r in results for t in r.truth]
    scores = score_events(fired, truth, scenario.duration_s * len(seeds))
    p50, p95 = percentiles([e for r in results for e in r.georef_errors_m])
    return {
        "scenario": scenario.name, "seeds": list(seeds), **scores,
        "georef_error_median_m": p50, "georef_error_p95_m": p95,
        "identity_switches": sum(identity_switches(r.track_ids_per_target) for r in results),
        "expected": scenario.expected.model_dump(),
        "detector": {"miss_rate": detector.miss_rate, "false_per_frame": detector.false_per_frame,
                     "jitter_px": detector.jitter_px},
    }

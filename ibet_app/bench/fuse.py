"""``ibet bench fuse``: our georeference + track + border path against Stone Soup on the same measurements.

A synthetic scene on a local plane (metres) centred on the 49th parallel near 49.0 N, -97.45: N
targets at constant velocity (random headings, 1-15 m/s) in a 2 km x 2 km square that the border
crosses, seen by 2 sensors every 0.5 s (2 Hz) with Gaussian position noise (3 m), a detection
probability of 0.9 and a little clutter (Poisson, 2 per frame). Every frame is drawn once and
fed to every side, scan by scan, the sides' order rotating each scan, in one process:

- ours: the fuse stage's path per sensor frame. The frame's boxes are georeferenced with
  :func:`georeference_fixed_pose` (one box per measurement, a surveyed mast camera), the ground
  measurements are built from the scene's positions (so every side sees the same numbers; the
  georeferencing is there for its cost), then :meth:`SectorFusion.process`: local plane, reorder
  buffer, :class:`Tracker`, :meth:`BorderModel.relation` on the changed tracks, TrackUpdates and
  border events. After the last scan an empty frame releases the reorder buffer (timed too).
- ours, tracker only: the same tracker components fed plane measurements (no georef, no border).
- Stone Soup: MultiTargetTracker of ConstantVelocity (same q) + LinearGaussian (same R) with
  KalmanPredictor / KalmanUpdater, DistanceHypothesiser with the Mahalanobis measure (same gate),
  GNNWith2DAssignment, a MultiMeasurementInitiator and a time / covariance deleter like ours;
  one step per sensor frame, as our associator assigns each sensor's block separately.

The saved state is timed beside "ours", outside its detections/s, with the two writers taking
turns first: the stage's changelog (``fuse.state_parts`` + ``StateChangelog``) after every frame
(``fuse.state_interval_s: 0``, the most it can cost) and at the default checkpoint interval, and
the whole-sector snapshot fuse wrote before (``json.dumps(to_state())``), as the baseline.
Stone Soup runs up to ``stonesoup_max`` targets (its hypothesiser is O(tracks x detections)).

Reported per N: detections/s of each side (measurements / wall seconds), the ratios ours / Stone
Soup, and accuracy after a 3 s warm-up: position RMSE of confirmed tracks matched to truth by
optimal assignment (pairs closer than the OSPA cutoff) and OSPA (c = 20 m, p = 1). Plus
:func:`ibet_app.bench.border.bench_border`: the vectorised border relation against a per-point
GeoPandas loop. A benchmark, not a test: nothing here asserts a timing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import typer
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from fuse import state_parts
from fuse.border_relation import BorderModel
from fuse.frames import LocalPlane
from fuse.georef import georeference_fixed_pose
from fuse.ground_points import GeorefSigmas
from fuse.measurements import GroundMeasurement
from fuse.sector_fusion import SectorFusion
from fuse.tracking import CHI2_2DOF_99, Measurement, Tracker, TrackStatus
from ibet.border import load_border, load_ports_of_entry, nearest_on_border
from ibet.config import FuseSettings
from ibet.registry import FixedPose
from ibet.state_changelog import StateChangelog
from ibet_app.bench.border import DEFAULT_PORTS, bench_border

NEAR_LAT_DEG, NEAR_LON_DEG = 49.0, -97.45  # the scene is centred on the border line nearest this
HALF_SIDE_M = 1000.0
SCAN_HZ = 2.0
SENSORS = ("mast-west", "mast-east")
SPEED_MPS = (1.0, 15.0)
NOISE_SIGMA_M = 3.0
P_DETECT = 0.9
CLUTTER_PER_FRAME = 2.0
OSPA_CUTOFF_M, OSPA_P = 20.0, 1
WARMUP_S = 3.0
IMAGE_W_PX, IMAGE_H_PX = 1920, 1080
T0_NS = 1_700_000_000_000_000_000
SCAN_NS = round(1e9 / SCAN_HZ)
R_M2 = np.eye(2) * NOISE_SIGMA_M**2


@dataclass(frozen=True)
class Frame:
    """One sensor's measurements at one scan: xy_m (k, 2) plane metres, lat/lon (k,), boxes (k, 4) px."""

    sensor_id: str
    scan: int
    time_ns: int
    xy_m: np.ndarray
    lat_deg: np.ndarray
    lon_deg: np.ndarray
    boxes_xyxy_px: np.ndarray


@dataclass(frozen=True)
class Scene:
    """Truth (start positions and velocities, (n, 2) each) and the frames, scan by scan."""

    start_m: np.ndarray
    velocity_mps: np.ndarray
    scans: list[list[Frame]]

    def truth_at(self, time_ns: int) -> np.ndarray:
        """(n, 2) true positions in metres at ``time_ns``."""
        return self.start_m + self.velocity_mps * ((time_ns - T0_NS) / 1e9)


def make_scene(n_targets: int, n_scans: int, plane: LocalPlane, seed: int) -> Scene:
    """Targets, their noisy detections by both sensors with clutter, and one box per measurement."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(-HALF_SIDE_M, HALF_SIDE_M, (n_targets, 2))
    heading = rng.uniform(0.0, 2 * np.pi, n_targets)
    speed = rng.uniform(*SPEED_MPS, n_targets)
    scene = Scene(start, np.column_stack([speed * np.sin(heading), speed * np.cos(heading)]), [])
    for k in range(n_scans):
        t_ns = T0_NS + k * SCAN_NS
        truth = scene.truth_at(t_ns)
        frames = []
        for sensor in SENSORS:
            seen = truth[rng.random(n_targets) < P_DETECT]
            seen = seen + rng.normal(0.0, NOISE_SIGMA_M, seen.shape)
            clutter = rng.uniform(-HALF_SIDE_M - 200.0, HALF_SIDE_M + 200.0, (rng.poisson(CLUTTER_PER_FRAME), 2))
            xy = rng.permutation(np.vstack([seen, clutter]))
            lat, lon = plane.to_latlon(xy[:, 0], xy[:, 1])
            u, v = rng.uniform(100, IMAGE_W_PX - 100, len(xy)), rng.uniform(0.6 * IMAGE_H_PX, IMAGE_H_PX - 5, len(xy))
            boxes = np.column_stack([u - 15, v - 60, u + 15, v])  # below the horizon: every one lands
            frames.append(Frame(sensor, k, t_ns, xy, np.atleast_1d(lat), np.atleast_1d(lon), boxes))
        scene.scans.append(frames)
    return scene


def ospa_and_errors(truth: np.ndarray, estimate: np.ndarray, c: float = OSPA_CUTOFF_M, p: int = OSPA_P
                    ) -> tuple[float, np.ndarray]:
    """OSPA distance (m) of two point sets (n, 2), (m, 2), and the distances of the assigned pairs below c."""
    n, m = len(truth), len(estimate)
    if n == 0 or m == 0:
        return (0.0 if n == m else c), np.empty(0)
    d = np.minimum(cdist(truth, estimate), c)
    rows, cols = linear_sum_assignment(d**p)
    cost = float((d[rows, cols] ** p).sum()) + c**p * abs(n - m)
    matched = d[rows, cols]
    return (cost / max(n, m)) ** (1.0 / p), matched[matched < c]


class Accuracy:
    """Accumulates OSPA and matched errors over the scans evaluated (each scan time once)."""

    def __init__(self, scene: Scene, warmup_ns: int) -> None:
        self.scene, self.warmup_ns = scene, warmup_ns
        self.seen: set[int] = set()
        self.ospa: list[float] = []
        self.errors: list[np.ndarray] = []
        self.track_counts: list[int] = []

    def add(self, time_ns: int | None, positions_m: np.ndarray) -> None:
        if time_ns is None or time_ns in self.seen or time_ns < T0_NS + self.warmup_ns:
            return
        self.seen.add(time_ns)
        ospa, errors = ospa_and_errors(self.scene.truth_at(time_ns), positions_m.reshape(-1, 2))
        self.ospa.append(ospa)
        self.errors.append(errors)
        self.track_counts.append(len(positions_m))

    def summary(self, prefix: str) -> dict[str, Any]:
        errors = np.concatenate(self.errors) if self.errors else np.empty(0)
        return {f"{prefix}_rmse_m": round(float(np.sqrt(np.mean(errors**2))), 3) if errors.size else None,
                f"{prefix}_ospa_m": round(float(np.mean(self.ospa)), 3) if self.ospa else None,
                f"{prefix}_confirmed_tracks_mean": round(float(np.mean(self.track_counts)), 1) if self.track_counts else None,
                f"{prefix}_scans_scored": len(self.ospa)}


def _confirmed(tracker: Tracker) -> tuple[int | None, np.ndarray]:
    """Scan time and (k, 2) positions of the confirmed (or coasting) tracks of our tracker."""
    live = [t for t in tracker.tracks if t.status in (TrackStatus.CONFIRMED, TrackStatus.COASTING)]
    times = {t.state_ns for t in tracker.tracks}
    return (max(times) if times else None), np.array([t.x[:2] for t in live]).reshape(-1, 2)


class OursFull:
    """The fuse stage's path: georeference the frame's boxes, then :meth:`SectorFusion.process`."""

    def __init__(self, model: BorderModel, plane: LocalPlane, settings: FuseSettings) -> None:
        self.fusion = SectorFusion("bench", model, settings, plane=plane)
        self.sigmas = GeorefSigmas(pixel_sigma_px=settings.pixel_sigma_px, attitude_sigma_deg=settings.attitude_sigma_deg,
                                   position_sigma_m=settings.position_sigma_m)
        self.poses = {sensor: FixedPose(lat_deg=float(lat), lon_deg=float(lon), height_m=30.0, heading_deg=heading,
                                        tilt_deg=2.0, hfov_deg=60.0)
                      for sensor, lat, lon, heading in zip(SENSORS, *plane.to_latlon(np.array([-1500.0, 1500.0]),
                                                                                   np.array([0.0, 0.0])), (90.0, 270.0),
                                                           strict=True)}

    def frame(self, frame: Frame) -> int:
        points = georeference_fixed_pose(frame.boxes_xyxy_px, IMAGE_W_PX, IMAGE_H_PX, self.poses[frame.sensor_id], 0.0,
                                         None, self.sigmas)
        placed = [GroundMeasurement(frame.sensor_id, frame.time_ns, float(frame.lat_deg[k]), float(frame.lon_deg[k]),
                                    R_M2, "person", 0.9, None, f"{frame.sensor_id}:{frame.scan}:{k}")
                  for k in range(len(frame.xy_m)) if points.valid[k]]
        self.fusion.process(placed, frame.time_ns)
        return len(placed)

    def finish(self, last_ns: int) -> None:
        """An empty frame after the reorder window: releases the last scans (end of input)."""
        self.fusion.process([], last_ns + round(self.fusion.settings.reorder_window_s * 1e9) + 1)

    def state(self) -> tuple[int | None, np.ndarray]:
        return _confirmed(self.fusion.tracker)


class OursTracker:
    """The same tracker components fed plane measurements: no georeferencing, no border, no messages."""

    def __init__(self, model: BorderModel, plane: LocalPlane, settings: FuseSettings) -> None:
        self.tracker = SectorFusion("bench", model, settings, plane=plane).tracker
        self.window_ns = round(settings.reorder_window_s * 1e9)

    def frame(self, frame: Frame) -> int:
        self.tracker.process([Measurement(frame.sensor_id, frame.time_ns, xy, R_M2, "person", 0.9) for xy in frame.xy_m],
                             time_ns=frame.time_ns)
        return len(frame.xy_m)

    def finish(self, last_ns: int) -> None:
        self.tracker.step(last_ns + self.window_ns + 1)

    def state(self) -> tuple[int | None, np.ndarray]:
        return _confirmed(self.tracker)


class StoneSoupGnn:
    """Stone Soup's MultiTargetTracker with GNN + Kalman, configured like our tracker."""

    def __init__(self, settings: FuseSettings) -> None:
        from stonesoup.dataassociator.neighbour import GNNWith2DAssignment
        from stonesoup.deleter.error import CovarianceBasedDeleter
        from stonesoup.deleter.multi import CompositeDeleter
        from stonesoup.deleter.time import UpdateTimeDeleter
        from stonesoup.hypothesiser.distance import DistanceHypothesiser
        from stonesoup.initiator.simple import MultiMeasurementInitiator
        from stonesoup.measures import Mahalanobis
        from stonesoup.models.measurement.linear import LinearGaussian
        from stonesoup.models.transition.linear import CombinedLinearGaussianTransitionModel, ConstantVelocity
        from stonesoup.predictor.kalman import KalmanPredictor
        from stonesoup.tracker.simple import MultiTargetTracker
        from stonesoup.types.detection import Detection
        from stonesoup.types.state import GaussianState
        from stonesoup.updater.kalman import KalmanUpdater

        self._detection = Detection
        q = settings.process_noise_accel_mps2**2  # the same spectral density as ours
        transition = CombinedLinearGaussianTransitionModel([ConstantVelocity(q), ConstantVelocity(q)])
        self.measurement_model = LinearGaussian(ndim_state=4, mapping=(0, 2), noise_covar=R_M2)  # state [x, vx, y, vy]
        predictor = KalmanPredictor(transition)
        updater = KalmanUpdater(self.measurement_model)
        hypothesiser = DistanceHypothesiser(predictor, updater, measure=Mahalanobis(),
                                            missed_distance=float(np.sqrt(CHI2_2DOF_99)))  # same gate as ours (d² 9.21)
        initiator = MultiMeasurementInitiator(
            prior_state=GaussianState(np.zeros((4, 1)), np.diag([0.0, 5.0**2, 0.0, 5.0**2])),  # ours: 5 m/s sigma
            measurement_model=self.measurement_model,
            deleter=UpdateTimeDeleter(timedelta(seconds=1.0)),  # ~ ours: 3 misses at 2 Hz drop a tentative track
            data_associator=GNNWith2DAssignment(hypothesiser), updater=updater,
            min_points=2 * settings.confirm_m - 1)  # an update per sensor: ~3 scans of 2 sensors, one miss allowed
        deleter = CompositeDeleter([UpdateTimeDeleter(timedelta(seconds=settings.delete_after_s)),
                                    CovarianceBasedDeleter(covar_trace_thresh=5000.0, mapping=[0, 2])], intersect=False)
        self.tracker = MultiTargetTracker(initiator=initiator, deleter=deleter, detector=None,
                                          data_associator=GNNWith2DAssignment(hypothesiser), updater=updater)
        self.base = datetime(2023, 11, 14, tzinfo=UTC)
        self.time_ns: int | None = None

    def frame(self, frame: Frame) -> int:
        when = self.base + timedelta(microseconds=(frame.time_ns - T0_NS) // 1000)
        detections = {self._detection(xy.reshape(2, 1), timestamp=when, measurement_model=self.measurement_model)
                      for xy in frame.xy_m}
        self.tracker.update_tracker(when, detections)
        self.time_ns = frame.time_ns
        return len(frame.xy_m)

    def finish(self, last_ns: int) -> None:
        pass

    def state(self) -> tuple[int | None, np.ndarray]:
        tracks = self.tracker.tracks
        return self.time_ns, np.array([np.asarray(t.state_vector, dtype=float)[[0, 2], 0] for t in tracks]).reshape(-1, 2)


class StateWriters:
    """The saved state of "ours", three ways, each timed per call and its bytes counted."""

    def __init__(self, fusion: SectorFusion, frames_per_checkpoint: int) -> None:
        self.fusion, self.every = fusion, max(1, frames_per_checkpoint)
        self.every_frame, self.checkpointed = StateChangelog("bench"), StateChangelog("bench")
        self.seconds = {"changelog": 0.0, "checkpointed": 0.0, "whole": 0.0}
        self.bytes = dict.fromkeys(self.seconds, 0)
        self.largest_record = dict.fromkeys(self.seconds, 0)
        self.frames = 0

    def frame(self) -> None:
        self.frames += 1
        writers = [("changelog", self._changelog), ("whole", self._whole)]
        if self.frames % self.every == 0:
            writers.append(("checkpointed", self._checkpointed))
        for name, write in writers[self.frames % 2:] + writers[: self.frames % 2]:
            start = time.perf_counter()
            sizes = write()
            self.seconds[name] += time.perf_counter() - start
            self.bytes[name] += sum(sizes)
            self.largest_record[name] = max(self.largest_record[name], max(sizes, default=0))

    def _changelog(self) -> list[int]:
        return [len(r.value or b"") for r in self.every_frame.records("bench", state_parts.split(self.fusion.to_state()))]

    def _checkpointed(self) -> list[int]:
        return [len(r.value or b"") for r in self.checkpointed.records("bench", state_parts.split(self.fusion.to_state()))]

    def _whole(self) -> list[int]:
        return [len(json.dumps(self.fusion.to_state()).encode())]

    def summary(self, processing_s: float) -> dict[str, Any]:
        n = max(self.frames, 1)
        return {
            "state_changelog_ms_per_frame": round(1000 * self.seconds["changelog"] / n, 2),
            "state_whole_ms_per_frame": round(1000 * self.seconds["whole"] / n, 2),
            "state_changelog_kb_per_frame": round(self.bytes["changelog"] / n / 1000, 1),
            "state_whole_kb_per_frame": round(self.bytes["whole"] / n / 1000, 1),
            "state_largest_record_kb": round(self.largest_record["changelog"] / 1000, 1),
            "state_whole_record_kb": round(self.largest_record["whole"] / 1000, 1),
            "state_fraction_every_frame": round(self.seconds["changelog"] / processing_s, 3),
            "state_fraction_checkpointed": round(self.seconds["checkpointed"] / processing_s, 3),
            "state_fraction_whole": round(self.seconds["whole"] / processing_s, 3),
        }


def _run_case(n_targets: int, n_scans: int, seed: int, model: BorderModel, plane: LocalPlane,
              settings: FuseSettings, stonesoup_max: int = 1000) -> dict[str, Any]:
    """One N: every side on the same frames, scan by scan, the order rotating each scan."""
    scene = make_scene(n_targets, n_scans, plane, seed)
    sides: dict[str, Any] = {"ours": OursFull(model, plane, settings), "ours_tracker": OursTracker(model, plane, settings)}
    if n_targets <= stonesoup_max:
        sides["stonesoup"] = StoneSoupGnn(settings)
    writers = StateWriters(sides["ours"].fusion, round(settings.state_interval_s * SCAN_HZ * len(SENSORS)))
    seconds = dict.fromkeys(sides, 0.0)
    counts = dict.fromkeys(sides, 0)
    accuracy = {name: Accuracy(scene, round(WARMUP_S * 1e9)) for name in ("ours", "stonesoup") if name in sides}
    names = list(sides)
    for k, frames in enumerate(scene.scans):
        for name in names[k % len(names):] + names[: k % len(names)]:
            for frame in frames:
                start = time.perf_counter()
                counts[name] += sides[name].frame(frame)
                seconds[name] += time.perf_counter() - start
                if name == "ours":
                    writers.frame()  # timed on its own, outside ours' detections/s
            if name in accuracy:
                accuracy[name].add(*sides[name].state())
            if k == n_scans - 1:  # end of input: release what the reorder buffer still holds
                start = time.perf_counter()
                sides[name].finish(frames[0].time_ns)
                seconds[name] += time.perf_counter() - start
                if name in accuracy:
                    accuracy[name].add(*sides[name].state())
    rates = {name: counts[name] / seconds[name] for name in sides}
    stonesoup = rates.get("stonesoup")
    return {"targets": n_targets, "scans": n_scans, "warmup_scans": round(WARMUP_S * SCAN_HZ),
            "measurements": counts["ours_tracker"],
            "ours_detections_per_s": round(rates["ours"], 1),
            "ours_tracker_detections_per_s": round(rates["ours_tracker"], 1),
            "stonesoup_detections_per_s": None if stonesoup is None else round(stonesoup, 1),
            "ratio": None if stonesoup is None else round(rates["ours"] / stonesoup, 2),
            "tracker_ratio": None if stonesoup is None else round(rates["ours_tracker"] / stonesoup, 2),
            "ours_ms_per_frame": round(1000 * seconds["ours"] / max(writers.frames, 1), 2),
            **writers.summary(seconds["ours"]),
            **accuracy["ours"].summary("ours"),
            **(accuracy["stonesoup"].summary("stonesoup") if "stonesoup" in accuracy else {})}


def scans_for(n_targets: int, scans: int) -> int:
    """Fewer scans for many targets (Stone Soup's hypothesiser is O(tracks x detections) in Python): at least 12."""
    return min(scans, max(12, scans * 100 // max(n_targets, 1)))


def run_fuse_bench(targets_list: Sequence[int] = (10, 100, 500), scans: int = 60, seed: int = 0,
                   border_points: int = 10_000, border_loop_points: int = 1_000, stonesoup_max: int = 1000) -> dict[str, Any]:
    """Run every N of ``targets_list`` (see the module docstring) and the border bench; all figures in one dict.

    Returns ``{"cases": [per-N dict, ...], "border": bench_border(...), "scene": {...}}``; each case
    holds detections/s per side, ``ratio`` (ours / Stone Soup, full path) and ``tracker_ratio``,
    RMSE (m), OSPA (m) and the scan counts. Example: ``run_fuse_bench((5,), scans=10)``.
    """
    import stonesoup

    model = BorderModel(load_border(), load_ports_of_entry(DEFAULT_PORTS))
    centre_lon, centre_lat, _ = nearest_on_border(model.border, NEAR_LON_DEG, NEAR_LAT_DEG)
    plane = LocalPlane(centre_lat, centre_lon)
    settings = FuseSettings()
    cases = [_run_case(n, scans_for(n, scans), seed + i, model, plane, settings, stonesoup_max)
             for i, n in enumerate(targets_list)]
    border = bench_border(border_points, border_loop_points, seed, model)
    scene = {"centre_lat_deg": round(centre_lat, 5), "centre_lon_deg": round(centre_lon, 5),
             "area_km2": (2 * HALF_SIDE_M / 1000) ** 2, "sensors": len(SENSORS), "scan_hz": SCAN_HZ,
             "noise_sigma_m": NOISE_SIGMA_M, "p_detect": P_DETECT, "clutter_per_frame": CLUTTER_PER_FRAME,
             "speed_mps": list(SPEED_MPS), "ospa_cutoff_m": OSPA_CUTOFF_M, "ospa_p": OSPA_P, "warmup_s": WARMUP_S,
             "process_noise_accel_mps2": settings.process_noise_accel_mps2, "gate_chi2": CHI2_2DOF_99,
             "stonesoup_version": stonesoup.__version__}
    return {"cases": cases, "border": border, "scene": scene}


FIGURES = [("scans (2 Hz)", "scans"), ("measurements", "measurements"),
           ("ours det/s (georef+track+border)", "ours_detections_per_s"),
           ("ours det/s (tracker only)", "ours_tracker_detections_per_s"),
           ("Stone Soup det/s", "stonesoup_detections_per_s"), ("ratio ours/Stone Soup", "ratio"),
           ("ratio tracker only", "tracker_ratio"), ("RMSE ours (m)", "ours_rmse_m"),
           ("RMSE Stone Soup (m)", "stonesoup_rmse_m"), ("OSPA ours (m)", "ours_ospa_m"),
           ("OSPA Stone Soup (m)", "stonesoup_ospa_m"), ("tracks ours (mean)", "ours_confirmed_tracks_mean"),
           ("tracks Stone Soup (mean)", "stonesoup_confirmed_tracks_mean"),
           ("ours ms per frame", "ours_ms_per_frame"),
           ("state: changelog ms per frame", "state_changelog_ms_per_frame"),
           ("state: whole snapshot ms per frame (before)", "state_whole_ms_per_frame"),
           ("state: changelog KB per frame", "state_changelog_kb_per_frame"),
           ("state: whole snapshot KB per frame", "state_whole_kb_per_frame"),
           ("state: largest changelog record KB", "state_largest_record_kb"),
           ("state / processing, every frame", "state_fraction_every_frame"),
           ("state / processing, checkpoint every state_interval_s", "state_fraction_checkpointed"),
           ("state / processing, whole snapshot every frame (before)", "state_fraction_whole")]


def table(result: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """The report's columns (one per N) and rows (one per figure), then the border bench's rows."""
    cases = result["cases"]
    columns = ["figure", *(f"N={c['targets']}" for c in cases)]
    rows: list[list[Any]] = [[label, *("–" if c.get(key) is None else c[key] for c in cases)] for label, key in FIGURES]
    b, blank = result["border"], [""] * (len(cases) - 1)
    rows += [[f"border: vectorised pts/s ({b['n_points']:,})", b["vectorised_points_per_s"], *blank],
             [f"border: GeoPandas loop pts/s ({b['loop_points']:,})", b["loop_points_per_s"], *blank],
             ["border: ratio vectorised/loop", b["ratio"], *blank]]
    return columns, rows


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The one JSON object: ``ratio`` is the 100-target full-path ratio (else the middle case's)."""
    cases = result["cases"]
    compared = [c for c in cases if c["ratio"] is not None] or cases
    headline = next((c for c in compared if c["targets"] == 100), compared[len(compared) // 2])
    out: dict[str, Any] = {"bench": "fuse", "baseline": "Stone Soup GNN + Kalman", "ratio": headline["ratio"],
                           "ratio_targets": headline["targets"]}
    for case in cases:
        out.update({f"n{case['targets']}_{k}": v for k, v in case.items() if k != "targets"})
    out.update({f"border_{k}": v for k, v in result["border"].items() if k != "bench"})
    out.update(result["scene"])
    return out


def bench_fuse_command(
    targets: str = "10,100,500",
    scans: int = 60,
    seed: int = 0,
    stonesoup_max: int = 1000,
) -> None:
    """Georeference + track + border against Stone Soup GNN + Kalman on the same measurements: ratio, RMSE, OSPA."""
    from ibet_app.bench.report import report

    try:
        targets_list = [int(t) for t in targets.split(",") if t.strip()]
    except ValueError:
        raise typer.BadParameter(f"targets must be comma-separated integers, got {targets!r}") from None
    if not targets_list or min(targets_list) < 1 or scans < 2 * round(WARMUP_S * SCAN_HZ):
        raise typer.BadParameter(f"need target counts >= 1 and scans >= {2 * round(WARMUP_S * SCAN_HZ)}")
    from ibet_app.bench.georef import run_georef_bench

    georef = run_georef_bench(seed=seed)
    report("bench-fuse-georef", f"ibet bench fuse: georeferencing per detection ({georef['detections_near']} drone "
           f"detections at 70-120 m; {georef['detections_far']} at 2-20 km), best of 3",
           ["ground", "us/detection", "ratio to flat plane"],
           [[k, georef["us_per_detection"][k], georef["ratio_to_flat"][k]] for k in georef["us_per_detection"]],
           {"bench": "fuse-georef", "baseline": "flat tangent plane, same rays", **georef})
    result = run_fuse_bench(targets_list, scans, seed, stonesoup_max=stonesoup_max)
    columns, rows = table(result)
    report("bench-fuse", "ibet bench fuse: ours vs Stone Soup GNN + Kalman, same measurements", columns, rows,
           summary(result))


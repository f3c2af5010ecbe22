"""Border events as the fuse stage makes them from a shipped scenario (its degraded truth as the
detections), for tests of what comes after fuse."""

from __future__ import annotations

from functools import cache

import numpy as np

from fuse.degrade import DetectorModel, degrade, detection_batch
from ibet import topics
from ibet.bus.base import OutRecord
from ibet.bus.memory import MemoryBus
from ibet.config import IbetConfig, RunnerSettings
from ibet.messages import BorderEvent, BorderEventType, TrackUpdate
from ibet.registry import load_registry
from ibet.runner import StageRunner
from ibet_app.stages import build_stage
from sim.run import simulate, truth_frames
from sim.scenario import load_scenario, resolve_scenario


@cache
def _fused(name: str, seed: int) -> MemoryBus:
    registry = load_registry("config/registry.yaml")
    scenario = load_scenario(resolve_scenario(name))
    sim = simulate(scenario, seed)
    rng = np.random.default_rng(seed)
    bus = MemoryBus(default_partitions=1)
    producer = bus.producer()
    for frame in truth_frames(sim):
        dets, _ = degrade(frame.truth_boxes, frame.meta.width_px, frame.meta.height_px, DetectorModel(), rng)
        batch = detection_batch(frame, scenario.sector_id, dets)
        producer.send(OutRecord(topics.DETECTIONS, scenario.sector_id.encode(), batch.to_bytes()))
    StageRunner(build_stage("fuse", IbetConfig(), registry), bus,
                RunnerSettings(batch_max_records=50, poll_timeout_s=0.01)).run(idle_stop_s=0.05)
    return bus


def scenario_events(name: str, seed: int = 1) -> tuple[BorderEvent, ...]:
    """The border events of scenario ``name`` through the fuse stage built as ``ibet run fuse`` builds it."""
    return tuple(BorderEvent.from_bytes(r.value) for r in _fused(name, seed).records(topics.EVENTS))


def scenario_tracks(name: str, seed: int = 1) -> tuple[TrackUpdate, ...]:
    """The track updates of the same run, in the order the stage published them."""
    return tuple(TrackUpdate.from_bytes(r.value) for r in _fused(name, seed).records(topics.TRACKS))


def crossing_event(name: str, seed: int = 1) -> BorderEvent:
    """The (first) crossing event of scenario ``name``."""
    return next(e for e in scenario_events(name, seed) if e.event_type is BorderEventType.CROSSING)

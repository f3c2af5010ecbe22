"""A bad clock must not blind a sector: the poisoning runs replayed on the real broker.

Before, one detection batch dated in the future moved its sector's watermark there for good (saved
with the state), and every later measurement was dropped as late: the crossing that alerted in the
clean run gave no event. Now such a batch is dead-lettered with its reason, and a state saved by a
poisoned worker is repaired when a worker restores it. The fuse stage is built by the factory
``ibet run fuse`` uses.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import numpy as np
import pytest

from fuse.degrade import DetectorModel, degrade, detection_batch
from fuse.measurements import measurements, sigmas_from
from fuse.sector_fusion import SectorFusion
from ibet import topics
from ibet.bus.base import OutRecord
from ibet.config import IbetConfig, RunnerSettings
from ibet.dead_letter import DeadLetterInfo
from ibet.messages import BorderEvent, DetectionBatch
from ibet.registry import load_registry
from ibet.runner import StageRunner
from ibet_app.stages import build_stage
from sim.run import simulate, truth_frames
from sim.scenario import load_scenario, resolve_scenario

pytestmark = pytest.mark.kafka

YEAR_NS = 365 * 86400 * 10**9
REGISTRY = load_registry("config/registry.yaml")
QUICK = RunnerSettings(batch_max_records=40, poll_timeout_s=0.2)


def _ns(year: int) -> int:
    return int(datetime(year, 6, 1, tzinfo=UTC).timestamp()) * 10**9


def _scenario_batches(name: str, seed: int) -> tuple[list[DetectionBatch], object]:
    scenario = load_scenario(resolve_scenario(name))
    sim = simulate(scenario, seed)
    rng = np.random.default_rng(seed)
    batches = []
    for frame in truth_frames(sim):
        dets, _ = degrade(frame.truth_boxes, frame.meta.width_px, frame.meta.height_px, DetectorModel(), rng)
        batches.append(detection_batch(frame, scenario.sector_id, dets))
    return batches, sim


def _records(batches: list[DetectionBatch]) -> list[OutRecord]:
    return [OutRecord(topics.DETECTIONS, b.sector_id.encode(), b.to_bytes()) for b in batches]


def _near(event: BorderEvent, sim, truth) -> bool:
    """The event is the scenario's true crossing: within 5 s of its time (not one dated by a bad clock)."""
    return abs(event.event_ts_ns / 1e9 - (sim.start_ns / 1e9 + truth.time_s)) < 5


def _fuse():
    return build_stage("fuse", IbetConfig(), REGISTRY)


def test_frames_dated_in_another_year_are_dead_lettered_and_the_crossing_still_fires(kafka_bus, produce, drain):
    batches, sim = _scenario_batches("vehicle-rural-road-tower", seed=3)
    t0 = batches[0].capture_ts_ns
    poison_times = {"2001": _ns(2001), "2099": _ns(2099), "+3 years": t0 + 3 * YEAR_NS, "-5 years": t0 - 5 * YEAR_NS}
    [truth] = sim.events
    crossing_ns = sim.start_ns + truth.time_s * 1e9
    # each poison a copy of a frame that sees the vehicle, all before the vehicle crosses
    seen = [i for i, b in enumerate(batches) if b.detections and b.capture_ts_ns < crossing_ns - 3e9]
    assert len(seen) >= 8
    poisoned = list(batches)
    for i, when in enumerate(poison_times.values()):
        at = seen[1 + 2 * i]
        bad = batches[at].model_copy(update={"capture_ts_ns": when, "frame_sequence": 900_000 + i})
        poisoned.insert(at + 1 + i, bad)
    kafka_bus.create_topics([topics.DETECTIONS, topics.TRACKS, topics.EVENTS, topics.FUSE_STATE,
                             topics.dlq_topic(topics.DETECTIONS)], partitions=3)
    produce(_records(poisoned))
    StageRunner(_fuse(), kafka_bus, QUICK).run(idle_stop_s=3)

    key = b"prairie-emerson"
    events = [BorderEvent.from_bytes(r.value) for r in drain(topics.EVENTS, at_least=1) if r.key == key]
    crossings = [e for e in events if e.event_type == "crossing" and _near(e, sim, truth)]
    assert len(crossings) == 1 and crossings[0].direction == truth.direction
    letters = [r for r in drain(topics.dlq_topic(topics.DETECTIONS), at_least=4) if r.key == key]
    dated = {DetectionBatch.from_bytes(r.value).capture_ts_ns: DeadLetterInfo.from_record(r) for r in letters}
    for label, when in poison_times.items():
        assert when in dated, f"the frame dated {label} was not dead-lettered"
        info = dated[when]
        assert info.stage == "fuse" and info.error_type == "ImplausibleEventTimeError"
        assert "ahead of the fuse clock" in info.error or "jumps" in info.error or "older than" in info.error


def test_a_state_saved_by_a_poisoned_worker_is_repaired_on_restore(kafka_bus, produce, drain, caplog):
    batches, sim = _scenario_batches("foot-crossing-forest-vista", seed=2)
    sector = batches[0].sector_id
    config = IbetConfig()
    # what a worker before the guard saved after one frame dated 2099: the watermark in 2099
    stage = _fuse()
    fusion = SectorFusion(sector, stage.model, config.fuse)
    sigmas, fixed = sigmas_from(config.fuse)
    seen = [i for i, b in enumerate(batches) if b.detections][:3]  # the walker's first frames
    cut = seen[-1] + 1
    poison = batches[seen[-1]].model_copy(update={"capture_ts_ns": _ns(2099)})
    for batch in [*batches[:cut], poison]:
        placed, _, _ = measurements(batch, REGISTRY, sigmas, fixed)
        fusion.process(placed, batch.capture_ts_ns)
    state = fusion.to_state()
    del state["event_time"]  # saved before the guard existed
    assert state["tracker"]["reorder"]["newest_ns"] == _ns(2099)

    kafka_bus.create_topics([topics.DETECTIONS, topics.TRACKS, topics.EVENTS, topics.FUSE_STATE,
                             topics.dlq_topic(topics.DETECTIONS)], partitions=3)
    produce([OutRecord(topics.FUSE_STATE, sector.encode(), json.dumps(state).encode())])
    produce(_records(batches[cut:]))
    with caplog.at_level(logging.WARNING, logger="fuse.stage"):
        StageRunner(_fuse(), kafka_bus, QUICK).run(idle_stop_s=3)
    assert any("repaired" in m and sector in m for m in caplog.messages), caplog.messages

    events = [BorderEvent.from_bytes(r.value) for r in drain(topics.EVENTS, at_least=1) if r.key == sector.encode()]
    [truth] = sim.events
    crossings = [e for e in events if e.event_type == "crossing" and _near(e, sim, truth)]
    assert len(crossings) == 1 and crossings[0].direction == truth.direction

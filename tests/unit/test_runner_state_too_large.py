"""A stateful stage whose state outgrows the bus's record limit (fuse at thousands of targets in one
sector) is a clear, counted failure to save that state, never a crash: the fuse stage as
``ibet run fuse`` builds it, on a bus whose record limit its sector state exceeds, goes on consuming,
producing and committing every batch, and says so in the log and ``ibet_stage_state_not_saved``.
Before, ``RecordTooLargeError`` escaped the runner and every replacement worker died on the same batch."""

from __future__ import annotations

import logging

import numpy as np

from fuse.degrade import DetectorModel, degrade, detection_batch
from ibet import topics
from ibet.bus.base import OutRecord
from ibet.bus.memory import MemoryBus
from ibet.config import IbetConfig, RunnerSettings
from ibet.metrics import STATE_NOT_SAVED
from ibet.registry import load_registry
from ibet.runner import StageRunner
from ibet_app.stages import build_stage
from sim.run import simulate, truth_frames
from sim.scenario import load_scenario, resolve_scenario


def test_an_oversized_fuse_state_is_counted_and_the_stage_goes_on(caplog):
    registry = load_registry("config/registry.yaml")
    scenario = load_scenario(resolve_scenario("foot-crossing-forest-vista"))
    rng = np.random.default_rng(1)
    bus = MemoryBus(default_partitions=1, max_record_bytes=2_000)  # a track's part of the state is larger
    producer = bus.producer()
    sent = 0
    for frame in truth_frames(simulate(scenario, 1)):
        dets, _ = degrade(frame.truth_boxes, frame.meta.width_px, frame.meta.height_px, DetectorModel(), rng)
        producer.send(OutRecord(topics.DETECTIONS, scenario.sector_id.encode(),
                                detection_batch(frame, scenario.sector_id, dets).to_bytes()))
        sent += 1
    before = STATE_NOT_SAVED.labels("fuse")._value.get()
    runner = StageRunner(build_stage("fuse", IbetConfig(fuse={"state_interval_s": 0}), registry), bus,  # state every batch
                         RunnerSettings(batch_max_records=20, poll_timeout_s=0.01))
    with caplog.at_level(logging.ERROR, logger="ibet.runner"):
        stats = runner.run(idle_stop_s=0.1)
    assert stats.consumed == sent and stats.batches >= sent // 20  # every batch committed
    assert stats.state_not_saved > 0 and STATE_NOT_SAVED.labels("fuse")._value.get() - before == stats.state_not_saved
    assert bus.records(topics.TRACKS) and bus.records(topics.EVENTS)  # it went on producing
    assert any("state of 'pac-blaine/t/" in r.getMessage() and "not saved"  in r.getMessage() for r in caplog.records)

"""The fuse stage on the real broker: detections in, tracks and events out, matching truth;
a second worker started after the first continues from the state saved with the offsets."""

from __future__ import annotations

import numpy as np
import pytest

from fuse.border_relation import BorderModel
from fuse.degrade import DetectorModel, degrade, detection_batch
from fuse.stage import FuseStage
from ibet import topics
from ibet.border import load_border, load_ports_of_entry
from ibet.bus.base import OutRecord
from ibet.config import RunnerSettings
from ibet.messages import BorderEvent, TrackUpdate
from ibet.registry import load_registry
from ibet.runner import StageRunner
from sim.run import simulate, truth_frames
from sim.scenario import load_scenario, resolve_scenario

pytestmark = pytest.mark.kafka


def test_detections_in_tracks_and_events_out_matching_truth(kafka_bus, produce, drain):
    registry = load_registry("config/registry.yaml")
    model = BorderModel(load_border(), load_ports_of_entry("config/ports_of_entry.geojson"))
    scenario = load_scenario(resolve_scenario("boat-crossing-detroit-river"))
    sim = simulate(scenario, 4)
    rng = np.random.default_rng(4)
    records = []
    for frame in truth_frames(sim):
        dets, _ = degrade(frame.truth_boxes, frame.meta.width_px, frame.meta.height_px, DetectorModel(), rng)
        records.append(OutRecord(topics.DETECTIONS, b"gl-detroit", detection_batch(frame, "gl-detroit", dets).to_bytes()))
    kafka_bus.create_topics([topics.DETECTIONS, topics.TRACKS, topics.EVENTS, topics.FUSE_STATE,
                             topics.dlq_topic(topics.DETECTIONS)], partitions=3)
    half = len(records) // 2
    produce(records[:half])
    settings = RunnerSettings(batch_max_records=40, poll_timeout_s=0.2)
    StageRunner(FuseStage(registry, model), kafka_bus, settings).run(idle_stop_s=3)
    produce(records[half:])
    StageRunner(FuseStage(registry, model), kafka_bus, settings).run(idle_stop_s=3)  # a fresh worker

    tracks = [TrackUpdate.from_bytes(r.value) for r in drain(topics.TRACKS, at_least=10) if r.key == b"gl-detroit"]
    events = [BorderEvent.from_bytes(r.value) for r in drain(topics.EVENTS, at_least=1) if r.key == b"gl-detroit"]
    crossings = [e for e in events if e.event_type == "crossing"]
    [truth] = sim.events
    assert len(crossings) == 1 and crossings[0].direction == truth.direction
    assert abs(crossings[0].event_ts_ns / 1e9 - (sim.start_ns / 1e9 + truth.time_s)) < 5
    confirmed = {t.track_id for t in tracks if t.status == "confirmed"}
    assert len(confirmed) == 1, "the restarted worker continued the boat's track instead of starting another"

"""The fuse stage on the in-memory bus: simulator detections in, tracks and events out; bad
batches dead-lettered; a restarted worker continues the same tracks from its saved state."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fuse.border_relation import BorderModel
from fuse.degrade import DetectorModel, degrade, detection_batch
from fuse.stage import FuseStage
from ibet import topics
from ibet.border import load_border, load_ports_of_entry
from ibet.bus.base import OutRecord
from ibet.bus.memory import MemoryBus
from ibet.config import FuseSettings, RunnerSettings
from ibet.dead_letter import DeadLetterInfo
from ibet.messages import BorderEvent, TrackUpdate
from ibet.registry import load_registry
from ibet.runner import StageRunner
from ibet_app.evaluate import evaluate
from sim.run import simulate, truth_frames
from sim.scenario import load_scenario, resolve_scenario

REGISTRY = load_registry("config/registry.yaml")
MODEL = BorderModel(load_border(), load_ports_of_entry("config/ports_of_entry.geojson"))
QUICK = RunnerSettings(batch_max_records=50, poll_timeout_s=0.01)


def detection_records(name: str, seed: int = 1, evidence: bool = False) -> tuple[list[OutRecord], object]:
    """The scenario's degraded detections as the detect stage would publish them; with ``evidence``,
    each true target is an image track (its truth id) whose first detection names a crop, and that
    frame names its downscaled copy, as the detect stage's evidence store does."""
    scenario = load_scenario(resolve_scenario(name))
    sim = simulate(scenario, seed)
    rng = np.random.default_rng(seed)
    records = []
    seen: set[tuple[str, int]] = set()
    for frame in truth_frames(sim):
        dets, truth_ids = degrade(frame.truth_boxes, frame.meta.width_px, frame.meta.height_px, DetectorModel(), rng)
        frame_ref = None
        if evidence:
            sensor, key = frame.meta.sensor_id, f"{frame.meta.sensor_id}/{frame.meta.sequence}"
            dets = [d if t is None else d.model_copy(update={"sensor_track_id": t}) for d, t in zip(dets, truth_ids, strict=True)]
            new = {i for i, t in enumerate(truth_ids) if t is not None and (sensor, t) not in seen}
            seen.update((sensor, truth_ids[i]) for i in new)
            dets = [d.model_copy(update={"evidence_ref": f"{key}/track-{truth_ids[i]}.jpg"}) if i in new else d
                    for i, d in enumerate(dets)]
            frame_ref = f"{key}/frame.jpg" if new else None
        batch = detection_batch(frame, scenario.sector_id, dets).model_copy(update={"evidence_ref": frame_ref})
        records.append(OutRecord(topics.DETECTIONS, scenario.sector_id.encode(), batch.to_bytes()))
    return records, sim


def feed(bus: MemoryBus, records: list[OutRecord]) -> None:
    producer = bus.producer()
    for r in records:
        producer.send(r)


def test_detections_in_tracks_and_a_matching_crossing_out():
    bus = MemoryBus(default_partitions=3)
    records, sim = detection_records("vehicle-rural-road-tower")
    feed(bus, records)
    StageRunner(FuseStage(REGISTRY, MODEL), bus, QUICK).run(idle_stop_s=0.05)
    tracks = [TrackUpdate.from_bytes(r.value) for r in bus.records(topics.TRACKS)]
    events = [BorderEvent.from_bytes(r.value) for r in bus.records(topics.EVENTS)]
    assert tracks and {t.sector_id for t in tracks} == {"prairie-emerson"}
    crossings = [e for e in events if e.event_type == "crossing"]
    [truth] = sim.events
    assert len(crossings) == 1 and crossings[0].direction == truth.direction == "US_TO_CA"
    assert abs(crossings[0].event_ts_ns - (sim.start_ns + truth.time_s * 1e9)) / 1e9 < 5
    assert bus.records(topics.FUSE_STATE)  # state saved with the offsets


@pytest.mark.parametrize("value, error", [
    (b"{not json", "MessageDecodeError"),
    (json.dumps({"schema_version": 1, "sensor_id": "nobody", "sector_id": "pac-blaine", "frame_sequence": 0,
                 "capture_ts_ns": 1, "image_width_px": 10, "image_height_px": 10, "model_name": "m",
                 "model_version": "1"}).encode(), "RegistryError"),
])
def test_bad_batches_are_dead_lettered_and_the_stage_goes_on(value, error):
    bus = MemoryBus(default_partitions=1)
    records, _ = detection_records("lawful-crossing-peace-arch")
    feed(bus, [OutRecord(topics.DETECTIONS, b"pac-blaine", value)] + records[:5])
    stats = StageRunner(FuseStage(REGISTRY, MODEL), bus, QUICK).run(idle_stop_s=0.05)
    [letter] = bus.records(topics.dlq_topic(topics.DETECTIONS))
    assert DeadLetterInfo.from_record(letter).error_type == error and stats.consumed == 6


def test_drone_batch_without_telemetry_is_dead_lettered_naming_the_field():
    records, _ = detection_records("approach-turn-back-derby")
    from ibet.messages import DetectionBatch

    batch = next(DetectionBatch.from_bytes(r.value) for r in records if DetectionBatch.from_bytes(r.value).detections)
    bare = batch.model_copy(update={"telemetry": None})
    bus = MemoryBus(default_partitions=1)
    feed(bus, [OutRecord(topics.DETECTIONS, b"qc-derby", bare.to_bytes())])
    StageRunner(FuseStage(REGISTRY, MODEL), bus, QUICK).run(idle_stop_s=0.05)
    [letter] = bus.records(topics.dlq_topic(topics.DETECTIONS))
    assert "telemetry" in DeadLetterInfo.from_record(letter).error


def test_tracks_and_events_carry_the_crops_of_the_image_tracks_they_fused():
    bus = MemoryBus(default_partitions=1)
    records, _ = detection_records("vehicle-rural-road-tower", evidence=True)
    feed(bus, records)
    StageRunner(FuseStage(REGISTRY, MODEL), bus, QUICK).run(idle_stop_s=0.05)
    tracks = [TrackUpdate.from_bytes(r.value) for r in bus.records(topics.TRACKS)]
    [crossing] = [e for e in map(BorderEvent.from_bytes, (r.value for r in bus.records(topics.EVENTS)))
                  if e.event_type == "crossing"]
    crossing_track = [t for t in tracks if t.track_id == crossing.track_id]
    # the crossing shows the crop of the vehicle's image track first, then the frame it was cut from
    crop, frame = crossing.evidence_refs[:2]
    assert crop.endswith(".jpg") and "/track-" in crop and frame == crop.rsplit("/", 1)[0] + "/frame.jpg"
    assert crossing_track[-1].evidence_refs == crossing.evidence_refs
    assert all(len(t.evidence_refs) <= 8 for t in tracks)
    # false detections have no image track, so no track is given evidence it did not see
    assert all(ref.split("/")[0] in t.sensor_ids for t in tracks for ref in t.evidence_refs)


def test_the_evidence_index_forgets_sensor_tracks_no_live_track_follows():
    stage = FuseStage(REGISTRY, MODEL)
    bus = MemoryBus(default_partitions=1)
    records, _ = detection_records("foot-crossing-forest-vista", evidence=True)
    feed(bus, records[: len(records) // 2])
    StageRunner(stage, bus, QUICK).run(idle_stop_s=0.05)
    [fusion] = stage.sectors.values()
    now = max(t.state_ns for t in fusion.tracker.tracks)
    hinted = {(s, int(i)) for t in fusion.tracker.tracks for s, i in t.hints.items()} & set(fusion.sensor_evidence)
    assert hinted  # the live tracks' sensor tracks have their evidence
    for n in range(100):  # sensor tracks noted long ago that nothing follows
        fusion.note_evidence("cam-vista-tower", 10_000 + n, (f"old/{n}.jpg",), capture_ts_ns=now - 60 * 10**9)
    fusion.process([], now)
    assert set(fusion.sensor_evidence) >= hinted and not any(i >= 10_000 for _, i in fusion.sensor_evidence)
    assert len(json.dumps(fusion.to_state()["sensor_evidence"])) < 10_000


def test_a_restarted_worker_continues_the_same_tracks():
    records, _ = detection_records("foot-crossing-forest-vista", evidence=True)
    half = len(records) // 2
    uninterrupted = MemoryBus(default_partitions=1)
    feed(uninterrupted, records)
    StageRunner(FuseStage(REGISTRY, MODEL), uninterrupted, QUICK).run(idle_stop_s=0.05)

    restarted = MemoryBus(default_partitions=1)
    feed(restarted, records[:half])
    StageRunner(FuseStage(REGISTRY, MODEL), restarted, QUICK).run(idle_stop_s=0.05)
    feed(restarted, records[half:])
    StageRunner(FuseStage(REGISTRY, MODEL), restarted, QUICK).run(idle_stop_s=0.05)  # a new worker

    def ids(bus):
        return [(t.track_id, t.version, t.status) for t in map(TrackUpdate.from_bytes, (r.value for r in bus.records(topics.TRACKS)))]

    assert ids(restarted) == ids(uninterrupted)
    # the evidence index is part of the saved state: the events carry the same evidence after the restart
    assert any(BorderEvent.from_bytes(r.value).evidence_refs for r in restarted.records(topics.EVENTS))
    assert [r.value for r in restarted.records(topics.EVENTS)] == [r.value for r in uninterrupted.records(topics.EVENTS)]


def test_eval_scores_a_scenario_against_truth():
    scenario = load_scenario(resolve_scenario("boat-crossing-detroit-river"))
    scores = evaluate(scenario, [1, 2], REGISTRY, MODEL, FuseSettings())
    assert scores["crossing_recall"] == 1.0 and scores["crossing_precision"] == 1.0
    assert scores["false_alarms"] == 0 and scores["georef_error_median_m"] < 10
    lawful = evaluate(load_scenario(resolve_scenario("lawful-crossing-peace-arch")), [1], REGISTRY, MODEL, FuseSettings())
    assert lawful["crossing_events"] == 0 and lawful["lawful_crossing_events"] == 1 and lawful["false_alarms"] == 0

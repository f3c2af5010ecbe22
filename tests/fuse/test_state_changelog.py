"""Fuse's saved state is a changelog of small parts, not one snapshot per batch: only what changed is
written, gone parts get tombstones, every part lands on the sector's partition, and a worker
that restores it (also from a state saved whole, before the changelog) continues exactly."""

from __future__ import annotations

import json

from test_stage import QUICK, REGISTRY, detection_records, feed  # the fuse stage tests' simulator detections

from fuse import state_parts
from fuse.stage import FuseStage
from ibet import topics
from ibet.bus.base import OutRecord
from ibet.bus.memory import MemoryBus, partition_for
from ibet.config import IbetConfig
from ibet.messages import TrackUpdate
from ibet.runner import StageRunner
from ibet.state_changelog import HEAD, split_key
from ibet_app.stages import build_stage

SECTOR = "pac-blaine"


def run_fuse(bus: MemoryBus, config: IbetConfig | None = None) -> FuseStage:
    stage = build_stage("fuse", config or IbetConfig(), REGISTRY)  # as `ibet run fuse` builds it
    StageRunner(stage, bus, QUICK).run(idle_stop_s=0.05)
    return stage


def continued(stage: FuseStage) -> dict:
    """The sector's state without the wall-clock time its event time was last seen at."""
    state = stage.sectors[SECTOR].to_state()
    state["event_time"] = {k: v for k, v in (state["event_time"] or {}).items() if k != "seen_at_ns"}
    return state


def test_split_and_join_give_back_the_sectors_state():
    records, _ = detection_records("foot-crossing-forest-vista", evidence=True)
    bus = MemoryBus(default_partitions=1)
    feed(bus, records[: len(records) // 2])
    state = run_fuse(bus).sectors[SECTOR].to_state()
    parts = state_parts.split(state)
    assert state["tracker"]["tracks"] and state["tracker"]["reorder"]["pending"] and state["sensor_evidence"]
    assert {name.split("/")[0] for name in parts} == {HEAD, "t", "e", "p"}
    assert json.loads(json.dumps(state_parts.join(parts))) == json.loads(json.dumps(state))


def test_only_changed_parts_are_written_gone_ones_get_tombstones_all_on_the_sectors_partition():
    records, _ = detection_records("foot-crossing-forest-vista", evidence=True)
    bus = MemoryBus(default_partitions=6)
    feed(bus, records)
    stage = run_fuse(bus, IbetConfig(fuse={"state_interval_s": 0}))  # a checkpoint after every batch
    saved = bus.records(topics.FUSE_STATE)
    home = partition_for(SECTOR.encode(), 6, 0)
    assert {r.partition for r in saved} == {home}  # restore reads the input's partition only
    assert all(split_key(r.key)[0] == SECTOR for r in saved)
    assert max(len(r.value or b"") for r in saved) < 10_000  # parts stay small
    batches = len([r for r in bus.records(topics.DETECTIONS)])
    assert len([r for r in saved if r.key == SECTOR.encode()]) <= batches  # one head per batch at most
    tombstones = [r for r in saved if r.value is None]
    assert any(split_key(r.key)[1].startswith("t/") for r in tombstones)  # deleted tracks
    assert any(split_key(r.key)[1].startswith("p/") for r in tombstones)  # released frames
    stage._changed.add(SECTOR)
    assert stage.snapshot() == []  # nothing changed since the last write: nothing to send


def test_a_worker_restored_from_the_changelog_has_the_same_state():
    records, _ = detection_records("foot-crossing-forest-vista", evidence=True)
    bus = MemoryBus(default_partitions=1)
    feed(bus, records[: len(records) // 2])
    first = run_fuse(bus)
    second = build_stage("fuse", IbetConfig(), REGISTRY)
    second.restore(bus.read_partition(topics.FUSE_STATE, 0))
    assert second.sectors[SECTOR].to_state() == first.sectors[SECTOR].to_state()


def test_a_state_saved_whole_before_the_changelog_is_restored_and_rewritten_as_parts():
    records, _ = detection_records("foot-crossing-forest-vista", evidence=True)
    half = len(records) // 2
    reference = MemoryBus(default_partitions=1)
    feed(reference, records)
    uninterrupted = run_fuse(reference)

    bus = MemoryBus(default_partitions=1)
    feed(bus, records[:half])
    before = run_fuse(bus)
    whole = MemoryBus(default_partitions=1)  # as an older fuse saved it: the whole sector under its id
    whole.producer().send(OutRecord(topics.FUSE_STATE, SECTOR.encode(), json.dumps(before.sectors[SECTOR].to_state()).encode()))
    feed(whole, records[half:])  # the first half was committed with that state
    after = run_fuse(whole)
    assert continued(after) == continued(uninterrupted)
    assert any(b"/t/" in (r.key or b"") for r in whole.records(topics.FUSE_STATE))  # now saved as parts


def test_between_checkpoints_a_dead_worker_is_replayed_from_the_last_one_with_the_same_ids():
    records, _ = detection_records("foot-crossing-forest-vista", evidence=True)
    reference = MemoryBus(default_partitions=1)
    feed(reference, records)
    run_fuse(reference)

    bus = MemoryBus(default_partitions=1)
    feed(bus, records)
    dying = StageRunner(build_stage("fuse", IbetConfig(fuse={"state_interval_s": 3600}), REGISTRY), bus, QUICK)
    dying.consumer.subscribe(dying.stage.input_topics)
    while dying.stats.batches < 4:
        dying.run_once()
    dying.close(checkpoint=False)  # dies after 4 batches; only the first was checkpointed
    assert dying.stats.batches == 4 and {r.key for r in bus.records(topics.FUSE_STATE)} and \
        len([r for r in bus.records(topics.FUSE_STATE) if r.key == SECTOR.encode()]) == 1
    replacement = StageRunner(build_stage("fuse", IbetConfig(fuse={"state_interval_s": 3600}), REGISTRY), bus, QUICK)
    stats = replacement.run(idle_stop_s=0.05)
    assert stats.consumed == len(records) - QUICK.batch_max_records  # replayed batches 2-4, then the rest

    def updates(b):
        return [(t.track_id, t.version, t.status) for t in map(TrackUpdate.from_bytes, (r.value for r in b.records(topics.TRACKS)))]

    assert len(updates(bus)) > len(updates(reference))  # batches 2-4 produced twice: duplicates ...
    assert set(updates(bus)) == set(updates(reference))  # ... with the same ids, nothing lost or new
    assert {r.value for r in bus.records(topics.EVENTS)} == {r.value for r in reference.records(topics.EVENTS)}

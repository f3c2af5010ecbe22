"""The stage runner on the in-memory bus: flush before commit, DLQ, outcomes, idle stop."""

from __future__ import annotations

import json

import pytest
from stage_samples import CountingStage

from ibet.bus.base import OutRecord, Record
from ibet.bus.exceptions import DeliveryError
from ibet.bus.memory import MemoryBus
from ibet.config import RunnerSettings
from ibet.dead_letter import DeadLetterInfo
from ibet.runner import StageRunner
from ibet.stage import FunctionStage, Outcome
from ibet.topics import MAX_RECORD_BYTES, dlq_topic

QUICK = RunnerSettings(batch_max_records=4, poll_timeout_s=0.01)


def double(record: Record) -> list[OutRecord]:
    n = json.loads(record.value)["n"]
    return [OutRecord("out", record.key, json.dumps({"n": 2 * n}).encode())]


def feed(bus: MemoryBus, values: list[bytes]) -> None:
    for v in values:
        bus.producer().send(OutRecord("in", b"k", v))


def test_outputs_for_every_input_and_poison_to_dlq():
    bus = MemoryBus(default_partitions=1)
    feed(bus, [b'{"n": 1}', b"{broken", b'{"n": 3}', b'{"m": 4}'])
    stats = StageRunner(FunctionStage("double", ["in"], double), bus, QUICK).run(idle_stop_s=0.05)
    assert [json.loads(r.value)["n"] for r in bus.records("out")] == [2, 6]
    letters = bus.records(dlq_topic("in"))
    assert [r.value for r in letters] == [b"{broken", b'{"m": 4}']
    infos = [DeadLetterInfo.from_record(r) for r in letters]
    assert [(i.error_type, i.source_offset) for i in infos] == [("JSONDecodeError", 1), ("KeyError", 3)]
    assert (stats.consumed, stats.produced, stats.dead_lettered) == (4, 2, 2)


class RecordingProducer:
    """Wraps a producer and records the order of calls made by the runner."""

    def __init__(self, inner, calls: list[str], fail_flush: bool = False):
        self.inner, self.calls, self.fail_flush = inner, calls, fail_flush

    def send(self, record):
        self.calls.append("send")
        self.inner.send(record)

    def flush(self, timeout_s=None):
        self.calls.append("flush")
        if self.fail_flush:
            raise DeliveryError("1 of 1 records were not produced")

    def close(self):
        self.inner.close()


def test_commit_happens_only_after_the_flush():
    bus = MemoryBus(default_partitions=1)
    feed(bus, [b'{"n": 1}', b'{"n": 2}'])
    calls: list[str] = []
    runner = StageRunner(FunctionStage("double", ["in"], double), bus, QUICK)
    runner.producer = RecordingProducer(runner.producer, calls)
    commit = runner.consumer.commit
    runner.consumer.commit = lambda offsets: (calls.append("commit"), commit(offsets))
    runner.consumer.subscribe(["in"])
    runner.run_once()
    assert calls == ["send", "send", "flush", "commit"]


def test_a_failed_flush_commits_nothing_and_the_batch_comes_back():
    bus = MemoryBus(default_partitions=1)
    feed(bus, [b'{"n": 1}'])
    runner = StageRunner(FunctionStage("double", ["in"], double), bus, QUICK)
    runner.producer = RecordingProducer(runner.producer, [], fail_flush=True)
    runner.consumer.subscribe(["in"])
    with pytest.raises(DeliveryError):
        runner.run_once()
    runner.close()
    again = bus.consumer("double")
    again.subscribe(["in"])
    assert [r.value for r in again.poll(10, 0.01)] == [b'{"n": 1}']


def test_oversized_output_dead_letters_the_input():
    bus = MemoryBus(default_partitions=1)
    feed(bus, [b"x"])
    grow = FunctionStage("grow", ["in"], lambda r: [OutRecord("out", r.key, bytes(MAX_RECORD_BYTES + 1))])
    stats = StageRunner(grow, bus, QUICK).run(idle_stop_s=0.05)
    [letter] = bus.records(dlq_topic("in"))
    assert stats.dead_lettered == 1 and "exceeds the limit" in DeadLetterInfo.from_record(letter).error


def test_a_stage_returning_the_wrong_number_of_outcomes_is_a_bug_not_a_dead_letter():
    class Broken:
        name, input_topics = "broken", ("in",)

        def process_batch(self, records):
            return [Outcome()]

    bus = MemoryBus(default_partitions=1)
    feed(bus, [b"a", b"b"])
    runner = StageRunner(Broken(), bus, QUICK)
    runner.consumer.subscribe(["in"])
    with pytest.raises(RuntimeError, match="2 records"):
        runner.run_once()


def test_stop_finishes_the_batch_then_closes():
    bus = MemoryBus(default_partitions=1)
    feed(bus, [b'{"n": 1}'] * 3)
    runner = StageRunner(FunctionStage("double", ["in"], double), bus, QUICK)

    def stop_after_first(record):
        runner.stop()
        return double(record)

    runner.stage = FunctionStage("double", ["in"], stop_after_first)
    runner.run()
    assert len(bus.records("out")) == 3  # the whole batch in hand was produced
    after = bus.consumer("double")
    after.subscribe(["in"])
    assert after.poll(10, 0.01) == []  # ...and committed


def test_a_new_worker_continues_from_the_saved_state():
    bus = MemoryBus(default_partitions=2)
    for key in (b"a", b"b", b"a"):
        bus.producer().send(OutRecord("in", key, b"x"))
    StageRunner(CountingStage(), bus, QUICK).run(idle_stop_s=0.05)
    for key in (b"a", b"b"):
        bus.producer().send(OutRecord("in", key, b"x"))
    second = CountingStage()  # a restarted worker: empty memory
    StageRunner(second, bus, QUICK).run(idle_stop_s=0.05)
    assert second.counts == {b"a": 3, b"b": 2}
    latest = {r.key: int(r.value) for r in bus.records("counter-state")}
    assert latest == {b"a": 3, b"b": 2}


def test_state_of_revoked_partitions_is_forgotten():
    bus = MemoryBus(default_partitions=2)
    stage = CountingStage()
    runner = StageRunner(stage, bus, QUICK)
    runner.consumer.subscribe(["in"])
    keys = [b"k%d" % i for i in range(8)]
    for key in keys:
        bus.producer().send(OutRecord("in", key, b"x"))
    while runner.run_once():
        pass
    assert set(stage.counts) == set(keys)
    other = bus.consumer("counter")
    other.subscribe(["in"])  # a second member takes half of the partitions
    bus.producer().send(OutRecord("in", keys[0], b"x"))
    runner.run_once()
    runner.run_once()
    kept = {tp.partition for tp in runner.consumer.assignment()}
    assert set(stage.counts) == {k for k in keys if any(r.key == k and r.partition in kept for r in bus.records("in"))}

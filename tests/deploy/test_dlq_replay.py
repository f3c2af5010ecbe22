"""`ibet dlq replay`: dead letters back to their source topic, once per group, filtered, with a
dry run; on the in-memory bus and on the real broker."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ibet import topics
from ibet.bus.base import OutRecord, Record
from ibet.bus.memory import MemoryBus
from ibet.dead_letter import dead_letter
from ibet_app.dlq_replay import (
    ReplayFilter,
    dlq_app,
    dlq_name,
    original_record,
    parse_from_offsets,
    plan,
    read_info,
    replay_dead_letters,
)

REPO = Path(__file__).resolve().parents[2]
SOURCE = topics.FRAMES
DLQ = topics.dlq_topic(SOURCE)


def frame(i: int) -> OutRecord:
    return OutRecord(SOURCE, f"cam-{i % 3}".encode(), f"jpeg-{i}".encode(), (("ibet.sensor", f"cam-{i % 3}".encode()),
                                                                              ("ibet.sequence", str(i).encode())))


def dead_letter_frames(bus, n: int, start: int = 0, stage: str = "detect", error: Exception | None = None) -> list[Record]:
    """Produce ``n`` frames, consume them as a stage would, and dead-letter each; return the originals."""
    producer = bus.producer("feeder")
    for i in range(start, start + n):
        producer.send(frame(i))
    producer.flush(30)
    originals = [r for r in _read_all(bus, SOURCE) if int(r.header("ibet.sequence")) >= start][:n]
    for record in originals:
        producer.send(dead_letter(record, error or ValueError(f"corrupt JPEG {record.value!r}"), stage))
    producer.flush(30)
    producer.close()
    return originals


def _read_all(bus, topic: str) -> list[Record]:
    if isinstance(bus, MemoryBus):
        return bus.records(topic)
    return [r for p in range(3) for r in bus.read_partition(topic, p, 30)]


def _as_sent(record: Record | OutRecord) -> tuple:
    return record.key, record.value, tuple(record.headers)


# -- the pure parts -------------------------------------------------------------------------------

def test_the_original_is_restored_exactly():
    original = Record(SOURCE, 2, 41, b"cam-1", b"jpeg", (("ibet.sensor", b"cam-1"),), 1000)
    dead = dead_letter(original, KeyError("cam-1"), "detect")
    letter = Record(DLQ, 2, 7, dead.key, dead.value, dead.headers, 2000)
    info = read_info(letter)
    out = original_record(letter, info)
    assert out == OutRecord(SOURCE, b"cam-1", b"jpeg", (("ibet.sensor", b"cam-1"),))
    assert (info.stage, info.error_type, info.source_partition, info.source_offset) == ("detect", "KeyError", 2, 41)


def test_the_filter_picks_by_error_type_stage_time_and_offset():
    def letter(offset, error, stage, ts):
        original = Record(SOURCE, 0, offset, b"k", b"v", (), 0)
        dead = dead_letter(original, error, stage)
        return Record(DLQ, 0, offset, dead.key, dead.value, dead.headers, ts)

    letters = [letter(0, ValueError("corrupt JPEG"), "detect", 1000), letter(1, KeyError("cam-9"), "detect", 2000),
               letter(2, ValueError("corrupt JPEG"), "fuse", 3000), letter(3, ValueError("bad size"), "detect", 4000)]
    picked = lambda f: [item.dlq_offset for _, item in plan(letters, DLQ, f)[0]]  # noqa: E731
    assert picked(ReplayFilter()) == [0, 1, 2, 3]
    assert picked(ReplayFilter(error_contains="corrupt")) == [0, 2]
    assert picked(ReplayFilter(error_type="KeyError")) == [1]
    assert picked(ReplayFilter(stage="detect", error_type="ValueError")) == [0, 3]
    assert picked(ReplayFilter(since_ms=2000)) == [1, 2, 3]
    assert picked(ReplayFilter(from_offsets={0: 2})) == [2, 3]
    assert plan(letters, DLQ, ReplayFilter(stage="alerts"))[1] == 4


def test_records_that_are_not_dead_letters_are_reported_not_replayed():
    stray = Record(DLQ, 1, 5, b"k", b"v", (("ibet.dlq.error", b"x"),), 0)
    chosen, skipped, unreadable = plan([stray], DLQ, ReplayFilter())
    assert chosen == [] and skipped == 0
    assert unreadable == [(1, 5, "missing header ibet.dlq.error_type")]


def test_command_line_values_are_checked():
    assert parse_from_offsets(["0:120", "3:7"]) == {0: 120, 3: 7}
    with pytest.raises(ValueError, match="'3-7': expected PARTITION:OFFSET"):
        parse_from_offsets(["3-7"])
    assert dlq_name(SOURCE) == DLQ and dlq_name(DLQ) == DLQ


# -- on the in-memory bus -------------------------------------------------------------------------

@pytest.fixture
def memory_bus() -> MemoryBus:
    bus = MemoryBus(default_partitions=3)
    bus.create_topics([SOURCE, DLQ])
    return bus


def test_replay_produces_the_originals_once_per_group(memory_bus):
    originals = dead_letter_frames(memory_bus, 5)
    report = replay_dead_letters(memory_bus, SOURCE, assign_timeout_s=5)
    assert len(report.replayed) == 5 and not report.dry_run
    first = {(o.partition, o.offset) for o in originals}
    replayed = [r for r in memory_bus.records(SOURCE) if (r.partition, r.offset) not in first]
    assert sorted(map(_as_sent, replayed)) == sorted(map(_as_sent, originals))
    assert all(r.partition == o.partition for r in replayed for o in originals if r.value == o.value)  # same key

    again = replay_dead_letters(memory_bus, SOURCE, assign_timeout_s=5)
    assert again.replayed == [] and len(memory_bus.records(SOURCE)) == 10

    late = dead_letter_frames(memory_bus, 2, start=100)  # new letters after the fix: only those next time
    third = replay_dead_letters(memory_bus, DLQ, assign_timeout_s=5)
    assert sorted((i.info.source_partition, i.info.source_offset) for i in third.replayed) == sorted(
        (r.partition, r.offset) for r in late)


def test_a_dry_run_lists_and_changes_nothing(memory_bus):
    dead_letter_frames(memory_bus, 4)
    dry = replay_dead_letters(memory_bus, SOURCE, dry_run=True, assign_timeout_s=5)
    assert len(dry.replayed) == 4 and "would replay 4" in dry.summary()
    assert len(memory_bus.records(SOURCE)) == 4  # nothing produced
    real = replay_dead_letters(memory_bus, SOURCE, assign_timeout_s=5)  # nothing committed either
    assert [(i.dlq_partition, i.dlq_offset) for i in real.replayed] == [(i.dlq_partition, i.dlq_offset) for i in dry.replayed]


def test_letters_left_out_by_the_filter_are_not_replayed_later_by_the_same_group(memory_bus):
    dead_letter_frames(memory_bus, 3, stage="detect")
    dead_letter_frames(memory_bus, 2, start=10, stage="fuse")
    report = replay_dead_letters(memory_bus, SOURCE, ReplayFilter(stage="fuse"), assign_timeout_s=5)
    assert len(report.replayed) == 2 and report.skipped == 3
    assert replay_dead_letters(memory_bus, SOURCE, assign_timeout_s=5).replayed == []
    other = replay_dead_letters(memory_bus, SOURCE, ReplayFilter(stage="detect"), group_id="dlq-replay-detect",
                                assign_timeout_s=5)
    assert len(other.replayed) == 3


class FailingAgain:
    """The bus as seen when the fix did not work: whatever reaches the source topic is dead-lettered
    again at once, as the stage would (a duck-typed wrapper around the real in-memory bus)."""

    def __init__(self, bus: MemoryBus):
        self.bus = bus

    def consumer(self, group_id: str, client_id: str = "ibet"):
        return self.bus.consumer(group_id, client_id)

    def producer(self, client_id: str = "ibet"):
        bus = self.bus

        class Producer:
            def send(self, record: OutRecord) -> None:
                partition, offset = bus.producer().send_and_wait(record, 5)
                again = bus.records(record.topic)
                landed = next(r for r in again if (r.partition, r.offset) == (partition, offset))
                bus.producer().send(dead_letter(landed, ValueError("still corrupt"), "detect"))

            def flush(self, timeout_s=None) -> None:
                return None

            def close(self) -> None:
                return None

        return Producer()


def test_a_letter_that_fails_again_waits_for_the_next_replay_instead_of_looping(memory_bus):
    dead_letter_frames(memory_bus, 3)
    report = replay_dead_letters(FailingAgain(memory_bus), SOURCE, assign_timeout_s=5)
    assert len(report.replayed) == 3  # not 6, 9, ...: it stopped where the DLQ ended when it started
    assert len(memory_bus.records(DLQ)) == 6
    assert len(replay_dead_letters(memory_bus, SOURCE, dry_run=True, assign_timeout_s=5).replayed) == 3


# -- on the real broker ---------------------------------------------------------------------------

@pytest.fixture
def kafka_topics(kafka_settings, unique):
    from ibet.bus.kafka import KafkaBus

    bus = KafkaBus(kafka_settings)
    source = f"{SOURCE}.{unique}"
    bus.create_topics([source, topics.dlq_topic(source)], partitions=3)
    return bus, source


def _dead_letter_on_kafka(bus, source: str, n: int, start: int = 0) -> list[Record]:
    producer = bus.producer("feeder")
    for i in range(start, start + n):
        producer.send(OutRecord(source, f"cam-{i % 3}".encode(), f"jpeg-{i}".encode(), (("ibet.sequence", str(i).encode()),)))
    producer.flush(30)
    originals = [r for p in range(3) for r in bus.read_partition(source, p, 30)
                 if start <= int(r.header("ibet.sequence")) < start + n]
    for record in originals:
        producer.send(dead_letter(record, ValueError("corrupt JPEG"), "detect"))
    producer.flush(30)
    producer.close()
    return originals


@pytest.mark.kafka
def test_replay_on_the_real_broker(kafka_topics, unique):
    bus, source = kafka_topics
    originals = _dead_letter_on_kafka(bus, source, 6)
    group = f"dlq-replay-{unique}"
    dry = replay_dead_letters(bus, source, group_id=group, dry_run=True)
    assert len(dry.replayed) == 6
    assert sum(len(bus.read_partition(source, p, 30)) for p in range(3)) == 6  # the dry run produced nothing

    report = replay_dead_letters(bus, source, group_id=group)
    assert len(report.replayed) == 6
    after = [r for p in range(3) for r in bus.read_partition(source, p, 30)]
    replayed = [r for r in after if (r.partition, r.offset) not in {(o.partition, o.offset) for o in originals}]
    assert sorted(map(_as_sent, replayed)) == sorted(map(_as_sent, originals))

    assert replay_dead_letters(bus, source, group_id=group).replayed == []  # committed: not repeated
    _dead_letter_on_kafka(bus, source, 2, start=50)
    assert len(replay_dead_letters(bus, source, group_id=group).replayed) == 2


@pytest.mark.kafka
def test_the_command_line_on_the_real_broker(kafka_topics, kafka_bootstrap, unique, tmp_path, monkeypatch):
    bus, source = kafka_topics
    _dead_letter_on_kafka(bus, source, 3)
    for name in [n for n in __import__("os").environ if n.startswith("IBET_")]:
        monkeypatch.delenv(name)
    config = tmp_path / "ibet.yaml"
    config.write_text(yaml.safe_dump({"registry_path": str(REPO / "config" / "registry.yaml"),
                                      "bus": {"kind": "kafka", "kafka": {"bootstrap_servers": [kafka_bootstrap]}}}))
    runner = CliRunner()
    group = f"dlq-cli-{unique}"
    dry = runner.invoke(dlq_app, ["replay", source, "-c", str(config), "--group", group, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"{source}.dlq: would replay 3, skipped 0" in dry.output
    assert dry.output.count(f"-> {source} ") == 3
    bad = runner.invoke(dlq_app, ["replay", source, "-c", str(config), "--from-offset", "zero"])
    assert bad.exit_code == 2 and "expected PARTITION:OFFSET" in bad.output
    later = runner.invoke(dlq_app, ["replay", source, "-c", str(config), "--group", group, "--dry-run",
                                    "--since", "2999-01-01T00:00:00Z"])
    assert later.exit_code == 0 and "would replay 0, skipped 3" in later.output, later.output
    real = runner.invoke(dlq_app, ["replay", source, "-c", str(config), "--group", group, "--stage", "detect",
                                   "--since", "2000-01-01T00:00:00+01:00"])
    assert real.exit_code == 0 and f"{source}.dlq: replayed 3" in real.output, real.output

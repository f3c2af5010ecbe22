"""The in-memory bus keeps Kafka's meaning: keyed partitions, groups, explicit commits, rebalance."""

from __future__ import annotations

import pytest

from ibet.bus.base import OutRecord, TopicPartition, next_offsets
from ibet.bus.exceptions import CommitError, RecordTooLargeError
from ibet.bus.memory import MemoryBus
from ibet.topics import MAX_RECORD_BYTES


def fill(bus: MemoryBus, topic: str, n: int, keys: int = 5) -> None:
    producer = bus.producer()
    for i in range(n):
        producer.send(OutRecord(topic, f"k{i % keys}".encode(), str(i).encode()))
    producer.flush()


def test_empty_topic_polls_nothing():
    bus = MemoryBus(default_partitions=2)
    bus.create_topics(["t"])
    consumer = bus.consumer("g")
    consumer.subscribe(["t"])
    assert consumer.poll(10, 0.01) == []
    assert consumer.lag() == {TopicPartition("t", 0): 0, TopicPartition("t", 1): 0}


def test_same_key_same_partition_in_order():
    bus = MemoryBus(default_partitions=4)
    fill(bus, "t", 40)
    by_key: dict[bytes, set[int]] = {}
    for r in bus.records("t"):
        by_key.setdefault(r.key, set()).add(r.partition)
    assert all(len(parts) == 1 for parts in by_key.values())
    for p in range(4):
        offsets = [r.offset for r in bus.records("t") if r.partition == p]
        assert offsets == list(range(len(offsets)))


def test_uncommitted_records_are_redelivered_to_the_next_member():
    bus = MemoryBus(default_partitions=2)
    fill(bus, "t", 10)
    first = bus.consumer("g")
    first.subscribe(["t"])
    got = first.poll(100, 0.01)
    assert len(got) == 10
    first.close()  # "crashed" before committing
    second = bus.consumer("g")
    second.subscribe(["t"])
    assert sorted(r.value for r in second.poll(100, 0.01)) == sorted(r.value for r in got)


def test_committed_records_are_not_redelivered():
    bus = MemoryBus(default_partitions=2)
    fill(bus, "t", 10)
    first = bus.consumer("g")
    first.subscribe(["t"])
    got = first.poll(4, 0.01)
    first.commit(next_offsets(got))
    first.close()
    second = bus.consumer("g")
    second.subscribe(["t"])
    rest = second.poll(100, 0.01)
    assert len(rest) == 6 and not {r.value for r in rest} & {r.value for r in got}


def test_two_members_split_the_partitions_and_a_stale_commit_is_refused():
    bus = MemoryBus(default_partitions=4)
    fill(bus, "t", 20)
    a, b = bus.consumer("g"), bus.consumer("g")
    a.subscribe(["t"])
    batch = a.poll(100, 0.01)
    b.subscribe(["t"])  # rebalance: a's batch can no longer be committed by a
    with pytest.raises(CommitError):
        a.commit(next_offsets(batch))
    assert a.assignment().isdisjoint(b.assignment())
    assert len(a.assignment() | b.assignment()) == 4


def test_groups_are_independent():
    bus = MemoryBus(default_partitions=1)
    fill(bus, "t", 3)
    for group in ("g1", "g2"):
        c = bus.consumer(group)
        c.subscribe(["t"])
        assert len(c.poll(10, 0.01)) == 3


def test_record_over_the_limit_is_refused_naming_it():
    bus = MemoryBus()
    with pytest.raises(RecordTooLargeError, match=str(MAX_RECORD_BYTES)):
        bus.producer().send(OutRecord("t", b"k", bytes(MAX_RECORD_BYTES + 1)))
    assert bus.records("t") == []


def test_next_offsets_is_one_past_the_highest_per_partition():
    bus = MemoryBus(default_partitions=1)
    fill(bus, "t", 3)
    assert next_offsets(bus.records("t")) == {TopicPartition("t", 0): 3}
    assert next_offsets([]) == {}


def test_send_and_wait_returns_partition_and_offset():
    bus = MemoryBus(default_partitions=3)
    producer = bus.producer()
    first = producer.send_and_wait(OutRecord("t", b"k", b"a"), 1)
    second = producer.send_and_wait(OutRecord("t", b"k", b"b"), 1)
    assert first[0] == second[0] and (first[1], second[1]) == (0, 1)

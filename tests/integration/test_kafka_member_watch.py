"""A worker that has lost its group joins again on its own; an idle spare is left alone (real broker).

kafka-python has been seen to stay out of its group for good on a loaded machine (removed for a
missed heartbeat and never rejoining; a leader that assigned before it had the topics' metadata).
Here the member's kafka-python consumer is made to leave the group behind the bus's back.
"""

from __future__ import annotations

import time

import pytest

from ibet.bus.base import OutRecord, TopicPartition
from ibet.bus.kafka import KafkaBus

pytestmark = pytest.mark.kafka


def _poll_until(consumer, want: int, timeout_s: float) -> list:
    got, deadline = [], time.monotonic() + timeout_s
    while len(got) < want and time.monotonic() < deadline:
        got += consumer.poll(100, 0.2)
    return got


def test_a_member_out_of_its_group_with_partitions_unheld_joins_again(kafka_settings, produce, unique):
    settings = kafka_settings.model_copy(update={"stuck_member_s": 2.0})
    bus = KafkaBus(settings)
    topic = f"member-watch-{unique}"
    bus.create_topics([topic], partitions=2)
    consumer = bus.consumer(f"group-{unique}", "watched")
    try:
        consumer.subscribe([topic])
        produce([OutRecord(topic, f"k{i}".encode(), b"before") for i in range(4)])
        before = _poll_until(consumer, 4, 60)
        assert len(before) == 4 and consumer.assignment()
        consumer.commit({TopicPartition(r.topic, r.partition): r.offset + 1 for r in before})

        consumer._consumer.unsubscribe()  # kafka-python leaves the group; the bus still thinks it is a member
        produce([OutRecord(topic, f"k{i}".encode(), b"after") for i in range(4)])
        after = _poll_until(consumer, 4, 60)
        assert consumer.rejoins == 1
        assert sorted(r.value for r in after) == [b"after"] * 4  # from the committed offsets on
        assert consumer.assignment() == {TopicPartition(topic, 0), TopicPartition(topic, 1)}
    finally:
        consumer.close()


def test_an_idle_spare_in_a_group_that_holds_every_partition_stays(kafka_settings, produce, unique):
    settings = kafka_settings.model_copy(update={"stuck_member_s": 1.0})
    bus = KafkaBus(settings)
    topic = f"member-spare-{unique}"
    bus.create_topics([topic], partitions=1)
    group = f"group-{unique}"
    first, spare = bus.consumer(group, "first"), bus.consumer(group, "spare")
    try:
        first.subscribe([topic])
        spare.subscribe([topic])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(first.assignment() | spare.assignment()) < 1:
            first.poll(10, 0.1)
            spare.poll(10, 0.1)
        held_by = [c for c in (first, spare) if c.assignment()]
        assert len(held_by) == 1
        idle = spare if held_by[0] is first else first
        end = time.monotonic() + 5  # five times the member's patience, both polling
        while time.monotonic() < end:
            first.poll(10, 0.1)
            spare.poll(10, 0.1)
        assert idle.rejoins == 0 and not idle.assignment() and held_by[0].assignment()
    finally:
        first.close()
        spare.close()

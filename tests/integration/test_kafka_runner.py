"""The stage runner and bus against the real broker: DLQ, size limit, rebalance."""

from __future__ import annotations

import json
import threading
import time

import pytest
from stage_samples import CountingStage

from ibet.bus.base import OutRecord, Record
from ibet.bus.exceptions import RecordTooLargeError
from ibet.config import RunnerSettings
from ibet.dead_letter import DeadLetterInfo
from ibet.runner import StageRunner
from ibet.stage import FunctionStage
from ibet.topics import MAX_FRAME_BYTES, MAX_RECORD_BYTES, dlq_topic

pytestmark = pytest.mark.kafka

QUICK = RunnerSettings(batch_max_records=20, poll_timeout_s=0.2)


def parse_and_copy(out_topic: str):
    def _process(record: Record) -> list[OutRecord]:
        doc = json.loads(record.value)  # raises on a poison message
        return [OutRecord(out_topic, record.key, json.dumps({"id": doc["id"]}).encode())]

    return _process


def test_poison_message_goes_to_dlq_and_the_good_ones_go_through(kafka_bus, produce, drain, unique):
    in_topic, out_topic = f"poison-in-{unique}", f"poison-out-{unique}"
    kafka_bus.create_topics([in_topic, out_topic, dlq_topic(in_topic)], partitions=1)
    poison = b"\xff\xd8 this is not JSON"
    values = [json.dumps({"id": i}).encode() for i in range(10)]
    values.insert(4, poison)
    produce([OutRecord(in_topic, b"k", v, (("trace", b"t-1"),)) for v in values])

    runner = StageRunner(FunctionStage(f"poison-{unique}", [in_topic], parse_and_copy(out_topic)), kafka_bus, QUICK)
    stats = runner.run(idle_stop_s=2)

    assert (stats.consumed, stats.produced, stats.dead_lettered) == (11, 10, 1)
    assert sorted(json.loads(r.value)["id"] for r in drain(out_topic, at_least=10)) == list(range(10))
    [letter] = drain(dlq_topic(in_topic), at_least=1)
    info = DeadLetterInfo.from_record(letter)
    assert letter.value == poison and letter.key == b"k"
    assert letter.header("trace") == b"t-1"  # the original headers travel with it
    assert (info.source_topic, info.source_partition, info.source_offset) == (in_topic, 0, 4)
    assert info.error_type == "UnicodeDecodeError" and info.stage == f"poison-{unique}"


def test_largest_frame_round_trips_and_a_larger_one_is_refused_naming_the_limit(kafka_bus, produce, drain, unique):
    topic = f"frames-{unique}"
    kafka_bus.create_topics([topic], partitions=1)
    headers = (("ibet.sensor_id", b"cam-1"),)
    largest = OutRecord(topic, b"cam-1", bytes(MAX_FRAME_BYTES), headers)
    produce([largest])  # broker and client agree: the limit itself is accepted end to end
    [back] = drain(topic, at_least=1)
    assert len(back.value) == MAX_FRAME_BYTES

    producer = kafka_bus.producer("oversize")
    try:
        with pytest.raises(RecordTooLargeError) as err:
            producer.send(OutRecord(topic, b"cam-1", bytes(MAX_RECORD_BYTES + 1)))
    finally:
        producer.close()
    assert str(MAX_RECORD_BYTES) in str(err.value) and "MiB" in str(err.value)


def test_stage_output_over_the_limit_dead_letters_its_input(kafka_bus, produce, drain, unique):
    in_topic = f"grow-in-{unique}"
    kafka_bus.create_topics([in_topic, dlq_topic(in_topic)], partitions=1)
    produce([OutRecord(in_topic, b"k", b"small")])
    grow = FunctionStage(f"grow-{unique}", [in_topic], lambda r: [OutRecord(f"grow-out-{unique}", r.key, bytes(MAX_RECORD_BYTES + 10))])
    stats = StageRunner(grow, kafka_bus, QUICK).run(idle_stop_s=2)
    assert stats.dead_lettered == 1
    [letter] = drain(dlq_topic(in_topic), at_least=1)
    assert "exceeds the limit" in DeadLetterInfo.from_record(letter).error


def test_rebalance_between_two_group_members_processes_every_message(kafka_bus, produce, drain, unique):
    in_topic, out_topic, group = f"reb-in-{unique}", f"reb-out-{unique}", f"reb-{unique}"
    kafka_bus.create_topics([in_topic, out_topic], partitions=4)
    n = 400
    produce([OutRecord(in_topic, str(i % 16).encode(), json.dumps({"id": i}).encode()) for i in range(n)])

    def slow_copy(record: Record) -> list[OutRecord]:
        time.sleep(0.005)  # keep the first member busy long enough for the second to join
        return parse_and_copy(out_topic)(record)

    first = StageRunner(FunctionStage(group, [in_topic], slow_copy), kafka_bus, QUICK, client_id="member-a")
    second = StageRunner(FunctionStage(group, [in_topic], slow_copy), kafka_bus, QUICK, client_id="member-b")
    t1 = threading.Thread(target=first.run, kwargs={"idle_stop_s": 3})
    t1.start()
    while first.stats.consumed == 0:
        time.sleep(0.05)
    t2 = threading.Thread(target=second.run, kwargs={"idle_stop_s": 3})
    t2.start()  # joining triggers a rebalance while the first member is mid-stream
    t1.join(120)
    t2.join(120)

    ids = [json.loads(r.value)["id"] for r in drain(out_topic, at_least=n)]
    assert set(ids) == set(range(n))
    assert first.stats.consumed > 0 and second.stats.consumed > 0, (first.stats, second.stats)
    assert first.stats.consumed + second.stats.consumed >= n


def test_send_and_wait_returns_where_the_record_landed(kafka_bus, drain, unique):
    topic = f"ack-{unique}"
    kafka_bus.create_topics([topic], partitions=2)
    producer = kafka_bus.producer("acker")
    try:
        where = [producer.send_and_wait(OutRecord(topic, b"k", b"v%d" % i), 30) for i in range(3)]
    finally:
        producer.close()
    assert [offset for _, offset in where] == [0, 1, 2] and len({p for p, _ in where}) == 1
    assert [r.value for r in drain(topic, at_least=3)] == [b"v0", b"v1", b"v2"]


def test_a_restarted_stateful_worker_continues_from_the_state_saved_with_its_offsets(kafka_bus, produce, unique):
    in_topic, state_topic, group = f"st-in-{unique}", f"st-state-{unique}", f"st-{unique}"
    kafka_bus.create_topics([in_topic, state_topic], partitions=3)
    keys = [b"sector-%d" % i for i in range(5)]
    produce([OutRecord(in_topic, k, b"x") for k in keys * 4])
    StageRunner(CountingStage(group, in_topic, state_topic, None), kafka_bus, QUICK).run(idle_stop_s=2)
    produce([OutRecord(in_topic, k, b"x") for k in keys * 2])
    restarted = CountingStage(group, in_topic, state_topic, None)
    StageRunner(restarted, kafka_bus, QUICK).run(idle_stop_s=2)
    assert restarted.counts == {k: 6 for k in keys}

"""``ibet bench bus``: the project's Kafka producer path against raw kafka-python.

Both sides use the same settings dict (:func:`ibet.bus.kafka.producer_config`) on the same
broker, in the same process, alternating rounds so drift on the machine hits both alike. Each
round sends N records of one payload size and flushes; the rate is records over the time from
the first send to the end of the flush. Reported: median messages/s and MB/s per side, and the
ratio ours / raw (1.0 means no overhead).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from kafka import KafkaProducer

from ibet.bus.base import OutRecord
from ibet.bus.kafka import KafkaBus, KafkaBusProducer, producer_config
from ibet.config import KafkaSettings

HEADERS = (("ibet.sensor_id", b"bench-cam"), ("ibet.sequence", b"0"))


@dataclass(frozen=True)
class Case:
    label: str
    payload_bytes: int
    messages: int


def _ours(settings: KafkaSettings, topic: str, payload: bytes, n: int) -> float:
    producer = KafkaBusProducer(settings, "bench-ours")
    producer.send(OutRecord(topic, b"warm", payload, HEADERS))  # connect and fetch metadata first
    producer.flush(60)
    start = time.perf_counter()
    for i in range(n):
        producer.send(OutRecord(topic, b"cam-%d" % (i % 8), payload, HEADERS))
    producer.flush(120)
    elapsed = time.perf_counter() - start
    producer.close()
    return elapsed


def _raw(settings: KafkaSettings, topic: str, payload: bytes, n: int) -> float:
    producer = KafkaProducer(**producer_config(settings, "bench-raw"))
    producer.send(topic, key=b"warm", value=payload, headers=list(HEADERS))
    producer.flush(60)
    start = time.perf_counter()
    futures = [producer.send(topic, key=b"cam-%d" % (i % 8), value=payload, headers=list(HEADERS)) for i in range(n)]
    producer.flush(120)
    elapsed = time.perf_counter() - start
    assert all(f.succeeded() for f in futures), "raw producer lost records"
    producer.close()
    return elapsed


def run_bus_bench(settings: KafkaSettings, cases: list[Case], rounds: int, topic_prefix: str = "bench-bus") -> dict:
    """Alternate ours/raw ``rounds`` times per case; return medians and ratios per case."""
    bus = KafkaBus(settings)
    results: dict[str, dict] = {}
    for case in cases:
        topic = f"{topic_prefix}-{case.label}-{os.getpid()}"
        bus.create_topics([topic], partitions=6)
        payload = os.urandom(case.payload_bytes)  # incompressible, like JPEG
        sides: dict[str, list[float]] = {"ours": [], "raw": []}
        runners: dict[str, Callable[..., float]] = {"ours": _ours, "raw": _raw}
        for r in range(rounds):
            order = ("ours", "raw") if r % 2 == 0 else ("raw", "ours")
            for side in order:
                sides[side].append(case.messages / runners[side](settings, topic, payload, case.messages))
        ours, raw = statistics.median(sides["ours"]), statistics.median(sides["raw"])
        mb = case.payload_bytes / 1e6
        results[case.label] = {
            "payload_bytes": case.payload_bytes,
            "messages": case.messages,
            "rounds": rounds,
            "ours_msgs_per_s": round(ours, 1),
            "raw_msgs_per_s": round(raw, 1),
            "ours_mb_per_s": round(ours * mb, 2),
            "raw_mb_per_s": round(raw * mb, 2),
            "ratio": round(ours / raw, 3),
        }
    return results

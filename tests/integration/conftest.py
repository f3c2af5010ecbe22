"""Helpers for tests against the real broker."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from ibet.bus.base import OutRecord, Record
from ibet.bus.kafka import KafkaBus
from ibet.config import KafkaSettings

pytestmark = pytest.mark.kafka


@pytest.fixture
def kafka_bus(kafka_settings: KafkaSettings) -> KafkaBus:
    return KafkaBus(kafka_settings)


@pytest.fixture
def produce(kafka_bus: KafkaBus) -> Callable[[list[OutRecord]], None]:
    """Produce records and wait until the broker has them all."""

    def _produce(records: list[OutRecord]) -> None:
        producer = kafka_bus.producer("test-feeder")
        try:
            for record in records:
                producer.send(record)
            producer.flush(30)
        finally:
            producer.close()

    return _produce


@pytest.fixture
def drain(kafka_bus: KafkaBus, unique: str) -> Callable[..., list[Record]]:
    """Read a topic from the start with a fresh group until ``at_least`` records or the timeout."""

    def _drain(topic: str, at_least: int, timeout_s: float = 60, settle_s: float = 1.0) -> list[Record]:
        consumer = kafka_bus.consumer(f"reader-{unique}-{topic}-{time.monotonic_ns()}", "test-reader")
        consumer.subscribe([topic])
        records: list[Record] = []
        deadline = last_data = time.monotonic()
        deadline += timeout_s
        try:
            while time.monotonic() < deadline:
                batch = consumer.poll(500, 0.5)
                records.extend(batch)
                if batch:
                    last_data = time.monotonic()
                elif len(records) >= at_least and time.monotonic() - last_data >= settle_s:
                    break
        finally:
            consumer.close()
        return records

    return _drain

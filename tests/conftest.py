"""Shared fixtures. Services are real: the Kafka fixture starts Apache Kafka itself.

A test that needs a service it cannot get skips with the reason; under CI=true it fails instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from ibet.config import KafkaSettings

IN_CI = os.environ.get("CI", "").lower() == "true"


def service_missing(reason: str) -> None:
    """Skip locally; fail in CI, where every service must be there."""
    if IN_CI:
        pytest.fail(f"CI=true and a required service is missing: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of a real Kafka broker: $IBET_TEST_KAFKA_BOOTSTRAP, or one started for the session."""
    given = os.environ.get("IBET_TEST_KAFKA_BOOTSTRAP")
    if given:
        yield given
        return
    from ibet.testing.kafka_broker import KafkaBrokerUnavailable, LocalKafkaBroker

    broker = LocalKafkaBroker(tmp_path_factory.mktemp("kafka-broker"))
    try:
        broker.start()
    except KafkaBrokerUnavailable as exc:
        service_missing(f"Apache Kafka could not be started: {exc}")
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    """Client settings for the test broker: short session timeouts keep rebalances quick."""
    return KafkaSettings(
        bootstrap_servers=[kafka_bootstrap],
        linger_ms=1,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        default_partitions=3,
    )


@pytest.fixture
def unique() -> str:
    """A suffix that keeps each test's topics and groups apart on the shared broker."""
    return uuid.uuid4().hex[:10]

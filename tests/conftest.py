"""Shared fixtures. Services are real: the Kafka fixture starts Apache Kafka itself, the PostgreSQL
fixture a PostgreSQL server (Debian's package).

A test that needs a service it cannot get skips with the reason; under CI=true it fails instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

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
    from ibet_testing.kafka_broker import KafkaBrokerUnavailable, LocalKafkaBroker

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


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SQLAlchemy URL of the ``postgres`` database of a real PostgreSQL server, as its superuser:
    $IBET_TEST_POSTGRES_URL, or a server started for the session."""
    given = os.environ.get("IBET_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    from ibet_testing.postgres import LocalPostgres, PostgresUnavailable

    server = LocalPostgres(tmp_path_factory.mktemp("postgres"))
    try:
        server.start()
    except PostgresUnavailable as exc:
        service_missing(f"PostgreSQL could not be started: {exc}")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each backend: a SQLite file in tmp_path, or a database of its own
    on the session's PostgreSQL server (created for the test, dropped after it)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/db/ibet.sqlite3"
        return
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    server_url = make_url(request.getfixturevalue("postgres_url"))
    name = f"ibet_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield server_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:  # WITH (FORCE) ends the connections a test's engine still pools
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

"""Kafka client security (ibet.bus.kafka_security): the settings model, its kafka-python keyword
arguments, and those arguments against a real broker secured like Strimzi's (SASL_SSL,
SCRAM-SHA-512, ACLs), with the ACLs of the rendered KafkaUser applied to it."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest
from k8s_render import render, tools_missing
from pydantic import ValidationError

from ibet import topics
from ibet.bus.kafka_security import KafkaSecurity, client_security_kwargs
from ibet.exceptions import ConfigError

# -- the model ------------------------------------------------------------------------------------


def test_plaintext_needs_nothing_and_adds_nothing():
    assert client_security_kwargs(KafkaSecurity()) == {}


def test_scram_over_tls_maps_to_kafka_python_arguments(tmp_path):
    (tmp_path / "password").write_text("s3cret\n")  # as a mounted Secret may end with a newline
    (tmp_path / "ca.crt").write_text("PEM")
    security = KafkaSecurity(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", username="ibet-detect",
                             password_file=tmp_path / "password", ssl_cafile=tmp_path / "ca.crt")
    assert client_security_kwargs(security) == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "ibet-detect",
        "sasl_plain_password": "s3cret", "ssl_cafile": str(tmp_path / "ca.crt"), "ssl_certfile": None,
        "ssl_keyfile": None, "ssl_check_hostname": True}


def test_every_argument_is_one_each_kafka_python_client_takes(tmp_path):
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

    for name in ("ca.crt", "user.crt", "user.key"):
        (tmp_path / name).write_text("PEM")
    security = KafkaSecurity(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-256", username="u", password="p",
                             ssl_cafile=tmp_path / "ca.crt", ssl_certfile=tmp_path / "user.crt",
                             ssl_keyfile=tmp_path / "user.key")
    kwargs = client_security_kwargs(security)
    for client in (KafkaProducer, KafkaConsumer, KafkaAdminClient):
        assert set(kwargs) <= set(client.DEFAULT_CONFIG), client.__name__


def test_a_password_from_the_environment_is_not_shown(monkeypatch):
    security = KafkaSecurity(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", username="u", password="hunter2")
    assert "hunter2" not in repr(security)
    assert client_security_kwargs(security)["sasl_plain_password"] == "hunter2"


@pytest.mark.parametrize(("fields", "complaint"), [
    ({"security_protocol": "SASL_SSL", "username": "u", "password": "p"}, "needs sasl_mechanism"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "password": "p"}, "needs username"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "username": "u"}, "exactly one of password"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "username": "u", "password": "p",
      "password_file": "/x"}, "exactly one of password"),
    ({"security_protocol": "SSL", "username": "u"}, "only apply to SASL"),
    ({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "username": "u", "password": "p",
      "ssl_cafile": "/ca"}, "only apply to SSL"),
    ({"security_protocol": "SSL", "ssl_certfile": "/c"}, "go together"),
    ({"security_protocol": "TLS"}, "security_protocol"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI", "username": "u", "password": "p"}, "sasl_mechanism"),
    ({"securityprotocol": "SSL"}, "securityprotocol"),
])
def test_inconsistent_settings_are_refused_naming_the_problem(fields, complaint):
    with pytest.raises(ValidationError, match=complaint):
        KafkaSecurity(**fields)


def test_a_missing_or_empty_password_file_is_named(tmp_path):
    missing = KafkaSecurity(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512", username="u",
                            password_file=tmp_path / "absent")
    with pytest.raises(ConfigError, match="password_file: cannot read .*absent"):
        client_security_kwargs(missing)
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        client_security_kwargs(missing.model_copy(update={"password_file": tmp_path / "empty"}))


def test_a_missing_ca_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="ssl_cafile: .*nowhere.crt does not exist"):
        client_security_kwargs(KafkaSecurity(security_protocol="SSL", ssl_cafile=tmp_path / "nowhere.crt"))


# -- against a real secured broker ------------------------------------------------------------------

PASSWORDS = {"ibet-detect": uuid.uuid4().hex, "ibet-fuse": uuid.uuid4().hex}


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory):
    """A SASL_SSL/SCRAM broker with ACLs; the prod overlay's ACLs of ibet-detect and ibet-fuse applied."""
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        KafkaAdminClient,
        NewTopic,
        ResourcePattern,
        ResourceType,
    )
    from secure_broker import SecureKafkaBroker

    from ibet_testing.kafka_broker import KafkaBrokerUnavailable

    broker = SecureKafkaBroker(tmp_path_factory.mktemp("secure-kafka"), PASSWORDS)
    try:
        broker.start()
    except KafkaBrokerUnavailable as exc:
        tools_missing(f"the secured Kafka broker could not be started: {exc}")
    admin = KafkaAdminClient(bootstrap_servers=broker.internal)  # the super user, as Strimzi's operators are
    try:
        admin.create_topics([NewTopic(t, 1, 1) for t in (topics.FRAMES, topics.DETECTIONS, topics.ALERTS,
                                                          topics.dlq_topic(topics.FRAMES), topics.DETECT_STATE)])
        users = {u["metadata"]["name"]: u for u in render("prod") if u["kind"] == "KafkaUser"}
        acls = []
        for name in PASSWORDS:
            for rule in users[name]["spec"]["authorization"]["acls"]:
                resource = rule["resource"]
                pattern = ResourcePattern(ResourceType[resource["type"].upper()], resource["name"],
                                          ACLResourcePatternType[resource["patternType"].upper()])
                acls += [ACL(f"User:{name}", "*", ACLOperation[op.upper()], ACLPermissionType.ALLOW, pattern)
                         for op in rule["operations"]]
        result = admin.create_acls(acls)
        assert not result["failed"], result["failed"]
    finally:
        admin.close()
    yield broker
    broker.stop()


def _security(broker, user: str, folder: Path, password: str | None = None, cafile: Path | None = None) -> KafkaSecurity:
    secret = folder / f"{user}-password"
    secret.write_text(password or PASSWORDS[user])
    return KafkaSecurity(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", username=user,
                         password_file=secret, ssl_cafile=cafile or broker.ca)


@pytest.mark.kafka
def test_a_stage_user_produces_and_consumes_what_its_acls_allow(secure_broker, tmp_path):
    from kafka import KafkaConsumer, KafkaProducer

    kwargs = client_security_kwargs(_security(secure_broker, "ibet-detect", tmp_path))
    producer = KafkaProducer(bootstrap_servers=secure_broker.bootstrap, acks="all", **kwargs)
    try:
        producer.send(topics.DETECTIONS, b"batch", key=b"sector-1").get(timeout=30)
        feeder = KafkaProducer(bootstrap_servers=secure_broker.internal)  # frames come from ingest (the super user here)
        feeder.send(topics.FRAMES, b"jpeg", key=b"cam-1").get(timeout=30)
        feeder.close()
    finally:
        producer.close()
    consumer = KafkaConsumer(topics.FRAMES, bootstrap_servers=secure_broker.bootstrap, group_id="detect",
                             auto_offset_reset="earliest", enable_auto_commit=False, **kwargs)
    values: list[bytes] = []
    try:
        for _ in range(60):  # up to 60 polls of 1 s: the group forms, then the frame arrives
            values += [r.value for batch in consumer.poll(timeout_ms=1000).values() for r in batch]
            if values:
                break
        consumer.commit()  # committing needs Read on the group 'detect'
    finally:
        consumer.close()
    assert values == [b"jpeg"]


@pytest.mark.kafka
def test_the_broker_refuses_what_the_acls_do_not_grant(secure_broker, tmp_path):
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    kwargs = client_security_kwargs(_security(secure_broker, "ibet-detect", tmp_path))
    producer = KafkaProducer(bootstrap_servers=secure_broker.bootstrap, max_block_ms=10000, **kwargs)
    try:
        with pytest.raises(KafkaError) as refused:
            producer.send(topics.ALERTS, b"forged alert").get(timeout=30)  # detect may not write alerts
    finally:
        producer.close()
    assert "Authorization" in type(refused.value).__name__ or "authoriz" in str(refused.value).lower()


@pytest.mark.kafka
def test_a_wrong_password_is_refused(secure_broker, tmp_path):
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    kwargs = client_security_kwargs(_security(secure_broker, "ibet-fuse", tmp_path, password="not-it"))
    with pytest.raises(KafkaError):  # the broker hangs up after the failed SCRAM exchange
        KafkaProducer(bootstrap_servers=secure_broker.bootstrap, bootstrap_timeout_ms=5000, **kwargs).close()
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in secure_broker.log_tail(20000)


@pytest.mark.kafka
def test_a_broker_whose_certificate_the_client_does_not_trust_is_refused(secure_broker, tmp_path, caplog):
    from kafka import KafkaProducer
    from kafka.errors import KafkaError
    from secure_broker import make_tls

    other_ca, _ = make_tls(tmp_path / "other")
    kwargs = client_security_kwargs(_security(secure_broker, "ibet-detect", tmp_path, cafile=other_ca))
    with caplog.at_level(logging.WARNING, logger="kafka"), pytest.raises(KafkaError):
        KafkaProducer(bootstrap_servers=secure_broker.bootstrap, bootstrap_timeout_ms=5000, **kwargs).close()
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text

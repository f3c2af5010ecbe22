"""Configuration: YAML plus environment, unknown keys and bad values stop start-up naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from ibet.config import AlertSettings, load_config
from ibet.exceptions import ConfigError

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ibet.yaml"
    path.write_text(text)
    return path


def test_shipped_config_loads_and_points_at_the_shipped_registry():
    config = load_config(REPO / "config" / "ibet.yaml")
    assert config.bus.kind == "memory"
    assert config.registry_file() == REPO / "config" / "registry.yaml"


def test_defaults_without_a_file(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IBET_CONFIG", raising=False)
    config = load_config()
    assert config.bus.kafka.compression == "lz4" and config.registry_file() == Path("config/registry.yaml")


def test_environment_overrides_the_file(monkeypatch, tmp_path):
    path = write(tmp_path, "bus:\n  kind: memory\n  kafka:\n    linger_ms: 7\n")
    monkeypatch.setenv("IBET_BUS__KIND", "kafka")
    monkeypatch.setenv("IBET_BUS__KAFKA__BOOTSTRAP_SERVERS", '["kafka-0:9092","kafka-1:9092"]')
    config = load_config(path)
    assert config.bus.kind == "kafka"
    assert config.bus.kafka.bootstrap_servers == ["kafka-0:9092", "kafka-1:9092"]
    assert config.bus.kafka.linger_ms == 7  # untouched keys keep the file's value


@pytest.mark.parametrize(
    "text, env, names",
    [
        ("bus:\n  kafka:\n    lingerms: 5\n", {}, "bus.kafka.lingerms: Extra inputs are not permitted"),
        ("runner:\n  batch_max_records: 0\n", {}, "runner.batch_max_records"),
        ("bus:\n  kind: rabbitmq\n", {}, "bus.kind"),
        ("metrics:\n  port: 70000\n", {}, "metrics.port"),
        ("", {"IBET_RUNNER__POLL_TIMEOUT_S": "soon"}, "runner.poll_timeout_s"),
        ("", {"IBET_BUS__KAFKA__BOGUS": "1"}, "bus.kafka.bogus"),
    ],
)
def test_bad_keys_and_values_are_named(monkeypatch, tmp_path, text, env, names):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert names in str(err.value)


def test_yaml_syntax_error_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(write(tmp_path, "bus: [unclosed\n"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_a_tak_keepalive_longer_than_the_markers_life_is_refused():
    assert AlertSettings().cot_keepalive_s < AlertSettings().cot_stale_s
    with pytest.raises(ValidationError, match="cot_keepalive_s"):
        AlertSettings(cot_stale_s=120.0)  # the default keep-alive (240 s) would let markers go stale

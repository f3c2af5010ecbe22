"""The model registry: verify refuses a missing or tampered file naming it and both hashes,
register writes the YAML, the CLI lists/verifies/registers, and the detect stage will not start
on a bad model."""

from __future__ import annotations

import hashlib

import pytest
import yaml
from typer.testing import CliRunner

from detect.build import build_detect_stage
from ibet.detect_config import DetectSettings
from ibet.exceptions import ConfigError
from models.cli import models_app
from models.registry import ModelError, load_model_registry, model_sha256, register, verify

CLASSES = ["person", "vehicle", "boat"]


@pytest.fixture
def registered(tmp_path):
    """A registry in tmp_path with one model file (arbitrary bytes: verify never loads it)."""
    model = tmp_path / "det.pt"
    model.write_bytes(b"weights v1")
    entry = register(model, "det", "1", CLASSES, source="a test", licence="AGPL-3.0-or-later", metrics={"mAP50": 0.9},
                     registry_path=tmp_path / "registry.yaml")
    return tmp_path / "registry.yaml", model, entry


def test_register_writes_a_registry_that_loads_and_verifies(registered):
    path, model, entry = registered
    data = yaml.safe_load(path.read_text())
    assert data["models"][0] | {"sha256": "-"} == {
        "name": "det", "version": "1", "file": "det.pt", "sha256": "-", "format": "pytorch", "task": "detect",
        "input_size": "native", "classes": CLASSES, "source": "a test", "licence": "AGPL-3.0-or-later", "metrics": {"mAP50": 0.9}}
    loaded = load_model_registry(path).get("det")
    assert loaded == entry and loaded.sha256 == hashlib.sha256(b"weights v1").hexdigest()
    assert verify(loaded) == model


def test_a_tampered_model_is_refused_naming_the_file_and_both_hashes(registered):
    path, model, entry = registered
    model.write_bytes(b"weights v1 plus a backdoor")
    with pytest.raises(ModelError) as err:
        verify(load_model_registry(path).get("det"))
    message = str(err.value)
    assert str(model) in message and entry.sha256 in message and hashlib.sha256(model.read_bytes()).hexdigest() in message


def test_a_missing_model_is_refused_naming_the_file_and_the_expected_hash(registered):
    path, model, entry = registered
    model.unlink()
    with pytest.raises(ModelError, match="does not exist") as err:
        verify(load_model_registry(path).get("det"))
    assert str(model) in str(err.value) and entry.sha256 in str(err.value)


def test_an_unregistered_model_names_what_is_registered(registered):
    path, _, _ = registered
    with pytest.raises(ModelError, match=r"no model yolo:3 is registered \(registered: det:1\)"):
        load_model_registry(path).get("yolo", "3")


def test_registering_again_replaces_that_version_and_keeps_others(registered):
    path, model, _ = registered
    model.write_bytes(b"weights v2")
    register(model, "det", "2", CLASSES, source="s", licence="l", registry_path=path)
    register(model, "det", "1", CLASSES, source="s", licence="l", registry_path=path)
    registry = load_model_registry(path)
    assert [m.ref for m in registry.models] == ["det:2", "det:1"]
    assert registry.get("det").version == "1"  # the one registered last
    assert verify(registry.get("det", "2")) == model


def test_an_openvino_folder_is_hashed_over_its_files(tmp_path):
    folder = tmp_path / "det_openvino_model"
    folder.mkdir()
    (folder / "det.xml").write_text("<net/>")
    (folder / "det.bin").write_bytes(b"\x00" * 8)
    entry = register(folder, "det-ov", "1", CLASSES, source="s", licence="l", registry_path=tmp_path / "r.yaml")
    assert entry.format == "openvino" and entry.sha256 == model_sha256(folder)
    (folder / "det.bin").write_bytes(b"\x01" * 8)
    with pytest.raises(ModelError, match="has sha256"):
        verify(load_model_registry(tmp_path / "r.yaml").get("det-ov"))


@pytest.mark.parametrize("text, words", [
    ("models: [{name: x}]", "models[0] (id"),  # fields missing
    ("models:\n  - name: a\n    name: b\n", "duplicate key 'name'"),
    ("[1, 2]", "top level must be a mapping"),
])
def test_a_broken_registry_file_says_where(tmp_path, text, words):
    (tmp_path / "r.yaml").write_text(text)
    with pytest.raises(ModelError) as err:
        load_model_registry(tmp_path / "r.yaml")
    assert str(tmp_path / "r.yaml") in str(err.value)
    assert words.split(" (")[0] in str(err.value)


def test_the_detect_stage_does_not_start_on_a_tampered_or_missing_model(registered, registry):
    path, model, entry = registered
    settings = DetectSettings(model="det", model_registry_path=path)
    model.write_bytes(b"tampered")
    with pytest.raises(ModelError, match=f"{model}.*expects {entry.sha256}"):
        build_detect_stage(settings, registry)
    model.unlink()
    with pytest.raises(ModelError, match="does not exist"):
        build_detect_stage(settings, registry)
    with pytest.raises(ModelError, match="no model nothing is registered"):
        build_detect_stage(DetectSettings(model="nothing", model_registry_path=path), registry)


def test_filters_naming_a_class_the_model_does_not_have_stop_start_up(registered, registry):
    path, _, _ = registered
    with pytest.raises(ConfigError, match=r"detect.filters: \['persn'\] are not classes of model det:1"):
        build_detect_stage(DetectSettings(model="det", model_registry_path=path, filters={"persn": {}}), registry)


def test_cli_list_verify_register(registered, tmp_path):
    path, model, entry = registered
    runner = CliRunner()
    listed = runner.invoke(models_app, ["list", "--registry", str(path)])
    assert listed.exit_code == 0 and "det:1" in listed.output and "mAP50 0.9" in listed.output
    ok = runner.invoke(models_app, ["verify", "--registry", str(path)])
    assert ok.exit_code == 0 and "det:1: OK" in ok.output
    other = tmp_path / "other.onnx"
    other.write_bytes(b"onnx bytes")
    metrics = tmp_path / "m.json"
    metrics.write_text('{"mAP50": 0.5}')
    added = runner.invoke(models_app, ["register", str(other), "--name", "det-onnx", "--version", "1", "--classes",
                                       "person,vehicle,boat", "--source", "export", "--input-size", "640", "--metrics",
                                       str(metrics), "--registry", str(path)])
    assert added.exit_code == 0, added.output
    assert load_model_registry(path).get("det-onnx").input_size == 640
    model.write_bytes(b"changed")
    bad = runner.invoke(models_app, ["verify", "--registry", str(path)])
    assert bad.exit_code == 2 and str(model) in bad.output and entry.sha256 in bad.output
    assert "det-onnx:1: OK" in bad.output  # the other model is still checked and fine


def test_the_shipped_default_is_the_openvino_export_of_the_pytorch_weights_and_both_verify():
    shipped = load_model_registry()
    default = shipped.get(DetectSettings().model, DetectSettings().model_version)
    assert (default.ref, default.format) == ("ibet-demo-det:2", "openvino")
    pytorch = shipped.get("ibet-demo-det", "1")
    assert pytorch.format == "pytorch" and pytorch.classes == default.classes
    assert verify(default).is_dir() and verify(pytorch).is_file()


@pytest.mark.parametrize("device", ["cuda:0", "cuda", "0"])
def test_an_openvino_model_on_a_cuda_device_stops_start_up_naming_the_pytorch_version(device):
    from detect.model import UltralyticsDetector

    entry = load_model_registry().get("ibet-demo-det", "2")
    with pytest.raises(ModelError, match="OpenVINO export.*model_version"):
        UltralyticsDetector(entry, device)

"""The ibet CLI: help, version, config check, demo, and clear exits on a broken set-up."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

from typer.testing import CliRunner

from ibet.bus.base import OutRecord
from ibet.bus.memory import MemoryBus
from ibet.config import MetricsSettings, RunnerSettings
from ibet.metrics import serve_metrics
from ibet.runner import StageRunner
from ibet.stage import FunctionStage
from ibet.topics import TOPICS
from ibet_app.cli import app

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "config" / "ibet.yaml")
runner = CliRunner()


def test_help_lists_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("run", "demo", "topics", "bench", "version", "config"):
        assert command in result.output


def test_version():
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0 and result.output.startswith("ibet ") and "kafka-python" in result.output


def test_config_check_on_the_shipped_files():
    result = runner.invoke(app, ["config", "check", "--config", CONFIG])
    assert result.exit_code == 0, result.output
    assert "6 sectors" in result.output and "every sector covered by both countries' duty desks" in result.output


def test_config_check_names_a_roster_hole_by_sector_hours_and_country(tmp_path):
    # the US night desk of Derby Line goes: 19:00-07:00 has no US partner on duty in qc-derby
    lines = (REPO / "config" / "rosters.yaml").read_text().splitlines(keepends=True)
    kept = [line for line in lines if "id: usbp-derby-night," not in line]
    assert len(kept) == len(lines) - 1
    (tmp_path / "rosters.yaml").write_text("".join(kept))
    for name in ("registry.yaml", "ports_of_entry.geojson"):
        (tmp_path / name).write_text((REPO / "config" / name).read_text())
    (tmp_path / "ibet.yaml").write_text("registry_path: registry.yaml\n")
    result = runner.invoke(app, ["config", "check", "--config", str(tmp_path / "ibet.yaml")])
    assert result.exit_code == 2, result.output
    holes = [line for line in result.output.splitlines() if line.startswith("error: rosters")]
    assert holes and all("qc-derby: no US partner on duty" in line for line in holes), result.output
    assert any(" 19:00 to " in line and " 07:00 E" in line and "(12 h)" in line for line in holes), holes
    hours = [float(re.search(r"\(([\d.]+) h\)", line).group(1)) for line in holes]
    assert max(hours) <= 13, holes  # a night (13 h on a fall-back night), never a span across checked weeks
    allowed = runner.invoke(app, ["config", "check", "--allow-gaps", "--config", str(tmp_path / "ibet.yaml")])
    assert allowed.exit_code == 0 and "coverage gap(s)" in allowed.output


def test_config_check_fails_on_a_roster_naming_a_partner_outside_its_sector(tmp_path):
    text = (REPO / "config" / "rosters.yaml").read_text().replace(
        "shifts:\n", "shifts:\n  - {id: wsp-derby, partner_id: wsp, sector_id: qc-derby, start: '07:00', end: '19:00', "
        "contacts: [x]}\n", 1)
    (tmp_path / "rosters.yaml").write_text(text)
    for name in ("registry.yaml", "ports_of_entry.geojson"):
        (tmp_path / name).write_text((REPO / "config" / name).read_text())
    (tmp_path / "ibet.yaml").write_text("registry_path: registry.yaml\n")
    result = runner.invoke(app, ["config", "check", "--config", str(tmp_path / "ibet.yaml")])
    assert result.exit_code == 2 and "partner 'wsp' does not cover sector 'qc-derby'" in result.output


def test_bad_config_exits_2_naming_the_key(tmp_path):
    bad = tmp_path / "ibet.yaml"
    bad.write_text("bus:\n  knd: kafka\n")
    result = runner.invoke(app, ["config", "check", "--config", str(bad)])
    assert result.exit_code == 2 and "bus.knd" in result.output


def test_bad_registry_exits_2_naming_the_entry(tmp_path):
    (tmp_path / "registry.yaml").write_text("sectors: []\nsensors: []\npartners: [{id: x}]\n")
    (tmp_path / "ibet.yaml").write_text("registry_path: registry.yaml\n")
    result = runner.invoke(app, ["config", "check", "--config", str(tmp_path / "ibet.yaml")])
    assert result.exit_code == 2 and "partners[0]" in result.output


def test_run_refuses_the_memory_bus_and_unknown_stages(monkeypatch):
    result = runner.invoke(app, ["run", "detect", "--config", CONFIG])
    assert result.exit_code == 2 and "bus.kind: kafka" in result.output
    monkeypatch.setenv("IBET_BUS__KIND", "kafka")
    result = runner.invoke(app, ["run", "teleport", "--config", CONFIG])
    assert result.exit_code == 2 and "unknown stage" in result.output


def test_up_refuses_a_stream_of_an_unknown_sensor_or_one_without_a_source_before_starting_anything(tmp_path):
    for spec, words in (("nope", "--stream nope: unknown sensor"),
                        ("drone-vista-1", "--stream drone-vista-1: the sensor has no source_url")):
        result = runner.invoke(app, ["up", "--bootstrap", "127.0.0.1:1", "--config", CONFIG, "--stream", spec,
                                     "--logs", str(tmp_path)])
        assert result.exit_code == 2 and words in result.output, result.output
    result = runner.invoke(app, ["up", "--bootstrap", "127.0.0.1:1", "--config", CONFIG, "--logs", str(tmp_path),
                                 "--stream", "drone-vista-1=udp://0.0.0.0:5600", "--stream", "drone-vista-1"])
    assert result.exit_code == 2 and "given twice" in result.output, result.output
    assert list(tmp_path.iterdir()) == []  # no process was started, no log written


def test_demo_without_a_scenario_runs_every_stage_on_an_empty_bus():
    result = runner.invoke(app, ["demo", "--config", CONFIG, "--scenario", "", "--no-console"])
    assert result.exit_code == 0, result.output
    assert "not built yet" not in result.output and "ibet.frames.v1 0" in result.output


def test_demo_feeds_a_scenario_onto_the_frames_topic(tmp_path):
    text = (REPO / "sim" / "scenarios" / "lawful-crossing-peace-arch.yaml").read_text()
    short = tmp_path / "short.yaml"
    short.write_text(text.replace("duration_s: 60", "duration_s: 4"))
    result = runner.invoke(app, ["demo", "--config", CONFIG, "--scenario", str(short), "--no-console"])
    assert result.exit_code == 0, result.output
    sent = int(result.output.split(" frames from ")[0].split()[-1])
    assert sent > 0 and f"ibet.frames.v1 {sent}" in result.output
    assert f"ibet.detections.v1 {sent}" in result.output  # the detect stage: one batch per frame
    assert "lawful_crossing of a vehicle" in result.output
    assert "fuse" in result.output and "ran" in result.output
    assert "run report:" in result.output


def test_demo_can_feed_the_drone_as_a_stanag_4609_stream_through_ingest_stream(tmp_path):
    text = (REPO / "sim" / "scenarios" / "foot-crossing-forest-vista.yaml").read_text()
    short = tmp_path / "short-vista.yaml"
    short.write_text(text.replace("duration_s: 100", "duration_s: 5").replace("name: foot-crossing-forest-vista",
                                                                            "name: short-vista"))
    result = runner.invoke(app, ["demo", "--config", CONFIG, "--scenario", str(short), "--no-console", "--exit",
                                 "--ingest", "stream"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("ibet ingest stream: drone-vista-1"))
    decoded, produced = (int(n) for n in re.search(r"(\d+) pictures decoded, (\d+) produced", line).groups())
    assert decoded == produced > 0 and "paired: exact" in line and "refused: none" in line
    sent = int(result.output.split(" frames from ")[0].split()[-1])
    assert f"ibet.frames.v1 {sent}" in result.output and f"ibet.detections.v1 {sent}" in result.output
    bad = runner.invoke(app, ["demo", "--config", CONFIG, "--scenario", "", "--ingest", "carrier-pigeon"])
    assert bad.exit_code == 2 and "--ingest must be" in bad.output


def test_demo_with_an_unknown_scenario_exits_2():
    result = runner.invoke(app, ["demo", "--config", CONFIG, "--scenario", "atlantis"])
    assert result.exit_code == 2 and "shipped" in result.output


def test_topics_list_names_every_topic_and_its_dlq():
    result = runner.invoke(app, ["topics", "list"])
    for spec in TOPICS:
        assert spec.name in result.output
        assert (f"{spec.name}.dlq" in result.output) != spec.compacted  # state topics have no DLQ


def test_metrics_endpoint_exposes_stage_counters():
    port = serve_metrics(MetricsSettings(host="127.0.0.1", port=0))
    bus = MemoryBus(default_partitions=1)
    bus.producer().send(OutRecord("m-in", b"k", b"v"))
    bus.producer().send(OutRecord("m-in", b"k", b"\xff"))
    stage = FunctionStage("metrics-probe", ["m-in"], lambda r: [OutRecord("m-out", r.key, r.value.decode().encode())])
    StageRunner(stage, bus, RunnerSettings(poll_timeout_s=0.01)).run(idle_stop_s=0.05)
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'ibet_stage_consumed_records_total{stage="metrics-probe",topic="m-in"} 2.0' in text
    assert 'ibet_stage_produced_records_total{stage="metrics-probe",topic="m-out"} 1.0' in text
    assert 'ibet_stage_dead_lettered_records_total{stage="metrics-probe",topic="m-in"} 1.0' in text
    assert 'ibet_stage_processing_seconds_count{stage="metrics-probe"} 1.0' in text
    assert 'ibet_stage_consumer_lag_records{partition="0",stage="metrics-probe",topic="m-in"} 0.0' in text


def test_eval_refuses_a_scenario_whose_sensors_are_not_the_registrys_in_one_line(tmp_path):
    text = (REPO / "sim" / "scenarios" / "foot-crossing-forest-vista.yaml").read_text()
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(text.replace("id: cam-vista-tower", "id: cam-nowhere"))
    result = runner.invoke(app, ["eval", str(unknown), "--seeds", "1", "--config", CONFIG])
    assert result.exit_code == 2 and "sensor 'cam-nowhere' is not in the registry" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    wrong_kind = tmp_path / "kind.yaml"
    wrong_kind.write_text(text.replace("id: drone-vista-1", "id: cam-peace-arch"))  # a fixed camera, flown
    result = runner.invoke(app, ["eval", str(wrong_kind), "--seeds", "1", "--config", CONFIG])
    assert result.exit_code == 2 and "'cam-peace-arch' is a fixed_camera in the registry, a drone" in result.output
    moved = tmp_path / "moved.yaml"  # the tower 5 m further south and turned 2 degrees: not where the registry has it
    moved.write_text(text.replace("position_m: [-150, -120]", "position_m: [-150, -125]")
                     .replace("heading_deg: 51.3", "heading_deg: 53.3"))
    assert moved.read_text() != text
    result = runner.invoke(app, ["eval", str(moved), "--seeds", "1", "--config", CONFIG])
    assert result.exit_code == 2 and "camera 'cam-vista-tower' stands 5.0 m from its registry pose" in result.output
    assert "heading_deg 53.3 in the scenario, 51.3 in the registry" in result.output


def _eval_summary(scenario: Path, config: str) -> dict:
    import json

    result = runner.invoke(app, ["eval", str(scenario), "--seeds", "1-2", "--config", config])
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


def test_eval_a_person_on_foot_beside_a_port_is_an_unlawful_crossing():
    summary = _eval_summary(REPO / "tests" / "data" / "scenarios" / "pedestrian-beside-peace-arch.yaml", CONFIG)
    assert summary["true_crossings"] == 2 and summary["crossing_recall"] == 1.0
    assert summary["crossing_precision"] == 1.0 and summary["lawful_crossing_events"] == 0


def test_eval_a_vehicle_through_a_closed_ports_lanes_is_an_unlawful_crossing(tmp_path):
    import json
    import shutil

    night = REPO / "tests" / "data" / "scenarios" / "vehicle-through-closed-port.yaml"
    shipped = _eval_summary(night, CONFIG)  # the shipped Peace Arch is open around the clock: lawful there
    assert shipped["lawful_crossing_events"] == 2 and shipped["crossing_events"] == 0

    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    ports = json.loads((config / "ports_of_entry.geojson").read_text())
    [peace_arch] = [f for f in ports["features"] if f["properties"]["id"] == "poe-peace-arch"]
    peace_arch["properties"]["hours"] = {"daily": "06:00-22:00", "time_zone": "America/Vancouver"}
    (config / "ports_of_entry.geojson").write_text(json.dumps(ports))
    closed = _eval_summary(night, str(config / "ibet.yaml"))
    assert closed["true_crossings"] == 2 and closed["crossing_recall"] == 1.0
    assert closed["crossing_precision"] == 1.0 and closed["lawful_crossing_events"] == 0

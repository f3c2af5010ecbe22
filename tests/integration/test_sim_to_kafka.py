"""`ibet sim run --to kafka`: every sent frame lands on ibet.frames.v1 once, keyed by sensor,
with metadata in headers that decodes back to what the simulator sent."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ibet import topics
from ibet.messages import FrameMeta
from ibet_app.cli import app

pytestmark = pytest.mark.kafka


def test_sim_run_to_kafka_lands_every_frame_once(kafka_bus, kafka_bootstrap, drain, tmp_path, monkeypatch):
    kafka_bus.create_topics([topics.FRAMES], partitions=3)
    before = len(drain(topics.FRAMES, at_least=0, timeout_s=5, settle_s=1))
    monkeypatch.setenv("IBET_BUS__KIND", "kafka")
    monkeypatch.setenv("IBET_BUS__KAFKA__BOOTSTRAP_SERVERS", json.dumps([kafka_bootstrap]))
    scenario = tmp_path / "short.yaml"
    text = open("sim/scenarios/lawful-crossing-peace-arch.yaml").read().replace("duration_s: 60", "duration_s: 8")
    scenario.write_text(text.replace("name: lawful-crossing-peace-arch", "name: short-peace-arch"))
    result = CliRunner().invoke(app, ["sim", "run", str(scenario), "--to", "kafka", "--out", str(tmp_path / "run"),
                                      "--config", "config/ibet.yaml"])
    assert result.exit_code == 0, result.output
    sent = int(result.output.split(" frames sent")[0].split()[-1])
    assert sent > 10

    # other tests write to ibet.frames.v1 too: this run's frames are the only ones of its camera
    records = [r for r in drain(topics.FRAMES, at_least=before + sent) if r.key == b"cam-peace-arch"]
    assert len(records) == sent
    metas = [FrameMeta.from_headers(r.headers) for r in records]
    assert len({m.sequence for m in metas}) == sent  # once each
    assert all(r.value[:2] == b"\xff\xd8" for r in records)
    assert (tmp_path / "run" / "truth" / "events.json").exists()

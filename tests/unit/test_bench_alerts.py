"""``ibet bench alerts`` through the command: a row per outbox database and rate, every delivery
arrived at the partner on both sides, on SQLite and on a real PostgreSQL server. No timing is
asserted (a benchmark's figures are read, not tested)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ibet_app.cli import app

REPO = Path(__file__).resolve().parents[2]


def test_the_command_reports_each_database_with_every_delivery_arrived(tmp_path, monkeypatch, postgres_url):
    (tmp_path / "config").symlink_to(REPO / "config")
    monkeypatch.chdir(tmp_path)  # reports/bench-alerts.json lands here
    result = CliRunner().invoke(app, ["bench", "alerts", "--rates", "20", "--seconds", "0.5",
                                      "--db", "sqlite,postgres", "--postgres-url", postgres_url,
                                      "--partner-latency-ms", "50"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    rows = summary["results"]
    assert [(r["db"], r["events_per_s"], r["events"]) for r in rows] == [("sqlite", 20.0, 10), ("postgres", 20.0, 10)]
    for row in rows:
        arrived, recorded = map(int, row["pipeline_delivered"].split("/"))
        assert arrived == recorded > 0 and row["bare_delivered"] == row["pipeline_delivered"]
        assert row["pipeline_deliveries_per_s"] > 0 and row["partner_latency_ms"] == 50
    assert json.loads((tmp_path / "reports" / "bench-alerts.json").read_text()) == summary


def test_an_unknown_database_is_refused():
    result = CliRunner().invoke(app, ["bench", "alerts", "--db", "oracle"])
    assert result.exit_code == 2 and "sqlite and/or postgres" in result.output

"""`ibet bench ingest-stream` through its CLI, small: both sides read the same file, the ratio is reported."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from ibet_app.cli import app


def test_bench_ingest_stream_reports_both_sides_and_the_ratio(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # reports/ goes here
    result = CliRunner().invoke(app, ["bench", "ingest-stream", "--rounds", "1", "--seconds", "2", "--width", "320",
                                      "--height", "180", "--fps", "10"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["pictures"] == 20 and summary["produced"] == 4  # 2 s kept at 2 Hz
    assert summary["ratio_cpu"] > 0 and summary["streams_per_core"] > 0
    assert json.loads((tmp_path / "reports" / "bench-ingest-stream.json").read_text()) == summary

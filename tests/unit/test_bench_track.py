"""``ibet bench track``: the command's JSON line, and the metric pipeline checked against known answers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from ibet_app.bench.track import TRACKERS, Frame, detections, gt_path, load_ground_truth, run_track_bench, score
from ibet_app.cli import app

SEQUENCES = ("TUD-Campus", "TUD-Stadtmitte")


def test_the_command_reports_a_row_per_tracker_and_sequence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # reports/bench-track.json lands here
    result = CliRunner().invoke(app, ["bench", "track", "--fps", "5"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["bench"] == "track"
    rows = summary["results"]
    assert sorted((r["tracker"], r["sequence"]) for r in rows) == sorted((t, s) for t in TRACKERS for s in SEQUENCES)
    for row in rows:
        assert row["fps"] == 5 and row["effective_fps"] == 5.0
        assert row["mota"] <= 1.0 and 0.0 <= row["idf1"] <= 1.0 and row["id_switches"] >= 0 and row["ms_per_frame"] > 0
    assert json.loads((tmp_path / "reports" / "bench-track.json").read_text()) == summary


def test_bad_fps_is_refused():
    result = CliRunner().invoke(app, ["bench", "track", "--fps", "fast"])
    assert result.exit_code == 2


@pytest.mark.parametrize(("name", "mota", "idf1", "switches"), [("TUD-Campus", 0.526462, 0.557659, 7),
                                                               ("TUD-Stadtmitte", 0.564014, 0.644619, 7)])
def test_scoring_reproduces_motmetrics_own_expected_values(name, mota, idf1, switches):
    """motmetrics' own test.txt hypotheses, scored here, give the numbers its test suite expects."""
    gt = load_ground_truth(name)
    hyp = np.loadtxt(gt_path(name).with_name("test.txt"), delimiter=",", ndmin=2)
    frames, ids = [], []
    for f in gt.frames:
        rows = hyp[hyp[:, 0] == f]
        frames.append(Frame(int(f), np.concatenate([rows[:, 2:4], rows[:, 2:4] + rows[:, 4:6]], axis=1), rows[:, 6]))
        ids.append(rows[:, 1].astype(np.int64))
    got = score(gt, frames, ids)
    assert got["mota"] == pytest.approx(mota, abs=1e-5) and got["idf1"] == pytest.approx(idf1, abs=1e-5)
    assert got["num_switches"] == switches


def test_noise_free_truth_is_tracked_almost_perfectly_by_roboflow_bytetrack():
    rows = run_track_bench(fps=(25,), trackers=("bytetrack",), noise=False)
    assert len(rows) == len(SEQUENCES)
    for row in rows:
        assert row["idf1"] > 0.9, row


def test_the_noise_is_seeded_and_strips_identities():
    gt = load_ground_truth("TUD-Campus")
    a, b, c = detections(gt, 0), detections(gt, 0), detections(gt, 1)
    assert all(np.array_equal(x.xyxy, y.xyxy) and np.array_equal(x.confidence, y.confidence) for x, y in zip(a, b, strict=True))
    assert not all(len(x.confidence) == len(y.confidence) and np.allclose(x.xyxy, y.xyxy) for x, y in zip(a, c, strict=True))
    true_boxes = sum(len(gt.ids[f.number]) for f in a)
    fed = sum(len(f.confidence) for f in a)
    assert 0.8 * true_boxes < fed < 1.1 * true_boxes + len(a)  # about 10 % missed, about 0.5 false per frame

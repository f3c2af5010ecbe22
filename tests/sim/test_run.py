"""A simulated run end to end: frames, telemetry, KLV, sinks and the YOLO dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from ibet.klv import decode_st0601
from ibet.messages import FrameMeta
from ibet_app.cli import app
from sim.dataset import write_dataset, yolo_lines
from sim.run import simulate
from sim.scenario import load_scenario, resolve_scenario
from sim.sensors import sensor_frames
from sim.sinks import DirSink
from sim.world import build_world


def short(name: str, duration_s: float = 6.0, **changes):
    """A shipped scenario cut short (the truth still comes from the full paths)."""
    scenario = load_scenario(resolve_scenario(name))
    return scenario.model_copy(update={"duration_s": duration_s, **changes})


@pytest.fixture(scope="module")
def vista_frames():
    sim = simulate(short("foot-crossing-forest-vista", 50.0))
    return sim, list(sim.frames())


def test_frames_are_jpegs_with_valid_metadata_in_capture_order(vista_frames):
    sim, frames = vista_frames
    assert frames and {f.meta.sensor_id for f in frames} == {"drone-vista-1", "cam-vista-tower"}
    times = [f.true_time_s for f in frames]
    assert times == sorted(times)
    for frame in frames[:10]:
        assert frame.jpeg[:2] == b"\xff\xd8" and frame.jpeg[-2:] == b"\xff\xd9"
        assert FrameMeta.from_headers(frame.meta.to_headers()) == frame.meta


def test_the_person_is_seen_by_both_sensors_at_least_12_px_across(vista_frames):
    _, frames = vista_frames
    seen = {}
    for frame in frames:
        for box in frame.truth_boxes:
            if box.visible_fraction == 1.0:
                x1, y1, x2, y2 = box.xyxy_px
                seen.setdefault(frame.meta.sensor_id, []).append(min(x2 - x1, y2 - y1))
    assert set(seen) == {"drone-vista-1", "cam-vista-tower"}
    assert all(np.median(sizes) >= 12 for sizes in seen.values()), {k: np.median(v) for k, v in seen.items()}


def test_drone_klv_decodes_to_its_telemetry(vista_frames):
    _, frames = vista_frames
    drone = [f for f in frames if f.klv is not None]
    assert drone
    for frame in drone[:5]:
        decoded = decode_st0601(frame.klv)
        sent = frame.meta.telemetry
        assert decoded.sensor_lat_deg == pytest.approx(sent.sensor_lat_deg, abs=1e-6)
        assert decoded.sensor_lon_deg == pytest.approx(sent.sensor_lon_deg, abs=1e-6)
        assert decoded.hfov_deg == pytest.approx(sent.hfov_deg, abs=0.01)
        assert decoded.precision_ts_us == frame.meta.capture_ts_ns // 1000


def test_same_seed_same_frames_other_seed_other_frames():
    first = next(simulate(short("vehicle-rural-road-tower", 2.0)).frames())
    again = next(simulate(short("vehicle-rural-road-tower", 2.0)).frames())
    other = next(simulate(short("vehicle-rural-road-tower", 2.0), seed=2).frames())
    assert first.jpeg == again.jpeg and first.meta == again.meta
    assert first.jpeg != other.jpeg


def test_telemetry_without_errors_is_the_truth_and_errors_move_it():
    scenario = short("approach-turn-back-derby", 3.0)
    world = build_world(scenario, 1)
    spec = scenario.sensors[0]
    exact = spec.model_copy(update={"errors": type(spec.errors)()})
    for chosen, tolerance in ((exact, 1e-6), (spec, None)):
        frame = next(sensor_frames(chosen, world.frame, 1_000_000, 3.0, 310.0, np.random.default_rng(5)))
        east, north = world.frame.to_local(frame.telemetry.sensor_lon_deg, frame.telemetry.sensor_lat_deg)
        offset = np.hypot(east - frame.camera.position_m[0], north - frame.camera.position_m[1])
        if tolerance:
            assert offset < tolerance
            assert frame.telemetry.sensor_alt_m == pytest.approx(310.0 + frame.camera.position_m[2])
            centre, _ = frame.camera.ground_points(np.array([[640.0, 360.0]]))
            c_east, c_north = world.frame.to_local(frame.telemetry.frame_center_lon_deg, frame.telemetry.frame_center_lat_deg)
            assert np.hypot(c_east - centre[0, 0], c_north - centre[0, 1]) < 1e-3
            assert frame.reported_time_s == frame.true_time_s
        else:
            assert offset > 0.1  # GPS bias and noise


def test_dir_sink_writes_frames_and_truth(tmp_path):
    sim = simulate(short("lawful-crossing-peace-arch", 6.0))
    sink = DirSink(tmp_path)
    for frame in sim.frames():
        sink.write(frame)
    sink.close(sim)
    jpgs = sorted((tmp_path / "frames" / "cam-peace-arch").glob("*.jpg"))
    assert len(jpgs) == sink.count > 0
    doc = json.loads(jpgs[0].with_suffix(".json").read_text())
    assert doc["meta"]["sensor_id"] == "cam-peace-arch"
    events = json.loads((tmp_path / "truth" / "events.json").read_text())
    assert [e["kind"] for e in events] == ["lawful_crossing"]
    rows = (tmp_path / "truth" / "targets.csv").read_text().splitlines()
    assert rows[0].startswith("time_s,target_id,kind") and len(rows) > 1


def test_dataset_split_by_seed_with_yolo_labels(tmp_path):
    scenario = short("vehicle-rural-road-tower", 40.0)
    with pytest.raises(ValueError, match="overlap"):
        write_dataset([scenario], [1, 2], [2], tmp_path)
    stats = write_dataset([scenario], [1], [9], tmp_path, every_nth=8)
    assert stats.images["train"] > 0 and stats.images["val"] > 0
    assert all("-s9-" in p.name for p in (tmp_path / "images" / "val").iterdir())
    assert not any("-s9-" in p.name for p in (tmp_path / "images" / "train").iterdir())
    labels = [line for p in (tmp_path / "labels" / "train").glob("*.txt") for line in p.read_text().splitlines()]
    assert labels and all(line.split()[0] == "1" for line in labels)  # vehicle
    for line in labels:
        cx, cy, w, h = map(float, line.split()[1:])
        assert 0 < w <= 1 and 0 < h <= 1 and 0 <= cx <= 1 and 0 <= cy <= 1
    assert "names:" in (tmp_path / "data.yaml").read_text()


def test_yolo_lines_skip_barely_visible_targets(vista_frames):
    _, frames = vista_frames
    frame = next(f for f in frames if f.truth_boxes)
    assert len(yolo_lines(frame, min_visible=1.01, min_box_px=0)) == 0


def test_cli_plot_and_list(tmp_path):
    runner = CliRunner()
    listed = runner.invoke(app, ["sim", "list"])
    assert listed.exit_code == 0 and "foot-crossing-forest-vista" in listed.output
    out = tmp_path / "plot.png"
    result = runner.invoke(app, ["sim", "plot", "lawful-crossing-peace-arch", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = runner.invoke(app, ["sim", "run", "nope"])
    assert bad.exit_code == 2 and "shipped" in bad.output


def test_truth_frames_match_the_rendered_frames_without_rendering():
    from sim.run import truth_frames

    scenario = short("lawful-crossing-peace-arch", 50.0)
    rendered = list(simulate(scenario).frames(every_nth=1))
    fast = list(truth_frames(simulate(scenario)))
    assert [f.meta for f in fast] == [f.meta for f in rendered]
    assert [f.truth_boxes for f in fast] == [f.truth_boxes for f in rendered]
    assert any(f.truth_boxes for f in fast)

"""The simulator's asynchronous KLV (`ibet sim run --to FILE.ts --klv async`): FFmpeg's own demuxer
(PyAV) finds no PTS on any KLV packet, klvdata still reads every packet, and `ibet ingest stream`
pairs each picture by tag 2 to the same capture time and telemetry as the synchronous stream of
the same run."""

from __future__ import annotations

from pathlib import Path

import av
import pytest
from test_stream_samples import klvdata_reading
from typer.testing import CliRunner

from ibet import topics
from ibet.bus import MemoryBus
from ibet.clock import ManualClock
from ibet.config import IngestSettings
from ibet.messages import FrameMeta
from ibet.registry import Sensor
from ingest.stream import StreamIngest
from sim.cli import sim_app

REPO = Path(__file__).resolve().parents[2]
DRONE = "drone-vista-1"


@pytest.fixture(scope="module")
def streams(tmp_path_factory) -> dict[str, Path]:
    """The forest-vista drone, 6 s at 640 x 360, written once with each KLV mode."""
    folder = tmp_path_factory.mktemp("async-sim")
    text = (REPO / "sim/scenarios/foot-crossing-forest-vista.yaml").read_text()
    text = text.replace("duration_s: 100", "duration_s: 6").replace("width_px: 1280, height_px: 720",
                                                                      "width_px: 640, height_px: 360")
    scenario = folder / "short.yaml"
    scenario.write_text(text)
    made = {}
    for mode in ("sync", "async"):
        made[mode] = folder / f"{mode}.ts"
        result = CliRunner().invoke(sim_app, ["run", str(scenario), "--to", str(made[mode]), "--klv", mode,
                                              "--seed", "7", "--out", str(folder / mode)])
        assert result.exit_code == 0, result.output
    return made


def _klv_packets(path: Path) -> list[tuple[int | None, bytes]]:
    with av.open(str(path)) as container:
        data = container.streams.data[0]
        return [(p.pts, bytes(p)) for p in container.demux(data) if p.size]


def _frames(path: Path) -> tuple[StreamIngest, list[FrameMeta]]:
    bus = MemoryBus()
    sensor = Sensor(id=DRONE, kind="drone", owner_agency="usbp", sector_id="pac-blaine", detection_rate_hz=2.0)
    run = StreamIngest(sensor, str(path), bus.producer(), IngestSettings(), ManualClock(1_790_000_000 * 10**9))
    run.run()
    return run, [FrameMeta.from_headers(r.headers) for r in bus.records(topics.FRAMES)]


def test_async_klv_has_no_pts_and_the_same_packets_as_sync(streams):
    sync, asynchronous = _klv_packets(streams["sync"]), _klv_packets(streams["async"])
    assert len(sync) == len(asynchronous) == 12  # 6 s at the drone's 2 Hz
    assert all(pts is not None for pts, _ in sync) and all(pts is None for pts, _ in asynchronous)
    assert [body for _, body in sync] == [body for _, body in asynchronous]
    assert all(klvdata_reading(body)[13] for _, body in asynchronous)  # an independent decoder reads each


def test_ingest_pairs_async_klv_by_tag_2_to_what_sync_gives(streams):
    sync_run, sync_frames = _frames(streams["sync"])
    async_run, async_frames = _frames(streams["async"])
    assert async_run.stats.paired == {"exact": 12} and sync_run.stats.paired == {"exact": 12}, str(async_run.stats)
    assert [(m.capture_ts_ns, m.telemetry) for m in async_frames] == [(m.capture_ts_ns, m.telemetry)
                                                                      for m in sync_frames]


def test_an_unknown_klv_mode_is_a_clear_error():
    result = CliRunner().invoke(sim_app, ["run", "foot-crossing-forest-vista", "--to", "x.ts", "--klv", "late"])
    assert result.exit_code == 2 and "--klv must be 'sync' or 'async'" in result.output

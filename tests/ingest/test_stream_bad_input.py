"""``ibet ingest stream`` with bad input: a truncated file, video without KLV, KLV with a bad checksum
(lenient mode), a tag-2 clock that jumps, a resolution change mid-stream, garbage on the UDP port,
a silent live stream. Each is a counted drop or a clear error, and the stream keeps running."""

from __future__ import annotations

import os
import socket
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from prometheus_client import REGISTRY
from typer.testing import CliRunner

from ibet import topics
from ibet.bus import MemoryBus
from ibet.clock import ManualClock, SystemClock
from ibet.config import IngestSettings
from ibet.klv import encode_st0601
from ibet.messages import FrameMeta, SensorHealthEvent, SensorHealthState, Telemetry
from ibet.registry import Sensor
from ibet_app.cli import app
from ingest.health import FeedHealth
from ingest.stream import StreamError, StreamIngest

DATA = Path(__file__).resolve().parents[1] / "data" / "stanag"
T0_US = 1_784_149_200_000_000
NOW = T0_US * 1000 + 3600 * 10**9


def drone(sensor_id: str = "uas-bad", rate_hz: float = 10.0) -> Sensor:
    return Sensor(id=sensor_id, kind="drone", owner_agency="usbp", sector_id="pac-blaine", detection_rate_hz=rate_hz)


def telemetry(k: int, fps: float) -> Telemetry:
    return Telemetry(precision_ts_us=T0_US + round(k * 1e6 / fps), sensor_lat_deg=49.0 + k * 1e-5,
                     sensor_lon_deg=-122.75, sensor_alt_m=120.0, platform_heading_deg=90.0, hfov_deg=40.0)


def write_ts(target: str, frames: int = 20, fps: float = 10.0, size: tuple[int, int] = (64, 48),
             klv=lambda k, fps: encode_st0601(telemetry(k, fps)), start_pts: int = 0) -> None:
    """A transport stream written with PyAV: H.264 and (unless ``klv`` is None) one sync KLV packet a frame."""
    tb = Fraction(1, 90_000)
    with av.open(target, "w", format="mpegts") as out:
        video = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000),
                               options={"preset": "ultrafast", "tune": "zerolatency", "g": "5"})
        video.width, video.height, video.pix_fmt, video.time_base = size[0], size[1], "yuv420p", tb
        video.codec_context.time_base = tb
        data = out.add_data_stream("klv") if klv is not None else None
        for k in range(frames):
            pts = start_pts + round(k * 90_000 / fps)
            picture = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), (k * 9) % 256, np.uint8), format="bgr24")
            picture.pts, picture.time_base = pts, tb
            for packet in video.encode(picture):
                out.mux(packet)
            if data is not None:
                packet = av.Packet(klv(k, fps))
                packet.stream, packet.pts, packet.dts, packet.time_base = data, pts, pts, tb
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)


def run_file(path: Path, sensor: Sensor | None = None, **settings) -> tuple[StreamIngest, list[FrameMeta]]:
    bus = MemoryBus()
    run = StreamIngest(sensor or drone(), str(path), bus.producer(), IngestSettings(**settings), ManualClock(NOW))
    run.run()
    return run, [FrameMeta.from_headers(r.headers) for r in bus.records(topics.FRAMES)]


def test_a_truncated_file_gives_the_frames_it_holds_and_ends_without_an_exception(tmp_path):
    whole = (DATA / "h264_klv.ts").read_bytes()
    for fraction in (0.5, 0.77):
        cut = tmp_path / f"cut-{fraction}.ts"
        cut.write_bytes(whole[: int(len(whole) * fraction) + 101])  # mid transport packet, too
        run, metas = run_file(cut, drone(rate_hz=30.0))
        assert 0 < run.stats.frames_decoded < 30 and len(metas) >= run.stats.frames_decoded - 2, str(run.stats)
        assert all(m.telemetry.sensor_lat_deg is not None for m in metas)


def test_a_file_that_is_not_video_is_a_clear_error(tmp_path):
    junk = tmp_path / "junk.ts"
    junk.write_bytes(os.urandom(50_000))
    with pytest.raises(StreamError, match="cannot open|no video stream"):
        run_file(junk)
    with pytest.raises(StreamError, match="no such file"):
        run_file(tmp_path / "missing.ts")


def test_video_without_klv_is_refused_as_no_telemetry_and_counted(tmp_path):
    path = tmp_path / "no-klv.ts"
    write_ts(str(path), klv=None)
    before = REGISTRY.get_sample_value("ibet_ingest_stream_pairing_failures_total",
                                       {"sensor": "uas-noklv", "reason": "no_telemetry"}) or 0
    run, metas = run_file(path, drone("uas-noklv"))
    assert metas == [] and run.stats.refused == {"no_telemetry": 20} and run.stats.frames_decoded == 20
    assert REGISTRY.get_sample_value("ibet_ingest_stream_pairing_failures_total",
                                     {"sensor": "uas-noklv", "reason": "no_telemetry"}) - before == 20


def test_a_fixed_camera_stream_needs_no_klv_and_keeps_its_own_timeline(tmp_path):
    path = tmp_path / "camera.ts"
    write_ts(str(path), klv=None, frames=20, fps=10.0)
    camera = Sensor(id="cam-stream", kind="fixed_camera", owner_agency="cbsa", sector_id="pac-blaine",
                    detection_rate_hz=2.0, pose={"lat_deg": 49.0, "lon_deg": -122.75, "height_m": 10.0,
                                                 "heading_deg": 0.0, "tilt_deg": 5.0, "hfov_deg": 60.0})
    run, metas = run_file(path, camera)
    assert len(metas) == 4 and all(m.telemetry is None for m in metas)
    assert [m.capture_ts_ns - NOW for m in metas] == [0, 500_000_000, 1_000_000_000, 1_500_000_000]


def corrupt_checksum(k: int, fps: float) -> bytes:
    packet = bytearray(encode_st0601(telemetry(k, fps)))
    packet[-1] ^= 0xFF
    return bytes(packet)


def test_klv_with_a_bad_checksum_is_refused_unless_lenient_and_then_used_and_counted(tmp_path):
    path = tmp_path / "bad-checksum.ts"
    write_ts(str(path), klv=corrupt_checksum)
    strict, metas = run_file(path)
    assert strict.stats.klv_packets == {"bad_checksum": 20} and metas == []
    assert strict.stats.refused == {"no_telemetry": 20}
    lenient, metas = run_file(path, klv_lenient_checksum=True)
    assert lenient.stats.klv_packets == {"st0601_lenient": 20} and len(metas) == 20


@pytest.mark.parametrize("jump_s", [-7200, 20 * 365 * 86400])
def test_a_tag_2_clock_jumping_backwards_or_years_ahead_is_refused_and_counted(tmp_path, jump_s):
    def jumping(k: int, fps: float) -> bytes:
        t = telemetry(k, fps)
        if k in (7, 8):
            t = t.model_copy(update={"precision_ts_us": t.precision_ts_us + jump_s * 1_000_000})
        return encode_st0601(t)

    path = tmp_path / "jump.ts"
    write_ts(str(path), klv=jumping)
    run, metas = run_file(path)
    assert run.stats.klv_packets == {"st0601": 18, "clock_jump": 2}
    assert len(metas) == 20  # frames 7 and 8 get the telemetry of their neighbours, on the stream's timeline
    assert [m.capture_ts_ns for m in metas] == [(T0_US + k * 100_000) * 1000 for k in range(20)]
    assert {m.telemetry.precision_ts_us for m in metas[7:9]} == {T0_US + 700_000, T0_US + 800_000}


def test_a_resolution_change_mid_stream_is_followed_and_the_new_timeline_anchored(tmp_path):
    first, second = tmp_path / "a.ts", tmp_path / "b.ts"
    write_ts(str(first), frames=10, size=(64, 48))
    write_ts(str(second), frames=10, size=(96, 64), start_pts=0,
             klv=lambda k, fps: encode_st0601(telemetry(k + 100, fps)))
    joined = tmp_path / "joined.ts"
    joined.write_bytes(first.read_bytes() + second.read_bytes())
    run, metas = run_file(joined)
    sizes = [(m.width_px, m.height_px) for m in metas]
    assert sizes.count((64, 48)) >= 8 and sizes.count((96, 64)) >= 8, (sizes, str(run.stats))
    assert run.pairer.counts.timeline_resets >= 1
    assert all(b.capture_ts_ns > a.capture_ts_ns for a, b in zip(metas, metas[1:], strict=False))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def send_udp(port: int, payload: bytes, packet: int = 1316, pause_s: float = 0.0005) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for at in range(0, len(payload), packet):
            sock.sendto(payload[at : at + packet], ("127.0.0.1", port))
            time.sleep(pause_s)


def test_garbage_flooding_the_udp_port_is_survived_and_the_real_stream_after_it_lands(tmp_path):
    port = free_port()
    stream = tmp_path / "live.ts"
    write_ts(str(stream), frames=30, klv=lambda k, fps: encode_st0601(
        telemetry(k, fps).model_copy(update={"precision_ts_us": time.time_ns() // 1000 + round(k * 1e5)})))
    bus = MemoryBus()
    settings = IngestSettings(stream_open_timeout_s=3.0, stream_read_timeout_s=1.0, reconnect_initial_s=0.05,
                              reconnect_max_s=0.2)
    run = StreamIngest(drone("uas-udp"), f"udp://127.0.0.1:{port}", bus.producer(), settings, SystemClock(),
                       max_frames=10)
    worker = threading.Thread(target=run.run, daemon=True)
    worker.start()
    time.sleep(0.5)
    send_udp(port, os.urandom(2_000_000))  # ~1500 datagrams of noise
    deadline = time.monotonic() + 30
    while worker.is_alive() and time.monotonic() < deadline:
        send_udp(port, stream.read_bytes())
    worker.join(5)
    assert not worker.is_alive() and run.stats.stopped_by == "max_frames", str(run.stats)
    metas = [FrameMeta.from_headers(r.headers) for r in bus.records(topics.FRAMES)]
    assert len(metas) == 10 and all(m.telemetry is not None for m in metas)


def test_a_silent_live_stream_is_reopened_and_reported_lost_with_the_reason_when_video_has_no_klv(tmp_path):
    port = free_port()
    stream = tmp_path / "video-only.ts"
    write_ts(str(stream), frames=30, klv=None)
    bus = MemoryBus()
    sensor = drone("uas-silent")
    clock = SystemClock()
    health = FeedHealth({sensor.id: (sensor.sector_id, 0.1)}, lost_after_intervals=5, lost_min_s=1.0,
                        started_ns=clock.now_ns())
    settings = IngestSettings(stream_open_timeout_s=2.0, stream_read_timeout_s=0.5, reconnect_initial_s=0.05,
                              reconnect_max_s=0.1)
    run = StreamIngest(sensor, f"udp://127.0.0.1:{port}", bus.producer(), settings, clock, health, max_reconnects=3)
    worker = threading.Thread(target=run.run, daemon=True)
    worker.start()
    for _ in range(6):  # video keeps arriving for ~2 s, never with telemetry
        send_udp(port, stream.read_bytes())
        time.sleep(0.2)
    worker.join(30)
    assert not worker.is_alive() and run.stats.stopped_by == "max_reconnects", str(run.stats)
    assert run.stats.refused.get("no_telemetry", 0) > 0 and bus.records(topics.FRAMES) == []
    (lost,) = [SensorHealthEvent.from_bytes(r.value) for r in bus.records(topics.SENSOR_HEALTH)]
    assert lost.state == SensorHealthState.FEED_LOST and "without usable KLV telemetry (no_telemetry" in lost.reason


def test_the_cli_streams_a_sample_file_and_says_what_it_did(tmp_path, monkeypatch):
    monkeypatch.setenv("IBET_BUS__KIND", "memory")
    result = CliRunner().invoke(app, ["ingest", "stream", "--sensor", "blaine-drone-1", "--source",
                                      str(DATA / "h264_klv.ts"), "--config", "config/ibet.yaml"])
    assert result.exit_code == 0, result.output
    # a 2 Hz drone: 30 pictures at 30 fps give two frames, each paired exactly
    assert "30 pictures decoded, 2 produced" in result.output and "KLV packets: st0601 30" in result.output
    bad = CliRunner().invoke(app, ["ingest", "stream", "--sensor", "nope", "--source", str(DATA / "h264_klv.ts"),
                                   "--config", "config/ibet.yaml"])
    assert bad.exit_code != 0 and "unknown sensor 'nope'" in bad.output


def test_video_without_klv_is_paired_with_a_klv_side_stream_on_its_own_udp_port(tmp_path):
    video_port, klv_port = free_port(), free_port()
    stream = tmp_path / "video-only.ts"
    write_ts(str(stream), frames=20, klv=None)
    start_us = time.time_ns() // 1000
    packets = [encode_st0601(telemetry(k, 10.0).model_copy(update={"precision_ts_us": start_us + k * 100_000}))
               for k in range(20)]
    bus = MemoryBus()
    settings = IngestSettings(stream_read_timeout_s=1.0)
    run = StreamIngest(drone("uas-side"), f"udp://127.0.0.1:{video_port}", bus.producer(), settings, SystemClock(),
                       max_frames=20, max_reconnects=2, klv_source=f"udp://127.0.0.1:{klv_port}")
    worker = threading.Thread(target=run.run, daemon=True)
    worker.start()
    time.sleep(0.3)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for packet in packets:  # the side stream runs a little ahead of the video, as a separate feed does
            sock.sendto(packet, ("127.0.0.1", klv_port))
    time.sleep(0.2)
    send_udp(video_port, stream.read_bytes())
    worker.join(20)
    assert not worker.is_alive(), str(run.stats)
    metas = [FrameMeta.from_headers(r.headers) for r in bus.records(topics.FRAMES)]
    assert len(metas) == 20 and run.stats.klv_packets == {"st0601": 20}, str(run.stats)
    assert [m.capture_ts_ns for m in metas] == [(start_us + k * 100_000) * 1000 for k in range(20)]
    assert [round(m.telemetry.sensor_lat_deg, 5) for m in metas] == [round(49.0 + k * 1e-5, 5) for k in range(20)]

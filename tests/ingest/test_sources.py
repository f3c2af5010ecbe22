"""Pulled sources and their pure policies: rate sampling, re-encoding, file/folder/stream sources.

Streams are real: a local MJPEG server (multipart/x-mixed-replace) that drops its clients, a TCP
port that accepts and never answers, and a refused port. Backoff waits run on a ManualClock, so
the tests never sleep through them and never assert a timing.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from video_samples import T0, S, write_video

from ibet.clock import ManualClock, SystemClock
from ibet.config import IngestSettings
from ibet.registry import Sensor
from ingest import sources
from ingest.sampling import RateSampler, reencode, scaled_size
from ingest.sources import (
    ImageFolderSource,
    SourceError,
    StreamSource,
    StreamUnavailable,
    VideoFileSource,
    backoff_delay_s,
    open_source,
    redact_url,
    timestamp_from_name,
)


def reconnects(sensor_id: str) -> float:
    return REGISTRY.get_sample_value("ibet_ingest_stream_reconnects_total", {"sensor": sensor_id}) or 0.0


# -- rate sampling -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fps", "rate_hz", "seconds", "expected"),
    [
        (10, 2, 6, 12),  # frames at 0.0 .. 5.9 s; due at 0.0, 0.5, .. 5.5 s
        (30, 2, 6, 12),
        (25, 3, 4, 12),  # due times 1/3 s apart fall between frames: the next frame is taken
        (10, 10, 1, 10),  # same rate: every frame
        (5, 10, 2, 10),  # faster than the source: every frame, no duplicates
        (10, 0.2, 60, 12),  # one frame every 5 s
    ],
)
def test_rate_sampler_keeps_the_detection_rate_of_a_uniform_source(fps, rate_hz, seconds, expected):
    sampler = RateSampler(rate_hz)
    times = [T0 + round(k * S / fps) for k in range(round(fps * seconds))]
    kept = [t for t in times if sampler.keep(t)]
    assert len(kept) == expected
    assert kept[0] == T0


def test_rate_sampler_does_not_drift_with_jittery_frames():
    # 30 fps with +-10 ms of arrival jitter for 100 s: still exactly 2 frames per second of timeline.
    rng = random.Random(3)
    times = sorted(T0 + round(k * S / 30 + rng.uniform(-0.01, 0.01) * S) for k in range(1, 3000))
    sampler = RateSampler(2.0)
    kept = [t for t in [T0, *times] if sampler.keep(t)]
    assert len(kept) == 200
    # No drift: the k-th kept frame is the first at or after k/2 s (1 ms tolerance), so it lags its
    # due time by less than one source interval plus the jitter, however many came before it.
    lags_ns = [t - (T0 + k * S // 2) for k, t in enumerate(kept)]
    assert all(-1_000_000 <= lag < S // 30 + 20_000_000 for lag in lags_ns), (min(lags_ns), max(lags_ns))


def test_rate_sampler_skips_ahead_after_a_gap_without_a_burst():
    sampler = RateSampler(2.0)
    before = [T0 + k * S // 10 for k in range(10)]  # 1 s of frames
    after = [T0 + 10 * S + k * S // 10 for k in range(10)]  # resumes 9 s later
    kept = [t for t in before + after if sampler.keep(t)]
    assert kept == [T0, T0 + S // 2, T0 + 10 * S, T0 + 10 * S + S // 2]


def test_rate_sampler_drops_a_frame_at_or_before_the_last_kept_one():
    sampler = RateSampler(1.0)
    assert [sampler.keep(t) for t in (T0, T0, T0 - S, T0 + S)] == [True, False, False, True]


@given(st.lists(st.integers(0, 20 * S), min_size=1, max_size=200), st.floats(0.1, 30.0))
def test_rate_sampler_invariants(offsets, rate_hz):
    sampler = RateSampler(rate_hz)
    times = sorted(T0 + o for o in offsets)
    decisions = [sampler.keep(t) for t in times]
    kept = [t for t, k in zip(times, decisions, strict=True) if k]
    assert decisions[0]  # the first frame is kept
    # never faster than the rate: at most one kept frame per slot of the grid first + k / rate_hz
    # (two kept frames can be closer than an interval when the first of them was late on its slot)
    slots = [(t - kept[0] + sampler.tolerance_ns) // sampler.interval_ns for t in kept]
    assert all(b > a for a, b in pairwise(slots))
    for t, k in zip(times, decisions, strict=True):  # never a full interval passed over without a frame kept
        if not k:
            assert t - max(x for x in kept if x <= t) < sampler.interval_ns


def test_rate_sampler_rejects_a_non_positive_rate():
    with pytest.raises(ValueError, match="rate_hz"):
        RateSampler(0.0)


# -- re-encoding ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("size", "max_width_px", "expected"),
    [((1920, 1080), 1280, (1280, 720)), ((1280, 720), 1280, (1280, 720)), ((640, 480), None, (640, 480)),
     ((4000, 1), 100, (100, 1))],
)
def test_scaled_size(size, max_width_px, expected):
    assert scaled_size(*size, max_width_px) == expected


def test_reencode_downscales_wide_frames_keeping_aspect():
    image = np.random.default_rng(0).integers(0, 255, (1080, 1920, 3), dtype=np.uint8)
    jpeg, width_px, height_px = reencode(image, 640, 80)
    assert (width_px, height_px) == (640, 360)
    assert jpeg[:2] == b"\xff\xd8"
    assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (360, 640, 3)


def test_reencode_keeps_narrow_frames_and_honours_quality():
    image = np.random.default_rng(1).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    high, w, h = reencode(image, 640, 95)
    low, *_ = reencode(image, 640, 30)
    assert (w, h) == (160, 120) and len(low) < len(high)


def test_reencode_refuses_an_empty_image():
    with pytest.raises(ValueError, match="empty"):
        reencode(np.zeros((0, 0, 3), np.uint8), None, 90)


# -- video files ---------------------------------------------------------------------------
def test_video_file_sampled_at_2_hz_yields_12_frames_on_the_files_timeline(tmp_path):
    source = VideoFileSource(write_video(tmp_path / "cam.avi"), T0)
    assert source.frame_count == 60
    sampler = RateSampler(2.0)
    kept = [f for f in source if sampler.keep(f.capture_ts_ns)]
    source.close()
    # 60 frames at 0.0 .. 5.9 s; due at 0.0, 0.5, ..., 5.5 s. No edge case: 6.0 s is past the last
    # frame, and POS_MSEC values like 5800.000000000001 are within the 1 ms tolerance.
    assert [f.capture_ts_ns for f in kept] == [T0 + k * S // 2 for k in range(12)]
    assert [f.source_index for f in kept] == list(range(0, 60, 5))
    assert int(kept[1].image_bgr.mean()) == pytest.approx(5, abs=2)  # frame 5's grey level


def test_video_file_without_start_time_ends_at_its_modification_time(tmp_path):
    path = write_video(tmp_path / "cam.avi", seconds=2.0)
    os.utime(path, ns=(T0, T0))
    frames = list(VideoFileSource(path))
    assert frames[0].capture_ts_ns == T0 - 2 * S  # modification time minus the 2 s duration
    assert frames[-1].capture_ts_ns == T0 - 2 * S + 1_900_000_000


@pytest.mark.parametrize("content", [None, b"not a video at all"])
def test_missing_or_unreadable_video_is_a_source_error(tmp_path, content):
    path = tmp_path / "cam.avi"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SourceError, match="cam.avi"):
        VideoFileSource(path, T0)


# -- image folders -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "expected_ns"),
    [
        ("cam_2024-06-10T12:00:00Z.jpg", 1_718_020_800 * S),
        ("2024-06-10T12-00-00.250Z.png", 1_718_020_800 * S + 250_000_000),
        ("20240610T120000.5.jpg", 1_718_020_800 * S + 500_000_000),
        ("2024-06-10T08:00:00-04:00.jpg", 1_718_020_800 * S),
        ("2024-06-10_12-00-00+0530.jpg", 1_718_020_800 * S - 19_800 * S),
        ("frame-1718020800250.jpg", 1_718_020_800 * S + 250_000_000),
        ("frame-000123.jpg", None),
        ("2024-13-45T12:00:00.jpg", None),  # looks like a date, is not one
    ],
)
def test_timestamp_from_name(name, expected_ns):
    assert timestamp_from_name(name) == expected_ns


def _write_images(folder: Path, names: list[str]) -> None:
    folder.mkdir(exist_ok=True)
    for k, name in enumerate(names):
        cv2.imwrite(str(folder / name), np.full((48, 64, 3), 10 * k, np.uint8))


def test_image_folder_times_frames_by_the_timestamps_in_their_names(tmp_path):
    # Names sort differently from their times: frames come out in capture order.
    _write_images(tmp_path / "imgs", ["b_1718000002000.png", "a_1718000001000.jpg", "c_1718000000500.jpeg"])
    source = ImageFolderSource(tmp_path / "imgs", start_ts_ns=T0, fps=1.0)
    frames = list(source)
    assert source.frame_count == 3 and source.timed_by == "file names"
    assert [f.capture_ts_ns for f in frames] == [T0 + S // 2, T0 + S, T0 + 2 * S]
    assert frames[0].image_bgr.shape == (48, 64, 3)


def test_image_folder_without_name_times_uses_start_plus_index_over_fps(tmp_path):
    _write_images(tmp_path / "imgs", ["001.jpg", "002.png", "003.jpg", "cam_1718000000000.jpg"])
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    (tmp_path / "imgs" / "004.jpg").write_bytes(b"broken")  # counted as rejected and skipped
    frames = list(ImageFolderSource(tmp_path / "imgs", start_ts_ns=T0, fps=4.0))
    assert [f.capture_ts_ns for f in frames] == [T0, T0 + S // 4, T0 + S // 2, T0 + S]
    assert [f.source_index for f in frames] == [0, 1, 2, 4]


def test_empty_image_folder_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="no JPEG or PNG"):
        ImageFolderSource(tmp_path, T0, 1.0)


# -- streams -------------------------------------------------------------------------------
class MjpegServer:
    """An MJPEG server on 127.0.0.1 that answers connection n as ``plan(n)`` says: the number of
    frames to send before dropping the connection, or None to answer 503."""

    def __init__(self, plan):
        jpeg = cv2.imencode(".jpg", np.full((120, 160, 3), 128, np.uint8))[1].tobytes()
        part = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n" % (len(jpeg), jpeg)
        self.connections = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.connections += 1
                frames = plan(server.connections)
                if frames is None:
                    self.send_error(503, "camera busy")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    for _ in range(frames):
                        self.wfile.write(part)
                        self.wfile.flush()
                        time.sleep(0.02)
                except (BrokenPipeError, ConnectionResetError):  # the client hung up: fine
                    return
                self.close_connection = True  # and drop the client

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/stream.mjpg"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class RecordingClock(ManualClock):
    """A ManualClock that remembers every sleep (the backoff waits) instead of blocking."""

    def __init__(self, start_ns: int):
        super().__init__(start_ns)
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        super().sleep(seconds)


def test_mjpeg_stream_that_drops_is_reconnected_with_growing_backoff():
    # 1st connection: 3 frames then drop; the next three: 503; then 3 frames per connection.
    server = MjpegServer(lambda n: 3 if n == 1 or n >= 5 else None)
    clock = RecordingClock(T0)
    before = reconnects("mjpeg-cam")
    stream = StreamSource(server.url, clock, reconnect_initial_s=0.1, reconnect_max_s=10.0, open_timeout_s=5.0,
                          sensor_id="mjpeg-cam", rng=random.Random(7))
    frames = []
    try:
        for item in stream:
            if item is not None:
                frames.append(item)
            if len(frames) == 9:
                break
    finally:
        stream.close()
        server.close()
    assert [f.source_index for f in frames] == list(range(9))  # frames keep coming across reconnects
    assert all(b.capture_ts_ns >= a.capture_ts_ns for a, b in pairwise(frames))
    assert stream.reconnects >= 5  # after the first drop: 3 refused + 1 that served; after the second: 1
    assert reconnects("mjpeg-cam") - before == stream.reconnects
    streak = clock.sleeps[:4]  # waits of the first outage: drop, 503, 503, 503
    assert all(b > a for a, b in pairwise(streak)), streak
    assert 0.05 < streak[0] <= 0.1
    assert clock.sleeps[4] <= 0.1  # a frame arrived meanwhile: the backoff started over


def test_backoff_doubles_from_initial_up_to_the_cap_with_bounded_jitter():
    assert [backoff_delay_s(k, 0.5, 30.0, 0.0) for k in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    for k in range(10):
        base = min(30.0, 0.5 * 2**k)
        assert base / 2 < backoff_delay_s(k, 0.5, 30.0, 0.999) <= base


@pytest.fixture
def silent_port():
    """A TCP port on 127.0.0.1 that accepts connections (the kernel's backlog) and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener.getsockname()[1]
    listener.close()


@pytest.mark.parametrize("scheme", ["http", "rtsp"])
def test_stream_that_never_answers_raises_stream_unavailable(silent_port, scheme):
    url = f"{scheme}://127.0.0.1:{silent_port}/live"
    stream = StreamSource(url, SystemClock(), 0.05, 0.2, open_timeout_s=1.0)
    with pytest.raises(StreamUnavailable, match=f"{scheme}://127.0.0.1:{silent_port}/live.*did not answer"):
        list(stream)


def test_refused_stream_raises_stream_unavailable():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    with pytest.raises(StreamUnavailable, match=f"127.0.0.1:{port}"):
        list(StreamSource(f"http://127.0.0.1:{port}/x.mjpg", SystemClock(), 0.05, 0.2, open_timeout_s=0.5))


def test_a_backend_call_that_ignores_its_timeout_is_abandoned(monkeypatch):
    """If OpenCV itself hangs (a backend without timeouts), the guard still gives up."""
    release = threading.Event()

    class HangingCapture:
        def __init__(self, *args):
            release.wait(30)

        def isOpened(self):
            return False

        def release(self):
            pass

    monkeypatch.setattr(sources.cv2, "VideoCapture", HangingCapture)
    monkeypatch.setattr(sources, "GUARD_GRACE_S", 0.1)
    try:
        with pytest.raises(StreamUnavailable):
            list(StreamSource("http://camera.invalid/x.mjpg", SystemClock(), 0.05, 0.1, open_timeout_s=0.3))
    finally:
        release.set()


def test_redact_url_hides_the_password_only():
    assert redact_url("rtsp://op:s3cret@10.0.0.5:554/live") == "rtsp://op:***@10.0.0.5:554/live"
    assert redact_url("http://10.0.0.5/x.mjpg") == "http://10.0.0.5/x.mjpg"


# -- choosing a source ---------------------------------------------------------------------
def _camera(source_url: str | None, rate_hz: float = 2.0) -> Sensor:
    pose = {"lat_deg": 49.0, "lon_deg": -122.75, "height_m": 10.0, "heading_deg": 0.0, "tilt_deg": 5.0, "hfov_deg": 60.0}
    return Sensor(id="cam-1", kind="fixed_camera", owner_agency="cbsa", sector_id="pac-blaine",
                  detection_rate_hz=rate_hz, pose=pose, source_url=source_url)


def test_open_source_chooses_by_scheme(tmp_path):
    video = write_video(tmp_path / "cam.avi", seconds=1.0)
    _write_images(tmp_path / "imgs", ["a.jpg", "b.jpg"])
    settings, clock = IngestSettings(reconnect_initial_s=0.2, stream_open_timeout_s=3.0), ManualClock(T0)
    for url in ("rtsp://10.0.0.5:554/live", "http://10.0.0.5/x.mjpg", "https://10.0.0.5/x.mjpg"):
        stream = open_source(_camera(url), settings, clock)
        assert isinstance(stream, StreamSource) and stream.open_timeout_s == 3.0 and stream.reconnect_initial_s == 0.2
    assert isinstance(open_source(_camera(video.as_uri()), settings, clock), VideoFileSource)
    assert isinstance(open_source(_camera(None), settings, clock, url=str(video)), VideoFileSource)
    folder = open_source(_camera((tmp_path / "imgs").as_uri(), rate_hz=4.0), settings, clock, start_ts_ns=T0)
    assert isinstance(folder, ImageFolderSource)
    assert [f.capture_ts_ns for f in folder] == [T0, T0 + S // 4]  # one image per detection interval


@pytest.mark.parametrize(("url", "message"), [(None, "no source_url"), ("ftp://10.0.0.5/cam.avi", "cannot pull"),
                                              ("/nonexistent/cam.avi", "does not exist")])
def test_open_source_errors_say_what_is_wrong(url, message):
    with pytest.raises(SourceError, match=message):
        open_source(_camera(None), IngestSettings(), ManualClock(T0), url=url)

"""`run_pull` on the real broker: a pulled video file lands as its sampled frames, in order, once
each, with FrameMeta headers that decode; a local MJPEG server that drops its client is
reconnected to and its frames keep landing; a silent sensor's feed_lost lands on
ibet.sensor-health.v1."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise

import cv2
import numpy as np
import pytest
from video_samples import T0, S, write_video

from ibet import topics
from ibet.clock import ManualClock
from ibet.config import BusSettings, IbetConfig, IngestSettings
from ibet.messages import FrameMeta, SensorHealthEvent, SensorHealthState
from ibet.registry import Registry
from ingest.health import FeedHealth
from ingest.pull import pull_frames, run_pull
from ingest.sampling import RateSampler
from ingest.sources import SourceFrame

pytestmark = pytest.mark.kafka

POSE = {"lat_deg": 49.0, "lon_deg": -122.75, "height_m": 10.0, "heading_deg": 0.0, "tilt_deg": 5.0, "hfov_deg": 60.0}



def registry_with_camera(sensor_id: str, source_url: str, rate_hz: float = 2.0) -> Registry:
    return Registry.model_validate({
        "sectors": [{"id": "pac-blaine", "name": "Blaine", "ibet_region": "Pacific", "timezone": "America/Vancouver"}],
        "partners": [{"id": "cbsa", "name": "CBSA", "country": "CA", "agency_kind": "CBSA", "jurisdiction": "CA"}],
        "sensors": [{"id": sensor_id, "kind": "fixed_camera", "owner_agency": "cbsa", "sector_id": "pac-blaine",
                     "detection_rate_hz": rate_hz, "pose": POSE, "source_url": source_url}],
    })


def test_pulled_video_file_lands_its_sampled_frames_in_order(kafka_bus, kafka_settings, drain, unique, tmp_path):
    kafka_bus.create_topics([topics.FRAMES, topics.SENSOR_HEALTH], partitions=3)
    before = len(drain(topics.FRAMES, at_least=0, timeout_s=5, settle_s=1))
    sensor_id = f"cam-{unique}"
    video = write_video(tmp_path / "cam.avi")  # 60 frames, 10 fps, 6 s
    config = IbetConfig(bus=BusSettings(kind="kafka", kafka=kafka_settings), metrics={"port": 0})

    stats = run_pull(config, registry_with_camera(sensor_id, video.as_uri()), sensor_id, start_ts_ns=T0, progress=False)
    assert (stats.frames_read, stats.frames_produced) == (60, 12)

    records = [r for r in drain(topics.FRAMES, at_least=before + 12) if r.key == sensor_id.encode()]
    assert len(records) == 12  # each sampled frame once
    assert len({r.partition for r in records}) == 1  # keyed by sensor: one partition, so ordered
    records.sort(key=lambda r: r.offset)
    metas = [FrameMeta.from_headers(r.headers) for r in records]
    assert [m.sequence for m in metas] == list(range(12))
    assert [m.capture_ts_ns for m in metas] == [T0 + k * S // 2 for k in range(12)]
    assert {(m.sensor_id, m.width_px, m.height_px, m.content_type) for m in metas} == {(sensor_id, 160, 120, "image/jpeg")}
    grey = [int(cv2.imdecode(np.frombuffer(r.value, np.uint8), cv2.IMREAD_GRAYSCALE).mean()) for r in records]
    assert grey == pytest.approx([5 * k for k in range(12)], abs=3)  # frames 0, 5, 10, ... of the file


@pytest.fixture
def dropping_mjpeg_url():
    """An MJPEG server on 127.0.0.1 that sends 3 frames per connection, then drops the client."""
    jpeg = cv2.imencode(".jpg", np.full((120, 160, 3), 128, np.uint8))[1].tobytes()
    part = b"--f\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n" % (len(jpeg), jpeg)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=f")
            self.end_headers()
            try:
                for _ in range(3):
                    self.wfile.write(part)
                    self.wfile.flush()
                    time.sleep(0.05)
            except (BrokenPipeError, ConnectionResetError):  # the client hung up: fine
                return
            self.close_connection = True

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/live.mjpg"
    httpd.shutdown()
    httpd.server_close()


def test_dropping_mjpeg_stream_is_reconnected_and_its_frames_land(kafka_bus, kafka_settings, drain, unique,
                                                                   dropping_mjpeg_url):
    kafka_bus.create_topics([topics.FRAMES], partitions=3)
    before = len(drain(topics.FRAMES, at_least=0, timeout_s=5, settle_s=1))
    sensor_id = f"cam-{unique}"
    ingest = IngestSettings(reconnect_initial_s=0.05, reconnect_max_s=0.2, stream_open_timeout_s=5.0)
    config = IbetConfig(bus=BusSettings(kind="kafka", kafka=kafka_settings), ingest=ingest, metrics={"port": 0})  # a free port for /metrics
    registry = registry_with_camera(sensor_id, dropping_mjpeg_url, rate_hz=100.0)  # keeps every frame

    stats = run_pull(config, registry, sensor_id, max_frames=7, progress=False)
    assert stats.frames_produced == 7 and stats.reconnects >= 2  # 3 + 3 + 1 frames: at least two drops

    records = sorted((r for r in drain(topics.FRAMES, at_least=before + 7) if r.key == sensor_id.encode()),
                     key=lambda r: r.offset)
    metas = [FrameMeta.from_headers(r.headers) for r in records]
    assert [m.sequence for m in metas] == list(range(7))
    assert all(b.capture_ts_ns > a.capture_ts_ns for a, b in pairwise(metas))  # the ingest clock at read


def test_silent_sensor_raises_feed_lost_on_the_broker(kafka_bus, drain, unique):
    kafka_bus.create_topics([topics.SENSOR_HEALTH], partitions=3)
    sensor = registry_with_camera(f"cam-{unique}", "rtsp://10.0.0.5/live").sensors[0]
    clock = ManualClock(T0)

    def stream_that_goes_silent():  # two frames, then only the waiting ticks of a dead stream
        for n in range(2):
            clock.advance(0.5)
            yield SourceFrame(np.full((60, 80, 3), 90, np.uint8), clock.now_ns(), n)
        for _ in range(12):
            clock.advance(1.0)
            yield None

    class Silent:
        frame_count = None

        def __iter__(self):
            return stream_that_goes_silent()

        def close(self):
            pass

    health = FeedHealth({sensor.id: (sensor.sector_id, 0.5)}, lost_after_intervals=5, lost_min_s=3.0, started_ns=T0)
    producer = kafka_bus.producer("test-pull")
    try:
        stats = pull_frames(sensor, Silent(), producer, RateSampler(2.0), IngestSettings(), clock, health)
    finally:
        producer.close()
    assert stats.health_events == 1
    records = [r for r in drain(topics.SENSOR_HEALTH, at_least=1) if r.key == sensor.id.encode()]
    [event] = [SensorHealthEvent.from_bytes(r.value) for r in records]
    assert event.state == SensorHealthState.FEED_LOST and event.last_frame_ts_ns == T0 + S

"""pull_frames / run_pull: sampled frames onto ibet.frames.v1 (MemoryBus), health events, stopping."""

from __future__ import annotations

import signal

import cv2
import numpy as np
import pytest
from prometheus_client import REGISTRY
from video_samples import T0, S, write_video

from ibet import topics
from ibet.bus import MemoryBus
from ibet.clock import ManualClock
from ibet.config import IbetConfig, IngestSettings
from ibet.exceptions import IbetError, RegistryError
from ibet.messages import FrameMeta, SensorHealthEvent, SensorHealthState
from ibet.registry import Registry, Sensor
from ingest.health import FeedHealth
from ingest.pull import PullError, PullStats, pull_frames, run_pull
from ingest.sampling import RateSampler
from ingest.sources import SourceFrame, VideoFileSource

POSE = {"lat_deg": 49.0, "lon_deg": -122.75, "height_m": 10.0, "heading_deg": 0.0, "tilt_deg": 5.0, "hfov_deg": 60.0}

NO_METRICS = IbetConfig(metrics={"enabled": False})  # run_pull serves /metrics; not from a test process



def camera(sensor_id: str = "cam-1", source_url: str | None = None, rate_hz: float = 2.0) -> Sensor:
    return Sensor(id=sensor_id, kind="fixed_camera", owner_agency="cbsa", sector_id="pac-blaine",
                  detection_rate_hz=rate_hz, pose=POSE, source_url=source_url)


def accepted(sensor_id: str) -> float:
    return REGISTRY.get_sample_value("ibet_ingest_frames_accepted_total", {"sensor": sensor_id, "path": "pull"}) or 0.0


class FakeSource:
    """Plays a script: ("frame", seconds later) yields a frame captured now; ("tick", seconds later)
    yields None, as a stream does while it waits; ``hook(n)`` runs before item n."""

    frame_count = None

    def __init__(self, clock: ManualClock, script, hook=None):
        self.clock, self.script, self.hook, self.closed = clock, script, hook, False

    def __iter__(self):
        image = np.full((60, 80, 3), 90, np.uint8)
        for n, (kind, after_s) in enumerate(self.script):
            if self.hook:
                self.hook(n)
            self.clock.advance(after_s)
            yield SourceFrame(image, self.clock.now_ns(), n) if kind == "frame" else None

    def close(self):
        self.closed = True


def test_pulled_video_lands_as_sampled_frames_with_headers_keyed_by_sensor(tmp_path):
    bus, clock = MemoryBus(), ManualClock(T0 + 3600 * S)
    sensor = camera("cam-pull-1")
    before = accepted(sensor.id)
    source = VideoFileSource(write_video(tmp_path / "cam.avi"), T0, sensor_id=sensor.id)
    stats = pull_frames(sensor, source, bus.producer(), RateSampler(sensor.detection_rate_hz),
                        IngestSettings(resize_max_width_px=80, jpeg_quality=70), clock, progress=True)

    records = bus.records(topics.FRAMES)
    assert len(records) == 12 == stats.frames_produced and stats.frames_read == 60 and stats.stopped_by is None
    assert {r.key for r in records} == {b"cam-pull-1"} and len({r.partition for r in records}) == 1
    metas = [FrameMeta.from_headers(r.headers) for r in records]
    assert [m.sequence for m in metas] == list(range(12))  # per-run sequence from 0
    assert [m.capture_ts_ns for m in metas] == [T0 + k * S // 2 for k in range(12)]  # the file's timeline
    assert {(m.sensor_id, m.width_px, m.height_px, m.ingest_ts_ns) for m in metas} == {("cam-pull-1", 80, 60, T0 + 3600 * S)}
    assert all(cv2.imdecode(np.frombuffer(r.value, np.uint8), cv2.IMREAD_COLOR).shape == (60, 80, 3) for r in records)
    assert stats.bytes_produced == sum(len(r.value) for r in records)
    assert accepted(sensor.id) - before == 12
    assert (stats.first_capture_ts_ns, stats.last_capture_ts_ns) == (T0, T0 + 11 * S // 2)
    assert "12 produced" in str(stats)


def test_silent_stream_raises_feed_lost_then_feed_restored():
    clock, bus = ManualClock(T0), MemoryBus()
    sensor = camera("cam-silent")
    script = [("frame", 0.5)] * 6 + [("tick", 1.0)] * 15 + [("frame", 0.5)] * 3
    health = FeedHealth({sensor.id: (sensor.sector_id, 0.5)}, lost_after_intervals=5, lost_min_s=3.0, started_ns=T0)
    stats = pull_frames(sensor, FakeSource(clock, script), bus.producer(), RateSampler(2.0), IngestSettings(), clock,
                        health)

    records = bus.records(topics.SENSOR_HEALTH)
    events = [SensorHealthEvent.from_bytes(r.value) for r in records]
    assert [e.state for e in events] == [SensorHealthState.FEED_LOST, SensorHealthState.FEED_RESTORED]
    assert {r.key for r in records} == {b"cam-silent"}
    lost, restored = events
    assert lost.last_frame_ts_ns == T0 + 3 * S  # the 6th frame, at 3.0 s
    silent = lost.silent_s  # simulated by the ManualClock, not a timing
    assert silent > 3.0 and lost.event_ts_ns < restored.event_ts_ns == T0 + 18 * S + S // 2
    assert lost.sector_id == "pac-blaine" and lost.expected_interval_s == 0.5
    assert stats.health_events == 2 and stats.frames_produced == len(bus.records(topics.FRAMES)) == 9


def test_a_steady_feed_raises_no_health_event():
    clock, bus = ManualClock(T0), MemoryBus()
    health = FeedHealth({"cam-1": ("pac-blaine", 0.5)}, lost_after_intervals=5, lost_min_s=3.0, started_ns=T0)
    pull_frames(camera(), FakeSource(clock, [("frame", 0.5)] * 40), bus.producer(), RateSampler(2.0),
                IngestSettings(), clock, health)
    assert bus.records(topics.SENSOR_HEALTH) == []


def test_sigint_stops_the_pull_cleanly_with_everything_flushed():
    clock, bus = ManualClock(T0), MemoryBus()
    previous = signal.getsignal(signal.SIGINT)
    # the handler the pull installed, called as the interpreter calls it on SIGINT; a real signal here
    # crashed CI's interpreter once native threads of earlier tests were about (the signal itself reaches
    # `ibet ingest stream`, which stops the same way, in tests/integration/test_ingest_stream.py)
    source = FakeSource(clock, [("frame", 0.5)] * 20,
                        hook=lambda n: n == 4 and signal.getsignal(signal.SIGINT)(signal.SIGINT, None))
    stats = pull_frames(camera(), source, bus.producer(), RateSampler(2.0), IngestSettings(), clock)
    assert stats.stopped_by == "SIGINT"
    assert 4 <= stats.frames_produced == len(bus.records(topics.FRAMES)) < 20
    assert source.closed
    assert signal.getsignal(signal.SIGINT) is previous  # the caller's handler is back


def test_max_frames_stops_after_that_many_produced():
    clock, bus = ManualClock(T0), MemoryBus()
    stats = pull_frames(camera(), FakeSource(clock, [("frame", 0.25)] * 40), bus.producer(), RateSampler(2.0),
                        IngestSettings(), clock, max_frames=5)
    assert stats.stopped_by == "max_frames" and len(bus.records(topics.FRAMES)) == 5


def test_a_frame_too_large_for_the_bus_is_rejected_and_the_pull_goes_on(tmp_path):
    clock = ManualClock(T0)
    bus = MemoryBus(max_record_bytes=2_000)
    big = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)  # noise: a large JPEG
    small = np.full((24, 32, 3), 50, np.uint8)

    class Mixed(FakeSource):
        def __iter__(self):
            for n, image in enumerate([small, big, small]):
                yield SourceFrame(image, T0 + n * S, n)

    stats = pull_frames(camera("cam-big"), Mixed(clock, []), bus.producer(), RateSampler(1.0), IngestSettings(), clock)
    metas = [FrameMeta.from_headers(r.headers) for r in bus.records(topics.FRAMES)]
    assert stats.frames_rejected == 1 and [m.sequence for m in metas] == [0, 1]
    assert [m.capture_ts_ns for m in metas] == [T0, T0 + 2 * S]
    rejected = REGISTRY.get_sample_value("ibet_ingest_frames_rejected_total",
                                         {"sensor": "cam-big", "path": "pull", "reason": "too_large"})
    assert rejected == 1


# -- run_pull ------------------------------------------------------------------------------
def registry_with(*sensors: Sensor) -> Registry:
    return Registry.model_validate({
        "sectors": [{"id": "pac-blaine", "name": "Blaine", "ibet_region": "Pacific", "timezone": "America/Vancouver"}],
        "partners": [{"id": "cbsa", "name": "CBSA", "country": "CA", "agency_kind": "CBSA", "jurisdiction": "CA"}],
        "sensors": [s.model_dump() for s in sensors],
    })


def drone() -> Sensor:
    return Sensor(id="drone-1", kind="drone", owner_agency="cbsa", sector_id="pac-blaine")


def test_run_pull_reads_the_sensors_source_url(tmp_path):
    video = write_video(tmp_path / "cam.avi", seconds=3.0)
    registry = registry_with(camera("cam-1", video.as_uri()), drone())
    stats = run_pull(NO_METRICS, registry, "cam-1", progress=False)
    assert isinstance(stats, PullStats) and stats.frames_read == 30 and stats.frames_produced == 6


def test_run_pull_takes_an_override_a_start_time_and_max_frames(tmp_path):
    video = write_video(tmp_path / "other.avi", seconds=3.0)
    stats = run_pull(NO_METRICS, registry_with(camera("cam-1")), "cam-1", str(video), T0, 4, progress=False)
    assert stats.frames_produced == 4 and stats.first_capture_ts_ns == T0 and stats.stopped_by == "max_frames"


@pytest.mark.parametrize(
    ("sensor_id", "args", "error", "message"),
    [
        ("cam-9", (), RegistryError, r"unknown sensor 'cam-9' \(fixed cameras in the registry: cam-1\)"),
        ("drone-1", (), PullError, "drone-1' is a drone: drones push"),
        ("cam-1", (), IbetError, "no source_url"),
        ("cam-1", ("/nonexistent/cam.avi",), IbetError, "does not exist"),
        ("cam-1", ("/nonexistent/cam.avi", 0), PullError, "start time"),
    ],
)
def test_run_pull_refuses_with_a_clear_error(sensor_id, args, error, message):
    with pytest.raises(error, match=message):
        run_pull(NO_METRICS, registry_with(camera("cam-1"), drone()), sensor_id, *args, progress=False)

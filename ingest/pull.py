"""``ibet ingest pull``: one fixed camera's frames, sampled to its detection rate, onto ``ibet.frames.v1``.

Each kept frame is re-encoded per policy and produced as one record: key = sensor id, value =
JPEG, :class:`~ibet.messages.FrameMeta` in headers. Sequences of pulled frames start at 0 on
every run (a camera has no frame counter OpenCV can read), so consumers order a sensor's frames
by ``capture_ts_ns``; the sequence only orders frames within one run. Feed health is watched as
frames arrive and while a stream waits to reconnect; feed_lost / feed_restored go to
``ibet.sensor-health.v1``.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ibet import topics
from ibet.bus import OutRecord, Producer, open_bus
from ibet.bus.exceptions import RecordTooLargeError
from ibet.clock import Clock, SystemClock
from ibet.config import IbetConfig, IngestSettings
from ibet.exceptions import IbetError, RegistryError
from ibet.messages import FrameMeta, SensorHealthEvent, SensorHealthState
from ibet.metrics import serve_metrics
from ibet.registry import Registry, Sensor
from ingest.health import FeedHealth
from ingest.metrics import BYTES_ACCEPTED, FRAMES_ACCEPTED, FRAMES_RECEIVED, FRAMES_REJECTED, PRODUCE_SECONDS
from ingest.sampling import RateSampler, reencode
from ingest.sources import FrameSource, SourceFrame, open_source

log = logging.getLogger(__name__)

PATH = "pull"  # the metrics' path label
_NS = 1_000_000_000


class PullError(IbetError):
    """A pull cannot start: the sensor is not a pulled camera, or an option is out of range."""


@dataclass
class PullStats:
    """What one pull did; ``stopped_by`` is None at the end of the source, else why it stopped early."""

    sensor_id: str
    frames_read: int = 0
    frames_produced: int = 0
    frames_rejected: int = 0
    bytes_produced: int = 0
    health_events: int = 0
    reconnects: int = 0
    first_capture_ts_ns: int | None = None
    last_capture_ts_ns: int | None = None
    stopped_by: str | None = None

    def __str__(self) -> str:
        end = f"stopped by {self.stopped_by}" if self.stopped_by else "end of source"
        return (f"{self.sensor_id}: {self.frames_read} frames read, {self.frames_produced} produced to "
                f"{topics.FRAMES} ({self.bytes_produced / 1e6:.2f} MB), {self.frames_rejected} rejected, "
                f"{self.reconnects} reconnects, {self.health_events} health events; {end}")


class FrameBatch:
    """Frames sent since the last flush, made durable (and counted) together by :meth:`flush`."""

    def __init__(self, producer: Producer, sensor_id: str, timeout_s: float):
        self.producer, self.sensor_id, self.timeout_s = producer, sensor_id, timeout_s
        self.sent: list[tuple[float, int]] = []  # (monotonic time handed to the bus, JPEG bytes)

    def send(self, record: OutRecord, jpeg_bytes: int) -> None:
        self.producer.send(record)
        self.sent.append((time.monotonic(), jpeg_bytes))

    def flush(self) -> None:
        """Block until everything sent is acknowledged (DeliveryError if not), then count it."""
        self.producer.flush(self.timeout_s)
        acked = time.monotonic()
        for sent_at, _ in self.sent:
            PRODUCE_SECONDS.labels(PATH).observe(acked - sent_at)
        FRAMES_ACCEPTED.labels(self.sensor_id, PATH).inc(len(self.sent))
        BYTES_ACCEPTED.labels(self.sensor_id, PATH).inc(sum(size for _, size in self.sent))
        self.sent.clear()


def pull_frames(sensor: Sensor, source: FrameSource, producer: Producer, sampler: RateSampler,
                settings: IngestSettings, clock: Clock, health: FeedHealth | None = None, progress: bool = False,
                *, max_frames: int | None = None, flush_every_frames: int = 50, flush_every_s: float = 1.0,
                flush_timeout_s: float = 60.0) -> PullStats:
    """Produce ``source``'s frames kept by ``sampler`` to ``ibet.frames.v1``; return what was done.

    Flushes every ``flush_every_frames`` frames or ``flush_every_s`` of ``clock`` time, after each
    health event, and at the end (also on an error or a signal). Stops at the end of the source,
    after ``max_frames`` produced frames, or on SIGINT/SIGTERM (a second signal exits at once).
    ``health`` (if given) sees every produced frame and is checked after every source item.
    """
    stats = PullStats(sensor.id)
    batch = FrameBatch(producer, sensor.id, flush_timeout_s)
    key = sensor.id.encode()
    last_flush_ns = clock.now_ns()
    items = iter(source)
    try:
        with stop_on_signals() as stop_reason, progress_view(source.frame_count, sensor.id, progress) as show:
            for item in items:
                if item is not None:
                    stats.frames_read += 1
                    FRAMES_RECEIVED.labels(sensor.id, PATH).inc()
                    if sampler.keep(item.capture_ts_ns) and _produce_frame(item, key, sensor, batch, settings,
                                                                            clock, stats):
                        if health is not None:
                            publish_health(health.frame_seen(sensor.id, clock.now_ns(), item.capture_ts_ns), batch, stats)
                    show(item.source_index + 1, stats)
                now_ns = clock.now_ns()
                if health is not None:
                    publish_health(health.check(now_ns), batch, stats)
                if len(batch.sent) >= flush_every_frames or (batch.sent and now_ns - last_flush_ns >= flush_every_s * _NS):
                    batch.flush()
                    last_flush_ns = now_ns
                if stop_reason():
                    stats.stopped_by = stop_reason()
                    break
                if max_frames is not None and stats.frames_produced >= max_frames:
                    stats.stopped_by = "max_frames"
                    break
    finally:
        close_items = getattr(items, "close", None)
        if close_items is not None:  # a generator: runs its cleanup (releases the capture) now
            close_items()
        source.close()
        batch.flush()
        stats.reconnects = getattr(source, "reconnects", 0)
    return stats


def _produce_frame(frame: SourceFrame, key: bytes, sensor: Sensor, batch: FrameBatch, settings: IngestSettings,
                   clock: Clock, stats: PullStats) -> bool:
    """Re-encode and send one kept frame; a frame that cannot be encoded or is too large is rejected."""
    try:
        jpeg, width_px, height_px = reencode(frame.image_bgr, settings.resize_max_width_px, settings.jpeg_quality)
        meta = FrameMeta(sensor_id=sensor.id, sequence=stats.frames_produced, capture_ts_ns=frame.capture_ts_ns,
                         ingest_ts_ns=clock.now_ns(), width_px=width_px, height_px=height_px)
        batch.send(OutRecord(topics.FRAMES, key, jpeg, tuple(meta.to_headers())), len(jpeg))
    except (ValueError, RecordTooLargeError) as exc:  # pydantic's ValidationError is a ValueError
        reason = "too_large" if isinstance(exc, RecordTooLargeError) else "encode_failed"
        log.warning("%s: frame %d rejected (%s): %s", sensor.id, frame.source_index, reason, exc)
        FRAMES_REJECTED.labels(sensor.id, PATH, reason).inc()
        stats.frames_rejected += 1
        return False
    stats.frames_produced += 1
    stats.bytes_produced += len(jpeg)
    stats.first_capture_ts_ns = stats.first_capture_ts_ns or frame.capture_ts_ns
    stats.last_capture_ts_ns = frame.capture_ts_ns
    return True


def publish_health(events: list[SensorHealthEvent], batch: FrameBatch, stats: PullStats) -> None:
    """Produce health events keyed by sensor and flush at once: the duty desk must not wait for them."""
    for event in events:
        level = logging.WARNING if event.state == SensorHealthState.FEED_LOST else logging.INFO
        log.log(level, "%s: %s after %.1f s without frames", event.sensor_id, event.state.value, event.silent_s)
        batch.producer.send(OutRecord(topics.SENSOR_HEALTH, event.sensor_id.encode(), event.to_bytes()))
        stats.health_events += 1
    if events:
        batch.flush()


@contextmanager
def stop_on_signals() -> Iterator[Callable[[], str | None]]:
    """While inside, SIGINT/SIGTERM ask the loop to stop (yields: the signal's name, or None)."""
    received: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None  # signals reach only the main thread; an embedding caller stops us itself
        return

    def on_signal(signum: int, _frame: object) -> None:
        if received:  # a second signal: the operator does not want to wait for the flush
            raise SystemExit(128 + signum)
        received.append(signal.Signals(signum).name)
        log.info("%s received: finishing the frame in hand and flushing", received[0])

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: received[0] if received else None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def progress_view(total: int | None, sensor_id: str, enabled: bool) -> Iterator[Callable[[int, PullStats], None]]:
    """A rich progress bar on stderr when the total is known (files), else a spinner and counters."""
    if not enabled:
        yield lambda _position, _stats: None
        return
    columns = [SpinnerColumn(), TextColumn("[bold]{task.description}")]
    if total:
        columns += [BarColumn(), MofNCompleteColumn()]
    else:
        columns += [TextColumn("{task.completed} frames read")]
    columns += [TextColumn("{task.fields[produced]} produced"), TimeElapsedColumn()]
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(sensor_id, total=total, produced=0)
        yield lambda position, stats: bar.update(task, completed=position, produced=stats.frames_produced)


def run_pull(config: IbetConfig, registry: Registry, sensor_id: str, source_override: str | None = None,
             start_ts_ns: int | None = None, max_frames: int | None = None, *, progress: bool = True,
             clock: Clock | None = None) -> PullStats:
    """Pull the fixed camera ``sensor_id`` (its ``source_url``, or ``source_override``) onto the bus.

    ``start_ts_ns``: capture time (ns since the Unix epoch) of a file's first frame, or of an
    image folder's first image when its names hold no timestamps. Raises RegistryError for an
    unknown sensor, PullError for a drone or a bad option, SourceError/StreamUnavailable when
    the source cannot be opened.
    """
    try:
        sensor = registry.sensor(sensor_id)
    except RegistryError:
        cameras = ", ".join(s.id for s in registry.sensors if s.kind == "fixed_camera") or "none"
        raise RegistryError(f"unknown sensor '{sensor_id}' (fixed cameras in the registry: {cameras})") from None
    if sensor.kind != "fixed_camera":
        raise PullError(f"sensor '{sensor_id}' is a {sensor.kind}: drones push their frames (ibet ingest serve) "
                        "or send a video stream (ibet ingest stream); only fixed cameras are pulled")
    if start_ts_ns is not None and start_ts_ns <= 0:
        raise PullError(f"start time must be ns since the Unix epoch (> 0), got {start_ts_ns}")
    if max_frames is not None and max_frames <= 0:
        raise PullError(f"max frames must be > 0, got {max_frames}")
    clock = clock or SystemClock()
    settings = config.ingest
    source = open_source(sensor, settings, clock, url=source_override, start_ts_ns=start_ts_ns)
    if config.bus.kind == "memory":
        log.warning("bus.kind is memory: pulled frames stay in this process (set bus.kind: kafka to feed the pipeline)")
    serve_metrics(config.metrics)  # the pull's counters, for Prometheus beside the stages'
    bus = open_bus(config.bus)
    producer = bus.producer(f"ibet-ingest-pull-{sensor.id}")
    health = FeedHealth({sensor.id: (sensor.sector_id, 1.0 / sensor.detection_rate_hz)},
                        settings.feed_lost_after_intervals, settings.feed_lost_min_s, started_ns=clock.now_ns())
    try:
        return pull_frames(sensor, source, producer, RateSampler(sensor.detection_rate_hz), settings, clock, health,
                           progress, max_frames=max_frames, flush_timeout_s=config.runner.flush_timeout_s)
    finally:
        source.close()
        producer.close()
        bus.close()

"""``ibet ingest stream``: a drone's or camera's video stream (STANAG 4609 with KLV, or plain video)
decoded with PyAV, sampled to the sensor's detection rate, onto ``ibet.frames.v1``.

The loop reads the source (:mod:`ingest.stream_demux`), pairs pictures with their KLV telemetry
(:mod:`ingest.klv_pairing`, drones only), keeps those due on the sensor's rate grid
(:class:`~ingest.sampling.RateSampler` on capture time), re-encodes them to JPEG and produces them
like ``ibet ingest pull`` does. A live source (UDP, RTSP, RTMP, SRT) that drops or falls silent
for ``ingest.stream_read_timeout_s`` is reopened with backoff; a file ends at its end.

Capture time is the stream's: for a drone, KLV tag 2 mapped onto the video's PTS; for a fixed
camera without KLV, the ingest clock at the first picture plus the PTS since (the camera's own
timeline, not one clock reading per frame). Live capture times are checked against the ingest
clock (``ingest.max_capture_ahead_s`` / ``max_capture_age_s``); a recorded file keeps its own.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field

import av.error

from ibet import topics
from ibet.bus import OutRecord, Producer, open_bus
from ibet.bus.exceptions import RecordTooLargeError
from ibet.clock import Clock, SystemClock
from ibet.config import IbetConfig, IngestSettings
from ibet.exceptions import IbetError, RegistryError
from ibet.messages import FrameMeta, SensorHealthState, Telemetry
from ibet.metrics import serve_metrics
from ibet.registry import Registry, Sensor
from ingest.capture_time import CaptureTimeSkewError, check_skew
from ingest.health import FeedHealth
from ingest.klv_input import read_unit
from ingest.klv_pairing import KlvPairer, Paired, Refused
from ingest.metrics import (
    FRAMES_RECEIVED,
    FRAMES_REJECTED,
    STREAM_BYTES,
    STREAM_FRAMES_DECODED,
    STREAM_KLV_PACKETS,
    STREAM_PAIRING_FAILURES,
    STREAM_RECONNECTS,
)
from ingest.pull import FrameBatch, PullStats, progress_view, publish_health, stop_on_signals
from ingest.sampling import RateSampler, reencode
from ingest.sources import backoff_delay_s
from ingest.stream_demux import KlvUnit, Picture, StreamOpenError, demux, duration_s, is_live, open_input, redact
from ingest.udp_input import UdpReceiver

log = logging.getLogger(__name__)

PATH = "stream"  # the metrics' path label
#: The data stream number a KLV side stream (``--klv-source``) gets: after any of the video's own.
SIDE_STREAM_INDEX = 1000
MQTT_STREAM_INDEX = 1001  # and JSON telemetry over MQTT (``--telemetry-source``)
_NS = 1_000_000_000


class StreamError(IbetError):
    """A stream cannot start: unknown sensor, bad option, or a file that cannot be read."""


@dataclass
class StreamStats(PullStats):
    """What one stream run did, beyond :class:`PullStats`: decoding, KLV and pairing counts."""

    frames_decoded: int = 0
    klv_packets: dict[str, int] = field(default_factory=dict)  # outcome -> count
    refused: dict[str, int] = field(default_factory=dict)  # decoded pictures without telemetry/time, by reason
    paired: dict[str, int] = field(default_factory=dict)  # exact / interpolated / held
    dropped: dict[str, int] = field(default_factory=dict)  # unreadable video, no PTS
    errors: list[str] = field(default_factory=list)  # why connections ended early (bounded)
    udp: dict[str, int] = field(default_factory=dict)  # datagrams, bytes, overruns of a UDP source

    def count(self, table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1

    def __str__(self) -> str:
        def show(table: dict[str, int]) -> str:
            return ", ".join(f"{k} {v}" for k, v in sorted(table.items()) if v) or "none"

        end = f"stopped by {self.stopped_by}" if self.stopped_by else "end of source"
        return (f"{self.sensor_id}: {self.frames_decoded} pictures decoded, {self.frames_produced} produced to "
                f"{topics.FRAMES} ({self.bytes_produced / 1e6:.2f} MB), {self.frames_rejected} rejected; "
                f"KLV packets: {show(self.klv_packets)}; paired: {show(self.paired)}; refused: {show(self.refused)}; "
                f"dropped: {show(self.dropped)}; {self.reconnects} reconnects, {self.health_events} health events; "
                f"{end}")


def _worth_saying(count: int) -> bool:
    """Log the 1st, 100th and every 1000th of a kind: a stream at 30 fps must not flood the log."""
    return count in (1, 100) or count % 1000 == 0


class _Timeline:
    """A fixed camera without KLV: capture time = ingest clock at the first picture + PTS since then."""

    def __init__(self, clock: Clock):
        self.clock = clock
        self.anchor: tuple[float, int] | None = None

    def capture_ns(self, pts_s: float) -> int:
        if self.anchor is None or not -1.0 <= pts_s - self.anchor[0] <= 24 * 3600:
            self.anchor = (pts_s, self.clock.now_ns())
        return self.anchor[1] + round((pts_s - self.anchor[0]) * _NS)


class StreamIngest:
    """One sensor's stream into the bus; :meth:`run` returns the stats at the end or on a stop."""

    def __init__(self, sensor: Sensor, url: str, producer: Producer, settings: IngestSettings, clock: Clock,
                 health: FeedHealth | None = None, *, progress: bool = False, max_frames: int | None = None,
                 flush_every_frames: int = 50, flush_every_s: float = 1.0, flush_timeout_s: float = 60.0,
                 max_reconnects: int | None = None, rng: random.Random | None = None, klv_source: str | None = None,
                 telemetry_source: str | None = None):
        self.sensor, self.url, self.settings, self.clock, self.health = sensor, url, settings, clock, health
        self.live = is_live(url)
        self.progress, self.max_frames, self.max_reconnects = progress, max_frames, max_reconnects
        self.flush_every_frames, self.flush_every_s = flush_every_frames, flush_every_s
        self.batch = FrameBatch(producer, sensor.id, flush_timeout_s)
        self.stats = StreamStats(sensor.id)
        self.sampler = RateSampler(sensor.detection_rate_hz)
        self._last_capture_ns: int | None = None
        self.key = sensor.id.encode()
        self.rng = rng or random.Random()
        self.needs_telemetry = sensor.kind == "drone"
        self.pairer = KlvPairer(match_tolerance_s=settings.klv_match_tolerance_s,
                                max_interpolation_gap_s=settings.klv_max_interpolation_gap_s,
                                max_telemetry_age_s=settings.klv_max_age_s,
                                max_clock_jump_s=settings.klv_max_clock_jump_s)
        self.timeline = _Timeline(clock)
        self._last_flush_ns = clock.now_ns()
        self._stop: str | None = None
        self._refused_at_last_frame = 0
        self.klv_source, self.telemetry_source = klv_source, telemetry_source
        self._side: UdpReceiver | None = None
        self._mqtt = None

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> StreamStats:
        attempt = 0
        connected_once = False
        receiver = None
        try:
            if self.url.lower().startswith("udp://"):
                receiver = UdpReceiver(self.url)
            if self.klv_source is not None:
                if not self.klv_source.lower().startswith("udp://"):
                    raise StreamError(f"a KLV side stream is read from udp://host:port, not {redact(self.klv_source)}")
                self._side = UdpReceiver(self.klv_source)
            if self.telemetry_source is not None:
                from ingest.mqtt_telemetry import MqttTelemetry

                self._mqtt = MqttTelemetry(self.telemetry_source, f"ibet-ingest-{self.sensor.id}")
        except IbetError as exc:  # a port in use, a bad side-stream or telemetry URL
            for opened in (receiver, self._side, self._mqtt):
                if opened is not None:
                    opened.close()
            if isinstance(exc, StreamError):
                raise
            raise StreamError(str(exc)) from None
        try:
            with stop_on_signals() as stop_reason:
                self._stop_reason = stop_reason
                while self._stop is None:
                    try:
                        reader = None if receiver is None else receiver.reader(
                            self.settings.stream_read_timeout_s, self._waiting)
                        container = open_input(self.url, self.settings.stream_open_timeout_s,
                                               self.settings.stream_read_timeout_s, reader,
                                               rtsp_transport=self.settings.rtsp_transport)
                    except StreamOpenError as exc:
                        if not self.live:
                            raise StreamError(str(exc)) from None
                        self._note_error(str(exc))
                        # said once, then every 30th attempt: a drone not yet flying is not news every 2 s
                        log.log(logging.WARNING if attempt % 30 == 0 else logging.DEBUG, "%s: %s (attempt %d)",
                                self.sensor.id, exc, attempt + 1)
                    else:
                        connected_once = True
                        if attempt:
                            log.info("%s: %s reopened after %d attempt(s)", self.sensor.id, redact(self.url), attempt)
                        attempt = 0
                        self._read(container)
                        self._drain_side()
                        self._settle(self.pairer.restart())
                        if reader is not None and reader.idle and self._stop is None:
                            text = f"no data for {self.settings.stream_read_timeout_s:g} s"
                            self._note_error(text)
                            log.warning("%s: %s: %s; reopening", self.sensor.id, redact(self.url), text)
                    if not self.live or self._stop is not None:
                        break
                    if self.max_reconnects is not None and self.stats.reconnects >= self.max_reconnects:
                        self._stop = "max_reconnects"
                        break
                    if receiver is None:  # a UDP receiver keeps its socket: nothing is lost, no need to back off
                        self._wait(backoff_delay_s(attempt, self.settings.reconnect_initial_s,
                                                   self.settings.reconnect_max_s, self.rng.random()))
                    attempt += 1
                    self.stats.reconnects += 1
                    STREAM_RECONNECTS.labels(self.sensor.id).inc()
        finally:
            if receiver is not None:
                self.stats.udp = {"datagrams": receiver.datagrams, "bytes": receiver.bytes, "overruns": receiver.overruns}
                receiver.close()
            if self._side is not None:
                self._side.close()
            if self._mqtt is not None:
                self._mqtt.close()
            self.batch.flush()
        self.stats.stopped_by = self._stop if self._stop not in (None, "end") else None
        if not connected_once and self.live and self._stop == "max_reconnects":
            raise StreamError(f"{redact(self.url)} could not be opened: {self.stats.errors[-1] if self.stats.errors else ''}")
        return self.stats

    def _read(self, container) -> None:
        total = None
        video = container.streams.video[0]
        if not self.live and video.frames:
            total = video.frames
        elif not self.live and (seconds := duration_s(container)) and video.average_rate:
            total = round(seconds * float(video.average_rate))
        try:
            with progress_view(total, self.sensor.id, self.progress) as show:
                for item in demux(container, self._count_bytes):
                    if isinstance(item, Picture):
                        self._picture(item)
                        show(self.stats.frames_decoded, self.stats)
                    elif isinstance(item, KlvUnit):
                        self._klv(item)
                    else:
                        self.stats.count(self.stats.dropped, item.reason)
                        STREAM_PAIRING_FAILURES.labels(self.sensor.id, item.reason).inc()
                    self._settle(self.pairer.ready() if self.needs_telemetry else [])
                    self._tick()
                    if self._stop is not None:
                        return
        except av.error.ExitError:  # PyAV's interrupt: nothing read for the read timeout
            text = f"no data for {self.settings.stream_read_timeout_s:g} s"
            self._note_error(text)
            log.warning("%s: %s: %s; reopening", self.sensor.id, redact(self.url), text)
        except (av.error.FFmpegError, OSError) as exc:  # a dropped connection, a broken or truncated file
            self._note_error(f"{type(exc).__name__}: {exc}")
            log.warning("%s: %s ended: %s", self.sensor.id, redact(self.url), exc)
        finally:
            container.close()

    def _count_bytes(self, size: int) -> None:
        STREAM_BYTES.labels(self.sensor.id).inc(size)

    def _drain_side(self) -> None:
        """KLV datagrams of the side stream and JSON telemetry from MQTT, each an asynchronous data stream."""
        if self._side is not None:
            for datagram in self._side.drain():
                self._klv(KlvUnit(SIDE_STREAM_INDEX, datagram, None))
        if self._mqtt is not None:
            for telemetry, outcome, detail in self._mqtt.drain():
                if telemetry is not None and (dropped := self.pairer.klv(MQTT_STREAM_INDEX, telemetry, None)):
                    outcome = dropped.removeprefix("klv_")
                self.stats.count(self.stats.klv_packets, outcome)
                if outcome != "json" and _worth_saying(self.stats.klv_packets[outcome]):
                    log.warning("%s: MQTT telemetry refused (%s) %s [%d so far]", self.sensor.id, outcome, detail,
                                self.stats.klv_packets[outcome])
                STREAM_KLV_PACKETS.labels(self.sensor.id, outcome).inc()

    def _picture(self, item: Picture) -> None:
        self._drain_side()
        self.stats.frames_decoded += 1
        self.stats.frames_read += 1
        STREAM_FRAMES_DECODED.labels(self.sensor.id).inc()
        if self.needs_telemetry:
            self.pairer.frame(item, item.pts_s)
        else:
            self._sample(item, self.timeline.capture_ns(item.pts_s), None)

    def _klv(self, unit: KlvUnit) -> None:
        if not self.needs_telemetry:
            return
        for reading in read_unit(unit.data, lenient_checksum=self.settings.klv_lenient_checksum):
            outcome, detail = reading.outcome, reading.detail
            if reading.telemetry is not None:
                dropped = self.pairer.klv(unit.stream_index, reading.telemetry, unit.pts_s)
                if dropped is not None:
                    outcome, detail = dropped.removeprefix("klv_"), f"tag 2 = {reading.telemetry.precision_ts_us}"
            self.stats.count(self.stats.klv_packets, outcome)
            if outcome not in ("st0601", "eg0104") and _worth_saying(self.stats.klv_packets[outcome]):
                log.warning("%s: KLV packet on data stream %d %s (%s): %s [%d so far]", self.sensor.id,
                            unit.stream_index, "used despite its checksum" if outcome == "st0601_lenient" else
                            "refused", outcome, detail, self.stats.klv_packets[outcome])
            STREAM_KLV_PACKETS.labels(self.sensor.id, outcome).inc()

    def _settle(self, results: list[Paired | Refused]) -> None:
        for result in results:
            picture: Picture = result.frame  # type: ignore[assignment]
            if isinstance(result, Refused):
                self.stats.count(self.stats.refused, result.reason)
                STREAM_PAIRING_FAILURES.labels(self.sensor.id, result.reason).inc()
                if _worth_saying(self.stats.refused[result.reason]):
                    log.warning("%s: picture %d refused (%s): %s [%d so far]", self.sensor.id, picture.index,
                                result.reason, result.detail, self.stats.refused[result.reason])
                continue
            self.stats.count(self.stats.paired, result.basis)
            self._sample(picture, result.capture_ts_ns, result.telemetry)

    def _sample(self, picture: Picture, capture_ns: int, telemetry: Telemetry | None) -> None:
        self._adapt_tolerance(capture_ns)
        if not self.sampler.keep(capture_ns):
            return
        FRAMES_RECEIVED.labels(self.sensor.id, PATH).inc()
        if self.live:
            try:
                check_skew(capture_ns, self.clock.now_ns(), self.settings.max_capture_ahead_s,
                           self.settings.max_capture_age_s)
            except CaptureTimeSkewError as exc:
                self._reject(picture, exc.reason, str(exc))
                return
        try:
            image = picture.frame.to_ndarray(format="bgr24")
            jpeg, width_px, height_px = reencode(image, self.settings.resize_max_width_px, self.settings.jpeg_quality)
            meta = FrameMeta(sensor_id=self.sensor.id, sequence=self.stats.frames_produced, capture_ts_ns=capture_ns,
                             ingest_ts_ns=self.clock.now_ns(), width_px=width_px, height_px=height_px,
                             telemetry=telemetry)
            self.batch.send(OutRecord(topics.FRAMES, self.key, jpeg, tuple(meta.to_headers())), len(jpeg))
        except (ValueError, RecordTooLargeError) as exc:
            self._reject(picture, "too_large" if isinstance(exc, RecordTooLargeError) else "encode_failed", str(exc))
            return
        self.stats.frames_produced += 1
        self.stats.bytes_produced += len(jpeg)
        self.stats.first_capture_ts_ns = self.stats.first_capture_ts_ns or capture_ns
        self.stats.last_capture_ts_ns = capture_ns
        self._refused_at_last_frame = sum(self.stats.refused.values())
        if self.health is not None:
            publish_health(self.health.frame_seen(self.sensor.id, self.clock.now_ns(), capture_ns), self.batch,
                           self.stats)
        if self.max_frames is not None and self.stats.frames_produced >= self.max_frames:
            self._stop = "max_frames"

    def _adapt_tolerance(self, capture_ns: int) -> None:
        """Sampling tolerance: a quarter of the sensor's interval, but under half the source's own frame
        interval. A stream sent at the sensor's rate has a few ms of capture jitter and each frame must
        be kept; a faster stream must still be thinned to the grid, not to its earliest frames."""
        if self._last_capture_ns is not None and capture_ns > self._last_capture_ns:
            source_interval_ns = capture_ns - self._last_capture_ns
            self.sampler.tolerance_ns = max(1_000_000, min(self.sampler.interval_ns // 4, source_interval_ns // 2 - 1))
        self._last_capture_ns = capture_ns

    def _reject(self, picture: Picture, reason: str, detail: str) -> None:
        log.warning("%s: picture %d rejected (%s): %s", self.sensor.id, picture.index, reason, detail)
        FRAMES_REJECTED.labels(self.sensor.id, PATH, reason).inc()
        self.stats.frames_rejected += 1

    def _tick(self) -> None:
        """Health checks, the flush policy and the stop signals, after every item read or waited."""
        now_ns = self.clock.now_ns()
        if self.health is not None:
            events = self.health.check(now_ns)
            refused_since = sum(self.stats.refused.values()) - self._refused_at_last_frame
            if events and refused_since:  # pictures arrive, but none is usable: say why
                causes = ", ".join(f"{k} {v}" for k, v in sorted(self.stats.refused.items()) if v)
                reason = f"video arrives ({refused_since} pictures) without usable KLV telemetry ({causes})"
                events = [e.model_copy(update={"reason": reason}) if e.state == SensorHealthState.FEED_LOST else e
                          for e in events]
            publish_health(events, self.batch, self.stats)
        if len(self.batch.sent) >= self.flush_every_frames or (
                self.batch.sent and now_ns - self._last_flush_ns >= self.flush_every_s * _NS):
            self.batch.flush()
            self._last_flush_ns = now_ns
        if self._stop is None and (reason := self._stop_reason()):
            self._stop = reason

    def _waiting(self) -> bool:
        """Called while a UDP reader waits for data: health checks and signals go on; True: stop."""
        self._drain_side()
        self._tick()
        return self._stop is not None

    def _wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while self._stop is None and (left := deadline - time.monotonic()) > 0:
            self.clock.sleep(min(left, 0.2))
            self._tick()

    def _note_error(self, text: str) -> None:
        self.stats.errors = [*self.stats.errors[-9:], text]


def run_stream(config: IbetConfig, registry: Registry, sensor_id: str, source: str | None = None,
               max_frames: int | None = None, *, progress: bool = True, clock: Clock | None = None,
               max_reconnects: int | None = None, klv_source: str | None = None,
               telemetry_source: str | None = None) -> StreamStats:
    """Stream ``sensor_id``'s video (``source``, else its registry ``source_url``) onto the bus.

    Raises RegistryError for an unknown sensor, StreamError when a file cannot be read or an
    option is out of range. A live source that cannot be opened is retried (forever unless
    ``max_reconnects``), with feed_lost on ``ibet.sensor-health.v1`` while it stays dark.
    """
    try:
        sensor = registry.sensor(sensor_id)
    except RegistryError:
        known = ", ".join(s.id for s in registry.sensors) or "none"
        raise RegistryError(f"unknown sensor '{sensor_id}' (sensors in the registry: {known})") from None
    url = source or sensor.source_url
    if not url:
        raise StreamError(f"sensor '{sensor_id}' has no source_url; pass --source (udp://, srt://, rtsp://, rtmp://, "
                          "or a .ts/.mp4 file)")
    if max_frames is not None and max_frames <= 0:
        raise StreamError(f"max frames must be > 0, got {max_frames}")
    clock = clock or SystemClock()
    settings = config.ingest
    if config.bus.kind == "memory":
        log.warning("bus.kind is memory: streamed frames stay in this process (set bus.kind: kafka to feed the pipeline)")
    serve_metrics(config.metrics)  # the stream's counters, for Prometheus beside the stages'
    with _relayed(url, sensor.id) as local_url:
        bus = open_bus(config.bus)
        producer = bus.producer(f"ibet-ingest-stream-{sensor.id}")
        health = FeedHealth({sensor.id: (sensor.sector_id, 1.0 / sensor.detection_rate_hz)},
                            settings.feed_lost_after_intervals, settings.feed_lost_min_s, started_ns=clock.now_ns())
        try:
            return StreamIngest(sensor, local_url, producer, settings, clock, health, progress=progress,
                                max_frames=max_frames, flush_timeout_s=config.runner.flush_timeout_s,
                                max_reconnects=max_reconnects, klv_source=klv_source,
                                telemetry_source=telemetry_source).run()
        finally:
            producer.close()
            bus.close()


def _relayed(url: str, sensor_id: str):
    """SRT is relayed to a local UDP port (PyAV's FFmpeg has no SRT); other URLs are used as they are."""
    from contextlib import nullcontext

    if url.lower().startswith("srt://"):
        from ibet.srt_relay import srt_relay

        return srt_relay(url, sensor_id)
    return nullcontext(url)

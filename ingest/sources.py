"""Pulled frame sources through OpenCV: video files, image folders, RTSP and HTTP(S) MJPEG streams.

Every source is an iterable of :class:`SourceFrame` (BGR pixels, capture time, index in the
source). Capture time is event time and comes from the source wherever it has one:

- video file: ``start_ts_ns`` + the frame's position on the file's own timeline (CAP_PROP_POS_MSEC);
- image folder: the time written in each file name (ISO-8601 or epoch ms), else ``start_ts_ns`` +
  index / fps;
- stream: the ingest clock when the frame was read, because OpenCV does not expose the camera's
  RTP/NTP timestamps (the one case where capture time is the ingest clock).

A stream also yields ``None`` while it waits to reconnect, so its consumer keeps running its
health checks and can stop during an outage. Sources are single use: iterate once, then close.
"""

from __future__ import annotations

import logging
import math
import random
import re
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

import cv2
import numpy as np

from ibet.clock import Clock, datetime_to_ns, ns_from_seconds
from ibet.config import IngestSettings
from ibet.exceptions import IbetError
from ibet.registry import Sensor
from ingest.metrics import FRAMES_RECEIVED, FRAMES_REJECTED, STREAM_RECONNECTS

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
STREAM_SCHEMES = ("rtsp", "rtsps", "http", "https")
#: Extra wait on top of OpenCV's own timeouts before a hung open/read is abandoned.
GUARD_GRACE_S = 1.0


class SourceError(IbetError):
    """A pulled source cannot be opened or read (missing file, unsupported URL, no images)."""


class StreamUnavailable(SourceError):
    """A stream URL did not deliver a first frame within the open timeout."""


@dataclass(frozen=True)
class SourceFrame:
    """One decoded frame: ``image_bgr`` (H x W x 3 uint8), capture time (ns, UTC), index in its source."""

    image_bgr: np.ndarray
    capture_ts_ns: int
    source_index: int


class FrameSource(Protocol):
    """What pull reads: frames (or ``None`` while a stream waits), a total if known, and close."""

    frame_count: int | None

    def __iter__(self) -> Iterator[SourceFrame | None]: ...

    def close(self) -> None: ...


def _reject(sensor_id: str, reason: str, what: str) -> None:
    log.warning("%s: skipping %s", sensor_id or "source", what)
    FRAMES_RECEIVED.labels(sensor_id, "pull").inc()
    FRAMES_REJECTED.labels(sensor_id, "pull", reason).inc()


class VideoFileSource:
    """Frames of a video file, timed on the file's own timeline.

    Capture time = ``start_ts_ns`` + CAP_PROP_POS_MSEC of the frame. Without ``start_ts_ns``
    (the ``--start-ts-ns`` option), the file's modification time minus its duration is used:
    recorders write a file last when the recording ends. ``frame_count`` is the container's
    count, or None where it does not say.
    """

    def __init__(self, path: str | Path, start_ts_ns: int | None = None, *, sensor_id: str = ""):
        self.path, self.sensor_id = Path(path), sensor_id
        if not self.path.is_file():
            raise SourceError(f"video file {self.path} does not exist")
        self._cap = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            raise SourceError(f"OpenCV cannot open {self.path} as a video (not a video, or a codec this build lacks)")
        self.fps = self._cap.get(cv2.CAP_PROP_FPS) or 0.0
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = count if count > 0 else None
        if start_ts_ns is None:
            duration_ns = ns_from_seconds(count / self.fps) if count > 0 and self.fps > 0 else 0
            start_ts_ns = self.path.stat().st_mtime_ns - duration_ns
        self.start_ts_ns = start_ts_ns

    def __iter__(self) -> Iterator[SourceFrame]:
        step_ms = 1000.0 / self.fps if self.fps > 0 else 40.0  # only where the container has no timestamps
        last_ms, index = -math.inf, 0
        while self._cap.grab():
            pos_ms = self._cap.get(cv2.CAP_PROP_POS_MSEC)
            if not math.isfinite(pos_ms) or pos_ms < 0 or pos_ms <= last_ms:
                pos_ms = last_ms + step_ms if index else 0.0
            last_ms = pos_ms
            ok, image = self._cap.retrieve()
            if ok and image is not None and image.size:
                yield SourceFrame(image, self.start_ts_ns + round(pos_ms * 1_000_000), index)
            else:
                _reject(self.sensor_id, "undecodable_frame", f"frame {index} of {self.path}: cannot decode")
            index += 1

    def close(self) -> None:
        self._cap.release()


_ISO_IN_NAME = re.compile(
    r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})[Tt_ ](\d{2})[:-]?(\d{2})[:-]?(\d{2})(?:[.,](\d{1,9}))?(Z|z|[+-]\d{2}(?::?\d{2})?)?"
)
_EPOCH_MS_IN_NAME = re.compile(r"(?<!\d)(\d{13})(?!\d)")


def timestamp_from_name(name: str) -> int | None:
    """Capture time (ns, UTC) written in a file name, or None.

    ISO-8601 date and time, basic or extended, ``-`` allowed in place of ``:``, zone optional
    (UTC when absent); else a 13-digit epoch-milliseconds number.

    >>> timestamp_from_name("cam1_2024-06-10T12-00-00.5Z.jpg")
    1718020800500000000
    >>> timestamp_from_name("1718020800500.png")
    1718020800500000000
    """
    match = _ISO_IN_NAME.search(name)
    if match:
        year, month, day, hour, minute, second, fraction, zone = match.groups()
        tz: timezone = UTC
        if zone and zone not in "Zz":
            digits = zone[1:].replace(":", "")
            offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
            tz = timezone(offset if zone[0] == "+" else -offset)
        try:
            moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=tz)
        except ValueError:  # digits that look like a date but are not one
            moment = None
        if moment is not None:
            return datetime_to_ns(moment) + int((fraction or "0").ljust(9, "0"))
    match = _EPOCH_MS_IN_NAME.search(name)
    return int(match.group(1)) * 1_000_000 if match else None


class ImageFolderSource:
    """JPEG/PNG files of a folder, in name order.

    Capture time: if every file name holds a timestamp (:func:`timestamp_from_name`), those, with
    files ordered by them; otherwise ``start_ts_ns`` + index / ``fps`` for all (never a mix of
    the two). Without ``start_ts_ns``, the oldest file's modification time is used.
    """

    def __init__(self, path: str | Path, start_ts_ns: int | None = None, fps: float = 1.0, *, sensor_id: str = ""):
        self.path, self.sensor_id = Path(path), sensor_id
        if not self.path.is_dir():
            raise SourceError(f"image folder {self.path} does not exist")
        if not fps > 0:
            raise SourceError(f"image folder fps must be > 0, got {fps!r}")
        files = sorted(p for p in self.path.iterdir()
                       if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file())
        if not files:
            raise SourceError(f"no JPEG or PNG files in {self.path}")
        stamps = [timestamp_from_name(p.name) for p in files]
        if all(s is not None for s in stamps):
            self.timeline = sorted(zip(stamps, files, strict=True))
            self.timed_by = "file names"
        else:
            if any(s is not None for s in stamps):
                log.warning("%s: only some file names hold a timestamp; timing all files by index / fps", self.path)
            start = start_ts_ns if start_ts_ns is not None else min(p.stat().st_mtime_ns for p in files)
            self.timeline = [(start + round(i * 1e9 / fps), p) for i, p in enumerate(files)]
            self.timed_by = f"start + index / {fps:g} fps"
        self.frame_count = len(self.timeline)

    def __iter__(self) -> Iterator[SourceFrame]:
        for index, (capture_ts_ns, file) in enumerate(self.timeline):
            image = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if image is None or not image.size:
                _reject(self.sensor_id, "unreadable_image", f"{file}: not a readable JPEG/PNG")
                continue
            yield SourceFrame(image, capture_ts_ns, index)

    def close(self) -> None:
        return None


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def backoff_delay_s(attempt: int, initial_s: float, max_s: float, jitter_u: float) -> float:
    """Wait (s) before reconnect ``attempt`` (0-based): ``initial_s * 2**attempt`` capped at ``max_s``,
    scaled by ``1 - jitter_u / 2`` (``jitter_u`` in [0, 1)), so waits lie in (base / 2, base].

    Jitter keeps cameras that dropped together from reconnecting in lockstep; the waits still
    grow until the cap, as each base is twice the one before.
    """
    base = min(max_s, initial_s * 2.0 ** min(attempt, 64))
    return base * (1.0 - 0.5 * jitter_u)


class _GuardedCapture:
    """One cv2.VideoCapture whose open and reads run on its own thread, each bounded in time.

    OpenCV's FFmpeg backend honours CAP_PROP_OPEN_TIMEOUT_MSEC / CAP_PROP_READ_TIMEOUT_MSEC; other
    backends may not, so a call that overruns its timeout + GUARD_GRACE_S is abandoned here (the
    capture is released once the call returns) and the stream is treated as dropped.
    """

    def __init__(self, url: str, open_timeout_s: float, read_timeout_s: float):
        self.url, self.open_timeout_s, self.read_timeout_s = url, open_timeout_s, read_timeout_s
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ibet-stream")
        self._cap: Any = None
        self._abandoned = False

    def open(self) -> bool:
        return bool(self._call(self._open, self.open_timeout_s))

    def read(self) -> np.ndarray | None:
        return self._call(self._read, self.read_timeout_s)

    def release(self) -> None:
        if not self._abandoned:  # no call in flight: release here; else the hung call's callback does
            self._release_now()
        self._pool.shutdown(wait=False)

    def _call(self, fn: Callable[[], Any], timeout_s: float) -> Any:
        if self._abandoned:
            return None
        future = self._pool.submit(fn)
        try:
            return future.result(timeout=timeout_s + GUARD_GRACE_S)
        except TimeoutError:
            log.warning("%s: OpenCV call overran %.1f s; abandoning this connection", redact_url(self.url), timeout_s)
            self._abandoned = True
            future.add_done_callback(lambda _done: self._release_now())
            return None

    def _open(self) -> bool:
        if cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG):
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, round(self.open_timeout_s * 1000),
                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, round(self.read_timeout_s * 1000)]
            self._cap = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, params)
        else:  # no timeouts to give: the guard above is all there is
            self._cap = cv2.VideoCapture(self.url)
        return bool(self._cap.isOpened())

    def _read(self) -> np.ndarray | None:
        ok, image = self._cap.read()
        return image if ok and image is not None and image.size else None

    def _release_now(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class StreamSource:
    """A live RTSP or HTTP(S) MJPEG stream through cv2.VideoCapture, reconnected when it drops.

    Capture time is the ``clock`` when a frame has been read: OpenCV does not expose the camera's
    RTP/NTP timestamps, so transport delay (typically well under a second) is not corrected.

    The first connection must deliver within ``open_timeout_s`` (retrying with backoff until
    then) or :class:`StreamUnavailable` is raised naming the URL. After that, a drop, a failed
    read or a failed reopen is never fatal: wait (exponential backoff from
    ``reconnect_initial_s``, doubling, capped at ``reconnect_max_s``, with jitter), count
    ``STREAM_RECONNECTS``, log, reopen; the backoff resets once a frame arrives. While waiting it
    yields ``None`` at least every ``tick_s`` seconds.
    """

    frame_count = None

    def __init__(self, url: str, clock: Clock, reconnect_initial_s: float = 0.5, reconnect_max_s: float = 30.0,
                 open_timeout_s: float = 10.0, *, read_timeout_s: float | None = None, sensor_id: str = "",
                 rng: random.Random | None = None, tick_s: float = 1.0):
        self.url, self.clock, self.sensor_id = url, clock, sensor_id
        self.reconnect_initial_s, self.reconnect_max_s = reconnect_initial_s, reconnect_max_s
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s if read_timeout_s is not None else open_timeout_s
        self.rng, self.tick_s = rng or random.Random(), tick_s
        self.reconnects = 0
        self._closed = False

    def __iter__(self) -> Iterator[SourceFrame | None]:
        capture = yield from self._connect_first()
        if capture is None:  # closed before the first connection
            return
        index = attempt = 0
        try:
            while not self._closed:
                image = capture.read()
                if image is not None:
                    attempt = 0
                    yield SourceFrame(image, self.clock.now_ns(), index)
                    index += 1
                    continue
                log.warning("%s: stream dropped or stalled; reconnecting", redact_url(self.url))
                capture.release()
                capture = None
                while capture is None and not self._closed:
                    yield from self._pause(self._backoff(attempt))
                    attempt += 1
                    self.reconnects += 1
                    STREAM_RECONNECTS.labels(self.sensor_id).inc()
                    capture = self._try_open(self.open_timeout_s)
                    log.info("%s: reconnect %d %s", redact_url(self.url), attempt, "succeeded" if capture else "failed")
        finally:
            if capture is not None:
                capture.release()

    def close(self) -> None:
        self._closed = True

    def _connect_first(self) -> Generator[None, None, _GuardedCapture | None]:
        deadline_ns = self.clock.now_ns() + ns_from_seconds(self.open_timeout_s)
        attempt = 0
        while True:
            remaining_s = max(0.05, (deadline_ns - self.clock.now_ns()) / 1e9)
            capture = self._try_open(min(self.open_timeout_s, remaining_s))
            if capture is not None:
                return capture
            if self._closed:
                return None
            remaining_s = (deadline_ns - self.clock.now_ns()) / 1e9
            if remaining_s <= 0:
                raise StreamUnavailable(
                    f"stream {redact_url(self.url)} did not answer within {self.open_timeout_s:g} s "
                    f"({attempt + 1} attempt(s): refused, timed out, or not a video stream)")
            yield from self._pause(min(remaining_s, self._backoff(attempt)))
            attempt += 1

    def _try_open(self, timeout_s: float) -> _GuardedCapture | None:
        capture = _GuardedCapture(self.url, timeout_s, self.read_timeout_s)
        if capture.open():
            return capture
        capture.release()
        return None

    def _backoff(self, attempt: int) -> float:
        return backoff_delay_s(attempt, self.reconnect_initial_s, self.reconnect_max_s, self.rng.random())

    def _pause(self, seconds: float) -> Iterator[None]:
        while seconds > 0 and not self._closed:
            step = min(seconds, self.tick_s)
            self.clock.sleep(step)
            seconds -= step
            yield None


def open_source(sensor: Sensor, settings: IngestSettings, clock: Clock, *, url: str | None = None,
                start_ts_ns: int | None = None, folder_fps: float | None = None) -> FrameSource:
    """The source for ``url`` (default: the sensor's ``source_url``), chosen by scheme.

    ``rtsp(s)://`` and ``http(s)://`` -> :class:`StreamSource` with the reconnect settings;
    ``file://`` or a plain path -> :class:`ImageFolderSource` for a folder (at ``folder_fps``,
    default the sensor's detection rate, so each image is one detection frame), else
    :class:`VideoFileSource`. Raises SourceError naming what is missing or unsupported.
    """
    url = url or sensor.source_url
    if not url:
        raise SourceError(f"sensor '{sensor.id}' has no source_url; set one in the registry or pass a source")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in STREAM_SCHEMES:
        return StreamSource(url, clock, settings.reconnect_initial_s, settings.reconnect_max_s,
                            settings.stream_open_timeout_s, sensor_id=sensor.id)
    if scheme == "file":
        path = Path(unquote(parts.path))
    elif scheme == "" or len(scheme) == 1:  # a plain path (one letter: a Windows drive)
        path = Path(url)
    else:
        raise SourceError(f"cannot pull '{redact_url(url)}': use a file path, file://, rtsp(s):// or http(s)://")
    if path.is_dir():
        return ImageFolderSource(path, start_ts_ns, folder_fps or sensor.detection_rate_hz, sensor_id=sensor.id)
    return VideoFileSource(path, start_ts_ns, sensor_id=sensor.id)

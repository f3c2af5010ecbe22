"""Open a video stream or file with PyAV (FFmpeg's libraries from PyPI) and demux it: decoded
pictures from the first video stream and raw KLV access units from every data stream.

PyAV reads MPEG-2 transport streams (STANAG 4609) and MP4 files, ``rtp://``, ``rtsp://`` (over
TCP) and ``rtmp://`` (as a client of a media server); ``udp://`` is received by ibet's own socket
(:mod:`ingest.udp_input`, multicast joined) and demuxed by PyAV from it. It has no SRT: ``srt://`` goes through a local relay (see
:mod:`ibet.srt_relay`). Times are stream times in seconds (PTS x time base); pairing them with
UTC is :mod:`ingest.klv_pairing`'s job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import av
import av.error

from ibet.exceptions import IbetError
from ibet.urls import redact

log = logging.getLogger(__name__)

LIVE_SCHEMES = ("udp", "rtp", "rtsp", "rtsps", "rtmp", "rtmps", "tcp", "srt")
FILE_SUFFIXES = (".ts", ".m2ts", ".mts", ".mp4", ".mov", ".mkv")


class StreamOpenError(IbetError):
    """The source cannot be opened or is not a video stream; the message says which and why."""


@dataclass(frozen=True)
class Picture:
    """A decoded video frame and its stream time; ``frame`` is a PyAV VideoFrame (convert only if kept)."""

    frame: av.VideoFrame
    pts_s: float
    index: int  # decoded pictures so far in this connection


@dataclass(frozen=True)
class KlvUnit:
    """One access unit of a data stream: the bytes, and its PTS in seconds (None: asynchronous)."""

    stream_index: int
    data: bytes
    pts_s: float | None


@dataclass(frozen=True)
class Dropped:
    """Something read that could not be used: a picture without PTS, a corrupt packet (``reason``)."""

    reason: str
    detail: str


def is_live(url: str) -> bool:
    """Whether ``url`` is a network stream (reconnected when it drops) rather than a file."""
    return urlsplit(url).scheme.lower() in LIVE_SCHEMES


def ffmpeg_options(url: str, rtsp_transport: str = "tcp") -> dict[str, str]:
    """FFmpeg options to open ``url`` with: RTSP's RTP over ``rtsp_transport`` (UDP sources never
    reach FFmpeg's own UDP input: :mod:`ingest.udp_input` receives them)."""
    return {"rtsp_transport": rtsp_transport} if urlsplit(url).scheme.lower() in ("rtsp", "rtsps") else {}


def open_input(url: str, open_timeout_s: float, read_timeout_s: float, fileobj=None,
               rtsp_transport: str = "tcp") -> av.container.InputContainer:
    """The opened container; StreamOpenError names the source and FFmpeg's reason. With ``fileobj``
    (a UDP receiver's reader) the transport stream is read from it, not from ``url``."""
    try:
        if fileobj is not None:
            # a live feed: find the streams in what 1 s of it carries, not FFmpeg's default 5 s
            container = av.open(fileobj, format="mpegts", options={"probesize": "1000000", "analyzeduration": "1000000"})
        else:
            if not is_live(url) and urlsplit(url).scheme.lower() in ("", "file"):
                path = Path(urlsplit(url).path if url.startswith("file:") else url)
                if not path.is_file():
                    raise StreamOpenError(f"no such file: {path}")
            container = av.open(url, options=ffmpeg_options(url, rtsp_transport),
                                timeout=(open_timeout_s, read_timeout_s))
    except (av.error.FFmpegError, OSError) as exc:
        what = "no transport stream on" if fileobj is not None else "cannot open"
        raise StreamOpenError(f"{what} {redact(url)}: {exc}") from None
    if not container.streams.video:
        container.close()
        raise StreamOpenError(f"{redact(url)} has no video stream")
    return container


def demux(container: av.container.InputContainer,
          on_bytes: Callable[[int], None] = lambda _size: None) -> Iterator[Picture | KlvUnit | Dropped]:
    """Pictures of the first video stream and units of every data stream, in stream order.

    Corrupt packets are reported as :class:`Dropped` and skipped; the end of a file ends the
    iterator; a dropped connection or a read timeout raises av's error (the caller reconnects).
    """
    video = container.streams.video[0]
    video.thread_type = "AUTO"
    data_streams = list(container.streams.data)
    pictures = 0
    for packet in container.demux([video, *data_streams]):
        on_bytes(packet.size)
        if packet.stream.type == "data":
            if packet.size:
                pts = None if packet.pts is None else float(packet.pts * packet.time_base)
                yield KlvUnit(packet.stream.index, bytes(packet), pts)
            continue
        try:
            frames = packet.decode()
        except av.error.InvalidDataError as exc:
            yield Dropped("corrupt_video", str(exc))
            continue
        for frame in frames:
            if frame.pts is None or frame.time_base is None:
                yield Dropped("no_pts", "a decoded picture has no presentation time stamp")
                continue
            yield Picture(frame, float(frame.pts * frame.time_base), pictures)
            pictures += 1


def duration_s(container: av.container.InputContainer) -> float | None:
    """A file's duration in seconds, if the container knows it."""
    return container.duration / 1e6 if container.duration else None

"""A simulated drone's frames as a STANAG 4609 stream: H.264 video and synchronous MISB ST 0601 KLV
in an MPEG-2 transport stream, written to a ``.ts`` file, sent to ``udp://host:port`` (PyAV), or to
``srt://host:port?mode=caller|listener`` through srt-live-transmit.

One drone per stream, as a ground station sends it; fixed cameras are counted and skipped (ingest
pulls those). Each frame's KLV packet carries the frame's capture time in tag 2 and the frame's PTS,
so ``ibet ingest stream`` pairs them by PTS; with ``klv="async"`` the PTS is taken out of every KLV
PES (:mod:`sim.ts_async_klv`), so the receiver must pair by tag 2, as with KWIVER's sample. With ``at_now`` (the default for UDP) capture times are
shifted so the run starts now, since a live stream's capture times are checked against the clock.
"""

from __future__ import annotations

import time
from fractions import Fraction

import av
import cv2
import numpy as np

from ibet.klv import encode_st0601
from sim.run import SimFrame, Simulation
from sim.ts_async_klv import AsyncKlvWriter

TIME_BASE = Fraction(1, 90_000)  # MPEG-TS's 90 kHz clock


class StanagSink:
    """Frames of ``drone_id`` (None: the first drone seen) muxed into ``target`` (a path or udp:// URL)."""

    def __init__(self, target: str, drone_id: str | None = None, *, realtime: bool = False, speed: float = 1.0,
                 at_now: bool | None = None, bitrate_bps: int = 2_000_000, frame_rate_hz: float = 2.0,
                 klv: str = "sync"):
        if klv not in ("sync", "async"):
            raise ValueError(f"klv must be 'sync' or 'async', not {klv!r}")
        self.target, self.drone_id, self.klv_mode = target, drone_id, klv
        self._sink_file = self._socket = None
        self.srt = target.lower().startswith("srt://")
        self.udp = self.srt or target.lower().startswith("udp://")
        self._relay = None
        self.realtime, self.speed = realtime, speed
        self.at_now = self.udp if at_now is None else at_now
        self.bitrate_bps, self.frame_rate_hz = bitrate_bps, frame_rate_hz
        self.count, self.skipped = 0, 0
        self._out: av.container.OutputContainer | None = None
        self._video = self._data = None
        self._first_capture_ns: int | None = None
        self._offset_ns = 0
        self._wall_start: float | None = None

    def write(self, frame: SimFrame) -> None:
        meta = frame.meta
        if meta.telemetry is None or (self.drone_id is not None and meta.sensor_id != self.drone_id):
            self.skipped += 1
            return
        self.drone_id = meta.sensor_id
        image = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_COLOR)
        if self._out is None:
            self._open(image.shape[1], image.shape[0])
            self._first_capture_ns = meta.capture_ts_ns
            self._offset_ns = time.time_ns() - meta.capture_ts_ns if self.at_now else 0
        assert self._out is not None and self._video is not None and self._first_capture_ns is not None
        self._pace(frame.true_time_s)
        pts = round((meta.capture_ts_ns - self._first_capture_ns) * 90_000 / 1e9)
        picture = av.VideoFrame.from_ndarray(image, format="bgr24")
        picture.pts, picture.time_base = pts, TIME_BASE
        for packet in self._video.encode(picture):
            self._out.mux(packet)
        telemetry = meta.telemetry.model_copy(update={"precision_ts_us": (meta.capture_ts_ns + self._offset_ns) // 1000})
        klv = av.Packet(encode_st0601(telemetry))
        klv.stream, klv.pts, klv.dts, klv.time_base = self._data, pts, pts, TIME_BASE
        self._out.mux(klv)
        self.count += 1

    def close(self, sim: Simulation | None = None) -> None:
        if self._out is None:
            return
        assert self._video is not None
        for packet in self._video.encode(None):
            self._out.mux(packet)
        self._out.close()
        self._out = None
        if self._sink_file is not None:
            self._sink_file.close()
        if self._socket is not None:
            self._socket.close()
        if self._relay is not None:
            time.sleep(1.0)  # the relay's buffer drains
            self._relay.__exit__(None, None, None)
            self._relay = None

    def _open(self, width_px: int, height_px: int) -> None:
        url = self.target
        if self.srt:  # PyAV has no SRT: the stream goes to a loopback UDP port and srt-live-transmit sends it on
            from ibet.srt_relay import srt_relay

            self._relay = srt_relay(self.target, f"sim-{self.drone_id}", outbound=True)
            url = self._relay.__enter__()
            time.sleep(0.5)  # let the relay bind its UDP port before the first datagram
        options = {"mpegts_flags": "resend_headers"}
        if self.klv_mode == "async":  # the muxer writes into a rewriter, which sends the packets on
            self._out = av.open(AsyncKlvWriter(self._sender(url)), "w", format="mpegts", options=options)
        else:
            if self.udp:
                url += ("&" if "?" in url else "?") + "pkt_size=1316"
            self._out = av.open(url, "w", format="mpegts", options=options)
        video = self._out.add_stream("libx264", rate=Fraction(self.frame_rate_hz).limit_denominator(1000), options={"preset": "ultrafast", "tune": "zerolatency",
                                                                  "g": "4", "bf": "0"})
        video.width, video.height, video.pix_fmt, video.time_base = width_px, height_px, "yuv420p", TIME_BASE
        video.codec_context.time_base = TIME_BASE  # else the encoder rounds each PTS to its 1 / rate grid
        video.bit_rate = self.bitrate_bps
        self._video = video
        self._data = self._out.add_data_stream("klv")

    def _sender(self, url: str):
        """Where the rewritten packets go: a UDP port, 7 packets a datagram as FFmpeg sends them, or a file."""
        if url.lower().startswith("udp://"):
            import socket
            from urllib.parse import urlsplit

            parts = urlsplit(url)
            self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            address = (parts.hostname or "127.0.0.1", parts.port or 5600)

            def send(data: bytes) -> None:
                for i in range(0, len(data), 1316):
                    self._socket.sendto(data[i:i + 1316], address)
            return send
        self._sink_file = open(url, "wb")  # noqa: SIM115 - closed in close()
        return self._sink_file.write

    def _pace(self, true_time_s: float) -> None:
        if not self.realtime:
            return
        if self._wall_start is None:
            self._wall_start = time.monotonic() - true_time_s / self.speed
        delay = self._wall_start + true_time_s / self.speed - time.monotonic()
        if delay > 0:
            time.sleep(delay)

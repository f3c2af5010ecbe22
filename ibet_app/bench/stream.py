"""``ibet bench ingest-stream``: the cost of ``ibet ingest stream`` against a bare PyAV decode of the
same file, and how many 2 Hz drone streams one core carries.

The file is a STANAG 4609-like transport stream written here (H.264 at the given size and frame
rate, one synchronous ST 0601 packet per frame, moving content so the encoder works as on real
video), or one you give. Rounds alternate: the bare side opens the file and decodes every picture
(no conversion); ibet's side runs :class:`~ingest.stream.StreamIngest` on it (decode, KLV pairing,
sampling to the drone's 2 Hz, BGR conversion and JPEG of the kept frames, producing to the
in-memory bus). Reported per side: pictures/s, CPU seconds per stream second, and the ratio; and
``streams_per_core`` = stream seconds ibet handles per CPU second (real-time streams one core carries).
"""

from __future__ import annotations

import statistics
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ibet.bus import MemoryBus
from ibet.clock import SystemClock
from ibet.config import IngestSettings
from ibet.klv import encode_st0601
from ibet.messages import Telemetry
from ibet.registry import Sensor
from ingest.stream import StreamIngest


def write_bench_stream(path: Path, seconds: float, fps: float, width_px: int, height_px: int) -> Path:
    """An H.264 + KLV transport stream with a moving pattern (so P-frames carry real residuals)."""
    tb = Fraction(1, 90_000)
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (height_px, width_px * 2, 3), dtype=np.uint8)
    t0_us = time.time_ns() // 1000
    with av.open(str(path), "w", format="mpegts") as out:
        video = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000),
                               options={"preset": "veryfast", "g": str(round(fps))})
        video.width, video.height, video.pix_fmt, video.time_base = width_px, height_px, "yuv420p", tb
        video.codec_context.time_base = tb
        video.bit_rate = 4_000_000
        data = out.add_data_stream("klv")
        for k in range(round(seconds * fps)):
            pts = round(k * 90_000 / fps)
            shift = (k * 4) % width_px
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(texture[:, shift : shift + width_px]), format="bgr24")
            picture.pts, picture.time_base = pts, tb
            for packet in video.encode(picture):
                out.mux(packet)
            klv = av.Packet(encode_st0601(Telemetry(precision_ts_us=t0_us + round(k * 1e6 / fps), sensor_lat_deg=49.0,
                                                    sensor_lon_deg=-122.75, sensor_alt_m=150.0, hfov_deg=30.0)))
            klv.stream, klv.pts, klv.dts, klv.time_base = data, pts, pts, tb
            out.mux(klv)
        for packet in video.encode(None):
            out.mux(packet)
    return path


def _bare(path: Path) -> tuple[int, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    pictures = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for packet in container.demux(stream):
            pictures += len(packet.decode())
    return pictures, time.perf_counter() - wall, time.process_time() - cpu


def _ibet(path: Path, rate_hz: float) -> tuple[int, float, float, int]:
    sensor = Sensor(id="bench-drone", kind="drone", owner_agency="usbp", sector_id="pac-blaine",
                    detection_rate_hz=rate_hz)
    bus = MemoryBus()
    wall, cpu = time.perf_counter(), time.process_time()
    run = StreamIngest(sensor, str(path), bus.producer(), IngestSettings(), SystemClock())
    stats = run.run()
    return stats.frames_decoded, time.perf_counter() - wall, time.process_time() - cpu, stats.frames_produced


def run_stream_bench(path: Path | None, rounds: int, seconds: float, fps: float, width_px: int, height_px: int,
                     rate_hz: float, workdir: Path) -> dict:
    if path is None:
        path = write_bench_stream(workdir / "bench-stream.ts", seconds, fps, width_px, height_px)
    with av.open(str(path)) as container:
        stream_s = float(container.duration / 1e6) if container.duration else seconds
    bare, ours = [], []
    for _ in range(rounds):  # alternate, so drift of the machine hits both sides alike
        bare.append(_bare(path))
        ours.append(_ibet(path, rate_hz))
    bare_cpu = statistics.median(r[2] for r in bare)
    ours_cpu = statistics.median(r[2] for r in ours)
    bare_wall = statistics.median(r[1] for r in bare)
    ours_wall = statistics.median(r[1] for r in ours)
    pictures = ours[0][0]
    return {
        "file": str(path), "stream_s": round(stream_s, 2), "pictures": pictures, "produced": ours[0][3],
        "rate_hz": rate_hz, "rounds": rounds,
        "bare_pictures_per_s": round(bare[0][0] / bare_wall, 1), "ibet_pictures_per_s": round(pictures / ours_wall, 1),
        "bare_cpu_s_per_stream_s": round(bare_cpu / stream_s, 4), "ibet_cpu_s_per_stream_s": round(ours_cpu / stream_s, 4),
        "ratio_cpu": round(ours_cpu / bare_cpu, 3) if bare_cpu else None,
        "ratio_wall": round(ours_wall / bare_wall, 3) if bare_wall else None,
        "streams_per_core": round(stream_s / ours_cpu, 2) if ours_cpu else None,
    }

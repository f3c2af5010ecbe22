"""``ibet ingest stream`` on the two public STANAG 4609 samples (tests/data/stanag, from KWIVER):
every picture decoded and paired with the KLV packet of its time, the telemetry checked against an
independent decoder (klvdata from PyPI) of the same packets."""

from __future__ import annotations

from pathlib import Path

import av
import pytest
from klvdata.klvparser import KLVParser
from klvdata.misb0601 import UASLocalMetadataSet

from ibet import topics
from ibet.bus import MemoryBus
from ibet.clock import ManualClock
from ibet.config import IngestSettings
from ibet.messages import FrameMeta
from ibet.registry import Sensor
from ingest.stream import StreamIngest

DATA = Path(__file__).resolve().parents[1] / "data" / "stanag"
H264 = DATA / "h264_klv.ts"
H265 = DATA / "h265_tricky_klv.ts"
NOW = 1_790_000_000 * 10**9  # the ingest clock: 2026, long after the samples were recorded (2008)

# Telemetry field -> (ST 0601 tag, tolerance): klvdata maps some items with its own rounding.
CHECKED = {
    "sensor_lat_deg": (13, 1e-6), "sensor_lon_deg": (14, 1e-6), "platform_heading_deg": (5, 0.01),
    "platform_pitch_deg": (90, 1e-6), "platform_roll_deg": (91, 1e-6), "hfov_deg": (16, 0.01), "vfov_deg": (17, 0.01),
    "sensor_rel_azimuth_deg": (18, 1e-6), "sensor_rel_elevation_deg": (19, 1e-6), "sensor_rel_roll_deg": (20, 1e-6),
    "slant_range_m": (21, 0.01), "frame_center_lat_deg": (23, 1e-6), "frame_center_lon_deg": (24, 1e-6),
    "frame_center_elev_m": (25, 0.5), "sensor_alt_m": (75, 0.5),
}


def drone(rate_hz: float = 30.0) -> Sensor:
    return Sensor(id="uas-sample", kind="drone", owner_agency="usbp", sector_id="pac-blaine", detection_rate_hz=rate_hz)


def klvdata_reading(packet: bytes) -> dict[int, object]:
    """The ST 0601 items klvdata can read, by tag (it reads one-byte tags only: stop at the first longer one;
    its nested-set and newer-item parsers fail on these packets and are skipped)."""
    (_, body), = KLVParser(packet, 16)
    values: dict[int, object] = {}
    for key, value in KLVParser(body, 1):
        if key[0] >= 0x80:
            break
        parser = UASLocalMetadataSet.parsers.get(key)
        if parser is None or key[0] in values:
            continue
        try:
            element = parser(value)
        except (TypeError, ValueError):
            continue
        values[key[0]] = getattr(element.value, "value", element.value)
    return values


def packets_of(path: Path, stream_index: int) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux() if p.stream.index == stream_index and p.size]


def ingest(path: Path, sensor: Sensor, **settings) -> tuple[StreamIngest, list[FrameMeta], MemoryBus]:
    bus = MemoryBus()
    run = StreamIngest(sensor, str(path), bus.producer(), IngestSettings(**settings), ManualClock(NOW))
    run.run()
    return run, [FrameMeta.from_headers(r.headers) for r in bus.records(topics.FRAMES)], bus


@pytest.mark.parametrize(("path", "klv_stream", "mode"), [(H264, 1, "asynchronous, by tag 2"),
                                                           (H265, 1, "synchronous, by PTS")])
def test_every_picture_is_paired_with_its_own_packet_as_an_independent_decoder_reads_it(path, klv_stream, mode):
    run, metas, bus = ingest(path, drone(30.0))
    packets = packets_of(path, klv_stream)
    assert run.stats.frames_decoded == 30 and len(metas) == 30, (mode, str(run.stats))
    assert run.stats.refused == {} and run.stats.paired.get("exact") == 30
    assert [m.sequence for m in metas] == list(range(30))
    reference = [klvdata_reading(p) for p in packets[:30]]
    for meta, expected in zip(metas, reference, strict=True):
        # tag 2 in klvdata is a datetime; the frame's capture time is that packet's time stamp
        assert meta.capture_ts_ns == round(expected[2].timestamp() * 1e6) * 1000, mode
        assert meta.telemetry is not None and meta.telemetry.precision_ts_us == meta.capture_ts_ns // 1000
        compared = 0
        for name, (tag, tolerance) in CHECKED.items():
            if tag in expected:
                assert getattr(meta.telemetry, name) == pytest.approx(expected[tag], abs=tolerance), (name, mode)
                compared += 1
        assert compared >= 12, f"klvdata read only {compared} of the checked tags"
        assert meta.telemetry.sensor_alt_ref == "ellipsoid"  # these packets carry tag 75
        assert (meta.width_px, meta.height_px) == (160, 120) if path == H264 else meta.width_px > 0
    assert {r.key for r in bus.records(topics.FRAMES)} == {b"uas-sample"}


def test_the_h265_stream_counts_all_three_data_streams_and_takes_the_pose_from_the_full_one():
    run, metas, _ = ingest(H265, drone(30.0))
    # stream 1: 30 full ST 0601 packets; stream 2: 60 timestamp-only packets at twice the rate
    assert run.stats.klv_packets == {"st0601": 90}, str(run.stats)
    assert all(m.telemetry.sensor_lat_deg is not None for m in metas)


def test_sampled_to_the_drones_rate_on_the_streams_own_timeline():
    run, metas, _ = ingest(H264, drone(2.0))
    # 30 pictures at 30 fps span 0.97 s: kept at 0 and 0.5 s
    assert len(metas) == 2 and run.stats.frames_decoded == 30
    assert metas[1].capture_ts_ns - metas[0].capture_ts_ns == pytest.approx(0.5e9, abs=0.034e9)
    assert all(m.ingest_ts_ns == NOW for m in metas)  # the ingest clock is ingest time, never capture time

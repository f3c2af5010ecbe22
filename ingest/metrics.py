"""Prometheus metrics of ingest (push API and pulled sources), labelled by sensor."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

FRAMES_RECEIVED = Counter("ibet_ingest_frames_received", "Frames received (pushed or pulled)", ["sensor", "path"])
FRAMES_ACCEPTED = Counter("ibet_ingest_frames_accepted", "Frames produced to ibet.frames.v1", ["sensor", "path"])
FRAMES_REJECTED = Counter("ibet_ingest_frames_rejected", "Frames refused, by reason", ["sensor", "path", "reason"])
FRAMES_DUPLICATE = Counter("ibet_ingest_frames_duplicate", "Retried uploads answered without producing again", ["sensor"])
BYTES_ACCEPTED = Counter("ibet_ingest_bytes_accepted", "JPEG bytes produced", ["sensor", "path"])
PRODUCE_SECONDS = Histogram(
    "ibet_ingest_produce_seconds", "Time from handing a frame to the bus to its acknowledgement", ["path"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
STREAM_RECONNECTS = Counter("ibet_ingest_stream_reconnects", "Reconnects of pulled streams", ["sensor"])
LAST_FRAME_TIMESTAMP = Gauge("ibet_ingest_last_frame_timestamp_seconds", "Capture time of the last frame", ["sensor"])
FEED_LOST = Gauge("ibet_ingest_feed_lost", "1 while the sensor's feed is lost", ["sensor"])
STREAM_FRAMES_DECODED = Counter("ibet_ingest_stream_frames_decoded", "Pictures decoded from streams", ["sensor"])
STREAM_BYTES = Counter("ibet_ingest_stream_bytes_read", "Compressed bytes demuxed (rate(): the bitrate)", ["sensor"])
STREAM_KLV_PACKETS = Counter("ibet_ingest_stream_klv_packets", "KLV packets read from streams, by outcome",
                             ["sensor", "outcome"])
STREAM_PAIRING_FAILURES = Counter("ibet_ingest_stream_pairing_failures",
                                  "Decoded pictures that got no telemetry or capture time, by reason", ["sensor", "reason"])

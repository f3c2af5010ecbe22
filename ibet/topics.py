"""Topic names, what keys them, and the size limits every producer, consumer and broker share.

One place for the data flow of ARCHITECTURE.md: stages import these names, never spell them.
"""

from __future__ import annotations

from dataclasses import dataclass

FRAMES = "ibet.frames.v1"
DETECTIONS = "ibet.detections.v1"
TRACKS = "ibet.tracks.v1"
EVENTS = "ibet.events.v1"
ALERTS = "ibet.alerts.v1"
SENSOR_HEALTH = "ibet.sensor-health.v1"
FUSE_STATE = "ibet.fuse-state.v1"
DETECT_STATE = "ibet.detect-state.v1"
ALERTS_STATE = "ibet.alerts-state.v1"

DLQ_SUFFIX = ".dlq"

MIB = 1024 * 1024
#: The largest JPEG frame ingest accepts (8 MiB: a 4K frame at quality 95 is 2-4 MiB).
MAX_FRAME_BYTES = 8 * MIB
#: Room for the key and the metadata headers on top of the frame itself.
RECORD_OVERHEAD_BYTES = 64 * 1024
#: The largest record the bus carries. The Kafka producer's max_request_size, the consumer's
#: fetch sizes and every topic's max.message.bytes are all set from this one number.
MAX_RECORD_BYTES = MAX_FRAME_BYTES + RECORD_OVERHEAD_BYTES


@dataclass(frozen=True)
class TopicSpec:
    """A topic of the pipeline: its name, what its key is, and its default partitioning."""

    name: str
    key: str
    value: str
    partitions: int = 6
    compacted: bool = False


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(FRAMES, key="sensor id", value="JPEG bytes; FrameMeta in headers"),
    TopicSpec(DETECTIONS, key="sector id", value="DetectionBatch JSON"),
    TopicSpec(TRACKS, key="sector id", value="TrackUpdate JSON"),
    TopicSpec(EVENTS, key="sector id", value="BorderEvent JSON"),
    TopicSpec(ALERTS, key="alert id", value="Alert JSON"),
    TopicSpec(SENSOR_HEALTH, key="sensor id", value="SensorHealthEvent JSON: feed_lost / feed_restored"),
    TopicSpec(FUSE_STATE, key="sector id", value="fuse worker state of a sector (tracks, border memory)",
              compacted=True),
    TopicSpec(DETECT_STATE, key="sensor id", value="detect worker state of a sensor (image-space tracker)",
              compacted=True),
    TopicSpec(ALERTS_STATE, key="sector id", value="alert rules state of a sector (dedup windows, cooldowns)",
              compacted=True),
)


def dlq_topic(source_topic: str) -> str:
    """The dead-letter topic of ``source_topic``: ``ibet.frames.v1`` -> ``ibet.frames.v1.dlq``."""
    return source_topic + DLQ_SUFFIX


def all_topic_specs() -> tuple[TopicSpec, ...]:
    """Every topic the pipeline uses, dead-letter topics included (same key, same partitions)."""
    dlqs = tuple(
        TopicSpec(dlq_topic(t.name), key=t.key, value="original bytes; error in headers", partitions=t.partitions)
        for t in TOPICS
        if not t.compacted
    )
    return TOPICS + dlqs


def compacted_topics() -> set[str]:
    """Topics whose latest record per key is what counts (cleanup.policy=compact)."""
    return {t.name for t in TOPICS if t.compacted}

"""Every wire message type through the real broker and back, unchanged, under its topic's key."""

from __future__ import annotations

import pytest
from wire_samples import DETECTIONS, alert, batch, event, frame_meta, track

from ibet.bus.base import OutRecord
from ibet.messages import Alert, BorderEvent, DetectionBatch, FrameMeta, TrackUpdate

pytestmark = pytest.mark.kafka

JPEG = bytes.fromhex("ffd8ffe000104a46494600") + bytes(range(256)) * 40 + bytes.fromhex("ffd9")


def test_every_message_type_round_trips(kafka_bus, produce, drain, unique):
    messages = [(batch(DETECTIONS), DetectionBatch), (track(), TrackUpdate), (event(), BorderEvent), (alert(), Alert)]
    topic = f"roundtrip-{unique}"
    kafka_bus.create_topics([topic], partitions=1)
    meta = frame_meta()
    records = [OutRecord(topic, meta.sensor_id.encode(), JPEG, tuple(meta.to_headers()))]
    records += [OutRecord(topic, b"key", m.to_bytes()) for m, _ in messages]
    produce(records)

    back = drain(topic, at_least=len(records))
    assert len(back) == len(records)
    frame, *rest = back
    assert frame.value == JPEG and frame.key == b"drone-07"
    assert FrameMeta.from_headers(frame.headers) == meta
    for record, (sent, model) in zip(rest, messages, strict=True):
        assert model.from_bytes(record.value) == sent

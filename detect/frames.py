"""From a record on ``ibet.frames.v1`` to a decoded frame: metadata from the headers, pixels
from the JPEG, each checked, with an error that says what is wrong with which frame."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from detect.exceptions import FrameDecodeError
from ibet.bus.base import Record
from ibet.messages import JPEG_EOI, JPEG_SOI, FrameMeta
from ibet.registry import Registry, Sensor


@dataclass(frozen=True)
class DecodedFrame:
    """One frame ready for the model: its metadata, its sensor and its BGR pixels (H, W, 3) uint8."""

    meta: FrameMeta
    sensor: Sensor
    image: np.ndarray


def decode_frame(record: Record, registry: Registry) -> DecodedFrame:
    """Decode ``record``; FrameDecodeError (or the registry's error for an unknown sensor) names
    the sensor, sequence and what is wrong."""
    meta = FrameMeta.from_headers(record.headers)
    where = f"frame {meta.sensor_id}#{meta.sequence}"
    if record.key is not None and record.key != meta.sensor_id.encode():
        raise FrameDecodeError(f"{where}: the record key {record.key!r} is not the sensor id in its headers; "
                               "frames must be keyed by their sensor id")
    sensor = registry.sensor(meta.sensor_id)
    value = bytes(record.value or b"")
    if not value.startswith(JPEG_SOI):
        head = value[:4].hex(" ").upper() if value else "nothing"
        raise FrameDecodeError(f"{where}: not a JPEG ({len(value)} bytes starting {head}, not FF D8 FF)")
    if not value.rstrip(b"\x00").endswith(JPEG_EOI):
        raise FrameDecodeError(f"{where}: the JPEG ({len(value)} bytes) has no end-of-image marker FF D9: it was cut short")
    image = cv2.imdecode(np.frombuffer(value, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise FrameDecodeError(f"{where}: the JPEG ({len(value)} bytes) has start and end markers but cannot be decoded")
    h, w = image.shape[:2]
    if (w, h) != (meta.width_px, meta.height_px):
        raise FrameDecodeError(f"{where}: the JPEG is {w}x{h} px but its headers say {meta.width_px}x{meta.height_px}")
    return DecodedFrame(meta, sensor, image)

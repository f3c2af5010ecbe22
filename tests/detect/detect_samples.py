"""Fakes and frames for the detect tests: a blob detector (bright rectangles are objects, their
colour says the class), synthetic JPEG frames with sensor noise, and the records that carry them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from detect.filters import empty_arrays
from ibet import topics
from ibet.bus.base import Record
from ibet.messages import DetectionArrays, FrameMeta

REPO = Path(__file__).resolve().parents[2]
CLASSES = ("person", "vehicle", "boat")
COLOURS = {"person": (40, 40, 250), "vehicle": (40, 250, 40), "boat": (250, 40, 40)}  # BGR
FIXED, DRONE = "cam-vista-tower", "drone-vista-1"  # both in sector pac-blaine
T0_NS = 1_718_000_000_000_000_000


class BlobDetector:
    """A stand-in model: every bright rectangle is an object; its dominant colour is its class
    (red person, green vehicle, blue boat). Records each call's batch size."""

    class_names = CLASSES

    def __init__(self, score: float = 0.9):
        self.score, self.calls, self.last_call_s = score, [], 0.0

    def predict(self, images: Sequence[np.ndarray]) -> list[DetectionArrays]:
        self.calls.append(len(images))
        return [self._detect(image) for image in images]

    def _detect(self, image: np.ndarray) -> DetectionArrays:
        mask = (image.max(axis=2) > 200).astype(np.uint8)
        n, _labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
        boxes, classes = [], []
        for x, y, w, h, area in stats[1:n]:
            if area < 4:
                continue
            boxes.append([x, y, x + w, y + h])
            classes.append(int(2 - np.argmax(image[y + h // 2, x + w // 2])))  # B, G, R -> boat, vehicle, person
        if not boxes:
            return empty_arrays()
        k = len(boxes)
        return DetectionArrays(np.array(boxes, np.float64), np.full(k, self.score), np.array(classes, np.int64),
                               np.full(k, -1, np.int64))


def draw(boxes: Sequence[tuple[str, tuple[int, int, int, int]]], size: tuple[int, int] = (320, 240), seed: int = 0
         ) -> np.ndarray:
    """A dark frame (W, H = ``size``) with sensor noise and a filled rectangle per (class, xyxy)."""
    rng = np.random.default_rng(seed)
    image = np.clip(30 + rng.normal(0, 2.0, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    for kind, (x1, y1, x2, y2) in boxes:
        image[y1:y2, x1:x2] = COLOURS[kind]
    return image


def jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def frame_record(sensor: str, sequence: int, image: np.ndarray | None = None, value: bytes | None = None,
                 offset: int | None = None, key: bytes | None = None, size: tuple[int, int] | None = None) -> Record:
    """A record on ibet.frames.v1 as ingest produces it (``value`` overrides the JPEG bytes)."""
    h, w = image.shape[:2] if image is not None else (size[1], size[0]) if size else (240, 320)
    meta = FrameMeta(sensor_id=sensor, sequence=sequence, capture_ts_ns=T0_NS + sequence * 500_000_000,
                     ingest_ts_ns=T0_NS + sequence * 500_000_000 + 1, width_px=w, height_px=h)
    data = value if value is not None else jpeg(image)
    return Record(topics.FRAMES, 0, sequence if offset is None else offset, key or sensor.encode(), data,
                  tuple(meta.to_headers()))

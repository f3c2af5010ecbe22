"""Evidence for new per-sensor tracks: a JPEG crop of the object and the whole frame, downscaled.

Stored through :class:`EvidenceStore` (a filesystem by default) under deterministic keys
``<sensor>/<capture_ts_ns>-<sequence>/frame.jpg`` and ``.../track-<id>.jpg``, so a frame processed
again after a crash rewrites the same objects instead of adding new ones. The store answers each
``put`` with a reference (a ``file://`` URI for the filesystem) that the DetectionBatch carries.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import cv2
import numpy as np

from ibet.detect_config import EvidenceSettings


class EvidenceStore(Protocol):
    """Where evidence images go; ``put`` is durable when it returns."""

    def put(self, key: str, data: bytes) -> str:
        """Store ``data`` under ``key`` (``a/b/c.jpg``); return the reference to put in messages."""

    def get(self, ref: str) -> bytes:
        """The bytes a reference returned by :meth:`put` points to."""


class FilesystemEvidenceStore:
    """Evidence as files under ``root``; references are ``file://`` URIs. Writes are atomic."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()

    def put(self, key: str, data: bytes) -> str:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ValueError(f"evidence key {key!r} leaves the store's folder")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return path.as_uri()

    def get(self, ref: str) -> bytes:
        parts = urlsplit(ref)
        path = Path(unquote(parts.path)).resolve()
        if parts.scheme != "file" or self.root not in path.parents:
            raise ValueError(f"{ref!r} is not a reference of this store ({self.root.as_uri()})")
        return path.read_bytes()


def frame_key(sensor_id: str, capture_ts_ns: int, sequence: int) -> str:
    return f"{sensor_id}/{capture_ts_ns}-{sequence}"


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"cannot encode a {image.shape} image as JPEG")
    return buf.tobytes()


def downscaled(image: np.ndarray, max_px: int) -> np.ndarray:
    """``image`` with its longer side at most ``max_px`` (aspect kept)."""
    h, w = image.shape[:2]
    scale = max_px / max(h, w)
    if scale >= 1:
        return image
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def crop(image: np.ndarray, box_xyxy: np.ndarray, padding: float) -> np.ndarray:
    """The box with ``padding`` (share of its width/height) on every side, clipped to the image."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    px, py = (x2 - x1) * padding, (y2 - y1) * padding
    c1, r1 = int(np.clip(np.floor(x1 - px), 0, w - 1)), int(np.clip(np.floor(y1 - py), 0, h - 1))
    c2, r2 = int(np.clip(np.ceil(x2 + px), c1 + 1, w)), int(np.clip(np.ceil(y2 + py), r1 + 1, h))
    return image[r1:r2, c1:c2]


def store_new_track_evidence(store: EvidenceStore, settings: EvidenceSettings, image: np.ndarray, sensor_id: str,
                             capture_ts_ns: int, sequence: int, boxes: np.ndarray, track_ids: np.ndarray
                             ) -> tuple[str, dict[int, str]]:
    """Store the downscaled frame and one crop per box (``boxes`` (k, 4), ``track_ids`` (k,));
    return the frame's reference and each track's crop reference."""
    key = frame_key(sensor_id, capture_ts_ns, sequence)
    frame_ref = store.put(f"{key}/frame.jpg", encode_jpeg(downscaled(image, settings.frame_max_px), settings.jpeg_quality))
    crops = {int(t): store.put(f"{key}/track-{int(t)}.jpg", encode_jpeg(crop(image, b, settings.crop_padding),
                                                                         settings.jpeg_quality))
             for b, t in zip(boxes, track_ids, strict=True)}
    return frame_ref, crops

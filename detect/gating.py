"""Motion gating for fixed cameras: infer only when something moved, as Frigate does.

Each sensor's frame is compared with its *reference*: the last frame that went to the model.
Frames are reduced to grey at ``analysis_width_px``, blurred (sensor noise and JPEG blocks), and
differenced; a pixel changed when its grey level moved more than ``pixel_threshold``. With fewer
than ``min_changed_px`` changed pixels the scene is still the one the model last saw, so that
inference's detections still hold and are published again for this frame (a parked vehicle or a
person standing still stays detected; the fuse stage keeps its track). Because the comparison is
with the reference and not the previous frame, slow movement accumulates until it counts. At least
every ``max_skip_s`` of event time the model runs anyway (light changes, a missed slow mover).

Pure: numpy and OpenCV on arrays; the per-sensor references live in the gate, not saved (after a
restart each sensor's first frame simply goes to the model).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ibet.detect_config import MotionSettings


def analysis_image(image: np.ndarray, settings: MotionSettings) -> np.ndarray:
    """The grey, downscaled, blurred version of a BGR frame that gating compares (uint8, 2-D)."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    h, w = grey.shape
    if w > settings.analysis_width_px:
        grey = cv2.resize(grey, (settings.analysis_width_px, max(1, round(h * settings.analysis_width_px / w))),
                          interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(grey, (settings.blur_px, settings.blur_px), 0)


def changed_pixels(reference: np.ndarray, current: np.ndarray, pixel_threshold: int) -> int:
    """How many pixels differ by more than ``pixel_threshold`` grey levels between two analysis images."""
    return int(np.count_nonzero(cv2.absdiff(reference, current) > pixel_threshold))


@dataclass
class _Reference:
    image: np.ndarray
    capture_ts_ns: int


class MotionGate:
    """Per-sensor decision: run the model on this frame, or reuse the last inference."""

    def __init__(self, settings: MotionSettings):
        self.settings = settings
        self._references: dict[str, _Reference] = {}

    def should_infer(self, sensor_id: str, image: np.ndarray, capture_ts_ns: int) -> bool:
        """True when the frame must go to the model (first frame, motion, or ``max_skip_s`` passed);
        the frame then becomes the sensor's reference."""
        current = analysis_image(image, self.settings)
        ref = self._references.get(sensor_id)
        infer = (
            ref is None
            or ref.image.shape != current.shape
            or capture_ts_ns - ref.capture_ts_ns >= self.settings.max_skip_s * 1e9
            or capture_ts_ns < ref.capture_ts_ns  # out of order: do not trust the comparison
            or changed_pixels(ref.image, current, self.settings.pixel_threshold) >= self.settings.min_changed_px
        )
        if infer:
            self._references[sensor_id] = _Reference(current, capture_ts_ns)
        return infer

    def forget(self, sensor_id: str) -> None:
        self._references.pop(sensor_id, None)

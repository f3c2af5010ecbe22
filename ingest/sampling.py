"""Pure frame policies of pulled sources: which frames to keep (rate sampling) and how to encode them.

No I/O: :class:`RateSampler` looks only at capture timestamps, :func:`reencode` only at pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

_NS_PER_S = 1_000_000_000
#: Timestamps read from containers are often rounded to the millisecond (OpenCV's
#: CAP_PROP_POS_MSEC, image names in epoch ms), so a frame this close before its due time counts
#: as due; without it a 10 fps file sampled at 3 Hz would skip a frame now and then.
DEFAULT_TOLERANCE_NS = 1_000_000


class RateSampler:
    """Keeps frames so the output runs at ``rate_hz`` on the source's own timeline, without drift.

    The first frame is kept; then each frame whose capture time is at or after the next due
    time (less ``tolerance_ns``). Due times sit on a fixed grid ``first + k / rate_hz``, so the
    output rate does not drift when source frames arrive late or jittery; after a gap the grid
    skips ahead (no burst of catch-up frames). A frame at or before the last kept one is dropped.

    >>> sampler = RateSampler(2.0)  # 10 fps in, 2 Hz out
    >>> [t for t in range(0, 2_000_000_000, 100_000_000) if sampler.keep(t)]
    [0, 500000000, 1000000000, 1500000000]
    """

    def __init__(self, rate_hz: float, tolerance_ns: int = DEFAULT_TOLERANCE_NS):
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be > 0, got {rate_hz!r}")
        self.rate_hz = rate_hz
        self.interval_ns = max(1, round(_NS_PER_S / rate_hz))
        self.tolerance_ns = min(tolerance_ns, self.interval_ns // 2)
        self._due_ns: int | None = None
        self._last_kept_ns: int | None = None

    def keep(self, capture_ts_ns: int) -> bool:
        """Whether the frame captured at ``capture_ts_ns`` (ns) is kept; advances the schedule if so."""
        if self._due_ns is None:
            self._due_ns = capture_ts_ns
        if capture_ts_ns < self._due_ns - self.tolerance_ns:
            return False
        if self._last_kept_ns is not None and capture_ts_ns <= self._last_kept_ns:
            return False
        # Next grid point after this frame: skip whole intervals after a gap, never rebase the grid.
        missed = max(0, (capture_ts_ns - self._due_ns) // self.interval_ns)
        self._due_ns += (missed + 1) * self.interval_ns
        self._last_kept_ns = capture_ts_ns
        return True


def scaled_size(width_px: int, height_px: int, max_width_px: int | None) -> tuple[int, int]:
    """Size after the downscale policy: unchanged unless wider than ``max_width_px``, aspect kept.

    >>> scaled_size(1920, 1080, 1280)
    (1280, 720)
    """
    if max_width_px is None or width_px <= max_width_px:
        return width_px, height_px
    return max_width_px, max(1, round(height_px * max_width_px / width_px))


def reencode(image_bgr: np.ndarray, max_width_px: int | None, jpeg_quality: int) -> tuple[bytes, int, int]:
    """JPEG bytes of ``image_bgr`` (H x W x 3 uint8, or H x W grey), and their width and height in px.

    Frames wider than ``max_width_px`` are downscaled with INTER_AREA (the resampling that does
    not alias when shrinking), keeping the aspect ratio; narrower ones keep their size.
    ``jpeg_quality`` is OpenCV's 0-100. Raises ValueError for an empty image or a failed encode.
    """
    if image_bgr is None or image_bgr.ndim not in (2, 3) or image_bgr.size == 0:
        raise ValueError("cannot encode an empty image")
    height_px, width_px = image_bgr.shape[:2]
    new_w, new_h = scaled_size(width_px, height_px, max_width_px)
    if (new_w, new_h) != (width_px, height_px):
        image_bgr = cv2.resize(image_bgr, (new_w, new_h), interpolation=cv2.INTER_AREA)
    ok, buffer = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    if not ok:
        raise ValueError(f"OpenCV could not encode a {width_px}x{height_px} image as JPEG")
    return buffer.tobytes(), new_w, new_h

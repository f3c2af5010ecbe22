"""Sample video files for the pulled-source tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

S = 1_000_000_000
T0 = 1_718_000_000 * S  # 2024-06-10, a fixed start of the files' timelines


def write_video(path: Path, fps: float = 10.0, seconds: float = 6.0, size: tuple[int, int] = (160, 120)) -> Path:
    """An MJPG .avi (no extra codecs needed) whose frame k is filled with grey level k % 256."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened(), "OpenCV cannot write MJPG .avi files"
    for k in range(round(fps * seconds)):
        writer.write(np.full((size[1], size[0], 3), k % 256, np.uint8))
    writer.release()
    return path

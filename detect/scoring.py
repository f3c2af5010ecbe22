"""Detections against the simulator's truth: per-class recall at an IoU threshold.

A true box counts when it is visible enough and large enough to be labelled (the same rules as
the training and held-out sets, :func:`sim.dataset.yolo_lines`); each is matched one-to-one to a
detection of its class in the same frame by maximum IoU (scipy's linear_sum_assignment) and is
recalled when that IoU reaches the threshold.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

MIN_VISIBLE = 0.5  # as sim.dataset.write_dataset labels
MIN_BOX_PX = 4.0


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, m) IoU of boxes ``a`` (n, 4) and ``b`` (m, 4), xyxy."""
    a, b = a.reshape(-1, 1, 4), b.reshape(1, -1, 4)
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


def countable(truth_boxes: Iterable) -> list:
    """The truth boxes (``sim.render.TruthBox``) a detector is expected to find."""
    return [b for b in truth_boxes if b.visible_fraction >= MIN_VISIBLE
            and min(b.xyxy_px[2] - b.xyxy_px[0], b.xyxy_px[3] - b.xyxy_px[1]) >= MIN_BOX_PX]


@dataclass
class RecallCounter:
    """Accumulates true boxes and recalled ones per class, frame by frame."""

    iou_threshold: float = 0.5
    truth: dict[str, int] = field(default_factory=dict)
    found: dict[str, int] = field(default_factory=dict)

    def add_frame(self, truth_boxes: Sequence, boxes_xyxy: np.ndarray, class_names: Sequence[str]) -> None:
        """One frame: its truth boxes, and the detections' boxes (k, 4) and class names (k,)."""
        names = np.asarray(class_names, dtype=object)
        for kind in {b.kind for b in countable(truth_boxes)}:
            truth = np.array([b.xyxy_px for b in countable(truth_boxes) if b.kind == kind], np.float64)
            mine = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)[names == kind] if len(names) else np.zeros((0, 4))
            self.truth[kind] = self.truth.get(kind, 0) + len(truth)
            if len(mine):
                iou = iou_matrix(truth, mine)
                rows, cols = linear_sum_assignment(-iou)
                self.found[kind] = self.found.get(kind, 0) + int((iou[rows, cols] >= self.iou_threshold).sum())

    def recall(self) -> dict[str, float]:
        """Recall per class that had truth boxes."""
        return {k: self.found.get(k, 0) / n for k, n in sorted(self.truth.items()) if n}

    def overall(self) -> float:
        total = sum(self.truth.values())
        return sum(self.found.values()) / total if total else float("nan")

"""Per-class filters: box area limits before tracking, score smoothing along a track, and the
minimum score a detection needs to be published. Pure functions over DetectionArrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ibet.detect_config import DetectSettings
from ibet.messages import DetectionArrays


def empty_arrays() -> DetectionArrays:
    """No detections: shapes (0, 4), (0,), (0,), (0,)."""
    return DetectionArrays(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64))


def select(dets: DetectionArrays, keep: np.ndarray) -> DetectionArrays:
    """The detections where ``keep`` (bool mask or index array) holds, as a new DetectionArrays."""
    return DetectionArrays(dets.xyxy[keep].reshape(-1, 4), dets.confidence[keep], dets.class_id[keep], dets.tracker_id[keep])


def class_limits(settings: DetectSettings, class_names: Sequence[str]) -> dict[str, np.ndarray]:
    """Per class id (index into ``class_names``) arrays: min_score, min_area, max_area, smoothing."""
    filters = [settings.filter_for(name) for name in class_names]
    return {
        "min_score": np.array([f.min_score for f in filters]),
        "min_area": np.array([f.min_area_px for f in filters]),
        "max_area": np.array([np.inf if f.max_area_px is None else f.max_area_px for f in filters]),
        "smoothing": np.array([f.smoothing for f in filters]),
    }


def area_filter(dets: DetectionArrays, limits: dict[str, np.ndarray]) -> DetectionArrays:
    """Drop boxes whose area (px²) is outside their class's [min_area, max_area]; unknown class ids go too."""
    known = (dets.class_id >= 0) & (dets.class_id < len(limits["min_area"]))
    cls = np.where(known, dets.class_id, 0)
    area = (dets.xyxy[:, 2] - dets.xyxy[:, 0]) * (dets.xyxy[:, 3] - dets.xyxy[:, 1])
    return select(dets, known & (area >= limits["min_area"][cls]) & (area <= limits["max_area"][cls]))


def smooth_scores(dets: DetectionArrays, running: dict[int, float], limits: dict[str, np.ndarray]) -> np.ndarray:
    """Each tracked detection's running score, ``a * score + (1 - a) * previous`` with its class's
    smoothing ``a``; ``running`` (track id -> score) is updated in place. Untracked detections keep
    their own score. Returns the (n,) scores to publish."""
    out = dets.confidence.astype(np.float64).copy()
    for i in np.flatnonzero(dets.tracker_id >= 0):
        track, a = int(dets.tracker_id[i]), float(limits["smoothing"][dets.class_id[i]])
        previous = running.get(track)
        out[i] = out[i] if previous is None else a * out[i] + (1 - a) * previous
        running[track] = float(out[i])
    return out


def publishable(dets: DetectionArrays, scores: np.ndarray, limits: dict[str, np.ndarray]) -> DetectionArrays:
    """The detections whose (smoothed) score reaches their class's min_score, carrying that score."""
    keep = scores >= limits["min_score"][dets.class_id]
    return DetectionArrays(dets.xyxy[keep].reshape(-1, 4), np.clip(scores[keep], 0.0, 1.0), dets.class_id[keep],
                           dets.tracker_id[keep])

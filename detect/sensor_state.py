"""What detect remembers per sensor, and the pure step from a frame's raw detections to the ones
it publishes: area filter, the image tracker, score smoothing, minimum score, and which tracks are new.

The saved part (tracker, running scores, tracks already given evidence) round-trips through JSON
(:meth:`SensorState.to_state`); the last published detections, reused while motion gating skips
frames, are not saved: a restarted worker sends each sensor's first frame to the model anyway.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detect.filters import area_filter, empty_arrays, publishable, smooth_scores
from detect.tracking import SensorTracker
from ibet.detect_config import TrackerSettings
from ibet.messages import DetectionArrays

STATE_VERSION = 1
log = logging.getLogger(__name__)
_NEVER_AGAIN = 2.0  # a "best score" no detection beats (scores are <= 1): finite, so the state stays plain JSON


@dataclass(frozen=True)
class FrameDetections:
    """The detections one frame publishes, and the indices of those due evidence (a track just
    confirmed, or seen better than before)."""

    detections: DetectionArrays
    evidence_indices: np.ndarray
    inferred: bool


@dataclass
class SensorState:
    tracker: SensorTracker
    running_scores: dict[int, float] = field(default_factory=dict)
    evidenced: dict[int, tuple[float, int]] = field(default_factory=dict)  # track id -> (best score cut, crops cut)
    last_sequence: int | None = None
    last_published: DetectionArrays | None = None

    @classmethod
    def new(cls, settings: TrackerSettings) -> SensorState:
        return cls(SensorTracker(settings))

    def after_inference(self, raw: DetectionArrays, limits: dict[str, np.ndarray], sequence: int,
                        time_s: float | None = None, improve_by: float = 0.15, max_crops: int = 3) -> FrameDetections:
        """Filter, track, smooth and select ``raw`` (one frame's model output, captured at ``time_s``).

        A track is due evidence (``evidence_indices``) when it is first confirmed, and again when
        its score beats the best view cut so far by ``improve_by``, up to ``max_crops`` per track."""
        dets = area_filter(raw, limits)
        dets = DetectionArrays(dets.xyxy, dets.confidence, dets.class_id, self.tracker.update(dets, time_s))
        scores = smooth_scores(dets, self.running_scores, limits)
        live = self.tracker.live_ids()
        self.running_scores = {t: s for t, s in self.running_scores.items() if t in live}
        self.evidenced = {t: v for t, v in self.evidenced.items() if t in live}
        published = publishable(dets, scores, limits)
        due = []
        for i, (track, score) in enumerate(zip(published.tracker_id, published.confidence, strict=True)):
            if track < 0:
                continue
            best, cut = self.evidenced.get(int(track), (None, 0))
            if best is None or (cut < max_crops and score >= best + improve_by):
                due.append(i)
                self.evidenced[int(track)] = (float(score), cut + 1)
        new = np.array(due, np.int64)
        self.last_published, self.last_sequence = published, sequence
        return FrameDetections(published, new, True)

    def reuse_last(self, sequence: int) -> FrameDetections:
        """Motion gating skipped this frame: the last inference's detections still hold."""
        self.last_sequence = sequence
        return FrameDetections(self.last_published or empty_arrays(), np.zeros(0, np.int64), False)

    def to_state(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "tracker": self.tracker.to_state(),
                "running_scores": {str(t): s for t, s in sorted(self.running_scores.items())},
                "evidenced": sorted(self.evidenced),
                "evidence_best": {str(t): list(v) for t, v in sorted(self.evidenced.items())},
                "last_sequence": self.last_sequence}

    @classmethod
    def from_state(cls, state: dict[str, Any], settings: TrackerSettings) -> SensorState:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"detect sensor state version {state.get('version')!r} is not {STATE_VERSION}")
        try:
            tracker = SensorTracker.from_state(state["tracker"], settings)
        except ValueError as exc:  # saved by an earlier tracker: start this sensor's tracks afresh,
            log.warning("detect: %s", exc)  # with ids after the old ones (fuse knows those as hints)
            tracker = SensorTracker(settings, next_id=int(state["tracker"].get("next_id", 1)))
            return cls(tracker, {}, {}, state["last_sequence"])
        return cls(tracker,
                   {int(t): float(s) for t, s in state["running_scores"].items()},
                   _evidenced(state), state["last_sequence"])


def _evidenced(state: dict[str, Any]) -> dict[int, tuple[float, int]]:
    """The tracks given evidence; a state from before ``evidence_best`` cut no better view again."""
    best = state.get("evidence_best")
    if best is not None:
        return {int(t): (float(v[0]), int(v[1])) for t, v in best.items()}
    return {int(t): (_NEVER_AGAIN, 1) for t in state["evidenced"]}

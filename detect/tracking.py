"""Per-sensor image-space tracking that holds at the pipeline's own frame rates (1-25 Hz) and for
small targets (8-20 px): a constant-velocity Kalman filter per track in pixels, stepped by the frames'
own capture times, and association by how far a detection lies from each track's *prediction*
measured against that prediction's uncertainty (Mahalanobis distance), not by box overlap alone.

Why not overlap (Ultralytics' ByteTrack, used before): at 2 Hz a walker 15 px tall moves about its
own width between frames, so yesterday's box and today's rarely overlap; ByteTrack then starts a new
track every frame and confirms none (the shipped foot-crossing scenario: 0 of 81 tower frames with a
track id). Here each track predicts where its box will be at the new frame's time; the gate grows
with the time since the track was last seen and with the track's speed uncertainty, so the same
walker is found at 2 Hz and at 25 Hz.

Per frame (ByteTrack's two stages, with the cost above):

1. predict every track to the frame's time;
2. match detections scoring >= ``track_high_thresh`` to all tracks (Hungarian assignment, scipy),
   cost = squared Mahalanobis distance of the box centre (gated at ``gate_probability`` of a 2-D
   chi-square) / the gate + ``iou_weight`` x (1 - IoU of the predicted box), refusing a size change
   over ``max_size_ratio``;
3. match detections >= ``track_low_thresh`` to the confirmed tracks still unmatched;
4. an unmatched detection >= ``new_track_thresh`` starts a tentative track; a track is confirmed
   (and its id reported) at its ``min_hits``-th detection; a tentative track missed once is dropped,
   a confirmed one after ``max_lost_s`` seconds unseen.

Units scale with the box: measurement noise, the velocity prior and the acceleration noise are in
box heights (per second, per second squared), so one setting fits a 12 px walker and a 200 px truck.

The whole state (time, next id, every track's filter) round-trips through :meth:`to_state` /
:meth:`from_state` as JSON, so a worker that restarts or takes over a partition continues the same
ids (JSON, not pickle: the state travels on a Kafka topic).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import chi2

from ibet.detect_config import TrackerSettings
from ibet.messages import DetectionArrays

STATE_VERSION = 2
_BIG = 1e9  # the cost of a pair the gate refuses


@dataclass
class _Track:
    """One track: ``x`` = centre x, y and their velocities (px, px/s), ``P`` its covariance, and the
    box size smoothed apart (w, h px)."""

    track_id: int
    x: np.ndarray
    P: np.ndarray
    w: float
    h: float
    last_seen_s: float
    hits: int = 1
    confirmed: bool = False

    def box(self) -> np.ndarray:
        cx, cy = self.x[0], self.x[1]
        return np.array([cx - self.w / 2, cy - self.h / 2, cx + self.w / 2, cy + self.h / 2])

    def to_json(self) -> dict[str, Any]:
        return {"id": self.track_id, "x": self.x.tolist(), "P": self.P.tolist(), "w": self.w, "h": self.h,
                "last_seen_s": self.last_seen_s, "hits": self.hits, "confirmed": self.confirmed}

    @classmethod
    def from_json(cls, s: dict[str, Any]) -> _Track:
        return cls(int(s["id"]), np.array(s["x"], np.float64), np.array(s["P"], np.float64), float(s["w"]),
                   float(s["h"]), float(s["last_seen_s"]), int(s["hits"]), bool(s["confirmed"]))


@dataclass
class SensorTracker:
    """The tracker of one sensor. ``update`` gives each detection its track id (-1: none yet)."""

    settings: TrackerSettings
    tracks: list[_Track] = field(default_factory=list)
    next_id: int = 1
    time_s: float | None = None
    frames: int = 0

    def __post_init__(self) -> None:
        self._gate = float(chi2.ppf(self.settings.gate_probability, 2))

    # -- one frame -----------------------------------------------------------------------------
    def update(self, dets: DetectionArrays, time_s: float | None = None) -> np.ndarray:
        """Advance to ``time_s`` (the frame's capture time, s; default: one nominal frame interval
        after the last) with ``dets``; return (n,) int64 track ids, -1 where a detection is not (yet)
        part of a confirmed track."""
        s = self.settings
        if time_s is None:
            time_s = (self.time_s or 0.0) + 1.0 / s.nominal_fps
        dt = 0.0 if self.time_s is None else max(0.0, float(time_s) - self.time_s)
        self.time_s, self.frames = float(time_s), self.frames + 1
        for track in self.tracks:
            self._predict(track, dt)

        xyxy = np.asarray(dets.xyxy, np.float64).reshape(-1, 4)
        conf = np.asarray(dets.confidence, np.float64)
        ids = np.full(len(conf), -1, np.int64)
        matched_tracks: set[int] = set()
        high = np.flatnonzero(conf >= s.track_high_thresh)
        low = np.flatnonzero((conf >= s.track_low_thresh) & (conf < s.track_high_thresh))
        unmatched_high = self._associate(xyxy, high, list(range(len(self.tracks))), matched_tracks, ids)
        confirmed_left = [i for i, t in enumerate(self.tracks) if t.confirmed and i not in matched_tracks]
        self._associate(xyxy, low, confirmed_left, matched_tracks, ids)

        kept = []
        for i, track in enumerate(self.tracks):
            if i in matched_tracks:
                kept.append(track)
            elif track.confirmed and self.time_s - track.last_seen_s <= s.max_lost_s:
                kept.append(track)  # lost for now: it may be found again
        self.tracks = kept
        for d in unmatched_high:
            if conf[d] >= s.new_track_thresh:
                self.tracks.append(self._start(xyxy[d]))
        return ids

    def live_ids(self) -> set[int]:
        """Ids of the confirmed tracks still kept (tracked, or lost and findable again)."""
        return {t.track_id for t in self.tracks if t.confirmed}

    # -- filter ---------------------------------------------------------------------------------
    def _start(self, box: np.ndarray) -> _Track:
        s = self.settings
        w, h = float(box[2] - box[0]), float(box[3] - box[1])
        size = max(h, 1.0)
        r, v = (s.measurement_noise_heights * size) ** 2, (s.velocity_prior_heights_per_s * size) ** 2
        track = _Track(self.next_id, np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, 0.0, 0.0]),
                       np.diag([r, r, v, v]), max(w, 1.0), size, self.time_s or 0.0)
        self.next_id += 1
        if s.min_hits <= 1:
            track.confirmed = True
        return track

    def _predict(self, track: _Track, dt: float) -> None:
        if dt <= 0:
            return
        f = np.array([[1, 0, dt, 0], [0, 1, 0, dt], [0, 0, 1, 0], [0, 0, 0, 1]], np.float64)
        q = (self.settings.accel_heights_per_s2 * track.h) ** 2  # white-noise acceleration
        g = np.array([[dt**4 / 4, dt**3 / 2], [dt**3 / 2, dt**2]]) * q
        qm = np.zeros((4, 4))
        qm[np.ix_([0, 2], [0, 2])] = g
        qm[np.ix_([1, 3], [1, 3])] = g
        track.x = f @ track.x
        track.P = f @ track.P @ f.T + qm

    def _correct(self, track: _Track, box: np.ndarray) -> None:
        s = self.settings
        z = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
        w, h = float(box[2] - box[0]), float(box[3] - box[1])
        r = (s.measurement_noise_heights * max(h, 1.0)) ** 2
        innovation_cov = track.P[:2, :2] + np.eye(2) * r
        gain = track.P[:, :2] @ np.linalg.inv(innovation_cov)
        track.x = track.x + gain @ (z - track.x[:2])
        track.P = (np.eye(4) - gain @ np.eye(2, 4)) @ track.P
        track.w += s.size_smoothing * (max(w, 1.0) - track.w)
        track.h += s.size_smoothing * (max(h, 1.0) - track.h)
        track.last_seen_s = self.time_s or 0.0
        track.hits += 1
        if track.hits >= s.min_hits:
            track.confirmed = True

    # -- association ----------------------------------------------------------------------------
    def _associate(self, xyxy: np.ndarray, det_indices: np.ndarray, track_indices: list[int],
                   matched_tracks: set[int], ids: np.ndarray) -> list[int]:
        """Match ``det_indices`` to ``track_indices``; correct the matched tracks, set their ids in
        ``ids`` (confirmed ones); return the detections left unmatched."""
        if len(det_indices) == 0:
            return []
        if not track_indices:
            return list(det_indices)
        cost = self._costs(xyxy[det_indices], [self.tracks[i] for i in track_indices])
        rows, cols = linear_sum_assignment(cost)
        unmatched = set(range(len(det_indices)))
        for r, c in zip(rows, cols, strict=True):
            if cost[r, c] >= _BIG:
                continue
            track = self.tracks[track_indices[c]]
            d = int(det_indices[r])
            self._correct(track, xyxy[d])
            matched_tracks.add(track_indices[c])
            unmatched.discard(r)
            if track.confirmed:
                ids[d] = track.track_id
        return [int(det_indices[r]) for r in sorted(unmatched)]

    def _costs(self, boxes: np.ndarray, tracks: list[_Track]) -> np.ndarray:
        s = self.settings
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        heights = np.maximum(boxes[:, 3] - boxes[:, 1], 1.0)
        widths = np.maximum(boxes[:, 2] - boxes[:, 0], 1.0)
        cost = np.full((len(boxes), len(tracks)), _BIG)
        for j, track in enumerate(tracks):
            r = (s.measurement_noise_heights * heights) ** 2  # (n,) each detection's own noise
            diff = centres - track.x[:2]
            p = track.P[:2, :2]
            a, b, d = p[0, 0] + r, p[0, 1], p[1, 1] + r
            det = a * d - b * b
            maha = (d * diff[:, 0] ** 2 - 2 * b * diff[:, 0] * diff[:, 1] + a * diff[:, 1] ** 2) / det
            ratio = np.maximum(np.maximum(heights / track.h, track.h / heights),
                               np.maximum(widths / track.w, track.w / widths))
            iou = _iou(boxes, track.box())
            ok = (maha <= self._gate) & (ratio <= s.max_size_ratio)
            cost[ok, j] = maha[ok] / self._gate + s.iou_weight * (1.0 - iou[ok])
        return cost

    # -- state ----------------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "next_id": self.next_id, "time_s": self.time_s, "frames": self.frames,
                "tracks": [t.to_json() for t in self.tracks]}

    @classmethod
    def from_state(cls, state: dict[str, Any], settings: TrackerSettings) -> SensorTracker:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"tracker state version {state.get('version')!r} is not {STATE_VERSION} "
                             "(a state of the earlier ByteTrack tracker starts afresh)")
        time_s = state.get("time_s")
        return cls(settings, [_Track.from_json(t) for t in state["tracks"]], int(state["next_id"]),
                   None if time_s is None else float(time_s), int(state.get("frames", 0)))


def _iou(boxes: np.ndarray, box: np.ndarray) -> np.ndarray:
    """IoU of each of ``boxes`` (n, 4) with ``box`` (4,)."""
    x1 = np.maximum(boxes[:, 0], box[0])
    y1 = np.maximum(boxes[:, 1], box[1])
    x2 = np.minimum(boxes[:, 2], box[2])
    y2 = np.minimum(boxes[:, 3], box[3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + (box[2] - box[0]) * (box[3] - box[1]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


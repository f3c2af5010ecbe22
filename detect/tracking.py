"""Per-sensor image-space tracking: Ultralytics' ByteTrack fed with plain arrays, state as JSON.

One :class:`SensorTracker` per sensor, so frames of several sensors can share a model call and
still never share ids. Its whole state (frame counter, next id, every tracked and lost track's
Kalman mean and covariance, score, class, age) round-trips through :meth:`to_state` /
:meth:`from_state`, so a worker that restarts or takes over a partition continues the same ids;
a test runs one tracker straight through and another restored half-way, and requires the same
output. JSON rather than pickle: the state travels on a Kafka topic, and unpickling what a topic
holds would run whatever code it names.

ByteTrack keeps removed tracks only to subtract them from its lost pool in the frame they are
removed; they are never matched again, so they are not saved. Its id counter is private
(``_ids``): it is replaced by :class:`_IdCounter`, whose next value can be read and saved.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detect.ultralytics_env import ultralytics_module
from ibet.detect_config import TrackerSettings
from ibet.messages import DetectionArrays

STATE_VERSION = 1
_TRACK_FIELDS = ("track_id", "is_activated", "state", "score", "start_frame", "frame_id", "tracklet_len", "cls", "idx")


class _IdCounter:
    """ByteTrack's id source (it calls ``next``), with a readable next value."""

    def __init__(self, next_id: int = 1):
        self.next_id = next_id

    def __iter__(self) -> _IdCounter:
        return self

    def __next__(self) -> int:
        value, self.next_id = self.next_id, self.next_id + 1
        return value


class _Boxes:
    """What ``BYTETracker.update`` reads from a results object: ``conf``, ``cls``, ``xywh``,
    ``len`` and boolean indexing."""

    def __init__(self, xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray):
        self.xyxy, self.conf, self.cls = xyxy, conf, cls

    @property
    def xywh(self) -> np.ndarray:
        centre = (self.xyxy[:, :2] + self.xyxy[:, 2:]) / 2
        return np.concatenate([centre, self.xyxy[:, 2:] - self.xyxy[:, :2]], axis=1)

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, index) -> _Boxes:
        return _Boxes(self.xyxy[index], self.conf[index], self.cls[index])


def _byte_tracker_module():
    ultralytics_module()
    from ultralytics.trackers import byte_tracker

    return byte_tracker


class SensorTracker:
    """ByteTrack for one sensor. ``update`` gives each detection its track id (-1: none yet)."""

    def __init__(self, settings: TrackerSettings):
        self.settings = settings
        self._module = _byte_tracker_module()  # first: it sets Ultralytics' offline environment
        from ultralytics.utils import IterableSimpleNamespace

        self._tracker = self._module.BYTETracker(IterableSimpleNamespace(tracker_type="bytetrack", **settings.model_dump()))
        self._tracker._ids = _IdCounter()

    def update(self, dets: DetectionArrays) -> np.ndarray:
        """Advance one frame with ``dets``; return (n,) int64 track ids, -1 where a detection is not
        (yet) part of a confirmed track (ByteTrack confirms a new track on its second frame)."""
        boxes = _Boxes(dets.xyxy.astype(np.float32).reshape(-1, 4), dets.confidence.astype(np.float32),
                       dets.class_id.astype(np.float32))
        rows = self._tracker.update(boxes)
        ids = np.full(len(dets), -1, np.int64)
        if len(rows):
            ids[rows[:, 7].astype(np.int64)] = rows[:, 4].astype(np.int64)
        return ids

    def live_ids(self) -> set[int]:
        """Ids of the tracks still tracked or lost (the ones that can appear again)."""
        return {int(t.track_id) for t in (*self._tracker.tracked_stracks, *self._tracker.lost_stracks)}

    # -- state -------------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        t = self._tracker
        return {"version": STATE_VERSION, "frame_id": t.frame_id, "next_id": t._ids.next_id,
                "tracked": [_track_state(s) for s in t.tracked_stracks], "lost": [_track_state(s) for s in t.lost_stracks]}

    @classmethod
    def from_state(cls, state: dict[str, Any], settings: TrackerSettings) -> SensorTracker:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"tracker state version {state.get('version')!r} is not {STATE_VERSION}")
        tracker = cls(settings)
        t = tracker._tracker
        t.frame_id = int(state["frame_id"])
        t._ids = _IdCounter(int(state["next_id"]))
        t.tracked_stracks = [tracker._track(s) for s in state["tracked"]]
        t.lost_stracks = [tracker._track(s) for s in state["lost"]]
        return tracker

    def _track(self, s: dict[str, Any]):
        strack_cls = self._module.STrack
        track = strack_cls.__new__(strack_cls)
        track.__init__(np.array([0.0, 0.0, 1.0, 1.0, 0.0]), 0.0, 0.0)  # every attribute exists, then set from state
        for name in _TRACK_FIELDS:
            setattr(track, name, s[name])
        track._tlwh = np.array(s["tlwh"], np.float32)
        track.mean = np.array(s["mean"], np.float64)
        track.covariance = np.array(s["covariance"], np.float64)
        track.kalman_filter = self._tracker.kalman_filter
        track.angle = None
        return track


def _track_state(track) -> dict[str, Any]:
    state = {name: getattr(track, name) for name in _TRACK_FIELDS}
    state = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in state.items()}
    state.update(tlwh=np.asarray(track._tlwh, np.float64).tolist(), mean=np.asarray(track.mean, np.float64).tolist(),
                 covariance=np.asarray(track.covariance, np.float64).tolist())
    return state

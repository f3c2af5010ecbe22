"""The per-sensor tracker at the pipeline's own rates: a 12 px walker that moves about its own width
between frames at 2 Hz keeps one id (boxes of consecutive frames do not overlap, which is where the
overlap-only ByteTrack gave none), two walkers passing each other keep theirs, a track survives a
gap in the frames, and the state from an earlier tracker version starts afresh instead of failing."""

from __future__ import annotations

import numpy as np

from detect.sensor_state import SensorState
from detect.tracking import SensorTracker
from ibet.detect_config import TrackerSettings
from ibet.messages import DetectionArrays


def _frame(boxes: list[tuple[float, float, float, float]], score: float = 0.8) -> DetectionArrays:
    n = len(boxes)
    return DetectionArrays(np.array(boxes, np.float64).reshape(-1, 4), np.full(n, score), np.zeros(n, np.int64),
                           np.full(n, -1, np.int64))


def _walker(x: float, y: float = 100.0, w: float = 6.0, h: float = 12.0):
    return (x, y, x + w, y + h)


def test_a_small_walker_at_2_hz_keeps_one_id_though_its_boxes_never_overlap():
    tracker = SensorTracker(TrackerSettings())
    ids = [int(tracker.update(_frame([_walker(50 + 7.0 * k)]), time_s=k * 0.5)[0]) for k in range(20)]
    assert ids[0] == -1 and len(set(ids[1:])) == 1 and ids[1] > 0  # confirmed at its second detection


def test_two_walkers_passing_each_other_keep_their_ids():
    tracker = SensorTracker(TrackerSettings())
    history = []
    for k in range(16):
        left, right = _walker(40 + 5.0 * k, 100), _walker(160 - 5.0 * k, 104)  # they pass at k = 12
        history.append(tracker.update(_frame([left, right]), time_s=k * 0.5).tolist())
    assert all(ids == history[1] for ids in history[1:]), history
    assert history[1][0] != history[1][1]


def test_a_track_is_found_again_after_a_gap_and_dropped_after_max_lost_s():
    settings = TrackerSettings(max_lost_s=3.0)
    tracker = SensorTracker(settings)
    first = [int(tracker.update(_frame([_walker(50 + 7.0 * k)]), time_s=k * 0.5)[0]) for k in range(4)]
    assert int(tracker.update(_frame([_walker(50 + 7.0 * 6)]), time_s=3.0)[0]) == first[-1]  # 1.5 s unseen
    tracker.update(_frame([]), time_s=10.0)  # 7 s unseen: gone
    assert tracker.live_ids() == set()


def test_a_state_saved_by_the_earlier_tracker_starts_the_sensor_afresh():
    old = {"version": 1, "tracker": {"version": 1, "frame_id": 3, "next_id": 4, "tracked": [], "lost": []},
           "running_scores": {}, "evidenced": [], "last_sequence": 7}
    old["running_scores"], old["evidenced"] = {"2": 0.9}, [2]
    state = SensorState.from_state(old, TrackerSettings())
    assert state.last_sequence == 7 and state.tracker.to_state()["tracks"] == []
    assert state.running_scores == {} and state.evidenced == {}  # nothing kept against ids that restart
    limits = {"min_score": np.zeros(3), "min_area": np.zeros(3), "max_area": np.full(3, np.inf), "smoothing": np.ones(3)}
    for k in range(2):
        result = state.after_inference(_frame([_walker(50 + 7.0 * k)]), limits, 8 + k, k * 0.5)
    assert result.detections.tracker_id.tolist() == [4]  # ids go on after the old tracker's (fuse hints)


def test_a_track_gets_a_crop_when_confirmed_and_again_when_seen_better_bounded():
    state = SensorState.new(TrackerSettings())
    limits = {"min_score": np.zeros(3), "min_area": np.zeros(3), "max_area": np.full(3, np.inf), "smoothing": np.ones(3)}
    due = []
    for k, score in enumerate([0.4, 0.45, 0.5, 0.7, 0.72, 0.9, 0.95, 0.99, 0.999]):
        result = state.after_inference(_frame([_walker(50 + 7.0 * k)], score), limits, k, k * 0.5,
                                       improve_by=0.15, max_crops=3)
        due.append(len(result.evidence_indices))
    # confirmed at frame 1 (0.45); better by 0.15 at 0.7 (frame 3) and at 0.9 (frame 5); then the bound
    assert due == [0, 1, 0, 1, 0, 1, 0, 0, 0]

"""Pure parts of detect, table-driven with the empty case first: tiling windows and merging,
per-class filters and score smoothing, motion differencing, evidence crops and the store."""

from __future__ import annotations

import numpy as np
import pytest
from detect_samples import draw

from detect.evidence import FilesystemEvidenceStore, crop, downscaled
from detect.filters import area_filter, class_limits, empty_arrays, publishable, smooth_scores
from detect.gating import MotionGate, analysis_image, changed_pixels
from detect.model import inference_shape
from detect.tiling import merge_boxes, tile_windows, tiled_detections
from ibet.detect_config import DetectSettings, MotionSettings, TilingSettings
from ibet.messages import DetectionArrays

CLASSES = ("person", "vehicle", "boat")


def dets(rows):
    """DetectionArrays from (x1, y1, x2, y2, score, class_id[, track]) rows."""
    a = np.array(rows, np.float64).reshape(-1, 7 if rows and len(rows[0]) == 7 else 6)
    track = a[:, 6].astype(np.int64) if a.shape[1] == 7 else np.full(len(a), -1, np.int64)
    return DetectionArrays(a[:, :4], a[:, 4], a[:, 5].astype(np.int64), track)


@pytest.mark.parametrize("w, h, tile, overlap, count", [(100, 100, 640, 64, 1), (640, 640, 640, 64, 1), (1280, 720, 640, 64, 6),
                                                         (3840, 2160, 640, 96, 7 * 4)])
def test_tiles_cover_the_frame_with_the_overlap_and_one_size(w, h, tile, overlap, count):
    windows = tile_windows(w, h, tile, overlap)
    assert len(windows) == count
    assert len({(x2 - x1, y2 - y1) for x1, y1, x2, y2 in windows}) == 1
    covered = np.zeros((h, w), bool)
    for x1, y1, x2, y2 in windows:
        covered[y1:y2, x1:x2] = True
    assert covered.all()
    xs = sorted({int(x) for x in windows[:, 0]})
    assert all(b - a <= tile - overlap for a, b in zip(xs, xs[1:], strict=False))


@pytest.mark.parametrize("rows, expected", [
    ([], []),
    ([(0, 0, 10, 10, 0.9, 0)], [(0, 0, 10, 10, 0.9, 0)]),
    # a box cut by a tile edge lies inside the whole box from the neighbouring tile: one box, the union
    ([(100, 50, 140, 130, 0.8, 0), (100, 50, 128, 130, 0.6, 0)], [(100, 50, 140, 130, 0.8, 0)]),
    ([(100, 50, 140, 130, 0.5, 0), (100, 50, 128, 130, 0.7, 0)], [(100, 50, 140, 130, 0.7, 0)]),
    # same place, different classes: both stay
    ([(100, 50, 140, 130, 0.8, 0), (100, 50, 128, 130, 0.6, 1)], [(100, 50, 140, 130, 0.8, 0), (100, 50, 128, 130, 0.6, 1)]),
    # two people side by side barely touching: both stay
    ([(0, 0, 10, 20, 0.8, 0), (9, 0, 19, 20, 0.7, 0)], [(0, 0, 10, 20, 0.8, 0), (9, 0, 19, 20, 0.7, 0)]),
])
def test_merging_tiled_boxes(rows, expected):
    merged = merge_boxes(dets(rows), ios_threshold=0.6)
    got = [(*box, s, c) for box, s, c in zip(merged.xyxy.tolist(), merged.confidence.tolist(), merged.class_id.tolist(),
                                             strict=True)]
    assert got == [tuple(float(v) for v in r[:5]) + (r[5],) for r in expected]


def test_tile_detections_are_mapped_back_to_frame_pixels_and_unscaled():
    windows = np.array([[0, 0, 100, 100], [80, 0, 180, 100]])
    per_tile = [dets([(10, 10, 30, 50, 0.9, 0)]), dets([(20, 20, 60, 100, 0.8, 2)])]  # second tile enlarged 2x
    out = tiled_detections(per_tile, windows, TilingSettings(tile_px=100, overlap_px=20, upscale=2.0))
    assert sorted(out.xyxy.tolist()) == [[5.0, 5.0, 15.0, 25.0], [90.0, 10.0, 110.0, 50.0]]


LIMITS = class_limits(DetectSettings(filters={"person": {"min_area_px": 50, "max_area_px": 2000, "min_score": 0.4},
                                              "vehicle": {"smoothing": 0.25}}), CLASSES)


@pytest.mark.parametrize("rows, kept", [
    ([], 0),
    ([(0, 0, 5, 5, 0.9, 0)], 0),  # person of 25 px² < 50
    ([(0, 0, 10, 10, 0.9, 0)], 1),
    ([(0, 0, 50, 50, 0.9, 0)], 0),  # person of 2500 px² > 2000
    ([(0, 0, 3, 3, 0.9, 1)], 0),  # vehicle under the default 16 px²
    ([(0, 0, 300, 300, 0.9, 1)], 1),  # no default maximum
    ([(0, 0, 10, 10, 0.9, 7)], 0),  # a class the model should not have
])
def test_area_filter_per_class(rows, kept):
    assert len(area_filter(dets(rows), LIMITS)) == kept


def test_scores_are_smoothed_along_tracks_and_thresholded_per_class():
    running: dict[int, float] = {}
    first = dets([(0, 0, 10, 10, 0.9, 1, 5), (0, 0, 10, 10, 0.35, 0, -1)])
    assert smooth_scores(first, running, LIMITS).tolist() == [0.9, 0.35] and running == {5: 0.9}
    dip = dets([(0, 0, 10, 10, 0.1, 1, 5)])
    smoothed = smooth_scores(dip, running, LIMITS)
    assert smoothed.tolist() == pytest.approx([0.25 * 0.1 + 0.75 * 0.9])  # vehicle smoothing 0.25
    assert len(publishable(dip, smoothed, LIMITS)) == 1  # a one-frame dip does not drop the vehicle
    assert len(publishable(first, np.array([0.9, 0.35]), LIMITS)) == 1  # the person at 0.35 < 0.4 is not published
    assert len(publishable(empty_arrays(), np.zeros(0), LIMITS)) == 0


@pytest.mark.parametrize("shape, size, expected", [((720, 1280), "native", (736, 1280)), ((1080, 1920), "native", (1088, 1920)),
                                                   ((720, 1280), 640, (384, 640)), ((640, 640), "native", (640, 640))])
def test_inference_shape(shape, size, expected):
    assert inference_shape(*shape, size) == expected


def test_noise_alone_changes_no_pixels_and_a_small_mover_does():
    s = MotionSettings()
    a, b = analysis_image(draw([], seed=1), s), analysis_image(draw([], seed=2), s)
    assert changed_pixels(a, b, s.pixel_threshold) == 0
    moved = analysis_image(draw([("vehicle", (100, 100, 106, 104))], seed=3), s)
    assert changed_pixels(a, moved, s.pixel_threshold) >= s.min_changed_px


def test_gate_references_are_per_sensor():
    gate = MotionGate(MotionSettings())
    still = draw([], seed=1)
    assert gate.should_infer("a", still, 1) and gate.should_infer("b", still, 1)
    assert not gate.should_infer("a", draw([], seed=2), 2)
    gate.forget("a")
    assert gate.should_infer("a", still, 3)


def test_crops_are_padded_and_clipped_and_frames_downscaled():
    image = np.zeros((100, 200, 3), np.uint8)
    assert crop(image, np.array([10, 10, 30, 50]), 0.25).shape == (60, 30, 3)
    assert crop(image, np.array([190, 90, 200, 100]), 0.5).shape == (15, 15, 3)
    assert downscaled(image, 100).shape == (50, 100, 3) and downscaled(image, 400).shape == (100, 200, 3)


def test_filesystem_store_round_trip_and_refuses_keys_outside(tmp_path):
    store = FilesystemEvidenceStore(tmp_path)
    ref = store.put("cam-1/123-4/frame.jpg", b"jpeg")
    assert ref.startswith("file://") and store.get(ref) == b"jpeg"
    assert store.put("cam-1/123-4/frame.jpg", b"again") == ref and store.get(ref) == b"again"  # replays overwrite
    with pytest.raises(ValueError, match="leaves the store"):
        store.put("../outside.jpg", b"x")
    with pytest.raises(ValueError, match="not a reference of this store"):
        store.get((tmp_path.parent / "x.jpg").as_uri())

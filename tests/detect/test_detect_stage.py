"""The detect stage on a stand-in model: bad frames become dead letters and the batch goes on,
frames of several sensors share model calls of batch_size, one DetectionBatch per frame keyed by
sector, evidence for new tracks, and motion gating for fixed cameras."""

from __future__ import annotations

import pytest
from detect_samples import DRONE, FIXED, draw, frame_record, jpeg

from detect.evidence import FilesystemEvidenceStore
from detect.exceptions import FrameDecodeError
from ibet import topics
from ibet.exceptions import MessageDecodeError, RegistryError
from ibet.messages import DetectionBatch

PERSON = [("person", (40, 60, 52, 90))]


def batches(outcomes):
    return [DetectionBatch.from_bytes(o.outputs[0].value) for o in outcomes]


@pytest.mark.parametrize("bad, error, words", [
    (lambda: frame_record(DRONE, 1, value=b""), FrameDecodeError, "not a JPEG (0 bytes"),
    (lambda: frame_record(DRONE, 1, value=b"\x89PNG\r\n\x1a\n" + b"\0" * 50), FrameDecodeError, "not a JPEG"),
    (lambda: frame_record(DRONE, 1, value=jpeg(draw(PERSON))[:-400]), FrameDecodeError, "cut short"),
    (lambda: frame_record(DRONE, 1, value=b"\xff\xd8\xff" + b"\x00garbage" * 40 + b"\xff\xd9"), FrameDecodeError,
     "cannot be decoded"),
    (lambda: frame_record(DRONE, 1, draw(PERSON), size=(640, 480)).__class__(
        topics.FRAMES, 0, 1, DRONE.encode(), jpeg(draw(PERSON, size=(640, 480))),
        frame_record(DRONE, 1, draw(PERSON)).headers), FrameDecodeError, "the JPEG is 640x480 px but its headers say 320x240"),
    (lambda: frame_record(DRONE, 1, draw(PERSON), key=b"someone-else"), FrameDecodeError, "keyed by their sensor id"),
    (lambda: frame_record("cam-atlantis", 1, draw(PERSON)), RegistryError, "unknown sensor 'cam-atlantis'"),
    (lambda: frame_record(DRONE, 1, draw(PERSON)).__class__(topics.FRAMES, 0, 1, DRONE.encode(), jpeg(draw(PERSON)), ()),
     MessageDecodeError, "ibet.schema: missing header"),
])
def test_a_bad_frame_is_a_dead_letter_naming_the_problem_and_the_batch_goes_on(make_stage, bad, error, words):
    stage, detector = make_stage()
    records = [frame_record(DRONE, 0, draw(PERSON)), bad(), frame_record(DRONE, 2, draw(PERSON))]
    outcomes = stage.process_batch(records)
    assert outcomes[0].error is None and outcomes[2].error is None
    assert isinstance(outcomes[1].error, error) and words in str(outcomes[1].error), outcomes[1].error
    assert outcomes[1].outputs == ()
    good = batches([outcomes[0], outcomes[2]])
    assert [b.frame_sequence for b in good] == [0, 2] and all(len(b.detections) == 1 for b in good)
    assert detector.calls == [2]  # the good frames still shared one model call


def test_one_detection_batch_per_frame_keyed_by_sector_with_boxes_classes_and_telemetry(make_stage):
    stage, _ = make_stage()
    scene = [("person", (40, 60, 52, 90)), ("vehicle", (150, 100, 200, 130)), ("boat", (250, 180, 300, 200))]
    [outcome] = stage.process_batch([frame_record(DRONE, 7, draw(scene))])
    [out] = outcome.outputs
    assert out.topic == topics.DETECTIONS and out.key == b"pac-blaine"
    batch = DetectionBatch.from_bytes(out.value)
    assert (batch.sensor_id, batch.frame_sequence, batch.image_width_px, batch.image_height_px) == (DRONE, 7, 320, 240)
    assert (batch.model_name, batch.model_version) == ("blob", "1")
    found = sorted((d.class_name, d.box_xyxy_px) for d in batch.detections)
    assert found == [("boat", (250.0, 180.0, 300.0, 200.0)), ("person", (40.0, 60.0, 52.0, 90.0)),
                     ("vehicle", (150.0, 100.0, 200.0, 130.0))]


def test_an_empty_scene_publishes_an_empty_batch(make_stage):
    stage, _ = make_stage()
    [batch] = batches(stage.process_batch([frame_record(DRONE, 0, draw([]))]))
    assert batch.detections == () and batch.sensor_id == DRONE


def test_frames_of_several_sensors_share_model_calls_of_batch_size(make_stage):
    stage, detector = make_stage(batch_size=3, motion={"enabled_for": []})
    records = [frame_record(DRONE if k % 2 else FIXED, k, draw(PERSON, seed=k)) for k in range(7)]
    outcomes = stage.process_batch(records)
    assert detector.calls == [3, 3, 1]
    assert [b.sensor_id for b in batches(outcomes)] == [FIXED, DRONE] * 3 + [FIXED]


def test_frames_of_different_sizes_go_to_separate_calls(make_stage):
    stage, detector = make_stage(batch_size=8)
    records = [frame_record(DRONE, 0, draw(PERSON)), frame_record(DRONE, 1, draw(PERSON, size=(640, 480))),
               frame_record(DRONE, 2, draw(PERSON))]
    outcomes = stage.process_batch(records)
    assert sorted(detector.calls) == [1, 2]
    assert [len(b.detections) for b in batches(outcomes)] == [1, 1, 1]


def test_tracks_get_ids_and_new_tracks_get_evidence_once(make_stage, tmp_path):
    store = FilesystemEvidenceStore(tmp_path / "evidence")
    stage, _ = make_stage(evidence=store)
    frames = [frame_record(DRONE, k, draw([("person", (40 + 3 * k, 60, 52 + 3 * k, 90))], seed=k)) for k in range(4)]
    out = batches(stage.process_batch(frames))
    ids = [[d.sensor_track_id for d in b.detections] for b in out]
    assert ids[0] == [None] and ids[1:] == [[1], [1], [1]]  # confirmed at its second detection (min_hits 2)
    assert out[1].evidence_ref is not None and [b.evidence_ref for b in (out[0], *out[2:])] == [None, None, None]
    frame_jpeg = store.get(out[1].evidence_ref)
    assert frame_jpeg.startswith(b"\xff\xd8")
    crops = sorted(p.name for p in (tmp_path / "evidence").rglob("*.jpg"))
    assert crops == ["frame.jpg", "track-1.jpg"]


def test_motion_gating_skips_still_frames_of_fixed_cameras_and_keeps_their_detections(make_stage):
    stage, detector = make_stage(motion={"enabled_for": ["fixed_camera"], "max_skip_s": 3.0})
    still = [frame_record(FIXED, k, draw(PERSON, seed=k)) for k in range(5)]  # new noise each frame, nothing moves
    moved = frame_record(FIXED, 5, draw([("person", (60, 60, 72, 90))], seed=5))
    late = frame_record(FIXED, 12, draw([("person", (60, 60, 72, 90))], seed=12))  # 3.5 s after the last inference
    out = batches(stage.process_batch([*still, moved, late]))
    assert detector.calls == [3]  # frame 0 (first), 5 (motion), 12 (max_skip_s)
    assert all([d.box_xyxy_px for d in b.detections] == [(40.0, 60.0, 52.0, 90.0)] for b in out[:5])
    assert [d.box_xyxy_px for d in out[5].detections] == [(60.0, 60.0, 72.0, 90.0)]
    assert out[1].detections[0].sensor_track_id == out[0].detections[0].sensor_track_id


def test_drones_are_not_gated_by_default(make_stage):
    stage, detector = make_stage()
    stage.process_batch([frame_record(DRONE, k, draw(PERSON, seed=k)) for k in range(4)])
    assert detector.calls == [4]


def test_gating_off_infers_every_frame(make_stage):
    stage, detector = make_stage(motion={"enabled_for": []})
    stage.process_batch([frame_record(FIXED, k, draw(PERSON, seed=k)) for k in range(4)])
    assert detector.calls == [4]


def test_per_class_filters_drop_small_boxes_and_low_scores(make_stage):
    stage, detector = make_stage(filters={"person": {"min_area_px": 500}, "boat": {"min_score": 0.95}})
    scene = [("person", (40, 60, 52, 90)), ("vehicle", (150, 100, 200, 130)), ("boat", (250, 180, 300, 200))]
    [batch] = batches(stage.process_batch([frame_record(DRONE, 0, draw(scene))]))
    assert [d.class_name for d in batch.detections] == ["vehicle"]  # person 360 px² < 500; boat 0.9 < 0.95


def test_tiled_frames_find_every_object_once_even_across_tile_edges(make_stage):
    scene = [("person", (300, 100, 340, 180)), ("boat", (10, 10, 60, 30)), ("vehicle", (560, 400, 630, 470))]
    stage, detector = make_stage(batch_size=16, tiling={"enabled_for": ["drone"], "tile_px": 256, "overlap_px": 64})
    [batch] = batches(stage.process_batch([frame_record(DRONE, 0, draw(scene, size=(640, 480)))]))
    assert sorted((d.class_name, d.box_xyxy_px) for d in batch.detections) == [
        ("boat", (10.0, 10.0, 60.0, 30.0)), ("person", (300.0, 100.0, 340.0, 180.0)), ("vehicle", (560.0, 400.0, 630.0, 470.0))]
    assert detector.calls == [9]  # 3 x 3 tiles of 256 px in one call

"""Evidence references as the detect stage's filesystem store writes them (``file://`` URIs) are
shown, served, exported and purged by the console through keys relative to its evidence folder;
references outside that folder are refused."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from console_samples import login, make_alert
from wire_samples import DETECTIONS, batch, event, track

from console.retention import purge
from console.review import review_detection
from console.store import ConsoleStore, detection_id
from detect.evidence import FilesystemEvidenceStore
from ibet.audit import Actor
from ibet.clock import ManualClock
from ibet.evidence_refs import evidence_file, evidence_key, evidence_keys


def _jpeg(seed: int) -> bytes:
    image = np.random.default_rng(seed).integers(0, 255, (36, 64, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", image)[1].tobytes()


@pytest.mark.parametrize(("ref", "key"), [
    ("cam-1/17-92/track-27.jpg", "cam-1/17-92/track-27.jpg"),
    ("cam-1/../cam-2/frame.jpg", "cam-2/frame.jpg"),
    ("{root_uri}/cam-1/17-92/frame.jpg", "cam-1/17-92/frame.jpg"),
    ("{root_uri}/cam%201/frame.jpg", "cam 1/frame.jpg"),
    ("../outside.jpg", None),
    ("{root_uri}/../outside.jpg", None),
    ("file:///etc/passwd", None),
    ("/etc/passwd", None),
    ("s3://bucket/cam-1/frame.jpg", None),
    ("", None),
    (".", None),
])
def test_a_reference_is_a_key_only_inside_the_evidence_folder(tmp_path: Path, ref: str, key: str | None):
    root = tmp_path / "evidence"
    root.mkdir()
    assert evidence_key(ref.format(root_uri=root.resolve().as_uri()), root) == key


def test_keys_keep_order_and_drop_repeats_and_strangers(tmp_path: Path):
    uri = (tmp_path / "a/crop.jpg").resolve().as_uri()
    assert evidence_keys([uri, "a/frame.jpg", "a/crop.jpg", None, "file:///elsewhere.jpg"], tmp_path) == ["a/crop.jpg", "a/frame.jpg"]
    assert evidence_file("a/crop.jpg", tmp_path) is None  # not written: no file


def test_file_uris_from_the_detect_store_are_shown_served_exported_and_purged(console):
    store = FilesystemEvidenceStore(console.evidence_dir)
    crop_uri = store.put("cam-vista-tower/1789-92/track-4.jpg", _jpeg(1))
    frame_uri = store.put("cam-vista-tower/1789-92/frame.jpg", _jpeg(2))
    assert crop_uri.startswith("file:///")
    clock = ManualClock(start_ns=track().time_ts_ns)
    detections = batch((DETECTIONS[0].model_copy(update={"evidence_ref": crop_uri}),), evidence_ref=frame_uri)
    ConsoleStore(console.engine, clock).write([detections, track(evidence_refs=(crop_uri, frame_uri)),
                                               event(evidence_refs=(crop_uri, frame_uri))])
    alert = console.lifecycle.open(make_alert(("usbp",), event_ids=(event().event_id,)))
    analyst = login(console.url, "analyst1")
    keys = ["cam-vista-tower/1789-92/track-4.jpg", "cam-vista-tower/1789-92/frame.jpg"]

    assert analyst.get("/api/review/tracks").json()[0]["evidence_keys"] == keys
    [row] = analyst.get("/api/detections").json()
    assert (row["crop_key"], row["evidence_key"]) == tuple(keys)
    for page in (analyst.get("/review"), analyst.get("/review", params={"kind": "tracks"})):
        assert all(f'src="/api/evidence/{k}"' in page.text for k in keys) and "file://" not in page.text
    assert analyst.get(f"/api/alerts/{alert.alert_id}").json()["evidence_refs"] == keys  # the crop first
    assert analyst.get(f"/api/evidence/{keys[0]}").content == store.get(crop_uri)
    assert analyst.get("/api/evidence/../db/console.sqlite3").status_code == 404

    review_detection(console.engine, detection_id(detections, 0), "confirmed", "a walker", Actor("user", "a"), clock.now_ns())
    data = analyst.get("/api/dataset/yolo").content
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "images/cam-vista-tower__1789-92__frame.jpg" in names and "labels/cam-vista-tower__1789-92__frame.txt" in names

    # an unlinked detection of another frame, stored the same way
    other_uri = store.put("cam-vista-tower/1790-93/frame.jpg", _jpeg(3))
    ConsoleStore(console.engine, clock).write([batch((DETECTIONS[0],), frame_sequence=93, evidence_ref=other_uri)])
    # 31 days on: the alert's detection and track stay with their files, the unlinked frame goes
    clock.advance(31 * 86400.0)
    result = purge(console.engine, console.evidence_dir, 30.0, Actor("system", "ibet"), clock.now_ns())
    assert (result["detections_purged"], result["detections_kept_linked"], result["tracks_kept_linked"],
            result["evidence_files_removed"]) == (1, 1, 1, 1)
    assert all((console.evidence_dir / k).exists() for k in keys)
    assert not (console.evidence_dir / "cam-vista-tower/1790-93/frame.jpg").exists()

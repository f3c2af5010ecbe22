"""10,000 tracks in one sector on the real broker: fuse saves the sector as changelog parts, none
near the record limit (one snapshot of it was ~20 MB, over the 8 MiB limit, and killed every
worker); a worker that dies before its commit is replaced by one that restores all 10,000 tracks
from the state topic and continues them."""

from __future__ import annotations

import time

import numpy as np
import pytest
import yaml

from fuse.measurements import GroundMeasurement
from fuse.sector_fusion import SectorFusion
from ibet import topics
from ibet.bus.base import OutRecord
from ibet.config import IbetConfig, RunnerSettings
from ibet.messages import DetectionBatch
from ibet.registry import load_registry
from ibet.runner import StageRunner
from ibet.state_changelog import split_key
from ibet_app.stages import build_stage

pytestmark = pytest.mark.kafka

SOUTH_WEST = (44.975, -72.12)  # ~3 km south of the line at Derby Line: no border events
SECTOR = CAMERA = REGISTRY = None  # set per test: a sector of its own on the shared broker


@pytest.fixture(autouse=True)
def own_sector(tmp_path, unique):
    """The shipped registry plus a copy of qc-derby and its drone under ids of this test's own, so no
    state another test saved on the shared broker is restored into it."""
    global SECTOR, CAMERA, REGISTRY
    data = yaml.safe_load(open("config/registry.yaml", encoding="utf-8"))
    SECTOR, CAMERA = f"scale-{unique}", f"drone-scale-{unique}"
    data["sectors"].append({**next(x for x in data["sectors"] if x["id"] == "qc-derby"), "id": SECTOR, "neighbours": []})
    data["sensors"].append({**next(x for x in data["sensors"] if x["id"] == "drone-derby-1"), "id": CAMERA,
                            "sector_id": SECTOR})
    for partner in data.get("partners", []):
        if "qc-derby" in partner.get("sectors", []):
            partner["sectors"].append(SECTOR)
    (tmp_path / "registry.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    REGISTRY = load_registry(tmp_path / "registry.yaml")
TARGETS = 10_000


class DieBeforeCommit(Exception):
    pass


class DiesOnSecondBatch:
    def __init__(self) -> None:
        self.batches = 0

    def before_commit(self, records) -> None:
        self.batches += 1
        if self.batches == 2:
            raise DieBeforeCommit


def seeded_sector(stage, start_ns: int) -> SectorFusion:
    """The sector with TARGETS confirmed tracks: a 100 x 100 grid of people 15 m apart seen 4 times."""
    fusion = SectorFusion(SECTOR, stage.model, stage.settings)
    fusion.expect_sensors([s.id for s in REGISTRY.sensors_in(SECTOR)])
    east, north = np.meshgrid(np.arange(100) * 15.0, np.arange(100) * 15.0)
    lat = SOUTH_WEST[0] + north.ravel() / 111_320.0
    lon = SOUTH_WEST[1] + east.ravel() / (111_320.0 * np.cos(np.radians(SOUTH_WEST[0])))
    for scan in range(4):
        t = start_ns + scan * 500_000_000
        placed = [GroundMeasurement(CAMERA, t, float(a), float(o), np.eye(2), "person", 0.9, None, f"{CAMERA}:{scan}:{k}")
                  for k, (a, o) in enumerate(zip(lat, lon, strict=True))]
        fusion.process(placed, t, time.time_ns(), CAMERA)
    return fusion


def empty_batch(sequence: int, capture_ns: int) -> OutRecord:
    batch = DetectionBatch(sensor_id=CAMERA, sector_id=SECTOR, frame_sequence=sequence, capture_ts_ns=capture_ns,
                           image_width_px=1280, image_height_px=720, model_name="test", model_version="1")
    return OutRecord(topics.DETECTIONS, SECTOR.encode(), batch.to_bytes())


def test_ten_thousand_tracks_survive_a_worker_that_dies_before_its_commit(kafka_bus, produce, drain):
    kafka_bus.create_topics([topics.DETECTIONS, topics.TRACKS, topics.EVENTS, topics.FUSE_STATE,
                             topics.dlq_topic(topics.DETECTIONS)], partitions=3)
    start_ns = time.time_ns() - 10_000_000_000
    first = build_stage("fuse", IbetConfig(), REGISTRY)  # as `ibet run fuse` builds it
    first.sectors[SECTOR] = seeded_sector(first, start_ns)
    live = {t.track_id for t in first.sectors[SECTOR].tracker.tracks if t.status.value == "confirmed"}
    assert len(live) >= TARGETS

    settings = RunnerSettings(batch_max_records=1, poll_timeout_s=0.2)
    produce([empty_batch(10, start_ns + 2_000_000_000), empty_batch(11, start_ns + 2_500_000_000)])
    hooks = DiesOnSecondBatch()
    with pytest.raises(DieBeforeCommit):
        StageRunner(first, kafka_bus, settings, hooks=hooks).run(idle_stop_s=5)

    saved = [r for partition in range(3) for r in kafka_bus.read_partition(topics.FUSE_STATE, partition, 60)
             if r.key is not None and split_key(r.key)[0] == SECTOR]  # every partition to its end
    assert len({r.key for r in saved}) >= TARGETS and max(len(r.value or b"") for r in saved) < 64 * 1024

    produce([empty_batch(12, start_ns + 3_000_000_000)])
    second = build_stage("fuse", IbetConfig(), REGISTRY)  # the replacement: restores, re-reads batch 11
    StageRunner(second, kafka_bus, settings).run(idle_stop_s=8)
    restored = {t.track_id for t in second.sectors[SECTOR].tracker.tracks}
    assert live <= restored  # every track continued, none restarted under a new id
    assert second.sectors[SECTOR].tracker.reorder.newest_ns == start_ns + 3_000_000_000  # and took the later frames

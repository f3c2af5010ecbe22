"""The console-store stage, the schema of revisions 0004-0005, the review queue of detections and
tracks, the YOLO export, retention and reports."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from console_samples import REPO, csrf_of, login, make_alert
from sqlalchemy import func, inspect, select
from typer.testing import CliRunner
from wire_samples import DETECTIONS, batch, event, track

from alerts.lifecycle import AlertLifecycle
from console import tables
from console.accounts import Accounts
from console.cases import create_case
from console.cli import users_app
from console.errors import InvalidRequest, NotFound
from console.reports import report
from console.retention import purge
from console.review import QueueFilter, list_tracks, review_detection, review_track, yolo_dataset
from console.store import ConsoleStore, ConsoleStoreStage, detection_id
from ibet import topics
from ibet.audit import Actor, audit_entries
from ibet.bus.base import OutRecord
from ibet.bus.memory import MemoryBus
from ibet.clock import ManualClock, SystemClock
from ibet.config import DatabaseSettings, RunnerSettings
from ibet.db import make_engine, migrate
from ibet.messages import SensorHealthEvent, SensorHealthState, TrackClass
from ibet.runner import StageRunner

ANALYST = Actor("user", "usr-analyst", role="analyst")
DAY_S = 86400.0


@pytest.fixture
def engine(database_url: str):
    engine = make_engine(DatabaseSettings(url=database_url))
    migrate(engine)
    yield engine
    engine.dispose()


def count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_migration_creates_the_tables_the_console_uses(engine):
    found = inspect(engine)
    for table in tables.metadata.sorted_tables:
        assert {c["name"] for c in found.get_columns(table.name)} == {c.name for c in table.columns}, table.name
    migrate(engine)  # a second time: nothing to do


def test_upgrading_to_0005_keeps_stored_tracks_and_fills_their_sensors(database_url: str):
    from alembic import command

    from ibet.db import alembic_config

    engine = make_engine(DatabaseSettings(url=database_url))
    migrate(engine, "0004")
    with engine.begin() as conn:
        conn.execute(tables.tracks.insert().values(  # only the columns revision 0004 has
            track_id="trk-before", sector_id="pacific-blaine", version=1, time_ts_ns=1, lat_deg=49.0, lon_deg=-122.7,
            class_name="person", status="confirmed", track_json=track(sensor_ids=("cam-a", "drone-2")).model_dump_json(),
            stored_ns=1))
    migrate(engine)
    assert [t["track_id"] for t in list_tracks(engine, QueueFilter(sensor_id="drone-2"))] == ["trk-before"]
    config = alembic_config()  # and back down: the tracks stay, the new tables go
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0004")
    assert "console_track_reviews" not in inspect(engine).get_table_names()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT track_id FROM console_tracks").scalars().all() == ["trk-before"]
    engine.dispose()


def test_console_store_stage_keeps_what_the_pipeline_produced(engine):
    bus = MemoryBus(default_partitions=2)
    producer = bus.producer()
    health = SensorHealthEvent(sensor_id="drone-07", sector_id="pacific-blaine", state=SensorHealthState.FEED_LOST,
                               event_ts_ns=track().time_ts_ns, expected_interval_s=0.5, silent_s=12.0)
    for topic, key, value in [
        (topics.TRACKS, b"pacific-blaine", track(version=5).to_bytes()),
        (topics.TRACKS, b"pacific-blaine", track(version=3, lat_deg=48.0).to_bytes()),  # older: not the current state
        (topics.TRACKS, b"pacific-blaine", b"{not json"),  # dead letter, the batch goes on
        (topics.DETECTIONS, b"pacific-blaine", batch(DETECTIONS).to_bytes()),
        (topics.EVENTS, b"pacific-blaine", event().to_bytes()),
        (topics.SENSOR_HEALTH, b"drone-07", health.to_bytes()),
    ]:
        producer.send(OutRecord(topic, key, value))
    producer.flush()
    runner = StageRunner(ConsoleStoreStage(ConsoleStore(engine)), bus, RunnerSettings(poll_timeout_s=0.05))
    stats = runner.run(idle_stop_s=0.3)
    assert (stats.consumed, stats.dead_lettered) == (6, 1)
    assert "{not json" in bus.records(topics.TRACKS + topics.DLQ_SUFFIX)[0].value.decode("utf-8", "replace")
    with engine.connect() as conn:
        stored = conn.execute(select(tables.tracks)).one()
        assert (stored.version, stored.lat_deg) == (5, track().lat_deg)
        assert conn.execute(select(func.count()).select_from(tables.track_points)).scalar_one() == 2
        dets = conn.execute(select(tables.detections).order_by(tables.detections.c.det_index)).all()
        assert [d.detection_id for d in dets] == [detection_id(batch(DETECTIONS), i) for i in range(2)]
        assert dets[0].evidence_ref == "evidence/drone-07/42.jpg" and dets[0].class_name == "person"
        assert conn.execute(select(tables.event_evidence.c.evidence_ref)).scalars().all() == ["evidence/drone-07/42.jpg"]
        assert conn.execute(select(tables.sensor_health.c.state)).scalar_one() == "feed_lost"
    # consumed again after a crash: nothing changes
    before = {t.name: count(engine, t) for t in (tables.tracks, tables.track_points, tables.detections, tables.events,
                                                 tables.event_evidence, tables.sensor_health)}
    ConsoleStore(engine).write([track(version=5), batch(DETECTIONS), event(), health])
    assert before == {name: count(engine, tables.metadata.tables[name]) for name in before}


def test_tracks_are_stored_with_their_evidence_and_reviewed_with_a_reason(engine):
    clock = ManualClock(start_ns=track().time_ts_ns)
    store = ConsoleStore(engine, clock)
    crop, frame = "drone-07/20261128T101500/track-3.jpg", "drone-07/20261128T101500/frame.jpg"
    store.write([track(version=1, evidence_refs=(crop,)), track(version=2, time_ts_ns=track().time_ts_ns + 10**9,
                                                                      evidence_refs=(crop, frame))])
    store.write([track(version=2, evidence_refs=(crop, frame))])  # consumed again: nothing doubles
    store.write([track(track_id="trk-boat", class_name=TrackClass.BOAT, sensor_ids=("cam-river-1",),
                       time_ts_ns=track().time_ts_ns + 5 * 10**9, version=1)])
    everything = list_tracks(engine, QueueFilter())
    assert [t["track_id"] for t in everything] == ["trk-boat", "trk-pacific-blaine-17"]  # most recently seen first
    person = everything[1]
    assert person["evidence_refs"] == [crop, frame] and person["points"] == 2
    assert (person["first_ts_ns"], person["time_ts_ns"]) == (track().time_ts_ns, track().time_ts_ns + 10**9)
    assert person["sensor_ids"] == ["drone-07", "cam-peace-arch-2"] and person["verdict"] is None
    assert everything[0]["evidence_refs"] == []
    # filters: sensor (whole ids only), class, sector, time
    assert [t["track_id"] for t in list_tracks(engine, QueueFilter(sensor_id="cam-river-1"))] == ["trk-boat"]
    assert list_tracks(engine, QueueFilter(sensor_id="drone-0")) == []
    assert list_tracks(engine, QueueFilter(sensor_id="%")) == []
    assert [t["track_id"] for t in list_tracks(engine, QueueFilter(class_name="person"))] == ["trk-pacific-blaine-17"]
    assert list_tracks(engine, QueueFilter(sector_id="elsewhere")) == []
    assert [t["track_id"] for t in list_tracks(engine, QueueFilter(since_ns=track().time_ts_ns + 2 * 10**9))] == ["trk-boat"]

    review_track(engine, "trk-boat", "false_alarm", "a log drifting", ANALYST, clock.now_ns())
    with pytest.raises(InvalidRequest, match="needs a reason"):
        review_track(engine, "trk-pacific-blaine-17", "confirmed", " ", ANALYST, clock.now_ns())
    with pytest.raises(InvalidRequest, match="verdict must be one of"):
        review_track(engine, "trk-pacific-blaine-17", "maybe", "unsure", ANALYST, clock.now_ns())
    with pytest.raises(NotFound, match="no track"):
        review_track(engine, "trk-nobody", "confirmed", "seen", ANALYST, clock.now_ns())
    assert [t["track_id"] for t in list_tracks(engine, QueueFilter(reviewed=False))] == ["trk-pacific-blaine-17"]
    [reviewed] = list_tracks(engine, QueueFilter(reviewed=True))
    assert (reviewed["track_id"], reviewed["verdict"], reviewed["reason"]) == ("trk-boat", "false_alarm", "a log drifting")
    review_track(engine, "trk-boat", "confirmed", "second look: a boat", ANALYST, clock.now_ns())  # a changed verdict
    assert list_tracks(engine, QueueFilter(reviewed=True))[0]["verdict"] == "confirmed"
    assert [e.action for e in audit_entries(engine, "track")] == ["track.confirmed", "track.false_alarm"]  # newest first


def test_analyst_reviews_a_track_on_the_tracks_page_and_through_the_api(console):
    crop = "drone-07/20261128T101500/track-3.jpg"
    ConsoleStore(console.engine).write([track(evidence_refs=(crop,))])
    analyst = login(console.url, "analyst1")
    page = analyst.get("/review", params={"kind": "tracks"})
    assert page.status_code == 200 and "trk-pacific-blaine-17" in page.text and f"/api/evidence/{crop}" in page.text
    assert "drone-07, cam-peace-arch-2" in page.text
    assert "trk-pacific-blaine-17" not in analyst.get("/review").text  # the detections tab
    url, headers = "/api/tracks/trk-pacific-blaine-17/review", {"X-CSRF-Token": csrf_of(analyst)}
    assert analyst.post(url, json={"verdict": "confirmed", "reason": "walker"}, headers={"X-CSRF-Token": "forged"}
                        ).status_code == 403
    assert analyst.post(url, json={"verdict": "maybe", "reason": "walker"}, headers=headers).status_code == 422
    assert analyst.post(url, json={"verdict": "confirmed", "reason": ""}, headers=headers).status_code == 422
    assert analyst.post("/api/tracks/trk-nobody/review", json={"verdict": "confirmed", "reason": "x"},
                        headers=headers).status_code == 404
    ok = analyst.post(url, json={"verdict": "confirmed", "reason": "walker seen on two sensors"}, headers=headers)
    assert ok.status_code == 200 and ok.json() == {"track_id": "trk-pacific-blaine-17", "verdict": "confirmed"}
    [listed] = analyst.get("/api/review/tracks", params={"reviewed": "true"}).json()
    assert (listed["verdict"], listed["reason"], listed["evidence_refs"]) == ("confirmed", "walker seen on two sensors", [crop])
    assert analyst.get("/api/review/tracks", params={"reviewed": "false"}).json() == []


def _detections(engine, evidence_dir: Path, clock, sensor: str, sequence: int, boxes, ref: str | None = None):
    ref = ref or f"evidence/{sensor}/{sequence}.jpg"
    if evidence_dir is not None:
        path = evidence_dir / ref
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), np.full((1080, 1920, 3), 90, np.uint8))
    b = batch(tuple(DETECTIONS[i] for i in boxes), sensor_id=sensor, frame_sequence=sequence, capture_ts_ns=clock.now_ns(),
              evidence_ref=ref)
    ConsoleStore(engine, clock).write([b])
    return [detection_id(b, i) for i in range(len(boxes))]


def test_yolo_export_has_confirmed_labels_and_background_frames(engine, tmp_path):
    clock = SystemClock()
    confirmed, dismissed = _detections(engine, tmp_path, clock, "drone-07", 1, [0, 1])
    (false_alarm,) = _detections(engine, tmp_path, clock, "drone-07", 2, [1])
    _detections(engine, tmp_path, clock, "drone-07", 3, [0])  # not reviewed: not exported
    review_detection(engine, confirmed, "confirmed", "a walker", ANALYST, clock.now_ns())
    review_detection(engine, dismissed, "dismissed", "too small to tell", ANALYST, clock.now_ns())
    review_detection(engine, false_alarm, "false_alarm", "a rock", ANALYST, clock.now_ns())
    with pytest.raises(Exception, match="needs a reason"):
        review_detection(engine, confirmed, "confirmed", "  ", ANALYST, clock.now_ns())
    data, counts = yolo_dataset(engine, tmp_path)
    assert counts == {"images": 2, "labels": 1, "background_images": 1, "missing_evidence": 0}
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert sorted(archive.namelist()) == ["data.yaml", "images/evidence__drone-07__1.jpg", "images/evidence__drone-07__2.jpg",
                                          "labels/evidence__drone-07__1.txt", "labels/evidence__drone-07__2.txt"]
    x1, y1, x2, y2 = DETECTIONS[0].box_xyxy_px
    cls, cx, cy, w, h = archive.read("labels/evidence__drone-07__1.txt").decode().split()
    assert cls == "0" and float(cx) == pytest.approx((x1 + x2) / 2 / 1920, abs=1e-6)
    assert float(cy) == pytest.approx((y1 + y2) / 2 / 1080, abs=1e-6) and float(h) == pytest.approx((y2 - y1) / 1080, abs=1e-6)
    assert archive.read("labels/evidence__drone-07__2.txt") == b""
    assert yaml.safe_load(archive.read("data.yaml"))["names"] == {0: "person"}


def test_retention_purges_only_old_unlinked_detections_and_is_audited(engine, tmp_path):
    clock = ManualClock(start_ns=1_800_000_000_000_000_000)
    lifecycle = AlertLifecycle(engine, clock)
    (old_unlinked,) = _detections(engine, tmp_path, clock, "cam-a", 1, [0])
    (old_alert_evidence,) = _detections(engine, tmp_path, clock, "cam-a", 2, [0])
    (old_in_case,) = _detections(engine, tmp_path, clock, "cam-a", 3, [0])
    ConsoleStore(engine, clock).write([event(event_id="evt-kept", evidence_refs=("evidence/cam-a/2.jpg",))])
    alert = lifecycle.open(make_alert(("usbp",), event_ids=("evt-kept",)))
    case_id = create_case(engine, lifecycle, "kept", [alert.alert_id], ANALYST, clock.now_ns())
    with engine.begin() as conn:
        conn.execute(tables.case_items.insert().values(case_id=case_id, item_kind="detection", item_id=old_in_case,
                                                       added_by="x", added_ns=clock.now_ns()))
    clock.advance(31 * DAY_S)
    (recent,) = _detections(engine, tmp_path, clock, "cam-a", 4, [0])
    result = purge(engine, tmp_path, 30.0, Actor("system", "ibet"), clock.now_ns())
    assert (result["detections_purged"], result["evidence_files_removed"], result["detections_kept_linked"]) == (1, 1, 2)
    with engine.connect() as conn:
        left = set(conn.execute(select(tables.detections.c.detection_id)).scalars())
    assert left == {old_alert_evidence, old_in_case, recent} and old_unlinked not in left
    assert not (tmp_path / "evidence/cam-a/1.jpg").exists() and (tmp_path / "evidence/cam-a/2.jpg").exists()
    (entry,) = audit_entries(engine, "retention")
    assert entry.action == "retention.purged" and entry.detail["detections_purged"] == 1


def test_retention_purges_old_unlinked_tracks_with_their_crops_and_keeps_linked_ones(engine, tmp_path):
    clock = ManualClock(start_ns=1_800_000_000_000_000_000)
    store, lifecycle = ConsoleStore(engine, clock), AlertLifecycle(engine, clock)

    def stored_track(track_id: str, crop: str, **changes):
        (tmp_path / crop).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / crop), np.full((40, 20, 3), 120, np.uint8))
        store.write([track(track_id=track_id, time_ts_ns=clock.now_ns(), evidence_refs=(crop,), **changes)])

    stored_track("trk-old", "cam-a/1/track-1.jpg")
    store.write([track(track_id="trk-old", time_ts_ns=clock.now_ns() + 1, version=6)])  # a second point
    review_track(engine, "trk-old", "dismissed", "a deer", ANALYST, clock.now_ns())
    stored_track("trk-alerted", "cam-a/2/track-2.jpg")
    stored_track("trk-in-case", "cam-a/3/track-3.jpg")
    # a crop the purged track shares with a detection that stays is kept
    stored_track("trk-shares", "cam-a/4/track-4.jpg")
    store.write([batch((DETECTIONS[0].model_copy(update={"evidence_ref": "cam-a/4/track-4.jpg"}),),
                       capture_ts_ns=clock.now_ns() + 40 * 86400 * 10**9)])
    store.write([event(event_id="evt-alerted", track_id="trk-alerted")])
    alert = lifecycle.open(make_alert(("usbp",), event_ids=("evt-alerted",)))
    case_id = create_case(engine, lifecycle, "kept", [alert.alert_id], ANALYST, clock.now_ns())
    with engine.begin() as conn:
        conn.execute(tables.case_items.insert().values(case_id=case_id, item_kind="track", item_id="trk-in-case",
                                                       added_by="x", added_ns=clock.now_ns()))
    clock.advance(31 * DAY_S)
    stored_track("trk-recent", "cam-a/5/track-5.jpg")
    result = purge(engine, tmp_path, 30.0, Actor("system", "ibet"), clock.now_ns())
    assert (result["tracks_purged"], result["tracks_kept_linked"], result["evidence_files_removed"]) == (2, 2, 1)
    with engine.connect() as conn:
        assert set(conn.execute(select(tables.tracks.c.track_id)).scalars()) == {"trk-alerted", "trk-in-case", "trk-recent"}
        for table in (tables.track_points, tables.track_evidence, tables.track_reviews):
            assert not {"trk-old", "trk-shares"} & set(conn.execute(select(table.c.track_id)).scalars()), table.name
    assert not (tmp_path / "cam-a/1/track-1.jpg").exists()
    assert all((tmp_path / f"cam-a/{n}/track-{n}.jpg").exists() for n in (2, 3, 4, 5))
    (entry,) = audit_entries(engine, "retention")
    assert entry.detail["tracks_purged"] == 2


def test_reports_count_cases_acknowledgement_times_and_false_alarms(engine):
    clock = ManualClock(start_ns=1_800_000_000_000_000_000)
    lifecycle = AlertLifecycle(engine, clock)
    operator = Actor("user", "usr-op", role="operator")
    a, b, c = (lifecycle.open(make_alert(("usbp", "rcmp"))) for _ in range(3))
    drill = lifecycle.open(make_alert(("usbp", "rcmp")).model_copy(update={"alert_id": "alr-00000000drill001",
                                                                          "exercise": True}))
    clock.advance(30.0)
    lifecycle.acknowledge(a.alert_id, operator)
    clock.advance(60.0)
    lifecycle.acknowledge(b.alert_id, operator)
    lifecycle.resolve(a.alert_id, operator, "false_alarm")
    lifecycle.resolve(b.alert_id, operator, "confirmed_crossing")
    lifecycle.resolve(drill.alert_id, operator, "false_alarm")  # an exercise: in none of the figures
    create_case(engine, lifecycle, "joint op", [a.alert_id, c.alert_id], ANALYST, clock.now_ns())
    r = report(engine)
    assert r["cases_total"] == 1 and r["cases_by_partner"] == {"rcmp": 1, "usbp": 1}
    assert (r["alerts_total"], r["exercise_alerts"]) == (3, 1)
    assert r["cases_by_sector"] == {"pac-blaine": 1}
    (sector,) = r["alerts_by_sector"]
    assert (sector["alerts"], sector["acknowledged"], sector["resolved"], sector["false_alarms"]) == (3, 2, 2, 1)
    assert sector["median_ack_s"] == pytest.approx(60.0) and sector["false_alarm_rate"] == pytest.approx(0.5)


def test_create_admin_from_the_command_line(tmp_path):
    db = f"sqlite:///{tmp_path}/ibet.sqlite3"
    config = tmp_path / "ibet.yaml"
    config.write_text(yaml.safe_dump({"registry_path": str(REPO / "config/registry.yaml"), "database": {"url": db}}))
    runner = CliRunner()
    result = runner.invoke(users_app, ["create-admin", "chief", "--config", str(config), "--password-stdin"],
                           input="a very long passphrase\n")
    assert result.exit_code == 0, result.output
    assert "created admin chief" in result.output
    engine = make_engine(DatabaseSettings(url=db))
    assert Accounts(engine).authenticate("chief", "a very long passphrase").role.value == "admin"
    short = runner.invoke(users_app, ["create-admin", "deputy", "--config", str(config), "--password-stdin"], input="short\n")
    assert short.exit_code == 2 and "at least 12 characters" in short.output
    engine.dispose()


def test_purge_from_the_command_line_as_the_nightly_cronjob_runs_it(tmp_path):
    from console.cli import console_app

    db, evidence = f"sqlite:///{tmp_path}/ibet.sqlite3", tmp_path / "evidence"
    config = tmp_path / "ibet.yaml"
    config.write_text(yaml.safe_dump({"registry_path": str(REPO / "config/registry.yaml"), "database": {"url": db},
                                      "console": {"evidence_dir": str(evidence), "retention_days": 30}}))
    engine = make_engine(DatabaseSettings(url=db))
    migrate(engine)
    clock = ManualClock(start_ns=SystemClock().now_ns() - int(40 * DAY_S * 1e9))  # 40 days ago
    _detections(engine, evidence, clock, "cam-a", 1, [0])
    ConsoleStore(engine, clock).write([track(time_ts_ns=clock.now_ns())])
    result = CliRunner().invoke(console_app, ["--config", str(config), "purge"])
    assert result.exit_code == 0, result.output
    assert "purged 1 detections, 1 tracks and 1 evidence files" in result.output
    assert count(engine, tables.detections) == count(engine, tables.tracks) == 0
    assert [e.action for e in audit_entries(engine, "retention")] == ["retention.purged"]
    engine.dispose()

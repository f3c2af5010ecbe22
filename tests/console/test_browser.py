"""Browser tests: Playwright drives Debian's Chromium (headless, executable_path, no browser
download) against the console served on loopback. Screenshots go to reports/screenshots/.

Operator: an alert arrives live on the list and the map without a reload, with its evidence,
and is acknowledged. Partner: sees only its own alerts. Analyst: dismisses a detection, confirms
a fused track, creates a joint operation from two alerts and checks its exports.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from console_samples import PASSWORD, REPO, make_alert, wait_for_js

from console.store import ConsoleStore
from ibet.audit import audit_entries
from ibet.clock import SystemClock
from ibet.messages import (
    BorderEvent,
    BorderEventType,
    Detection,
    DetectionBatch,
    Direction,
    SensorHealthEvent,
    SensorHealthState,
    TrackClass,
    TrackStatus,
    TrackUpdate,
)

SHOTS = REPO / "reports" / "screenshots"


@pytest.fixture(autouse=True, scope="module")
def screenshots_folder():
    SHOTS.mkdir(parents=True, exist_ok=True)


def log_in(page, username: str) -> None:
    page.goto("/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle") if False else page.wait_for_url(lambda url: "/login" not in url)


def write_jpeg(path: Path, seed: int) -> None:
    """A small real JPEG (a noisy field with a dark blob) standing in for a frame's evidence."""
    rng = np.random.default_rng(seed)
    image = (rng.normal(110, 20, (180, 320, 3))).clip(0, 255).astype(np.uint8)
    cv2.rectangle(image, (150, 70), (170, 120), (20, 20, 20), -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


def test_operator_sees_an_alert_arrive_live_and_acknowledges_it(page, console):
    store = ConsoleStore(console.engine)
    log_in(page, "oper1")
    page.wait_for_selector("#live-status.live")
    assert page.locator("#alert-list li").count() == 0
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads

    # the pipeline: evidence of a border event, the track, then the alert the alert stage opens
    write_jpeg(console.evidence_dir / "evidence/drone-vista-1/42.jpg", 1)
    now = SystemClock().now_ns()
    event = BorderEvent(event_id="evt-live-1", event_type=BorderEventType.CROSSING, track_id="trk-live-1",
                        sector_id="pac-blaine", event_ts_ns=now, lat_deg=49.0021, lon_deg=-122.7540,
                        direction=Direction.CA_TO_US, class_name=TrackClass.PERSON, confidence=0.9,
                        sensor_ids=("drone-vista-1",), evidence_refs=("evidence/drone-vista-1/42.jpg",))
    tracks = [TrackUpdate(track_id="trk-live-1", sector_id="pac-blaine", time_ts_ns=now + i, lat_deg=49.0030 - i * 0.0005,
                          lon_deg=-122.7540, position_cov_m2=((4.0, 0.0), (0.0, 4.0)), velocity_east_mps=0.0,
                          velocity_north_mps=-1.2, class_name=TrackClass.PERSON, sensor_ids=("drone-vista-1",),
                          status=TrackStatus.CONFIRMED, version=i) for i in range(3)]
    lost = SensorHealthEvent(sensor_id="drone-vista-1", sector_id="pac-blaine", state=SensorHealthState.FEED_LOST,
                             event_ts_ns=now, expected_interval_s=0.5, silent_s=14.0)
    store.write([event, *tracks, lost])
    alert = console.lifecycle.open(make_alert(("usbp", "rcmp"), title="Person crossing CA->US at the vista",
                                              lat=49.0021, lon=-122.7540, event_ids=("evt-live-1",)))

    item = page.locator(f"li[data-alert-id='{alert.alert_id}']")
    item.wait_for()
    assert "Person crossing CA->US at the vista" in item.inner_text()
    assert "UTC" in item.inner_text() and ("PST" in item.inner_text() or "PDT" in item.inner_text())
    assert page.evaluate("window.__sameDocument") is True  # no reload happened
    # the alert's marker and the track are on the map
    wait_for_js(page, "document.querySelectorAll('.leaflet-overlay-pane path.leaflet-interactive, "
                       ".leaflet-overlay-pane canvas').length > 0")
    assert "drone-vista-1 (pac-blaine): feed lost, silent 14 s" in page.locator("#health-list .feed_lost").inner_text()
    page.wait_for_timeout(500)
    page.screenshot(path=str(SHOTS / "operator-alert-arrived.png"))

    item.click()
    page.locator("#alert-detail img.thumb").wait_for()
    wait_for_js(page, "document.querySelector('#alert-detail img.thumb').naturalWidth > 0")
    page.fill("#alert-detail input.note", "unit 12 on the way")
    page.click("#alert-detail button[data-action=acknowledge]")
    page.locator(f"li[data-alert-id='{alert.alert_id}'].state-acknowledged").wait_for()
    page.screenshot(path=str(SHOTS / "operator-acknowledged.png"))

    assert console.lifecycle.get(alert.alert_id).state.value == "acknowledged"
    entries = console.lifecycle.audit(alert.alert_id)
    assert entries[0].action == "alert.acknowledged" and entries[0].detail["note"] == "unit 12 on the way"
    assert any(e.action == "evidence.viewed" for e in audit_entries(console.engine, "evidence"))


def test_partner_sees_only_its_alerts(page, console):
    ours = console.lifecycle.open(make_alert(("usbp",), title="USBP alert at Peace Arch"))
    theirs = console.lifecycle.open(make_alert(("rcmp",), title="RCMP-only alert", lead="rcmp"))
    log_in(page, "usbp1")
    page.locator(f"li[data-alert-id='{ours.alert_id}']").wait_for()
    page.wait_for_selector("#live-status.live")
    later = console.lifecycle.open(make_alert(("rcmp",), title="Another RCMP-only alert", lead="rcmp"))
    mine_later = console.lifecycle.open(make_alert(("usbp", "rcmp"), title="Joint alert arriving live"))
    page.locator(f"li[data-alert-id='{mine_later.alert_id}']").wait_for()
    listed = page.locator("#alert-list li").evaluate_all("items => items.map(i => i.dataset.alertId)")
    assert set(listed) == {ours.alert_id, mine_later.alert_id}
    assert theirs.alert_id not in listed and later.alert_id not in listed
    assert page.locator("#alert-detail button[data-action]").count() == 0  # partners read, operators act
    page.screenshot(path=str(SHOTS / "partner-own-alerts.png"))


def test_analyst_dismisses_a_detection_and_exports_a_joint_operation(page, console):
    store = ConsoleStore(console.engine)
    now = SystemClock().now_ns()
    write_jpeg(console.evidence_dir / "evidence/cam-vista-tower/7.jpg", 2)
    store.write([DetectionBatch(sensor_id="cam-vista-tower", sector_id="pac-blaine", frame_sequence=7, capture_ts_ns=now,
                                image_width_px=320, image_height_px=180, model_name="ibet-demo", model_version="1",
                                detections=(Detection(box_xyxy_px=(150, 70, 170, 120), class_id=0, class_name="person",
                                                      score=0.81),),
                                evidence_ref="evidence/cam-vista-tower/7.jpg")])
    write_jpeg(console.evidence_dir / "cam-vista-tower/7/track-4.jpg", 3)
    store.write([TrackUpdate(track_id="trk-pac-blaine-4", sector_id="pac-blaine", time_ts_ns=now, lat_deg=48.9995,
                             lon_deg=-122.7520, position_cov_m2=((4.0, 0.0), (0.0, 4.0)), velocity_east_mps=0.0,
                             velocity_north_mps=-1.2, class_name=TrackClass.PERSON, sensor_ids=("cam-vista-tower",),
                             status=TrackStatus.CONFIRMED, border_side="US", distance_to_border_m=55.0, version=3,
                             evidence_refs=("cam-vista-tower/7/track-4.jpg", "evidence/cam-vista-tower/7.jpg"))])
    first = console.lifecycle.open(make_alert(("usbp", "rcmp"), title="Crossing at the vista"))
    second = console.lifecycle.open(make_alert(("cbsa",), title="Vehicle at Pacific Highway", lead="cbsa"))
    console.lifecycle.acknowledge(first.alert_id, _operator(), "unit 3 on the way")

    log_in(page, "analyst1")
    assert page.url.endswith("/review")
    row = page.locator("tr[data-detection]").first
    wait_for_js(page, "document.querySelector('img.thumb') && document.querySelector('img.thumb').naturalWidth > 0")
    row.locator("input.reason").fill("a post, not a person")
    row.locator("button[data-verdict=dismissed]").click()
    row.locator(".badge").wait_for()
    assert row.locator(".badge").inner_text() == "dismissed"
    page.screenshot(path=str(SHOTS / "analyst-review.png"))

    # the fused track the detection fed, with the crop fuse carried, confirmed on the tracks tab
    page.click("nav.tabs >> text=Tracks")
    page.wait_for_url("**/review?kind=tracks")
    track_row = page.locator("tr[data-track='trk-pac-blaine-4']")
    wait_for_js(page, "[...document.querySelectorAll('tr[data-track] img.thumb')].length === 2"
                       " && [...document.querySelectorAll('tr[data-track] img.thumb')].every(i => i.naturalWidth > 0)")
    assert "cam-vista-tower" in track_row.inner_text() and "US side" in track_row.inner_text()
    track_row.locator("input.reason").fill("walker seen by the tower, then the drone")
    track_row.locator("button[data-verdict=confirmed]").click()
    track_row.locator(".badge").wait_for()
    assert track_row.locator(".badge").inner_text() == "confirmed"
    page.screenshot(path=str(SHOTS / "analyst-review-tracks.png"))
    assert [e.action for e in audit_entries(console.engine, "track", "trk-pac-blaine-4")] == ["track.confirmed"]

    page.goto("/cases")
    page.fill("#new-case input[name=title]", "Vista crossings, night of the 28th")
    page.check(f"input[value='{first.alert_id}']")
    page.check(f"input[value='{second.alert_id}']")
    page.click("#new-case button[type=submit]")
    page.wait_for_url("**/cases/case-*")
    page.fill("textarea[name=text]", "RCMP and USBP met at the vista")
    page.click("text=Add note")
    page.locator("#case-timeline >> text=note: RCMP and USBP met at the vista").wait_for()
    page.screenshot(path=str(SHOTS / "analyst-case.png"), full_page=True)
    case_id = page.url.rsplit("/", 1)[1]

    html = page.request.get(f"/cases/{case_id}/export.html").text()
    for expected in (first.alert_id, second.alert_id, "Royal Canadian Mounted Police", "alert.acknowledged: unit 3 on the way",
                     "case.created", "note: RCMP and USBP met at the vista"):
        assert expected in html, expected
    report = page.context.new_page()
    report.set_content(html)
    report.screenshot(path=str(SHOTS / "analyst-case-export.png"), full_page=True)
    report.close()

    rows = list(csv.DictReader(io.StringIO(page.request.get(f"/cases/{case_id}/export.csv").text())))
    assert {r["id"] for r in rows if r["section"] == "alert"} == {first.alert_id, second.alert_id}
    assert {r["id"] for r in rows if r["section"] == "partner"} == {"usbp", "rcmp", "cbsa"}
    assert any(r["section"] == "timeline" and r["what"] == "alert.acknowledged: unit 3 on the way" for r in rows)
    assert any(r["section"] == "timeline" and r["what"] == "case.created" and r["who"] == "analyst1" for r in rows)
    geo = json.loads(page.request.get(f"/cases/{case_id}/export.geojson").text())
    points = {f["properties"]["alert_id"]: f["geometry"]["coordinates"] for f in geo["features"]
              if f["properties"]["kind"] == "alert"}
    assert points == {first.alert_id: [first.lon_deg, first.lat_deg], second.alert_id: [second.lon_deg, second.lat_deg]}
    assert sorted(geo["properties"]["partners"]) == ["cbsa", "rcmp", "usbp"]
    assert [e.detail["format"] for e in audit_entries(console.engine, "case", case_id) if e.action == "case.exported"] \
        == ["geojson", "csv", "html"]


def _operator():
    from ibet.audit import Actor

    return Actor("user", "oper-x", role="operator")

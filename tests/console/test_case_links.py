"""An analyst links a track and a detection to a joint operation from its page: the export lists them,
the link is audited, and a bad kind or a forged form is refused."""

from __future__ import annotations

import csv
import io
import json
import re

from console_samples import login, make_alert

from ibet.audit import audit_entries


def _case(console, client) -> str:
    alert = console.lifecycle.open(make_alert(("usbp",)))
    page = client.get("/cases")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    made = client.post("/cases", data={"title": "Vista crossing", "alert_ids": [alert.alert_id], "csrf_token": token})
    assert made.status_code == 303, made.text
    return made.headers["location"].rsplit("/", 1)[-1]


def test_an_analyst_links_a_track_and_a_detection_to_a_joint_operation(console):
    from wire_samples import DETECTIONS, batch, track

    from console.review import review_detection, review_track
    from console.store import ConsoleStore, detection_id
    from ibet.audit import Actor

    stored = batch(DETECTIONS[:1])
    ConsoleStore(console.engine).write([track(track_id="pac-blaine-trk-77"), stored])
    analyst = Actor("user", "usr-a", role="analyst")
    review_track(console.engine, "pac-blaine-trk-77", "confirmed", "two walkers", analyst, 1)
    review_detection(console.engine, detection_id(stored, 0), "false_alarm", "a stump", analyst, 1)
    client = login(console.url, "analyst1")
    case_id = _case(console, client)
    page = client.get(f"/cases/{case_id}")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    for kind, item in (("track", "pac-blaine-trk-77"), ("detection", detection_id(stored, 0))):
        linked = client.post(f"/cases/{case_id}/links", data={"kind": kind, "item_id": item, "csrf_token": token})
        assert linked.status_code == 303, linked.text
    page = client.get(f"/cases/{case_id}").text  # the analysts' verdicts travel with the linked items
    assert "two walkers" in page and "a stump" in page
    rows = {r["section"]: r for r in csv.DictReader(io.StringIO(client.get(f"/cases/{case_id}/export.csv").text))}
    assert rows["track"]["id"] == "pac-blaine-trk-77" and json.loads(rows["track"]["detail"])["verdict"] == "confirmed"
    assert rows["detection"]["who"] == "drone-07" and json.loads(rows["detection"]["detail"])["reason"] == "a stump"
    actions = [(e.action, e.detail.get("kind")) for e in audit_entries(console.engine, "case", case_id)]
    assert ("case.linked", "track") in actions and ("case.linked", "detection") in actions

    bad = client.post(f"/cases/{case_id}/links", data={"kind": "person", "item_id": "x", "csrf_token": token})
    assert bad.status_code == 422 and "item kind" in bad.text
    forged = client.post(f"/cases/{case_id}/links", data={"kind": "track", "item_id": "y", "csrf_token": "forged"})
    assert forged.status_code == 403


def test_the_review_queue_filters_by_capture_time_and_refuses_a_bad_time(console):
    from console.store import ConsoleStore
    from ibet.messages import Detection, DetectionBatch

    store = ConsoleStore(console.engine)
    day = 1_790_000_000 * 10**9  # 2026-09-21 14:13:20 UTC
    for n, t in enumerate((day, day + 3600 * 10**9)):
        store.write([DetectionBatch(sensor_id="cam-vista-tower", sector_id="pac-blaine", frame_sequence=n, capture_ts_ns=t,
                                    image_width_px=320, image_height_px=180, model_name="ibet-demo-det", model_version="1",
                                    detections=(Detection(box_xyxy_px=(10, 10, 30, 60), class_id=0, class_name="person",
                                                          score=0.8),))])
    client = login(console.url, "analyst1")
    everything = client.get("/review")
    early = client.get("/review", params={"since": "2026-09-21T14:00", "until": "2026-09-21T15:00"})
    assert everything.text.count('data-detection="') == 2 and early.text.count('data-detection="') == 1
    bad = client.get("/review", params={"since": "yesterday"})
    assert bad.status_code == 422 and "since" in bad.text

"""An analyst links a track and a detection to a joint operation from its page: the export lists them,
the link is audited, and a bad kind or a forged form is refused."""

from __future__ import annotations

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
    client = login(console.url, "analyst1")
    case_id = _case(console, client)
    page = client.get(f"/cases/{case_id}")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    for kind, item in (("track", "pac-blaine-trk-77"), ("detection", "det-000123")):
        linked = client.post(f"/cases/{case_id}/links", data={"kind": kind, "item_id": item, "csrf_token": token})
        assert linked.status_code == 303, linked.text
    csv_text = client.get(f"/cases/{case_id}/export.csv").text
    assert "pac-blaine-trk-77" in csv_text
    actions = [(e.action, e.detail.get("kind")) for e in audit_entries(console.engine, "case", case_id)]
    assert ("case.linked", "track") in actions and ("case.linked", "detection") in actions

    bad = client.post(f"/cases/{case_id}/links", data={"kind": "person", "item_id": "x", "csrf_token": token})
    assert bad.status_code == 422 and "item kind" in bad.text
    forged = client.post(f"/cases/{case_id}/links", data={"kind": "track", "item_id": "y", "csrf_token": "forged"})
    assert forged.status_code == 403

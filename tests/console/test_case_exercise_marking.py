"""Exercise mode is visible in joint operations: a case holding an exercise alert (raised by a
scenario run) and a real one marks the exercise one, and only it, on the case page, on the list of
cases, in the HTML report, the GeoJSON and the CSV; a case of exercise alerts only is EXERCISE
throughout, and a case of real alerts carries no marking at all."""

from __future__ import annotations

import csv
import io
import json
import re

from console_samples import login, make_alert

BADGE = '<span class="badge exercise">EXERCISE</span>'


def _open(console, title: str, exercise: bool):
    alert = make_alert(("usbp", "rcmp"), title=title)
    return console.lifecycle.open(alert.model_copy(update={"exercise": exercise}))


def _case(client, title: str, *alerts) -> str:
    page = client.get("/cases")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    made = client.post("/cases", data={"title": title, "alert_ids": [a.alert_id for a in alerts], "csrf_token": token})
    assert made.status_code == 303, made.text
    return made.headers["location"].rsplit("/", 1)[-1]


def _alert_row(html: str, alert_id: str) -> str:
    return re.search(rf'<tr data-alert-id="{alert_id}"[^>]*>.*?</tr>', html, re.S).group(0)


def _timeline_rows(html: str, alert_id: str) -> list[str]:
    timeline = html.split('id="case-timeline"', 1)[1]
    return [row for row in re.findall(r"<tr>.*?</tr>", timeline, re.S) if alert_id in row]


def test_a_case_with_an_exercise_and_a_real_alert_marks_the_exercise_one_everywhere(console):
    drill = _open(console, "Drill crossing at the vista", exercise=True)
    real = _open(console, "Crossing at Pacific Highway", exercise=False)
    client = login(console.url, "analyst1")

    # choosing alerts for a new joint operation: the exercise one is badged
    form = client.get("/cases").text.split('id="new-case"', 1)[1]
    labels = {m.group(1): m.group(0) for m in re.finditer(r'value="(alr-[0-9a-f]+)">.*?</label>', form, re.S)}
    assert BADGE in labels[drill.alert_id] and BADGE not in labels[real.alert_id]

    case_id = _case(client, "Vista crossings", drill, real)

    # the case page: a banner, the badge on the exercise alert's row and its timeline entries, not on the real one's
    page = client.get(f"/cases/{case_id}")
    assert page.status_code == 200
    html = page.text
    banner = re.search(r'<p class="exercise-banner" id="case-exercise".*?</p>', html, re.S).group(0)
    assert "Contains exercise alerts (not real)" in banner and "1 of 2 alerts" in banner
    assert drill.alert_id in banner and real.alert_id not in banner
    assert "<title>[CONTAINS EXERCISE] Vista crossings" in html
    assert BADGE in _alert_row(html, drill.alert_id) and 'class="exercise"' in _alert_row(html, drill.alert_id)
    assert BADGE not in _alert_row(html, real.alert_id) and "exercise" not in _alert_row(html, real.alert_id)
    assert _timeline_rows(html, drill.alert_id) and all(BADGE in r for r in _timeline_rows(html, drill.alert_id))
    assert _timeline_rows(html, real.alert_id) and not any(BADGE in r for r in _timeline_rows(html, real.alert_id))
    h1 = re.search(r"<h1>.*?</h1>", html, re.S).group(0)
    assert BADGE not in h1  # not every alert is an exercise: the case as a whole is not one

    # the list of joint operations
    listed = re.search(rf'<tr><td><a href="/cases/{case_id}">.*?</tr>', client.get("/cases").text, re.S).group(0)
    assert "CONTAINS EXERCISE" in listed

    # the printable HTML report (self-contained: the badge's style is in its inline stylesheet)
    report = client.get(f"/cases/{case_id}/export.html").text
    assert "<title>[CONTAINS EXERCISE] Joint operation" in report
    assert re.search(r"<h1>\[CONTAINS EXERCISE\] Joint operation: Vista crossings", report)
    assert "Contains exercise alerts (not real)" in report and ".badge.exercise" in report
    assert BADGE in _alert_row(report, drill.alert_id) and BADGE not in _alert_row(report, real.alert_id)

    # GeoJSON: a property on each alert and a summary on the collection
    geo = json.loads(client.get(f"/cases/{case_id}/export.geojson").text)
    exercise = {f["properties"]["alert_id"]: f["properties"]["exercise"] for f in geo["features"]
                if f["properties"]["kind"] == "alert"}
    assert exercise == {drill.alert_id: True, real.alert_id: False}
    assert geo["properties"]["contains_exercise"] is True and geo["properties"]["exercise"] is False
    assert geo["properties"]["exercise_alert_ids"] == [drill.alert_id]
    assert geo["properties"]["partners"] == ["rcmp", "usbp"]  # the existing fields stay

    # CSV: an exercise column people see, and the flag in the machine-readable detail
    text = client.get(f"/cases/{case_id}/export.csv").text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0] == "section,time_utc,id,what,who,detail,exercise"
    (case_row,) = [r for r in rows if r["section"] == "case"]
    assert case_row["exercise"] == "CONTAINS EXERCISE"
    detail = json.loads(case_row["detail"])
    assert detail["contains_exercise"] is True and detail["exercise"] is False
    assert detail["exercise_alert_ids"] == [drill.alert_id] and detail["status"] == "open"
    alerts = {r["id"]: r for r in rows if r["section"] == "alert"}
    assert alerts[drill.alert_id]["exercise"] == "EXERCISE" and json.loads(alerts[drill.alert_id]["detail"])["exercise"] is True
    assert alerts[real.alert_id]["exercise"] == "" and json.loads(alerts[real.alert_id]["detail"])["exercise"] is False
    timeline = [r for r in rows if r["section"] == "timeline"]
    assert {r["exercise"] for r in timeline if r["id"] == drill.alert_id} == {"EXERCISE"}
    assert {r["exercise"] for r in timeline if r["id"] in (real.alert_id, case_id)} == {""}
    assert all(r["exercise"] == "" for r in rows if r["section"] == "partner")


def test_a_case_of_exercise_alerts_only_is_an_exercise_and_a_real_case_is_not_marked(console):
    client = login(console.url, "analyst1")
    drill_case = _case(client, "Drill at the vista", _open(console, "Drill one", True), _open(console, "Drill two", True))
    real_case = _case(client, "Real crossing", _open(console, "Crossing at the vista", False))

    html = client.get(f"/cases/{drill_case}").text
    assert "<title>[EXERCISE] Drill at the vista" in html
    assert BADGE in re.search(r"<h1>.*?</h1>", html, re.S).group(0)
    assert "raised by an exercise: not real" in html
    report = client.get(f"/cases/{drill_case}/export.html").text
    assert "<title>[EXERCISE] Joint operation" in report and "<h1>[EXERCISE] Joint operation" in report
    geo = json.loads(client.get(f"/cases/{drill_case}/export.geojson").text)
    assert geo["properties"]["exercise"] is True and geo["properties"]["contains_exercise"] is True
    rows = list(csv.DictReader(io.StringIO(client.get(f"/cases/{drill_case}/export.csv").text)))
    assert [r["exercise"] for r in rows if r["section"] in ("case", "alert")] == ["EXERCISE"] * 3

    for page in (client.get(f"/cases/{real_case}").text, client.get(f"/cases/{real_case}/export.html").text):
        assert "EXERCISE" not in page and "exercise-banner" not in page.split("</style>")[-1]
    geo = json.loads(client.get(f"/cases/{real_case}/export.geojson").text)
    assert geo["properties"]["exercise"] is False and geo["properties"]["contains_exercise"] is False
    assert geo["properties"]["exercise_alert_ids"] == []
    assert all(f["properties"]["exercise"] is False for f in geo["features"] if f["properties"]["kind"] == "alert")
    rows = list(csv.DictReader(io.StringIO(client.get(f"/cases/{real_case}/export.csv").text)))
    assert all(r["exercise"] == "" for r in rows)

    listing = client.get("/cases").text
    drill_row = re.search(rf'<tr><td><a href="/cases/{drill_case}">.*?</tr>', listing, re.S).group(0)
    real_row = re.search(rf'<tr><td><a href="/cases/{real_case}">.*?</tr>', listing, re.S).group(0)
    assert BADGE in drill_row and "EXERCISE" not in real_row

"""Joint operations: a case file that links alerts, tracks and detections, the partner agencies
involved, notes, an outcome and a timeline; exported as an HTML report, GeoJSON and CSV.

The timeline is assembled, not stored: the audit entries of the case and of each linked alert
(opened, acknowledged, escalated, resolved, by whom), each alert's creation in event time, and the
notes, in time order. Every change and every export is audited.

Exercise alerts (``Alert.exercise``: raised by a scenario run, not real) are marked wherever a case
shows up: :func:`exercise_summary` says whether a case holds any (``contains_exercise``) or only
(``exercise``) exercise alerts; the case page and the HTML report carry the EXERCISE badge and a
banner, the GeoJSON an ``exercise`` property on each alert and on the collection, the CSV an
``exercise`` column (``EXERCISE``, or ``CONTAINS EXERCISE`` on the case row) and ``exercise`` in each
alert's and the case's detail.
"""

from __future__ import annotations

import csv
import io
import json
import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from console import tables
from console.errors import InvalidRequest, NotFound
from ibet.audit import Actor, audit_entries, record_audit

ITEM_KINDS = ("alert", "track", "detection")
EXERCISE = "EXERCISE"  # the marking, as the console's badge and the partner channels' "[EXERCISE]" spell it


def _utc(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def create_case(engine: Engine, lifecycle, title: str, alert_ids: list[str], actor: Actor, now_ns: int) -> str:
    """A new open case from ``alert_ids`` (at least one): links them, their tracks and their partners."""
    title = title.strip()
    if not title:
        raise InvalidRequest("a joint operation needs a title")
    alert_ids = list(dict.fromkeys(alert_ids))
    if not alert_ids:
        raise InvalidRequest("a joint operation starts from at least one alert")
    alerts = []
    for alert_id in alert_ids:
        alert = lifecycle.get(alert_id)
        if alert is None:
            raise NotFound(f"no alert {alert_id!r}")
        alerts.append(alert)
    case_id = "case-" + secrets.token_hex(6)
    with engine.begin() as conn:
        conn.execute(insert(tables.cases).values(case_id=case_id, title=title[:256], status="open",
                                                 sector_id=alerts[0].sector_id, created_by=actor.id,
                                                 created_ns=now_ns, updated_ns=now_ns))
        record_audit(conn, actor=actor, action="case.created", subject_kind="case", subject_id=case_id,
                     detail={"title": title[:256], "alert_ids": alert_ids}, now_ns=now_ns)
        for alert in alerts:
            _link(conn, case_id, "alert", alert.alert_id, actor, now_ns)
            e = tables.events
            for track_id in conn.execute(select(e.c.track_id).where(e.c.event_id.in_(list(alert.event_ids)))).scalars():
                _link(conn, case_id, "track", track_id, actor, now_ns)
            for partner_id in (alert.lead_partner_id, *alert.routed_partner_ids):
                if partner_id:
                    _add_partner(conn, case_id, partner_id)
    return case_id


def _link(conn, case_id: str, kind: str, item_id: str, actor: Actor, now_ns: int) -> None:
    t = tables.case_items
    found = conn.execute(select(t.c.item_id).where(t.c.case_id == case_id, t.c.item_kind == kind, t.c.item_id == item_id)).first()
    if found is None:
        conn.execute(insert(t).values(case_id=case_id, item_kind=kind, item_id=item_id, added_by=actor.id, added_ns=now_ns))


def _add_partner(conn, case_id: str, partner_id: str) -> None:
    t = tables.case_partners
    if conn.execute(select(t.c.partner_id).where(t.c.case_id == case_id, t.c.partner_id == partner_id)).first() is None:
        conn.execute(insert(t).values(case_id=case_id, partner_id=partner_id))


def _case_row(conn, case_id: str):
    row = conn.execute(select(tables.cases).where(tables.cases.c.case_id == case_id)).first()
    if row is None:
        raise NotFound(f"no joint operation {case_id!r}")
    return row


def link_item(engine: Engine, case_id: str, kind: str, item_id: str, actor: Actor, now_ns: int) -> None:
    """Link a track or detection (or another alert) to a case."""
    if kind not in ITEM_KINDS:
        raise InvalidRequest(f"item kind must be one of {', '.join(ITEM_KINDS)}, got {kind!r}")
    with engine.begin() as conn:
        _case_row(conn, case_id)
        _link(conn, case_id, kind, item_id, actor, now_ns)
        conn.execute(update(tables.cases).where(tables.cases.c.case_id == case_id).values(updated_ns=now_ns))
        record_audit(conn, actor=actor, action="case.linked", subject_kind="case", subject_id=case_id,
                     detail={"kind": kind, "id": item_id}, now_ns=now_ns)


def add_note(engine: Engine, case_id: str, text: str, actor: Actor, now_ns: int) -> None:
    """Add a note to the case's timeline."""
    text = text.strip()
    if not text:
        raise InvalidRequest("a note cannot be empty")
    with engine.begin() as conn:
        _case_row(conn, case_id)
        conn.execute(insert(tables.case_notes).values(case_id=case_id, author_id=actor.id, at_ns=now_ns, text=text[:4000]))
        conn.execute(update(tables.cases).where(tables.cases.c.case_id == case_id).values(updated_ns=now_ns))
        record_audit(conn, actor=actor, action="case.noted", subject_kind="case", subject_id=case_id, now_ns=now_ns)


def close_case(engine: Engine, case_id: str, outcome: str, actor: Actor, now_ns: int) -> None:
    """Close the case with its outcome (free text: what the joint operation found)."""
    outcome = outcome.strip()
    if not outcome:
        raise InvalidRequest("closing a joint operation needs its outcome")
    with engine.begin() as conn:
        _case_row(conn, case_id)
        conn.execute(update(tables.cases).where(tables.cases.c.case_id == case_id)
                     .values(status="closed", outcome=outcome[:4000], updated_ns=now_ns))
        record_audit(conn, actor=actor, action="case.closed", subject_kind="case", subject_id=case_id,
                     detail={"outcome": outcome[:4000]}, now_ns=now_ns)


def exercise_summary(alerts) -> dict[str, Any]:
    """Whether a case's ``alerts`` are exercises: ``exercise`` (there are alerts and every one is an
    exercise), ``contains_exercise`` (at least one is), ``exercise_alert_ids`` (those that are), and
    ``marking``: ``"EXERCISE"``, ``"CONTAINS EXERCISE"`` or ``""``."""
    alerts = list(alerts)
    ids = [a.alert_id for a in alerts if a.exercise]
    every = bool(alerts) and len(ids) == len(alerts)
    return {"exercise": every, "contains_exercise": bool(ids), "exercise_alert_ids": ids,
            "marking": EXERCISE if every else f"CONTAINS {EXERCISE}" if ids else ""}


def list_cases(engine: Engine, lifecycle=None) -> list[dict[str, Any]]:
    """Every case, most recently changed first; with ``lifecycle``, each also carries its
    :func:`exercise_summary` under ``"exercise"``."""
    with engine.connect() as conn:
        cases = [dict(r._mapping) for r in conn.execute(select(tables.cases).order_by(tables.cases.c.updated_ns.desc()))]
        if lifecycle is None:
            return cases
        t = tables.case_items
        linked: dict[str, list[str]] = {}
        for row in conn.execute(select(t.c.case_id, t.c.item_id).where(t.c.item_kind == "alert")):
            linked.setdefault(row.case_id, []).append(row.item_id)
    for case in cases:
        alerts = (lifecycle.get(i) for i in linked.get(case["case_id"], []))
        case["exercise"] = exercise_summary(a for a in alerts if a is not None)
    return cases


def case_file(engine: Engine, lifecycle, case_id: str, partner_name=lambda p: p) -> dict[str, Any]:
    """Everything about a case: the case, its alerts, tracks (with points), detections, partners, notes, timeline."""
    with engine.connect() as conn:
        case = dict(_case_row(conn, case_id)._mapping)
        items = conn.execute(select(tables.case_items).where(tables.case_items.c.case_id == case_id)
                             .order_by(tables.case_items.c.added_ns)).all()
        partners = list(conn.execute(select(tables.case_partners.c.partner_id)
                                     .where(tables.case_partners.c.case_id == case_id)
                                     .order_by(tables.case_partners.c.partner_id)).scalars())
        notes = [dict(r._mapping) for r in conn.execute(select(tables.case_notes).where(tables.case_notes.c.case_id == case_id)
                                                        .order_by(tables.case_notes.c.at_ns, tables.case_notes.c.id))]
        ids = {kind: [i.item_id for i in items if i.item_kind == kind] for kind in ITEM_KINDS}
        tracks = []
        for track_id in ids["track"]:
            points = conn.execute(select(tables.track_points).where(tables.track_points.c.track_id == track_id)
                                  .order_by(tables.track_points.c.version)).all()
            row = conn.execute(select(tables.tracks).where(tables.tracks.c.track_id == track_id)).first()
            review = conn.execute(select(tables.track_reviews).where(tables.track_reviews.c.track_id == track_id)).first()
            tracks.append({"track_id": track_id, "class_name": row.class_name if row else None,
                           "points": [(p.lon_deg, p.lat_deg, p.time_ts_ns) for p in points],
                           "verdict": review.verdict if review else None, "reason": review.reason if review else None})
        d, r = tables.detections, tables.reviews
        detections = [dict(row._mapping) for row in conn.execute(
            select(d, r.c.verdict, r.c.reason).select_from(d.outerjoin(r, r.c.detection_id == d.c.detection_id))
            .where(d.c.detection_id.in_(ids["detection"])).order_by(d.c.capture_ts_ns, d.c.detection_id))]
    alerts = [a for a in (lifecycle.get(i) for i in ids["alert"]) if a is not None]
    timeline: list[dict[str, Any]] = []
    for alert in alerts:  # an exercise alert's entries say so (``exercise``)
        timeline.append({"ts_ns": alert.created_ts_ns, "what": f"alert raised: {alert.title}", "who": "ibet",
                         "subject": alert.alert_id, "exercise": alert.exercise})
        for entry in audit_entries(engine, "alert", alert.alert_id, limit=1000):
            note = entry.detail.get("note") if isinstance(entry.detail, dict) else None
            timeline.append({"ts_ns": entry.ts_ns, "what": entry.action + (f": {note}" if note else ""),
                             "who": entry.actor.id, "subject": alert.alert_id, "exercise": alert.exercise})
    for entry in audit_entries(engine, "case", case_id, limit=1000):
        what = entry.action
        if entry.action == "case.linked" and isinstance(entry.detail, dict):
            what += f": {entry.detail.get('kind')} {entry.detail.get('id')}"
        timeline.append({"ts_ns": entry.ts_ns, "what": what, "who": entry.actor.id, "subject": case_id, "exercise": False})
    for note in notes:
        timeline.append({"ts_ns": note["at_ns"], "what": f"note: {note['text']}", "who": note["author_id"],
                         "subject": case_id, "exercise": False})
    timeline.sort(key=lambda e: (e["ts_ns"], e["what"]))
    with engine.connect() as conn:  # show people by username, not by internal id
        names = dict(conn.execute(select(tables.users.c.user_id, tables.users.c.username)).all())
    for entry in timeline:
        entry["utc"] = _utc(entry["ts_ns"])
        entry["who"] = names.get(entry["who"], entry["who"])
    case["created_by"] = names.get(case["created_by"], case["created_by"])
    for note in notes:
        note["author_id"] = names.get(note["author_id"], note["author_id"])
    return {"case": case, "alerts": alerts, "tracks": tracks, "detections": detections,
            "partners": [{"id": p, "name": partner_name(p)} for p in partners], "notes": notes, "timeline": timeline,
            "exercise": exercise_summary(alerts)}


def case_geojson(file: dict[str, Any]) -> dict[str, Any]:
    """The case's alerts (points) and tracks (lines, or a point for a one-point track) as GeoJSON."""
    features = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [a.lon_deg, a.lat_deg]},
                 "properties": {"kind": "alert", "alert_id": a.alert_id, "title": a.title, "state": a.state.value,
                                "severity": a.severity.value, "created_utc": _utc(a.created_ts_ns),
                                "routed_partner_ids": list(a.routed_partner_ids), "exercise": a.exercise}}
                for a in file["alerts"]]
    for track in file["tracks"]:
        coords = [[lon, lat] for lon, lat, _ in track["points"]]
        if not coords:
            continue
        geometry = {"type": "LineString", "coordinates": coords} if len(coords) > 1 else {"type": "Point", "coordinates": coords[0]}
        features.append({"type": "Feature", "geometry": geometry,
                         "properties": {"kind": "track", "track_id": track["track_id"], "class_name": track["class_name"]}})
    case, exercise = file["case"], file["exercise"]
    return {"type": "FeatureCollection", "features": features,
            "properties": {"case_id": case["case_id"], "title": case["title"], "status": case["status"],
                           "partners": [p["id"] for p in file["partners"]], "exercise": exercise["exercise"],
                           "contains_exercise": exercise["contains_exercise"],
                           "exercise_alert_ids": exercise["exercise_alert_ids"]}}


def case_csv(file: dict[str, Any]) -> str:
    """The case as CSV: one row per alert, partner, linked track and detection, and timeline entry
    (``section`` says which). The last column, ``exercise``, is ``EXERCISE`` on an exercise alert's
    rows (the alert and its timeline entries) and, on the case row, ``EXERCISE`` (every alert is one)
    or ``CONTAINS EXERCISE``; empty otherwise."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["section", "time_utc", "id", "what", "who", "detail", "exercise"])
    case, exercise = file["case"], file["exercise"]
    writer.writerow(["case", _utc(case["created_ns"]), case["case_id"], case["title"], case["created_by"],
                     json.dumps({"status": case["status"], "outcome": case["outcome"], "exercise": exercise["exercise"],
                                 "contains_exercise": exercise["contains_exercise"],
                                 "exercise_alert_ids": exercise["exercise_alert_ids"]}), exercise["marking"]])
    for a in file["alerts"]:
        writer.writerow(["alert", _utc(a.created_ts_ns), a.alert_id, a.title, a.lead_partner_id or "",
                         json.dumps({"state": a.state.value, "severity": a.severity.value, "sector_id": a.sector_id,
                                     "routed_partner_ids": list(a.routed_partner_ids), "lat_deg": a.lat_deg,
                                     "lon_deg": a.lon_deg, "exercise": a.exercise}), EXERCISE if a.exercise else ""])
    for p in file["partners"]:
        writer.writerow(["partner", "", p["id"], p["name"], "", "", ""])
    for t in file["tracks"]:
        first = _utc(t["points"][0][2]) if t["points"] else ""
        writer.writerow(["track", first, t["track_id"], t["class_name"] or "", "",
                         json.dumps({"points": len(t["points"]), "verdict": t["verdict"], "reason": t["reason"]}), ""])
    for d in file["detections"]:
        writer.writerow(["detection", _utc(d["capture_ts_ns"]), d["detection_id"], d["class_name"], d["sensor_id"],
                         json.dumps({"score": round(d["score"], 3), "verdict": d["verdict"], "reason": d["reason"]}), ""])
    for e in file["timeline"]:
        writer.writerow(["timeline", e["utc"], e["subject"], e["what"], e["who"], "", EXERCISE if e["exercise"] else ""])
    return out.getvalue()

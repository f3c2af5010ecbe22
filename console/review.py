"""The analysts' review queue of detections and fused tracks: filters, verdicts, and the
YOLO-format export.

A verdict is ``confirmed`` (the detection or track is right), ``dismissed`` (not worth keeping) or
``false_alarm`` (the model or the tracker was wrong: nothing of that class is there), always with a
reason, and audited. A track is shown with the evidence it gathered (the crops of the image tracks
it fused). Confirmed detections become labels of a YOLO dataset; frames whose reviewed detections
were all dismissed or false alarms become background images (an empty label file), which teaches
the model what not to report.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, and_, func, insert, select, update

from console import tables
from console.errors import InvalidRequest, NotFound
from ibet.audit import Actor, record_audit
from ibet.evidence_refs import evidence_file, evidence_key

VERDICTS = ("confirmed", "dismissed", "false_alarm")


@dataclass(frozen=True)
class QueueFilter:
    """What the queue shows; None means any. Times are ns since the epoch: a detection's capture
    time, a track's latest measurement."""

    sector_id: str | None = None
    sensor_id: str | None = None
    class_name: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    reviewed: bool | None = None  # False: the queue proper; True: the reviewed ones
    limit: int = 100


def _conditions(f: QueueFilter, sector, sensor, class_name, time, verdict) -> list:
    conditions = [column == value for column, value in ((sector, f.sector_id), (class_name, f.class_name)) if value]
    if f.sensor_id:
        conditions.append(sensor(f.sensor_id))
    if f.since_ns is not None:
        conditions.append(time >= f.since_ns)
    if f.until_ns is not None:
        conditions.append(time < f.until_ns)
    if f.reviewed is not None:
        conditions.append(verdict.is_not(None) if f.reviewed else verdict.is_(None))
    return conditions


def _limit(f: QueueFilter) -> int:
    return max(1, min(f.limit, 1000))


def list_detections(engine: Engine, f: QueueFilter) -> list[dict[str, Any]]:
    """Detections matching ``f``, newest capture first, each with its review (or None)."""
    d, r = tables.detections, tables.reviews
    query = select(d, r.c.verdict, r.c.reason, r.c.reviewer_id).select_from(d.outerjoin(r, r.c.detection_id == d.c.detection_id))
    conditions = _conditions(f, d.c.sector_id, lambda sensor_id: d.c.sensor_id == sensor_id, d.c.class_name,
                             d.c.capture_ts_ns, r.c.verdict)
    query = query.where(and_(True, *conditions)).order_by(d.c.capture_ts_ns.desc(), d.c.detection_id).limit(_limit(f))
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def list_tracks(engine: Engine, f: QueueFilter) -> list[dict[str, Any]]:
    """Fused tracks matching ``f``, most recently seen first, each with its review (or None), its
    first-seen time, number of points, sensors, border side and distance, and evidence references."""
    t, r, p, ev = tables.tracks, tables.track_reviews, tables.track_points, tables.track_evidence
    query = (select(t.c.track_id, t.c.sector_id, t.c.class_name, t.c.status, t.c.time_ts_ns, t.c.track_json,
                    r.c.verdict, r.c.reason, r.c.reviewer_id)
             .select_from(t.outerjoin(r, r.c.track_id == t.c.track_id)))
    conditions = _conditions(f, t.c.sector_id, lambda sensor_id: t.c.sensor_ids.contains(f",{sensor_id},", autoescape=True),
                             t.c.class_name, t.c.time_ts_ns, r.c.verdict)
    query = query.where(and_(True, *conditions)).order_by(t.c.time_ts_ns.desc(), t.c.track_id).limit(_limit(f))
    with engine.connect() as conn:
        rows = [dict(row._mapping) for row in conn.execute(query)]
        refs: dict[str, list[str]] = defaultdict(list)
        spans: dict[str, tuple[int, int]] = {}
        ids = [row["track_id"] for row in rows]  # at most the limit (1000)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            for row in conn.execute(select(ev.c.track_id, ev.c.evidence_ref).where(ev.c.track_id.in_(chunk))
                                    .order_by(ev.c.track_id, ev.c.position, ev.c.evidence_ref)):
                refs[row.track_id].append(row.evidence_ref)
            for row in conn.execute(select(p.c.track_id, func.min(p.c.time_ts_ns), func.count())
                                    .where(p.c.track_id.in_(chunk)).group_by(p.c.track_id)):
                spans[row[0]] = (row[1], row[2])
    for row in rows:
        track = json.loads(row.pop("track_json"))
        first_ts_ns, points = spans.get(row["track_id"], (row["time_ts_ns"], 0))
        row.update(sensor_ids=track.get("sensor_ids", []), border_side=track.get("border_side"),
                   distance_to_border_m=track.get("distance_to_border_m"), first_ts_ns=first_ts_ns, points=points,
                   evidence_refs=refs.get(row["track_id"], []))
    return rows


def _review(engine: Engine, kind: str, subject, review, item_id: str, verdict: str, reason: str, actor: Actor,
            now_ns: int) -> None:
    if verdict not in VERDICTS:
        raise InvalidRequest(f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
    reason = reason.strip()
    if not reason:
        raise InvalidRequest("a review needs a reason")
    key = f"{kind}_id"
    with engine.begin() as conn:
        if conn.execute(select(subject.c[key]).where(subject.c[key] == item_id)).first() is None:
            raise NotFound(f"no {kind} {item_id!r}")
        values = dict(verdict=verdict, reason=reason[:2000], reviewer_id=actor.id, reviewed_ns=now_ns)
        if conn.execute(select(review.c[key]).where(review.c[key] == item_id)).first() is None:
            conn.execute(insert(review).values({key: item_id, **values}))
        else:
            conn.execute(update(review).where(review.c[key] == item_id).values(**values))
        record_audit(conn, actor=actor, action=f"{kind}.{verdict}", subject_kind=kind, subject_id=item_id,
                     detail={"reason": reason[:2000]}, now_ns=now_ns)


def review_detection(engine: Engine, detection_id: str, verdict: str, reason: str, actor: Actor, now_ns: int) -> None:
    """Record (or change) the verdict on a detection, audited in the same transaction."""
    _review(engine, "detection", tables.detections, tables.reviews, detection_id, verdict, reason, actor, now_ns)


def review_track(engine: Engine, track_id: str, verdict: str, reason: str, actor: Actor, now_ns: int) -> None:
    """Record (or change) the verdict on a fused track, audited in the same transaction."""
    _review(engine, "track", tables.tracks, tables.track_reviews, track_id, verdict, reason, actor, now_ns)


def yolo_dataset(engine: Engine, evidence_dir: Path) -> tuple[bytes, dict[str, int]]:
    """A zip of the reviewed frames in YOLO format: ``images/``, ``labels/`` (one line per confirmed
    detection: ``class cx cy w h``, normalised), ``data.yaml`` with the class names.

    Frames whose evidence file is missing are skipped and counted. Returns the zip and counts.
    """
    d, r = tables.detections, tables.reviews
    query = select(d, r.c.verdict).join(r, r.c.detection_id == d.c.detection_id).where(d.c.evidence_ref.is_not(None))
    frames: dict[str, list] = defaultdict(list)
    names: dict[int, str] = {}
    with engine.connect() as conn:
        for row in conn.execute(query.order_by(d.c.evidence_ref, d.c.det_index)):
            frames[row.evidence_ref].append(row)
            if row.verdict == "confirmed":
                names.setdefault(row.class_id, row.class_name)
    counts = {"images": 0, "labels": 0, "background_images": 0, "missing_evidence": 0}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for ref, rows in sorted(frames.items()):
            source = evidence_file(ref, evidence_dir)
            if source is None:
                counts["missing_evidence"] += 1
                continue
            stem = evidence_key(ref, evidence_dir).replace("/", "__").rsplit(".", 1)[0]
            lines = []
            for row in rows:
                if row.verdict != "confirmed":
                    continue
                w, h = row.image_width_px, row.image_height_px
                cx, cy = (row.x1_px + row.x2_px) / 2 / w, (row.y1_px + row.y2_px) / 2 / h
                lines.append(f"{row.class_id} {cx:.6f} {cy:.6f} {(row.x2_px - row.x1_px) / w:.6f} {(row.y2_px - row.y1_px) / h:.6f}")
            archive.write(source, f"images/{stem}{source.suffix}")
            archive.writestr(f"labels/{stem}.txt", "\n".join(lines) + ("\n" if lines else ""))
            counts["images"] += 1
            counts["labels"] += len(lines)
            counts["background_images"] += not lines
        data = {"path": ".", "train": "images", "val": "images", "names": {k: names[k] for k in sorted(names)}}
        archive.writestr("data.yaml", yaml.safe_dump(data, sort_keys=False))
    return buffer.getvalue(), counts

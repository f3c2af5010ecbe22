"""The analysts' review queue of detections: filters, verdicts, and the YOLO-format export.

A verdict is ``confirmed`` (the detection is right), ``dismissed`` (not worth keeping) or
``false_alarm`` (the model was wrong: nothing of that class is there), always with a reason, and
audited. Confirmed detections become labels of a YOLO dataset; frames whose reviewed detections
were all dismissed or false alarms become background images (an empty label file), which teaches
the model what not to report.
"""

from __future__ import annotations

import io
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, and_, insert, select, update

from console import tables
from console.errors import InvalidRequest, NotFound
from ibet.audit import Actor, record_audit

VERDICTS = ("confirmed", "dismissed", "false_alarm")


@dataclass(frozen=True)
class DetectionFilter:
    """What the queue shows; None means any. Times are ns since the epoch (capture time)."""

    sector_id: str | None = None
    sensor_id: str | None = None
    class_name: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    reviewed: bool | None = None  # False: the queue proper; True: the reviewed ones
    limit: int = 100


def list_detections(engine: Engine, f: DetectionFilter) -> list[dict[str, Any]]:
    """Detections matching ``f``, newest capture first, each with its review (or None)."""
    d, r = tables.detections, tables.reviews
    query = select(d, r.c.verdict, r.c.reason, r.c.reviewer_id).select_from(d.outerjoin(r, r.c.detection_id == d.c.detection_id))
    conditions = []
    for column, value in ((d.c.sector_id, f.sector_id), (d.c.sensor_id, f.sensor_id), (d.c.class_name, f.class_name)):
        if value:
            conditions.append(column == value)
    if f.since_ns is not None:
        conditions.append(d.c.capture_ts_ns >= f.since_ns)
    if f.until_ns is not None:
        conditions.append(d.c.capture_ts_ns < f.until_ns)
    if f.reviewed is not None:
        conditions.append(r.c.verdict.is_not(None) if f.reviewed else r.c.verdict.is_(None))
    query = query.where(and_(True, *conditions)).order_by(d.c.capture_ts_ns.desc(), d.c.detection_id).limit(max(1, min(f.limit, 1000)))
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def review_detection(engine: Engine, detection_id: str, verdict: str, reason: str, actor: Actor, now_ns: int) -> None:
    """Record (or change) the verdict on a detection, audited in the same transaction."""
    if verdict not in VERDICTS:
        raise InvalidRequest(f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
    reason = reason.strip()
    if not reason:
        raise InvalidRequest("a review needs a reason")
    d, r = tables.detections, tables.reviews
    with engine.begin() as conn:
        if conn.execute(select(d.c.detection_id).where(d.c.detection_id == detection_id)).first() is None:
            raise NotFound(f"no detection {detection_id!r}")
        values = dict(verdict=verdict, reason=reason[:2000], reviewer_id=actor.id, reviewed_ns=now_ns)
        if conn.execute(select(r.c.detection_id).where(r.c.detection_id == detection_id)).first() is None:
            conn.execute(insert(r).values(detection_id=detection_id, **values))
        else:
            conn.execute(update(r).where(r.c.detection_id == detection_id).values(**values))
        record_audit(conn, actor=actor, action=f"detection.{verdict}", subject_kind="detection", subject_id=detection_id,
                     detail={"reason": reason[:2000]}, now_ns=now_ns)


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
    base = evidence_dir.resolve()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for ref, rows in sorted(frames.items()):
            source = (base / ref).resolve()
            if not source.is_relative_to(base) or not source.is_file():
                counts["missing_evidence"] += 1
                continue
            stem = ref.replace("/", "__").rsplit(".", 1)[0]
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

"""Retention: detections and fused tracks (with their points, reviews and evidence files) older than
the retention period are purged unless they are linked to an alert (a detection through a border
event's evidence, a track as the track of an alerted event) or to a joint operation.

Run by an admin from the console, or on a schedule with ``ibet console purge`` (see
:mod:`console.cli`); every purge is audited with what it removed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Column, Connection, Engine, delete, select

from alerts.lifecycle import lifecycle_table
from console import tables
from ibet.audit import Actor, record_audit
from ibet.clock import ns_from_seconds
from ibet.evidence_refs import evidence_file
from ibet.messages import Alert


def purge(engine: Engine, evidence_dir: Path, retention_days: float, actor: Actor, now_ns: int) -> dict[str, Any]:
    """Delete unlinked detections captured, and unlinked tracks last seen, before ``now - retention_days``,
    and the evidence files no longer referenced; returns (and audits) the counts and the cut-off."""
    cutoff_ns = now_ns - ns_from_seconds(retention_days * 86400.0)
    d, ev, items = tables.detections, tables.event_evidence, tables.case_items
    t, tev = tables.tracks, tables.track_evidence
    with engine.begin() as conn:
        alert_events = {e for text in conn.execute(select(lifecycle_table.c.alert_json)).scalars()
                        for e in Alert.model_validate_json(text).event_ids}
        kept_refs = set(conn.execute(select(ev.c.evidence_ref).where(ev.c.event_id.in_(alert_events))).scalars())
        linked = {(kind, item) for kind, item in conn.execute(select(items.c.item_kind, items.c.item_id))}
        alerted_tracks = set(conn.execute(select(tables.events.c.track_id)
                                          .where(tables.events.c.event_id.in_(alert_events))).scalars())

        old = conn.execute(select(d.c.detection_id, d.c.evidence_ref, d.c.crop_ref).where(d.c.capture_ts_ns < cutoff_ns)).all()
        doomed = [row for row in old if ("detection", row.detection_id) not in linked
                  and row.evidence_ref not in kept_refs and row.crop_ref not in kept_refs]
        doomed_ids = [row.detection_id for row in doomed]
        _delete(conn, doomed_ids, d.c.detection_id, tables.reviews.c.detection_id)
        old_tracks = conn.execute(select(t.c.track_id).where(t.c.time_ts_ns < cutoff_ns)).scalars().all()
        doomed_tracks = [i for i in old_tracks if ("track", i) not in linked and i not in alerted_tracks]
        candidate_refs = {ref for row in doomed for ref in (row.evidence_ref, row.crop_ref) if ref}
        for start in range(0, len(doomed_tracks), 500):
            candidate_refs |= set(conn.execute(select(tev.c.evidence_ref)
                                               .where(tev.c.track_id.in_(doomed_tracks[start:start + 500]))).scalars())
        _delete(conn, doomed_tracks, t.c.track_id, tables.track_reviews.c.track_id, tev.c.track_id,
                tables.track_points.c.track_id)

        still_used: set[str] = set()
        for column in (d.c.evidence_ref, d.c.crop_ref, ev.c.evidence_ref, tev.c.evidence_ref):
            still_used |= set(conn.execute(select(column).where(column.in_(candidate_refs))).scalars())
        removed_files = 0
        for ref in sorted(candidate_refs - still_used):
            path = evidence_file(ref, evidence_dir)
            if path is not None:
                path.unlink()
                removed_files += 1
        result = {"cutoff_ns": cutoff_ns, "retention_days": retention_days, "detections_purged": len(doomed_ids),
                  "evidence_files_removed": removed_files, "detections_kept_linked": len(old) - len(doomed_ids),
                  "tracks_purged": len(doomed_tracks), "tracks_kept_linked": len(old_tracks) - len(doomed_tracks)}
        record_audit(conn, actor=actor, action="retention.purged", subject_kind="retention", subject_id="detections",
                     detail=result, now_ns=now_ns)
    return result


def _delete(conn: Connection, ids: list[str], key: Column, *dependents: Column) -> None:
    """Delete the rows of ``key``'s table whose key is in ``ids``, their dependents' rows first, in chunks."""
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for column in (*dependents, key):
            conn.execute(delete(column.table).where(column.in_(chunk)))

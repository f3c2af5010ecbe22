"""Retention: detections and their evidence files older than the retention period are purged
unless they are linked to an alert (through a border event's evidence) or to a joint operation.

Run by an admin from the console, or on a schedule with ``ibet console purge`` (see
:mod:`console.cli`); every purge is audited with what it removed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, select

from alerts.lifecycle import lifecycle_table
from console import tables
from ibet.audit import Actor, record_audit
from ibet.clock import ns_from_seconds
from ibet.messages import Alert


def purge(engine: Engine, evidence_dir: Path, retention_days: float, actor: Actor, now_ns: int) -> dict[str, Any]:
    """Delete unlinked detections captured before ``now - retention_days`` and evidence files no longer
    referenced; returns (and audits) the counts and the cut-off."""
    cutoff_ns = now_ns - ns_from_seconds(retention_days * 86400.0)
    d, ev, items = tables.detections, tables.event_evidence, tables.case_items
    with engine.begin() as conn:
        alert_events = {e for text in conn.execute(select(lifecycle_table.c.alert_json)).scalars()
                        for e in Alert.model_validate_json(text).event_ids}
        kept_refs = set(conn.execute(select(ev.c.evidence_ref).where(ev.c.event_id.in_(alert_events))).scalars())
        case_detections = set(conn.execute(select(items.c.item_id).where(items.c.item_kind == "detection")).scalars())
        old = conn.execute(select(d.c.detection_id, d.c.evidence_ref).where(d.c.capture_ts_ns < cutoff_ns)).all()
        doomed = [row for row in old if row.detection_id not in case_detections and row.evidence_ref not in kept_refs]
        doomed_ids = [row.detection_id for row in doomed]
        for start in range(0, len(doomed_ids), 500):
            chunk = doomed_ids[start:start + 500]
            conn.execute(delete(tables.reviews).where(tables.reviews.c.detection_id.in_(chunk)))
            conn.execute(delete(d).where(d.c.detection_id.in_(chunk)))
        candidate_refs = {row.evidence_ref for row in doomed if row.evidence_ref}
        still_used = set(conn.execute(select(d.c.evidence_ref).where(d.c.evidence_ref.in_(candidate_refs))).scalars())
        still_used |= set(conn.execute(select(ev.c.evidence_ref).where(ev.c.evidence_ref.in_(candidate_refs))).scalars())
        removed_files = 0
        base = evidence_dir.resolve()
        for ref in sorted(candidate_refs - still_used):
            path = (base / ref).resolve()
            if path.is_relative_to(base) and path.is_file():
                path.unlink()
                removed_files += 1
        result = {"cutoff_ns": cutoff_ns, "retention_days": retention_days, "detections_purged": len(doomed_ids),
                  "evidence_files_removed": removed_files, "detections_kept_linked": len(old) - len(doomed_ids)}
        record_audit(conn, actor=actor, action="retention.purged", subject_kind="retention", subject_id="detections",
                     detail=result, now_ns=now_ns)
    return result

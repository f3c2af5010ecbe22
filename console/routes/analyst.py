"""The analysts' pages: the review queue of detections and tracks (with YOLO export) and the reports."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from console.auth import ContextDep, Principal, require
from console.errors import InvalidRequest
from console.rendering import render
from console.reports import report
from console.review import QueueFilter, list_detections, list_tracks, review_detection, review_track, yolo_dataset
from console.roles import Permission
from ibet.audit import record_audit
from ibet.evidence_refs import evidence_key, evidence_keys

router = APIRouter()
Reviewer = Annotated[Principal, Depends(require(Permission.DETECTIONS_REVIEW))]


class ReviewBody(BaseModel):
    """A verdict on one detection or track."""

    model_config = ConfigDict(extra="forbid")
    verdict: str = Field(description="confirmed, dismissed or false_alarm")
    reason: str = Field(max_length=2000)


def _filter(sector_id: str | None, sensor_id: str | None, class_name: str | None, since_ns: int | None,
            until_ns: int | None, reviewed: bool | None, limit: int) -> QueueFilter:
    return QueueFilter(sector_id or None, sensor_id or None, class_name or None, since_ns, until_ns, reviewed, limit)


def _detections(ctx, f: QueueFilter) -> list[dict]:
    root = ctx.settings.evidence_dir
    return [{**row, "evidence_key": evidence_key(row["evidence_ref"], root), "crop_key": evidence_key(row["crop_ref"], root)}
            for row in list_detections(ctx.engine, f)]


def _tracks(ctx, f: QueueFilter) -> list[dict]:
    return [{**row, "evidence_keys": evidence_keys(row["evidence_refs"], ctx.settings.evidence_dir)}
            for row in list_tracks(ctx.engine, f)]


def _utc_ns(text: str | None, name: str) -> int | None:
    """``YYYY-MM-DDTHH:MM`` (an HTML datetime-local, read as UTC) to ns; None when empty."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"{name}: {text!r} is not a date and time (YYYY-MM-DDTHH:MM, UTC)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000_000


@router.get("/review", response_class=HTMLResponse)
def review_page(request: Request, ctx: ContextDep, principal: Reviewer, kind: Literal["detections", "tracks"] = "detections",
                sector_id: str | None = None, sensor_id: str | None = None, class_name: str | None = None,
                reviewed: bool | None = False, since: str | None = None, until: str | None = None) -> Response:
    """The review queue of detections or of fused tracks, filtered by sector, sensor, class, time
    (UTC: capture time of a detection, last measurement of a track) and reviewed or not."""
    f = _filter(sector_id, sensor_id, class_name, _utc_ns(since, "since"), _utc_ns(until, "until"), reviewed, 100)
    rows = _tracks(ctx, f) if kind == "tracks" else _detections(ctx, f)
    return render(request, "review.html", principal, kind=kind, rows=rows, filters={
        "sector_id": sector_id or "", "sensor_id": sensor_id or "", "class_name": class_name or "", "reviewed": reviewed,
        "since": since or "", "until": until or ""})


@router.get("/api/detections")
def detections_api(ctx: ContextDep, _principal: Reviewer, sector_id: str | None = None, sensor_id: str | None = None,
                   class_name: str | None = None, since_ns: int | None = None, until_ns: int | None = None,
                   reviewed: bool | None = None, limit: int = 100) -> list[dict]:
    """Detections with their reviews, newest first (same filters as the page, plus a capture-time range);
    ``evidence_key`` and ``crop_key`` are what ``/api/evidence/<key>`` serves."""
    return _detections(ctx, _filter(sector_id, sensor_id, class_name, since_ns, until_ns, reviewed, limit))


@router.post("/api/detections/{detection_id}/review")
def review_api(detection_id: str, body: ReviewBody, ctx: ContextDep, principal: Reviewer) -> dict:
    """Confirm, dismiss or mark as false alarm, with a reason (audited)."""
    review_detection(ctx.engine, detection_id, body.verdict, body.reason, principal.actor(), ctx.clock.now_ns())
    return {"detection_id": detection_id, "verdict": body.verdict}


@router.get("/api/review/tracks")
def review_tracks_api(ctx: ContextDep, _principal: Reviewer, sector_id: str | None = None, sensor_id: str | None = None,
               class_name: str | None = None, since_ns: int | None = None, until_ns: int | None = None,
               reviewed: bool | None = None, limit: int = 100) -> list[dict]:
    """Fused tracks with their reviews and evidence, most recently seen first (filters as for detections;
    the time range applies to a track's last measurement); ``evidence_keys`` for ``/api/evidence/<key>``."""
    return _tracks(ctx, _filter(sector_id, sensor_id, class_name, since_ns, until_ns, reviewed, limit))


@router.post("/api/tracks/{track_id}/review")
def review_track_api(track_id: str, body: ReviewBody, ctx: ContextDep, principal: Reviewer) -> dict:
    """Confirm, dismiss or mark a fused track as a false alarm, with a reason (audited)."""
    review_track(ctx.engine, track_id, body.verdict, body.reason, principal.actor(), ctx.clock.now_ns())
    return {"track_id": track_id, "verdict": body.verdict}


@router.get("/api/dataset/yolo")
def yolo_export(ctx: ContextDep, principal: Annotated[Principal, Depends(require(Permission.DATASET_EXPORT))]) -> Response:
    """The reviewed detections as a YOLO dataset (zip), for retraining; audited."""
    data, counts = yolo_dataset(ctx.engine, ctx.settings.evidence_dir)
    record_audit(ctx.engine, actor=principal.actor(), action="dataset.exported", subject_kind="dataset",
                 subject_id="yolo", detail=counts, now_ns=ctx.clock.now_ns())
    return Response(data, media_type="application/zip",
                    headers={"Content-Disposition": 'attachment; filename="ibet-reviewed-yolo.zip"'})


@router.get("/reports", response_class=HTMLResponse)
def reports_page(request: Request, ctx: ContextDep,
                 principal: Annotated[Principal, Depends(require(Permission.REPORTS))]) -> Response:
    """Joint operations by sector, partner and month; alert counts, acknowledgement times, false-alarm rates."""
    return render(request, "reports.html", principal, r=report(ctx.engine))


@router.get("/api/reports")
def reports_api(ctx: ContextDep, _principal: Annotated[Principal, Depends(require(Permission.REPORTS))]) -> dict:
    """The figures of the reports page as JSON."""
    return report(ctx.engine)

"""Alerts, the live stream, the map layers and evidence, as JSON for the operator page and machines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from alerts.transitions import AlertNotFound, Forbidden, Outcome, TransitionError
from console import tables
from console.alert_views import alert_for, alert_view, delivery_state, recent_alerts
from console.auth import ContextDep, Principal, require
from console.errors import NotFound
from console.live import health_view, stream, track_view
from console.roles import Permission
from ibet.audit import record_audit
from ibet.evidence_refs import evidence_file

router = APIRouter(prefix="/api")
ReadAlerts = Annotated[Principal, Depends(require(Permission.ALERTS_READ))]
ActOnAlerts = Annotated[Principal, Depends(require(Permission.ALERTS_ACT))]


class AlertAction(BaseModel):
    """Body of an acknowledge, escalate or resolve request."""

    model_config = ConfigDict(extra="forbid")
    note: str = Field("", max_length=2000)
    outcome: Outcome | None = Field(None, description="resolve only: how the alert ended")


@router.get("/alerts")
def list_alerts(ctx: ContextDep, principal: ReadAlerts) -> list[dict]:
    """The caller's most recent alerts, newest first."""
    return [alert_view(ctx, a) for a in recent_alerts(ctx, principal, ctx.settings.alert_list_limit)]


@router.get("/alerts/{alert_id}")
def get_alert(alert_id: str, ctx: ContextDep, principal: ReadAlerts) -> dict:
    """One alert with its evidence references and where its newest version stands with each partner
    on each channel; 404 when it does not exist or is not the caller's."""
    alert = alert_for(ctx, principal, alert_id)
    view = alert_view(ctx, alert, with_evidence=principal.can(Permission.EVIDENCE_VIEW))
    view["deliveries"] = delivery_state(ctx, principal, alert)
    return view


@router.post("/alerts/{alert_id}/{action}")
def act_on_alert(alert_id: str, action: Literal["acknowledge", "escalate", "resolve"], body: AlertAction,
                 ctx: ContextDep, principal: ActOnAlerts) -> dict:
    """Acknowledge, escalate or resolve (with ``outcome``) an alert, with a note; 409 when its state does not allow it."""
    alert_for(ctx, principal, alert_id)
    actor = principal.actor()
    try:
        if action == "acknowledge":
            alert = ctx.lifecycle.acknowledge(alert_id, actor, body.note)
        elif action == "escalate":
            alert = ctx.lifecycle.escalate(alert_id, actor, body.note)
        else:
            if body.outcome is None:
                raise HTTPException(422, "resolve needs an outcome: " + ", ".join(o.value for o in Outcome))
            alert = ctx.lifecycle.resolve(alert_id, actor, body.outcome, body.note)
    except AlertNotFound:
        raise NotFound(f"no alert {alert_id!r}") from None
    except TransitionError as exc:
        raise HTTPException(409, str(exc)) from None
    except Forbidden as exc:
        raise HTTPException(403, str(exc)) from None
    return alert_view(ctx, alert)


@router.get("/live")
async def live(request: Request, ctx: ContextDep, principal: ReadAlerts) -> StreamingResponse:
    """Server-Sent Events: ``alert``, ``track`` and ``health`` as they change (see :mod:`console.live`)."""
    body = stream(request, ctx, principal, request.app.state.stopping)
    return StreamingResponse(body, media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("/map/layers")
def layers(ctx: ContextDep, _principal: Annotated[Principal, Depends(require(Permission.MAP_VIEW))]) -> dict:
    """The static map layers: border, ports of entry, sector areas, fixed cameras (GeoJSON)."""
    return ctx.layers


@router.get("/tracks")
def tracks(ctx: ContextDep, principal: Annotated[Principal, Depends(require(Permission.MAP_VIEW))],
           limit: int = 500) -> list[dict]:
    """The most recently updated tracks that are not deleted (a partner: in the sectors its agency covers)."""
    t = tables.tracks
    query = select(t).where(t.c.status != "deleted").order_by(t.c.stored_ns.desc()).limit(min(max(limit, 1), 5000))
    sectors = ctx.visible_sectors(principal)
    if sectors is not None:
        query = query.where(t.c.sector_id.in_(sorted(sectors)))
    with ctx.engine.connect() as conn:
        return [track_view(row) for row in conn.execute(query)]


@router.get("/sensor-health")
def sensor_health(ctx: ContextDep, principal: Annotated[Principal, Depends(require(Permission.MAP_VIEW))]) -> list[dict]:
    """The latest health of every sensor that reported any, feeds lost first (a partner: in its sectors)."""
    h = tables.sensor_health
    query = select(h).order_by(h.c.state, h.c.sensor_id)
    sectors = ctx.visible_sectors(principal)
    if sectors is not None:
        query = query.where(h.c.sector_id.in_(sorted(sectors)))
    with ctx.engine.connect() as conn:
        return [health_view(row) for row in conn.execute(query)]


def evidence_path(root: Path, ref: str) -> Path:
    """The file of an evidence key (or reference) under ``root``; NotFound for anything outside it or missing."""
    path = evidence_file(ref, root)
    if path is None:
        raise NotFound(f"no evidence {ref!r}")
    return path


@router.get("/evidence/{ref:path}")
def evidence(ref: str, request: Request, ctx: ContextDep,
             principal: Annotated[Principal, Depends(require(Permission.EVIDENCE_VIEW))]) -> FileResponse:
    """An evidence image (frame or thumbnail); every view is audited."""
    path = evidence_path(ctx.settings.evidence_dir, ref)
    record_audit(ctx.engine, actor=principal.actor(), action="evidence.viewed", subject_kind="evidence",
                 subject_id=ref[:128], now_ns=ctx.clock.now_ns())
    return FileResponse(path, headers={"Cache-Control": "private, no-store"})

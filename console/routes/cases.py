"""Joint operations: list, create from alerts, notes, outcome, and the exports (HTML, GeoJSON, CSV).

Exercise alerts are marked on every one of them (see :mod:`console.cases`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from console.auth import ContextDep, Principal, require
from console.cases import (
    add_note,
    case_csv,
    case_file,
    case_geojson,
    close_case,
    create_case,
    link_item,
    list_cases,
)
from console.rendering import render
from console.roles import Permission
from console.security_headers import content_security_policy, style_hash
from ibet.audit import record_audit

router = APIRouter()
CaseWorker = Annotated[Principal, Depends(require(Permission.CASES))]
REPORT_CSS = (Path(__file__).parents[1] / "static" / "report.css").read_text()
REPORT_CSP = content_security_policy(style_hashes=[style_hash(REPORT_CSS)])  # its one inline stylesheet


@router.get("/cases", response_class=HTMLResponse)
def cases_page(request: Request, ctx: ContextDep, principal: CaseWorker) -> Response:
    """Every joint operation, and a form to open one from alerts."""
    from console.alert_views import recent_alerts

    return render(request, "cases.html", principal, cases=list_cases(ctx.engine, ctx.lifecycle),
                  alerts=recent_alerts(ctx, principal, ctx.settings.alert_list_limit))


@router.post("/cases")
def create(ctx: ContextDep, principal: CaseWorker, title: Annotated[str, Form()],
           alert_ids: Annotated[list[str], Form()]) -> Response:
    """Open a joint operation from the chosen alerts."""
    case_id = create_case(ctx.engine, ctx.lifecycle, title, alert_ids, principal.actor(), ctx.clock.now_ns())
    return RedirectResponse(f"/cases/{case_id}", 303)


@router.get("/cases/{case_id}", response_class=HTMLResponse)
def case_page(case_id: str, request: Request, ctx: ContextDep, principal: CaseWorker) -> Response:
    """One case file: alerts, partners, tracks, notes, timeline."""
    return render(request, "case.html", principal, f=case_file(ctx.engine, ctx.lifecycle, case_id, ctx.partner_name))


@router.post("/cases/{case_id}/notes")
def note(case_id: str, ctx: ContextDep, principal: CaseWorker, text: Annotated[str, Form()]) -> Response:
    """Add a note."""
    add_note(ctx.engine, case_id, text, principal.actor(), ctx.clock.now_ns())
    return RedirectResponse(f"/cases/{case_id}", 303)


@router.post("/cases/{case_id}/links")
def link(case_id: str, ctx: ContextDep, principal: CaseWorker, kind: Annotated[str, Form(max_length=16)],
         item_id: Annotated[str, Form(max_length=256)]) -> Response:
    """Link an alert, a track or a detection (by id) to the joint operation; audited."""
    link_item(ctx.engine, case_id, kind, item_id.strip(), principal.actor(), ctx.clock.now_ns())
    return RedirectResponse(f"/cases/{case_id}", 303)


@router.post("/cases/{case_id}/close")
def close(case_id: str, ctx: ContextDep, principal: CaseWorker, outcome: Annotated[str, Form()]) -> Response:
    """Close the case with its outcome."""
    close_case(ctx.engine, case_id, outcome, principal.actor(), ctx.clock.now_ns())
    return RedirectResponse(f"/cases/{case_id}", 303)


@router.get("/cases/{case_id}/export.{fmt}")
def export(case_id: str, fmt: Literal["html", "geojson", "csv"], request: Request, ctx: ContextDep,
           principal: CaseWorker) -> Response:
    """The case file as a printable HTML report (print to PDF from the browser), GeoJSON or CSV; audited."""
    f = case_file(ctx.engine, ctx.lifecycle, case_id, ctx.partner_name)
    record_audit(ctx.engine, actor=principal.actor(), action="case.exported", subject_kind="case", subject_id=case_id,
                 detail={"format": fmt}, now_ns=ctx.clock.now_ns())
    disposition = {"Content-Disposition": f'attachment; filename="{case_id}.{fmt}"'}
    if fmt == "geojson":
        return JSONResponse(case_geojson(f), media_type="application/geo+json", headers=disposition)
    if fmt == "csv":
        return Response(case_csv(f), media_type="text/csv; charset=utf-8", headers=disposition)
    response = render(request, "case_report.html", principal, f=f, report_css=REPORT_CSS)
    response.headers["Content-Security-Policy"] = REPORT_CSP
    return response

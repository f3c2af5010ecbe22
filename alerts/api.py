"""The acknowledge/resolve API of the alert service, for partner contacts (FastAPI).

With ``Authorization: Bearer <contact token>`` (:class:`alerts.identity.ContactTokens`)::

    POST /alerts/{id}/acknowledge   {"note": "..."}                      (body optional)
    POST /alerts/{id}/escalate      {"note": "..."}                      (body optional)
    POST /alerts/{id}/resolve       {"outcome": "false_alarm", "note": "..."}
    POST /alerts/{id}/reopen        {"note": "..."}                      (supervisors)
    GET  /alerts/{id}               the alert with its state and lifecycle status
    GET  /alerts/{id}/audit         its audit entries, newest first (?limit=)

and without a token, the signed link an e-mail or webhook body carries
(:class:`alerts.identity.LinkSigner`)::

    GET  /a/{link}    a confirmation page; changes nothing (mail scanners fetch links); for a
                      view link, the alert's page with its snapshot
    POST /a/{link}    form fields action (as signed), outcome (resolve), note: performs it
    GET  /e/{link}    the alert's snapshot (a crop or frame link): image/jpeg, audited per fetch

Answers: 200 with ``{"alert": ..., "status": ...}``; 401 missing/bad token (``WWW-Authenticate:
Bearer``); 403 an alert not routed to the contact's partner, or a reopen by a non-supervisor, or
a tampered link; 404 unknown alert; 409 the alert's state does not allow it (the message names the
state); 410 an expired link; 400 a malformed link or one posted for another action; 422 a bad body;
503 the database is down. JSON errors are ``{"detail": message}``; link pages are HTML. Each change
is audited with the contact and the client address (``request.client``: run uvicorn with
``--forwarded-allow-ips`` behind a reverse proxy so it is the real client's).
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from alerts.identity import (
    LINK_ACTIONS,
    ContactTokens,
    IdentityError,
    InvalidToken,
    LinkError,
    LinkExpired,
    LinkSigner,
    LinkTampered,
    LinkWrongAction,
)
from alerts.lifecycle import AlertLifecycle
from alerts.transitions import (
    MAX_NOTE_CHARS,
    Action,
    AlertNotFound,
    Forbidden,
    LifecycleError,
    Outcome,
    TransitionError,
    authorize,
    status_json,
)
from ibet.api_errors import ErrorBody, error_json, error_responses, install_error_handlers
from ibet.audit import Actor, AuditEntry, record_audit
from ibet.clock import Clock, ns_to_datetime_utc
from ibet.evidence_refs import evidence_file
from ibet.messages import Alert

_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the link is a credential: never leak it in a Referer
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'",
}
_IMAGE_HEADERS = {"Cache-Control": "private, no-store", "Referrer-Policy": "no-referrer",
                  "X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'"}
SNAPSHOT = ("crop", "frame")
"""The alert's evidence_refs by position: the object's crop, then its frame."""
_LINK_STATUS: dict[type[LinkError], int] = {LinkExpired: 410, LinkTampered: 403, LinkWrongAction: 400}
_VERB = {"acknowledge": "Acknowledge", "escalate": "Escalate", "resolve": "Resolve"}
_DONE = {"acknowledge": "acknowledged", "escalate": "escalated", "resolve": "resolved"}


class NoteIn(BaseModel):
    """Body of acknowledge, escalate and reopen."""

    model_config = ConfigDict(extra="forbid")
    note: str = Field("", max_length=MAX_NOTE_CHARS, description="Free text kept in the audit log.")


class ResolveIn(NoteIn):
    """Body of resolve."""

    outcome: Outcome = Field(..., description="confirmed_crossing, false_alarm, lawful or unresolved.")


class ConflictBody(ErrorBody):
    """A transition the alert's state does not allow (409)."""

    state: str = Field(description="the alert's state now")


ACTION_ERRORS: dict[int, str] = {
    401: "no Bearer token, or one that is not a contact's (unauthorized)",
    403: "the alert is not routed to the contact's partner, or the action needs a supervisor (forbidden)",
    404: "no such alert (not_found)",
    408: "the request body did not arrive in time (request_timeout)",
    422: "a body that is not the documented JSON (invalid_request)",
    503: "the database is unavailable: retry (service_unavailable)",
}


_JSON_ERRORS = error_responses(ACTION_ERRORS)
_CONFLICT = error_responses({409: "the alert's state does not allow this (conflict, with its state)"}, ConflictBody)
_LINK_PAGES: dict[int | str, dict] = {
    status: {"description": f"an HTML page saying so: {what}", "content": {"text/html": {"schema": {"type": "string"}}}}
    for status, what in ((400, "not a valid link, or not its action"), (403, "tampered, or not the contact's alert"),
                         (404, "unknown alert"), (408, "the form did not arrive in time"),
                         (409, "already handled"), (410, "the link has expired"), (422, "resolving needs an outcome"),
                         (503, "try again later"))}
_LINK_PAGES[422]["content"]["application/json"] = {  # a form the page never sends (a field missing or too long)
    "schema": {"$ref": "#/components/schemas/ErrorBody"}}
_bearer = HTTPBearer(auto_error=False)


def _current_contact(request: Request,
                     credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Actor:
    """The contact whose Bearer token came with the request, at the client's address (InvalidToken: 401)."""
    identity: ContactTokens = request.app.state.identity
    return identity.verify(credentials.credentials if credentials else None, address=_address(request))


CurrentContact = Annotated[Actor, Depends(_current_contact)]


def create_app(lifecycle: AlertLifecycle, identity: ContactTokens, *, link_secret: str | bytes,
               clock: Clock | None = None, evidence_root: Path | None = None) -> FastAPI:
    """The API over ``lifecycle`` and ``identity``; links are checked with ``link_secret`` against
    ``clock`` (default: the lifecycle's). Snapshot links read files under ``evidence_root`` (the
    folder detect writes evidence to; none served without it). ValueError for a link secret under
    32 bytes."""
    signer = LinkSigner(link_secret, clock or lifecycle.clock)
    app = FastAPI(title="ibet alert actions", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.identity = identity
    install_error_handlers(app)
    app.add_exception_handler(InvalidToken, _json_error(401, {"WWW-Authenticate": "Bearer"}))
    app.add_exception_handler(Forbidden, _json_error(403))
    app.add_exception_handler(AlertNotFound, _json_error(404))
    app.add_exception_handler(TransitionError, _json_error(409))
    app.add_exception_handler(LifecycleError, _json_error(503))
    app.add_exception_handler(IdentityError, _json_error(503))

    def view(alert_id: str, actor: Actor) -> dict[str, Any]:
        alert, status = lifecycle.get(alert_id), lifecycle.status(alert_id)
        if alert is None or status is None:
            raise AlertNotFound(f"no alert {alert_id!r}")
        authorize(actor, alert, Action.VIEW)
        return {"alert": alert.model_dump(mode="json", exclude_none=True, exclude={"evidence_refs"}), "status": status_json(status)}

    @app.get("/alerts/{alert_id}", responses=_JSON_ERRORS)
    def get_alert(alert_id: str, actor: CurrentContact) -> dict[str, Any]:
        """The alert with its current state, if it is routed to the contact's partner."""
        return view(alert_id, actor)

    @app.get("/alerts/{alert_id}/audit", responses=_JSON_ERRORS)
    def get_audit(alert_id: str, actor: CurrentContact,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        """The alert's audit entries, newest first; addresses of other partners' people are left out."""
        view(alert_id, actor)
        return {"entries": [_entry_json(e, actor) for e in lifecycle.audit(alert_id, limit)]}

    @app.post("/alerts/{alert_id}/acknowledge", responses={**_JSON_ERRORS, **_CONFLICT})
    def acknowledge(alert_id: str, actor: CurrentContact, body: NoteIn | None = None) -> dict[str, Any]:
        """Acknowledge an open alert."""
        lifecycle.acknowledge(alert_id, actor, (body or NoteIn()).note)
        return view(alert_id, actor)

    @app.post("/alerts/{alert_id}/escalate", responses={**_JSON_ERRORS, **_CONFLICT})
    def escalate(alert_id: str, actor: CurrentContact, body: NoteIn | None = None) -> dict[str, Any]:
        """Escalate an open or acknowledged alert to the next level."""
        lifecycle.escalate(alert_id, actor, (body or NoteIn()).note)
        return view(alert_id, actor)

    @app.post("/alerts/{alert_id}/resolve", responses={**_JSON_ERRORS, **_CONFLICT})
    def resolve(alert_id: str, actor: CurrentContact, body: ResolveIn) -> dict[str, Any]:
        """Resolve an open or acknowledged alert with an outcome."""
        lifecycle.resolve(alert_id, actor, body.outcome, body.note)
        return view(alert_id, actor)

    @app.post("/alerts/{alert_id}/reopen", responses={**_JSON_ERRORS, **_CONFLICT})
    def reopen(alert_id: str, actor: CurrentContact, body: NoteIn | None = None) -> dict[str, Any]:
        """Reopen a resolved alert (contacts at roster level 1 and above)."""
        lifecycle.reopen(alert_id, actor, (body or NoteIn()).note)
        return view(alert_id, actor)

    @app.get("/a/{link}", response_class=HTMLResponse, responses=_LINK_PAGES)
    def confirm_page(link: str) -> HTMLResponse:
        """What the link will do, with a button to do it; fetching it changes nothing."""
        try:
            signed = signer.verify(link)
            if signed.action in SNAPSHOT:
                return _page(400, "Not a page link", "<p>This link is to an image of the alert, under /e/.</p>")
            alert = lifecycle.get(signed.alert_id)
            if alert is None:
                raise AlertNotFound(f"no alert {signed.alert_id!r}")
            authorize(signed.actor(), alert, Action.VIEW if signed.action == "view" else signed.action)
        except (LinkError, AlertNotFound, Forbidden, LifecycleError) as exc:
            return _error_page(exc)
        if signed.action == "view":
            images = "".join(
                f'<p><img src="../e/{signer.sign(alert.alert_id, which, signed.partner_id, signed.contact_id, expires_ns=signed.expires_ns)}"'
                f' alt="{which} of the object" style="max-width:100%"></p>'
                for which, _ref in zip(SNAPSHOT, alert.evidence_refs, strict=False))
            return _page(200, alert.title, _alert_html(alert) + images)
        return _page(200, f"{_VERB[signed.action]} alert?", _alert_html(alert) + _form_html(signed.action))

    @app.get("/e/{link}", response_class=Response, responses={
        200: {"description": "the JPEG", "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}},
        **error_responses({400: "not a snapshot link (invalid_request)", 403: "tampered, or no longer the partner's alert",
                           404: "unknown alert, or no such image (never taken, or purged)", 410: "the link has expired",
                           422: "a request that is not the documented one (invalid_request)",
                           503: "the database is unavailable: retry (service_unavailable)"})})
    def snapshot(link: str, request: Request) -> Response:
        """The alert's crop or frame, for the partner the link was signed for; every fetch is audited."""
        try:
            signed = signer.verify(link)
        except LinkError as exc:
            return error_json(_LINK_STATUS.get(type(exc), 400), str(exc))
        if signed.action not in SNAPSHOT:
            return error_json(400, f"this link is for '{signed.action}', not an image")
        alert = lifecycle.get(signed.alert_id)
        if alert is None:
            raise AlertNotFound(f"no alert {signed.alert_id!r}")
        actor = signed.actor(_address(request))
        authorize(actor, alert, Action.VIEW)
        index = SNAPSHOT.index(signed.action)
        ref = alert.evidence_refs[index] if index < len(alert.evidence_refs) else None
        path = evidence_file(ref, evidence_root) if ref and evidence_root is not None else None
        if path is None:
            return error_json(404, f"alert {alert.alert_id} has no {signed.action} image here (never taken, or purged)")
        try:
            data = path.read_bytes()
        except OSError:  # purged by retention since it was found
            return error_json(404, f"alert {alert.alert_id} has no {signed.action} image here (never taken, or purged)")
        try:
            record_audit(lifecycle.engine, actor=actor, action="evidence.fetched", subject_kind="alert",
                         subject_id=alert.alert_id, detail={"image": signed.action, "bytes": len(data),
                                                            "key": path.relative_to(evidence_root.resolve()).as_posix()},
                         now_ns=signer.clock.now_ns())
        except Exception as exc:  # noqa: BLE001 - unaudited evidence is not handed out
            raise LifecycleError(f"cannot audit the fetch, image withheld: {exc}") from exc
        return Response(data, media_type="image/jpeg", headers=_IMAGE_HEADERS)

    @app.post("/a/{link}", response_class=HTMLResponse, responses=_LINK_PAGES)
    def perform(link: str, request: Request, action: Annotated[str, Form(max_length=32)],
                outcome: Annotated[str | None, Form(max_length=32)] = None,
                note: Annotated[str, Form(max_length=MAX_NOTE_CHARS)] = "") -> HTMLResponse:
        """Do what the link allows, as its contact, from the client's address."""
        try:
            signed = signer.verify(link, action)
            if signed.action not in LINK_ACTIONS:
                raise LinkWrongAction(f"this link is for '{signed.action}': it changes nothing")
            actor = signed.actor(_address(request))
            if signed.action == "acknowledge":
                alert = lifecycle.acknowledge(signed.alert_id, actor, note)
            elif signed.action == "escalate":
                alert = lifecycle.escalate(signed.alert_id, actor, note)
            else:
                if outcome not in {o.value for o in Outcome}:
                    return _page(422, "Choose an outcome", "<p>Resolving needs an outcome: "
                                 + ", ".join(o.value for o in Outcome) + ".</p>")
                alert = lifecycle.resolve(signed.alert_id, actor, outcome, note)
        except (LinkError, AlertNotFound, Forbidden, TransitionError, LifecycleError) as exc:
            return _error_page(exc)
        return _page(200, f"Alert {_DONE[signed.action]}", _alert_html(alert))

    return app


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None


def _json_error(status: int, headers: dict[str, str] | None = None):
    def handler(_request: Request, exc: Exception) -> JSONResponse:
        extra = {"state": exc.state.value} if isinstance(exc, TransitionError) else {}
        return error_json(status, str(exc), headers=headers, **extra)
    return handler


def _entry_json(entry: AuditEntry, viewer: Actor) -> dict[str, Any]:
    same_partner = viewer.kind != "contact" or entry.actor.partner_id == viewer.partner_id
    actor = entry.actor._asdict() | ({} if same_partner else {"address": None})
    return {"id": entry.id, "ts_ns": entry.ts_ns, "time_utc": ns_to_datetime_utc(entry.ts_ns).isoformat(),
            "actor": actor, "action": entry.action, "detail": entry.detail}


def _error_page(exc: Exception) -> HTMLResponse:
    if isinstance(exc, LinkError):
        status = _LINK_STATUS.get(type(exc), 400)
    else:
        status = {AlertNotFound: 404, Forbidden: 403, TransitionError: 409}.get(type(exc), 503)
    titles = {400: "Not a valid link", 403: "Not allowed", 404: "Unknown alert", 409: "Already handled",
              410: "This link has expired", 503: "Try again later"}
    return _page(status, titles[status], f"<p>{escape(str(exc))}</p>")


def _alert_html(alert: Alert) -> str:
    return (f"<h2>{escape(alert.title)}</h2><p>{escape(alert.summary)}</p>"
            f"<p>Alert <code>{escape(alert.alert_id)}</code>, sector {escape(alert.sector_id)}, "
            f"severity {escape(alert.severity.value)}: <strong>{escape(alert.state.value)}</strong>"
            f" (escalation level {alert.escalation_level}).</p>")


def _form_html(action: str) -> str:
    outcome = ""
    if action == "resolve":
        options = "".join(f'<option value="{o.value}">{o.value.replace("_", " ")}</option>' for o in Outcome)
        outcome = f'<p><label>Outcome <select name="outcome" required>{options}</select></label></p>'
    return (f'<form method="post"><input type="hidden" name="action" value="{escape(action)}">{outcome}'
            f'<p><label>Note<br><textarea name="note" maxlength="{MAX_NOTE_CHARS}" rows="3" cols="60"></textarea>'
            f'</label></p><p><button type="submit">{_VERB[action]}</button></p></form>')


def _page(status: int, title: str, body: str) -> HTMLResponse:
    html = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)} - ibet</title>'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<style>body{font-family:sans-serif;max-width:40em;margin:2em auto;padding:0 1em}</style></head>'
            f"<body><h1>{escape(title)}</h1>{body}</body></html>")
    return HTMLResponse(html, status_code=status, headers=_PAGE_HEADERS)

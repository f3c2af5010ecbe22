"""Log-in, log-out and the operator page.

The log-in form carries a CSRF token of its own (double-submit: a random cookie ``ibet_login_csrf``
that the form must repeat), so another site cannot log a browser in under its own account.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from console.auth import SESSION_COOKIE, ContextDep, Principal, any_role, client_address, require
from console.rendering import render
from console.roles import Permission, home_path
from ibet.audit import Actor, record_audit

router = APIRouter()
LOGIN_CSRF_COOKIE = "ibet_login_csrf"


def _login_page(request: Request, error: str | None = None, status_code: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", login_csrf=token, error=error, status_code=status_code)
    ctx = request.app.state.console
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=ctx.settings.cookie_secure)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    """The log-in page (no role needed)."""
    return _login_page(request)


@router.post("/login")
def login(request: Request, ctx: ContextDep, username: Annotated[str, Form()], password: Annotated[str, Form()],
          csrf_token: Annotated[str, Form()] = "") -> Response:
    """Check the password (rate-limited per username and address) and open a session."""
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), csrf_token.encode()):
        return _login_page(request, "The form expired; please try again.", 403)
    address = client_address(request)
    if ctx.throttle.blocked(username, address):
        response = _login_page(request, "Too many failed log-ins; wait a few minutes and try again.", 429)
        response.headers["Retry-After"] = str(int(ctx.settings.login_window_s))
        return response
    user = ctx.accounts.authenticate(username, password)
    now = ctx.clock.now_ns()
    if user is None:
        ctx.throttle.failed(username, address)
        record_audit(ctx.engine, actor=Actor("user", username.strip().lower()[:128] or "-", address=address),
                     action="login.failed", subject_kind="user", subject_id=username.strip().lower()[:128] or "-", now_ns=now)
        return _login_page(request, "Wrong username or password.", 401)
    ctx.throttle.succeeded(username, address)
    token, _session = ctx.sessions.open(user.user_id, address)
    record_audit(ctx.engine, actor=Actor("user", user.user_id, user.partner_id, user.role.value, address),
                 action="login", subject_kind="user", subject_id=user.user_id, now_ns=now)
    response = RedirectResponse(home_path(user.role), 303)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", secure=ctx.settings.cookie_secure,
                        max_age=int(ctx.settings.session_max_s))
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout")
def logout(request: Request, ctx: ContextDep, principal: Annotated[Principal, Depends(any_role())]) -> Response:
    """End the session."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        ctx.sessions.close(cookie)
    response = RedirectResponse("/login", 303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/")
def home(principal: Annotated[Principal, Depends(any_role())]) -> Response:
    """Send the caller to the page of its role."""
    return RedirectResponse(home_path(principal.role), 303)


@router.get("/operator", response_class=HTMLResponse)
def operator_page(request: Request, principal: Annotated[Principal, Depends(require(Permission.ALERTS_READ))]) -> Response:
    """The live alert list and map (partners see their own alerts only)."""
    return render(request, "operator.html", principal)

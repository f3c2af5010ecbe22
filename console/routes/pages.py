"""Log-in, log-out and the operator page.

The log-in form carries a CSRF token of its own (double-submit: a random cookie ``ibet_login_csrf``
that the form must repeat), so another site cannot log a browser in under its own account.
"""

from __future__ import annotations

import hmac
import math
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from console.auth import SESSION_COOKIE, ContextDep, Principal, any_role, client_address, require
from console.metrics import ACCOUNT_LOCKOUTS, LOGINS
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
    """Check the password and open a session; throttled per client address and per account
    (:class:`console.sessions.LoginThrottle`), with the account's lock and unlock audited."""
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), csrf_token.encode()):
        return _login_page(request, "The form expired; please try again.", 403)
    address = client_address(request)
    account = username.strip().lower()[:128] or "-"
    refusal = ctx.throttle.refusal(username, address)
    if refusal is not None:
        LOGINS.labels(f"refused_{refusal.reason}").inc()
        wait_s = max(1, math.ceil(refusal.retry_after_s))
        where = "from this address" if refusal.reason == "address" else "for this account"
        response = _login_page(request, f"Too many failed log-ins {where}; try again in {wait_s} s.", 429)
        response.headers["Retry-After"] = str(wait_s)
        return response
    user = ctx.accounts.authenticate(username, password)
    now = ctx.clock.now_ns()
    if user is None:
        LOGINS.labels("failed").inc()
        failures = ctx.throttle.failed(username, address)
        attempt = Actor("user", account, address=address)
        record_audit(ctx.engine, actor=attempt, action="login.failed", subject_kind="user", subject_id=account, now_ns=now)
        lockout_s = ctx.throttle.lockout_s(failures)
        if lockout_s:
            ACCOUNT_LOCKOUTS.inc()
            record_audit(ctx.engine, actor=attempt, action="login.locked", subject_kind="user", subject_id=account,
                         detail={"failures": failures, "lockout_s": lockout_s}, now_ns=now)
        return _login_page(request, "Wrong username or password.", 401)
    LOGINS.labels("ok").inc()
    failures = ctx.throttle.succeeded(username)
    actor = Actor("user", user.user_id, user.partner_id, user.role.value, address)
    if failures >= ctx.settings.login_max_failures:
        record_audit(ctx.engine, actor=actor, action="login.unlocked", subject_kind="user", subject_id=user.user_id,
                     detail={"failures": failures, "username": user.username}, now_ns=now)
    token, _session = ctx.sessions.open(user.user_id, address)
    record_audit(ctx.engine, actor=actor, action="login", subject_kind="user", subject_id=user.user_id, now_ns=now)
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

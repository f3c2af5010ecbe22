"""Administration: users and partner accounts, API tokens for machines, the retention purge."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from console.auth import ContextDep, Principal, require
from console.errors import AccountError
from console.rendering import render
from console.retention import purge
from console.roles import Permission, Role
from ibet.audit import record_audit

router = APIRouter(prefix="/admin")
Admin = Annotated[Principal, Depends(require(Permission.USERS_MANAGE))]


def _page(request: Request, ctx, principal: Principal, **values) -> Response:
    partners = [p.id for p in ctx.registry.partners] if ctx.registry is not None else []
    return render(request, "admin.html", principal, users=ctx.accounts.list_users(), tokens=ctx.accounts.list_tokens(),
                  roles=[r.value for r in Role], partners=partners, **values)


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request, ctx: ContextDep, principal: Admin) -> Response:
    """Users, partner accounts and API tokens."""
    return _page(request, ctx, principal)


@router.post("/users", response_class=HTMLResponse)
def create_user(request: Request, ctx: ContextDep, principal: Admin, username: Annotated[str, Form()],
                password: Annotated[str, Form()], role: Annotated[str, Form()],
                partner_id: Annotated[str, Form()] = "", display_name: Annotated[str, Form()] = "") -> Response:
    """Add a user (a partner account names its agency)."""
    try:
        user = ctx.accounts.create_user(username, password, role, partner_id or None, display_name or None)
    except AccountError as exc:
        return _page(request, ctx, principal, error=str(exc))
    record_audit(ctx.engine, actor=principal.actor(), action="user.created", subject_kind="user", subject_id=user.user_id,
                 detail={"username": user.username, "role": user.role.value, "partner_id": user.partner_id},
                 now_ns=ctx.clock.now_ns())
    return RedirectResponse("/admin/users", 303)


@router.post("/users/{user_id}/active")
def set_active(user_id: str, ctx: ContextDep, principal: Admin, active: Annotated[bool, Form()]) -> Response:
    """Enable or disable a user (disabling ends the user's sessions)."""
    ctx.accounts.set_active(user_id, active)
    record_audit(ctx.engine, actor=principal.actor(), action="user.enabled" if active else "user.disabled",
                 subject_kind="user", subject_id=user_id, now_ns=ctx.clock.now_ns())
    return RedirectResponse("/admin/users", 303)


@router.post("/tokens", response_class=HTMLResponse)
def create_token(request: Request, ctx: ContextDep, principal: Admin, name: Annotated[str, Form()],
                 role: Annotated[str, Form()], partner_id: Annotated[str, Form()] = "") -> Response:
    """Issue an API token for a machine; the secret is shown once."""
    try:
        token, secret = ctx.accounts.create_token(name, role, principal.id, partner_id or None)
    except AccountError as exc:
        return _page(request, ctx, principal, error=str(exc))
    record_audit(ctx.engine, actor=principal.actor(), action="token.issued", subject_kind="api_token",
                 subject_id=token.token_id, detail={"name": token.name, "role": token.role.value}, now_ns=ctx.clock.now_ns())
    return _page(request, ctx, principal, new_secret=secret)


@router.post("/tokens/{token_id}/revoke")
def revoke_token(token_id: str, ctx: ContextDep, principal: Admin) -> Response:
    """Revoke an API token."""
    ctx.accounts.revoke_token(token_id)
    record_audit(ctx.engine, actor=principal.actor(), action="token.revoked", subject_kind="api_token",
                 subject_id=token_id, now_ns=ctx.clock.now_ns())
    return RedirectResponse("/admin/users", 303)


@router.post("/retention/purge")
def purge_now(ctx: ContextDep, principal: Annotated[Principal, Depends(require(Permission.RETENTION_PURGE))]) -> dict:
    """Purge unlinked detections and evidence older than the retention period now (audited)."""
    return purge(ctx.engine, ctx.settings.evidence_dir, ctx.settings.retention_days, principal.actor(), ctx.clock.now_ns())

"""Who is calling and what they may do: FastAPI dependencies used by every route.

A caller is a browser session (cookie ``ibet_session``, HttpOnly, SameSite=Strict) or a machine
(``Authorization: Bearer ibet_...``). Every route declares the permission it needs with
:func:`require`; a request without a caller is sent to the log-in page (pages) or answered 401
(API), one without the permission 403. Unsafe methods (POST, PUT, PATCH, DELETE) from a session
must carry its CSRF token, as the form field ``csrf_token`` or the header ``X-CSRF-Token``;
bearer tokens are not sent by browsers on their own, so they need none.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from console.context import ConsoleContext
from console.roles import Permission, Role, allowed
from ibet.audit import Actor
from ibet.forwarded import Network, parse_networks
from ibet.forwarded import client_address as forwarded_client

SESSION_COOKIE = "ibet_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Principal:
    """The caller of a request: a user (by session) or a machine (by API token)."""

    kind: str  # "user" or "token"
    id: str
    name: str
    role: Role
    partner_id: str | None
    csrf_token: str | None  # sessions only
    address: str

    def can(self, permission: Permission) -> bool:
        """Whether this caller's role grants ``permission``."""
        return allowed(self.role, permission)

    def actor(self) -> Actor:
        """The caller as the audit log records it."""
        kind = "user" if self.kind == "user" else "system"
        return Actor(kind, self.id, partner_id=self.partner_id, role=self.role.value, address=self.address)


class NotLoggedIn(Exception):
    """No valid session or token; pages redirect to /login, the API answers 401."""


def context(request: Request) -> ConsoleContext:
    """The console's shared objects."""
    return request.app.state.console


ContextDep = Annotated[ConsoleContext, Depends(context)]


def client_address(request: Request) -> str:
    """The caller's IP address: the TCP peer's, unless the peer is one of ``console.trusted_proxies``;
    then the right-most address of ``X-Forwarded-For`` that is not a trusted proxy
    (:func:`ibet.forwarded.client_address`: a client's own left-hand entries are never believed)."""
    proxies = _networks(tuple(context(request).settings.trusted_proxies))
    forwarded = ",".join(request.headers.getlist("x-forwarded-for")) or None
    return forwarded_client(request.client.host if request.client else None, forwarded, proxies)


@lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    return parse_networks(proxies)


def current_principal(request: Request, ctx: ContextDep) -> Principal:
    """The caller, from the bearer token or the session cookie; NotLoggedIn when neither is valid."""
    address = client_address(request)
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        token = ctx.accounts.token_for(header[7:].strip())
        if token is None:
            raise NotLoggedIn()
        return Principal("token", token.token_id, token.name, token.role, token.partner_id, None, address)
    cookie = request.cookies.get(SESSION_COOKIE)
    session = ctx.sessions.find(cookie) if cookie else None
    user = ctx.accounts.get(session.user_id) if session else None
    if session is None or user is None or not user.active:
        raise NotLoggedIn()
    return Principal("user", user.user_id, user.display_name, user.role, user.partner_id, session.csrf_token, address)


async def check_csrf(request: Request, principal: Principal) -> None:
    """403 unless an unsafe request from a session carries that session's CSRF token."""
    if request.method not in UNSAFE_METHODS or principal.kind != "user":
        return
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        sent = (await request.form()).get(CSRF_FIELD)
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), (principal.csrf_token or "").encode()):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")


def require(permission: Permission):
    """A dependency: the caller, once logged in, allowed ``permission`` and (unsafe methods) CSRF-checked."""

    async def dependency(request: Request, principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not principal.can(permission):
            raise HTTPException(403, f"the {principal.role.value} role may not do this ({permission.value})")
        await check_csrf(request, principal)
        return principal

    return dependency


def any_role():
    """A dependency for pages every logged-in caller may see (CSRF-checked like :func:`require`)."""

    async def dependency(request: Request, principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        await check_csrf(request, principal)
        return principal

    return dependency

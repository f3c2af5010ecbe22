"""Browser sessions (random token in an HttpOnly cookie, its SHA-256 in the database, with a CSRF
token of their own) and the log-in throttle (failed attempts per client address and per account).

Sessions end after ``session_idle_s`` unused or ``session_max_s`` after log-in, and when the user is
disabled or changes password. The throttle counts failures in the database, so every console
replica sees the same count.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Engine, delete, func, insert, select, update

from console import tables
from console.accounts import token_digest
from console.settings import ConsoleSettings
from ibet.clock import Clock, ns_from_seconds


@dataclass(frozen=True)
class Session:
    """A live session: whose it is and the CSRF token its forms must carry."""

    user_id: str
    csrf_token: str


class Sessions:
    """Opens, finds and ends sessions."""

    def __init__(self, engine: Engine, clock: Clock, settings: ConsoleSettings):
        self.engine, self.clock, self.settings = engine, clock, settings

    def open(self, user_id: str, address: str | None) -> tuple[str, Session]:
        """A new session for ``user_id``; returns the cookie value and the session."""
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = self.clock.now_ns()
        with self.engine.begin() as conn:
            conn.execute(insert(tables.sessions).values(token_hash=token_digest(token), user_id=user_id, csrf_token=csrf,
                                                        created_ns=now, last_seen_ns=now, address=(address or "")[:64]))
        return token, Session(user_id, csrf)

    def find(self, token: str) -> Session | None:
        """The live session of this cookie value (and mark it used), else None."""
        now = self.clock.now_ns()
        digest = token_digest(token)
        with self.engine.begin() as conn:
            row = conn.execute(select(tables.sessions).where(tables.sessions.c.token_hash == digest)).first()
            if row is None:
                return None
            if (now - row.last_seen_ns > ns_from_seconds(self.settings.session_idle_s)
                    or now - row.created_ns > ns_from_seconds(self.settings.session_max_s)):
                conn.execute(delete(tables.sessions).where(tables.sessions.c.token_hash == digest))
                return None
            conn.execute(update(tables.sessions).where(tables.sessions.c.token_hash == digest).values(last_seen_ns=now))
        return Session(row.user_id, row.csrf_token)

    def close(self, token: str) -> None:
        """End the session of this cookie value (log-out)."""
        with self.engine.begin() as conn:
            conn.execute(delete(tables.sessions).where(tables.sessions.c.token_hash == token_digest(token)))


@dataclass(frozen=True)
class Refusal:
    """Why a log-in is refused before its password is checked: ``"address"`` or ``"account"``, and for how long (s)."""

    reason: Literal["address", "account"]
    retry_after_s: float


class LoginThrottle:
    """Counts failed log-ins per client address and per account, separately.

    An address with ``login_address_max_failures`` failures within ``login_window_s`` is refused for
    every account until enough of them age out (one client guessing many accounts). An account with
    ``login_max_failures`` failures, from any address, is locked for ``login_lockout_s`` after its last
    failure, doubled for each further failure, at most ``login_window_s``; after that its correct
    password logs in again. So nobody's wrong passwords block another account from another address.
    """

    def __init__(self, engine: Engine, clock: Clock, settings: ConsoleSettings):
        self.engine, self.clock, self.settings = engine, clock, settings

    def _since(self, now_ns: int) -> int:
        return now_ns - ns_from_seconds(self.settings.login_window_s)

    def lockout_s(self, failures: int) -> float:
        """How long (s) an account with ``failures`` failures in the window stays locked after its last one (0: not)."""
        extra = failures - self.settings.login_max_failures
        if extra < 0:
            return 0.0
        return min(self.settings.login_lockout_s * 2.0 ** min(extra, 32), self.settings.login_window_s)

    def refusal(self, username: str, address: str) -> Refusal | None:
        """Why a log-in to ``username`` from ``address`` is refused now, or None when its password may be checked."""
        t, now = tables.login_failures, self.clock.now_ns()
        since = self._since(now)
        with self.engine.connect() as conn:
            # the address is free again when its login_address_max_failures-th most recent failure ages out
            nth_recent = conn.execute(
                select(t.c.at_ns).where(t.c.address == address[:64], t.c.at_ns > since).order_by(t.c.at_ns.desc())
                .offset(self.settings.login_address_max_failures - 1).limit(1)).scalar()
            failures, last_ns = conn.execute(select(func.count(), func.max(t.c.at_ns)).where(
                t.c.username == _account(username), t.c.at_ns > since)).one()
        if nth_recent is not None:
            return Refusal("address", (nth_recent - since) / 1e9)
        lockout_ns = ns_from_seconds(self.lockout_s(failures))
        if lockout_ns and now < last_ns + lockout_ns:
            return Refusal("account", (last_ns + lockout_ns - now) / 1e9)
        return None

    def failed(self, username: str, address: str) -> int:
        """Count one failed attempt (and forget failures older than the window); returns the account's failures in the
        window, so the caller can tell (``lockout_s``) whether this one locked it."""
        t, now = tables.login_failures, self.clock.now_ns()
        with self.engine.begin() as conn:
            conn.execute(insert(t).values(username=_account(username), address=address[:64], at_ns=now))
            conn.execute(delete(t).where(t.c.at_ns <= self._since(now)))
            return conn.execute(select(func.count()).where(t.c.username == _account(username))).scalar_one()

    def succeeded(self, username: str) -> int:
        """A correct password clears the account's failures (not the address's: those age out); returns how many
        there were in the window, so the caller can tell whether the account had been locked."""
        t, account = tables.login_failures, _account(username)
        with self.engine.begin() as conn:
            recent = conn.execute(select(func.count()).where(
                t.c.username == account, t.c.at_ns > self._since(self.clock.now_ns()))).scalar_one()
            conn.execute(delete(t).where(t.c.username == account))
        return recent


def _account(username: str) -> str:
    """The throttle's key of an account: the username as log-in compares it."""
    return username.strip().lower()[:64]

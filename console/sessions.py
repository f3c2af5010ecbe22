"""Browser sessions (random token in an HttpOnly cookie, its SHA-256 in the database, with a CSRF
token of their own) and the log-in throttle (failed attempts per username and per address).

Sessions end after ``session_idle_s`` unused or ``session_max_s`` after log-in, and when the user is
disabled or changes password. The throttle counts failures in the database, so every console
replica sees the same count.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import Engine, delete, func, insert, or_, select, update

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


class LoginThrottle:
    """Refuses log-ins for a username or an address with too many recent failures."""

    def __init__(self, engine: Engine, clock: Clock, settings: ConsoleSettings):
        self.engine, self.clock, self.settings = engine, clock, settings

    def _since(self) -> int:
        return self.clock.now_ns() - ns_from_seconds(self.settings.login_window_s)

    def blocked(self, username: str, address: str) -> bool:
        """Whether ``username`` or ``address`` has used up its failures in the window."""
        t = tables.login_failures
        since = self._since()
        with self.engine.connect() as conn:
            by_user = conn.execute(select(func.count()).where(t.c.username == username.strip().lower(), t.c.at_ns > since))
            by_address = conn.execute(select(func.count()).where(t.c.address == address, t.c.at_ns > since))
            return max(by_user.scalar_one(), by_address.scalar_one()) >= self.settings.login_max_failures

    def failed(self, username: str, address: str) -> None:
        """Count one failed attempt (and forget failures older than the window)."""
        t = tables.login_failures
        with self.engine.begin() as conn:
            conn.execute(insert(t).values(username=username.strip().lower()[:64], address=address[:64],
                                          at_ns=self.clock.now_ns()))
            conn.execute(delete(t).where(t.c.at_ns <= self._since()))

    def succeeded(self, username: str, address: str) -> None:
        """A good log-in clears the failures of that username and address."""
        t = tables.login_failures
        with self.engine.begin() as conn:
            conn.execute(delete(t).where(or_(t.c.username == username.strip().lower(), t.c.address == address)))

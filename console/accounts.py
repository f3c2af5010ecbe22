"""Console accounts: users with argon2id password hashes, and API tokens for machines.

Passwords are hashed with argon2-cffi's defaults (argon2id); tokens are 32 random bytes shown
once and stored only as their SHA-256. A partner user or token carries the partner agency it is
scoped to; other roles carry none.

    >>> users = Accounts(engine, clock)  # doctest: +SKIP
    >>> users.create_user("duty1", "a long passphrase", Role.OPERATOR)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from console import tables
from console.errors import AccountError
from console.roles import Role
from ibet.clock import Clock, SystemClock

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD_CHARS = 12
TOKEN_PREFIX = "ibet_"
_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("an unused password to spend the same time on unknown users")


@dataclass(frozen=True)
class User:
    """A console user as the application sees it (never the hash)."""

    user_id: str
    username: str
    role: Role
    partner_id: str | None
    display_name: str
    active: bool


@dataclass(frozen=True)
class ApiToken:
    """A machine's token (without the secret)."""

    token_id: str
    name: str
    role: Role
    partner_id: str | None
    revoked: bool


def token_digest(token: str) -> str:
    """SHA-256 hex of a session or API token: what is stored instead of the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Accounts:
    """Users and API tokens in the console's tables."""

    def __init__(self, engine: Engine, clock: Clock | None = None, partner_ids: Collection[str] | None = None):
        """``partner_ids``: the registry's partners; when given, a partner account must name one of them."""
        self.engine = engine
        self.clock = clock or SystemClock()
        self.partner_ids = None if partner_ids is None else frozenset(partner_ids)

    def _check_scope(self, role: Role, partner_id: str | None) -> None:
        if role == Role.PARTNER and not partner_id:
            raise AccountError("a partner account needs the partner agency it belongs to (partner_id)")
        if role != Role.PARTNER and partner_id:
            raise AccountError(f"only partner accounts belong to a partner agency, not a {role.value} account")
        if partner_id and self.partner_ids is not None and partner_id not in self.partner_ids:
            raise AccountError(f"partner_id {partner_id!r} is not a partner in the registry "
                               f"(known: {', '.join(sorted(self.partner_ids))})")

    def create_user(self, username: str, password: str, role: Role | str, partner_id: str | None = None,
                    display_name: str | None = None) -> User:
        """Add a user; AccountError for a bad username, a short password, a bad role/partner or a taken name."""
        username = username.strip().lower()
        if not USERNAME.match(username):
            raise AccountError(f"username {username!r} must be 2-64 characters of a-z, 0-9, '.', '_', '-'")
        if len(password) < MIN_PASSWORD_CHARS:
            raise AccountError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
        try:
            role = Role(role)
        except ValueError:
            raise AccountError(f"role {role!r} is not one of {', '.join(r.value for r in Role)}") from None
        partner_id = partner_id or None
        self._check_scope(role, partner_id)
        user = User("usr-" + secrets.token_hex(8), username, role, partner_id, display_name or username, True)
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(tables.users).values(
                    user_id=user.user_id, username=username, password_hash=_hasher.hash(password), role=role.value,
                    partner_id=partner_id, display_name=user.display_name, active=True, created_ns=self.clock.now_ns()))
        except IntegrityError:
            raise AccountError(f"username {username!r} is taken") from None
        return user

    def authenticate(self, username: str, password: str) -> User | None:
        """The active user whose password this is, else None (same work for unknown users)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(tables.users).where(tables.users.c.username == username.strip().lower())).first()
        stored = row.password_hash if row is not None else _DUMMY_HASH
        try:
            _hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None or not row.active:
            return None
        if _hasher.check_needs_rehash(stored):
            with self.engine.begin() as conn:
                conn.execute(update(tables.users).where(tables.users.c.user_id == row.user_id)
                             .values(password_hash=_hasher.hash(password)))
        return _user(row)

    def get(self, user_id: str) -> User | None:
        """The user with this id, active or not."""
        with self.engine.connect() as conn:
            row = conn.execute(select(tables.users).where(tables.users.c.user_id == user_id)).first()
        return _user(row) if row is not None else None

    def list_users(self) -> list[User]:
        """Every user, by username."""
        with self.engine.connect() as conn:
            return [_user(r) for r in conn.execute(select(tables.users).order_by(tables.users.c.username))]

    def set_active(self, user_id: str, active: bool) -> None:
        """Enable or disable a user; a disabled user's sessions are ended."""
        with self.engine.begin() as conn:
            done = conn.execute(update(tables.users).where(tables.users.c.user_id == user_id).values(active=active))
            if done.rowcount == 0:
                raise AccountError(f"no user {user_id!r}")
            if not active:
                conn.execute(tables.sessions.delete().where(tables.sessions.c.user_id == user_id))

    def set_password(self, user_id: str, password: str) -> None:
        """Replace a user's password and end the user's sessions."""
        if len(password) < MIN_PASSWORD_CHARS:
            raise AccountError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
        with self.engine.begin() as conn:
            done = conn.execute(update(tables.users).where(tables.users.c.user_id == user_id)
                                .values(password_hash=_hasher.hash(password)))
            if done.rowcount == 0:
                raise AccountError(f"no user {user_id!r}")
            conn.execute(tables.sessions.delete().where(tables.sessions.c.user_id == user_id))

    def count_admins(self) -> int:
        """How many active admins there are (first start: zero)."""
        with self.engine.connect() as conn:
            return len(conn.execute(select(tables.users.c.user_id).where(
                tables.users.c.role == Role.ADMIN.value, tables.users.c.active.is_(True))).all())

    # -- API tokens ---------------------------------------------------------------------------
    def create_token(self, name: str, role: Role | str, created_by: str, partner_id: str | None = None) -> tuple[ApiToken, str]:
        """A new API token; returns it and its secret (shown once, stored only as a hash)."""
        try:
            role = Role(role)
        except ValueError:
            raise AccountError(f"role {role!r} is not one of {', '.join(r.value for r in Role)}") from None
        if not name.strip():
            raise AccountError("an API token needs a name that says which machine uses it")
        self._check_scope(role, partner_id or None)
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = ApiToken("tok-" + secrets.token_hex(8), name.strip(), role, partner_id or None, False)
        with self.engine.begin() as conn:
            conn.execute(insert(tables.api_tokens).values(
                token_id=token.token_id, token_hash=token_digest(secret), name=token.name, role=role.value,
                partner_id=token.partner_id, created_by=created_by, created_ns=self.clock.now_ns()))
        return token, secret

    def token_for(self, secret: str) -> ApiToken | None:
        """The live token with this secret, else None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(tables.api_tokens).where(tables.api_tokens.c.token_hash == token_digest(secret))).first()
        if row is None or row.revoked_ns is not None:
            return None
        return ApiToken(row.token_id, row.name, Role(row.role), row.partner_id, False)

    def list_tokens(self) -> list[ApiToken]:
        """Every API token, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(tables.api_tokens).order_by(tables.api_tokens.c.created_ns.desc()))
            return [ApiToken(r.token_id, r.name, Role(r.role), r.partner_id, r.revoked_ns is not None) for r in rows]

    def revoke_token(self, token_id: str) -> None:
        """Revoke a token for good."""
        with self.engine.begin() as conn:
            done = conn.execute(update(tables.api_tokens).where(tables.api_tokens.c.token_id == token_id)
                                .values(revoked_ns=self.clock.now_ns()))
        if done.rowcount == 0:
            raise AccountError(f"no API token {token_id!r}")


def _user(row) -> User:
    return User(row.user_id, row.username, Role(row.role), row.partner_id, row.display_name, bool(row.active))

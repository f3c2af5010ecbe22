"""Who a partner contact is: per-contact API tokens and signed, expiring action links.

**API tokens** (``Authorization: Bearer ibetc_<id>_<secret>``): issued once in clear, stored only as
SHA-256 in ``contact_tokens`` (revision 0003). SHA-256 rather than argon2 because the token is 256
random bits, not a password: nobody can guess it from its digest however fast the hash, while a
digest is an indexed lookup, so each API call costs microseconds and needs no cache of outcomes
(argon2 is slow on purpose to protect low-entropy passwords: that is what the console's human
accounts use). The ``<id>`` part names the token in lists and audit entries and revokes it.

**Action links** (``/a/<link>`` in e-mails and webhook bodies) and **read links** (the alert's page,
``/a/<link>``, and its snapshot, ``/e/<link>``, in every channel): ``<payload>.<mac>``, both URL-safe
base64 without padding; the payload is the JSON array ``[1, alert_id, action, partner_id,
contact_id, expires_ns]`` and the mac HMAC-SHA256 over a domain tag and the payload, compared in
constant time. A link carries its own expiry, so none are stored; verification tells a malformed
link, a tampered one, an expired one and one used for another action apart.

    >>> signer = LinkSigner(b"x" * 32, clock)  # doctest: +SKIP
    >>> link = signer.sign("alr-0123456789abcdef", "acknowledge", "usbp", "blaine-desk", ttl_s=3600)  # doctest: +SKIP
    >>> signer.verify(link, "acknowledge").contact_id  # doctest: +SKIP
    'blaine-desk'
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from typing import NamedTuple

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    insert,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from alerts.rosters import Roster, Rotation
from ibet.audit import SYSTEM, Actor, record_audit
from ibet.clock import Clock, SystemClock, ns_from_seconds
from ibet.exceptions import IbetError

TOKEN_PREFIX = "ibetc_"
_TOKEN = re.compile(r"^ibetc_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
LINK_ACTIONS = ("acknowledge", "resolve", "escalate")
"""What a link can do to an alert (``POST /a/<link>``)."""
READ_LINKS = ("view", "crop", "frame")
"""What a link can only read: the alert's page (``GET /a/<link>``) and its snapshot (``GET /e/<link>``)."""
MIN_SECRET_BYTES = 32
_LINK_TAG = b"ibet.action-link.v1\x00"

metadata = MetaData()
contact_tokens = Table(
    "contact_tokens", metadata,
    Column("token_id", String(32), primary_key=True),
    Column("token_sha256", String(64), nullable=False),
    Column("partner_id", String(64), nullable=False),
    Column("contact_id", String(128), nullable=False),
    Column("level", Integer, nullable=False),
    Column("note", String(256), nullable=False),
    Column("created_ns", BigInteger, nullable=False),
    Column("expires_ns", BigInteger),
    Column("revoked_ns", BigInteger),
    UniqueConstraint("token_sha256", name="uq_contact_tokens_sha256"),
    Index("ix_contact_tokens_contact", "partner_id", "contact_id"),
)


class IdentityError(IbetError):
    """Base of the identity errors."""


class InvalidToken(IdentityError):
    """An API token that is missing, malformed, unknown, revoked or expired; the message says which."""


class TokenNotFound(IdentityError, LookupError):
    """No token with this id."""


class LinkError(IdentityError):
    """Base of the action-link errors."""


class LinkMalformed(LinkError):
    """Not an action link at all (wrong shape or encoding)."""


class LinkTampered(LinkError):
    """The link's signature does not match its content: changed, or signed with another secret."""


class LinkExpired(LinkError):
    """A genuine link past its expiry."""


class LinkWrongAction(LinkError):
    """A genuine link used for an action other than the one it was signed for."""


class TokenInfo(NamedTuple):
    """A token as listed (never the token itself). ``level``: the contact's roster level (1+ supervises)."""

    token_id: str
    partner_id: str
    contact_id: str
    level: int
    note: str
    created_ns: int
    expires_ns: int | None
    revoked_ns: int | None


class IssuedToken(NamedTuple):
    """What :meth:`ContactTokens.issue` returns: the clear token (shown once) and its record."""

    token: str
    info: TokenInfo


def token_sha256(token: str) -> str:
    """The stored form of a token: SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def contact_actor(partner_id: str, contact_id: str, level: int = 0, address: str | None = None) -> Actor:
    """The :class:`Actor` of a partner contact; role ``supervisor`` at roster level >= 1, else ``duty``."""
    return Actor("contact", contact_id, partner_id, "supervisor" if level >= 1 else "duty", address)


def roster_level(roster: Roster, partner_id: str, contact_id: str) -> int | None:
    """The highest level at which ``contact_id`` of ``partner_id`` appears in the roster, or None if nowhere.

    Rotation teams count too. Example: a watch commander listed in a ``level: 1`` shift -> 1.
    """
    levels = []
    for _, _, entry in roster.entries():
        if entry.partner_id != partner_id:
            continue
        teams = entry.teams if isinstance(entry, Rotation) else (entry.contacts,)  # an override's may be "nobody"
        if any(isinstance(team, tuple) and contact_id in team for team in teams):
            levels.append(entry.level)
    return max(levels) if levels else None


class ContactTokens:
    """API tokens of partner contacts in the database of ``engine`` (revision 0003 or later)."""

    def __init__(self, engine: Engine, clock: Clock | None = None):
        self.engine = engine
        self.clock = clock or SystemClock()

    def issue(self, partner_id: str, contact_id: str, *, level: int = 0, ttl_s: float | None = None, note: str = "",
              actor: Actor = SYSTEM) -> IssuedToken:
        """A new token for the contact; only its digest is stored (audited as ``token.issued``).

        ``ttl_s``: seconds until it expires (None: until revoked). ValueError for an empty id, a
        negative level, a non-positive ttl or a note over 256 characters.
        """
        for name, value, limit in (("partner_id", partner_id, 64), ("contact_id", contact_id, 128)):
            if not isinstance(value, str) or not value.strip() or len(value) > limit:
                raise ValueError(f"{name} must be a non-empty string of at most {limit} characters, got {value!r}")
        if isinstance(level, bool) or not isinstance(level, int) or level < 0:
            raise ValueError(f"level must be an int >= 0 (the contact's roster level), got {level!r}")
        if ttl_s is not None and not ttl_s > 0:
            raise ValueError(f"ttl_s must be > 0 seconds (or None for no expiry), got {ttl_s!r}")
        if len(note) > 256:
            raise ValueError(f"note is {len(note)} characters long; at most 256")
        now_ns = self.clock.now_ns()
        token_id = secrets.token_hex(6)
        token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        info = TokenInfo(token_id, partner_id, contact_id, level, note, now_ns,
                         None if ttl_s is None else now_ns + ns_from_seconds(ttl_s), None)
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(contact_tokens).values(token_sha256=token_sha256(token), **info._asdict()))
                record_audit(conn, actor=actor, action="token.issued", subject_kind="contact_token", subject_id=token_id,
                             detail={"partner_id": partner_id, "contact_id": contact_id, "level": level,
                                     "expires_ns": info.expires_ns, "note": note}, now_ns=now_ns)
        except SQLAlchemyError as exc:
            raise IdentityError(f"token store unavailable, cannot issue a token for {partner_id}/{contact_id}: {exc}") from exc
        return IssuedToken(token, info)

    def verify(self, token: str | None, address: str | None = None) -> Actor:
        """The contact ``token`` belongs to, as an :class:`Actor` (with ``address``); InvalidToken says
        why not: missing, malformed, unknown, revoked or expired."""
        if not token:
            raise InvalidToken("no API token given (Authorization: Bearer <token>)")
        match = _TOKEN.match(token)
        if match is None:
            raise InvalidToken(f"malformed API token: expected {TOKEN_PREFIX}<12 hex>_<43 characters>")
        t = contact_tokens
        try:
            with self.engine.connect() as conn:
                row = conn.execute(select(t).where(t.c.token_id == match[1])).first()
        except SQLAlchemyError as exc:
            raise IdentityError(f"token store unavailable, cannot verify a token: {exc}") from exc
        if row is None or not hmac.compare_digest(row.token_sha256, token_sha256(token)):
            raise InvalidToken("unknown API token")
        if row.revoked_ns is not None:
            raise InvalidToken(f"API token {row.token_id} was revoked")
        if row.expires_ns is not None and self.clock.now_ns() >= row.expires_ns:
            raise InvalidToken(f"API token {row.token_id} has expired")
        return contact_actor(row.partner_id, row.contact_id, row.level, address)

    def revoke(self, token_id: str, actor: Actor = SYSTEM) -> TokenInfo:
        """Revoke a token by id (audited as ``token.revoked``); revoking again changes nothing.
        TokenNotFound for an unknown id."""
        t, now_ns = contact_tokens, self.clock.now_ns()
        try:
            with self.engine.begin() as conn:
                changed = conn.execute(update(t).where(t.c.token_id == token_id, t.c.revoked_ns.is_(None))
                                       .values(revoked_ns=now_ns)).rowcount
                row = conn.execute(select(t).where(t.c.token_id == token_id)).first()
                if row is None:
                    raise TokenNotFound(f"no contact token with id {token_id!r}")
                if changed:
                    record_audit(conn, actor=actor, action="token.revoked", subject_kind="contact_token",
                                 subject_id=token_id, detail={"partner_id": row.partner_id, "contact_id": row.contact_id},
                                 now_ns=now_ns)
        except SQLAlchemyError as exc:
            raise IdentityError(f"token store unavailable, cannot revoke {token_id}: {exc}") from exc
        return _info_of(row)

    def list(self, partner_id: str | None = None, contact_id: str | None = None, *,
             include_revoked: bool = False) -> list[TokenInfo]:
        """Tokens (of a partner, of a contact), oldest first; revoked ones only with ``include_revoked``."""
        t = contact_tokens
        query = select(t).order_by(t.c.created_ns, t.c.token_id)
        if partner_id is not None:
            query = query.where(t.c.partner_id == partner_id)
        if contact_id is not None:
            query = query.where(t.c.contact_id == contact_id)
        if not include_revoked:
            query = query.where(t.c.revoked_ns.is_(None))
        with self.engine.connect() as conn:
            return [_info_of(row) for row in conn.execute(query)]


def _info_of(row) -> TokenInfo:
    return TokenInfo(row.token_id, row.partner_id, row.contact_id, row.level, row.note, row.created_ns, row.expires_ns,
                     row.revoked_ns)


class ActionLink(NamedTuple):
    """What a verified link allows: ``action`` on ``alert_id`` by ``contact_id`` of ``partner_id``, until ``expires_ns``."""

    alert_id: str
    action: str
    partner_id: str
    contact_id: str
    expires_ns: int

    def actor(self, address: str | None = None) -> Actor:
        """The contact acting through this link (role ``duty``: links never carry supervisor rights)."""
        return contact_actor(self.partner_id, self.contact_id, 0, address)


class LinkSigner:
    """Signs and verifies action links with ``secret`` (at least 32 bytes) against ``clock``."""

    def __init__(self, secret: str | bytes, clock: Clock | None = None):
        key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        if len(key) < MIN_SECRET_BYTES:
            raise ValueError(f"the link secret must be at least {MIN_SECRET_BYTES} bytes, got {len(key)} "
                             "(set alerts.link_secret, e.g. from `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
        self._key = key
        self.clock = clock or SystemClock()

    def sign(self, alert_id: str, action: str, partner_id: str, contact_id: str, *, ttl_s: float | None = None,
             expires_ns: int | None = None) -> str:
        """A URL-safe link token allowing ``action`` (one of :data:`LINK_ACTIONS` or :data:`READ_LINKS`)
        until ``expires_ns`` or ``ttl_s`` seconds from now (exactly one of the two)."""
        if action not in LINK_ACTIONS + READ_LINKS:
            raise ValueError(f"action must be one of {', '.join(LINK_ACTIONS + READ_LINKS)}, got {action!r}")
        if (ttl_s is None) == (expires_ns is None):
            raise ValueError("give exactly one of ttl_s and expires_ns")
        if expires_ns is None:
            if not ttl_s > 0:
                raise ValueError(f"ttl_s must be > 0, got {ttl_s!r}")
            expires_ns = self.clock.now_ns() + ns_from_seconds(ttl_s)
        for name, value in (("alert_id", alert_id), ("partner_id", partner_id), ("contact_id", contact_id)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string, got {value!r}")
        payload = _b64(json.dumps([1, alert_id, action, partner_id, contact_id, int(expires_ns)],
                                  separators=(",", ":")).encode("utf-8"))
        return f"{payload}.{_b64(self._mac(payload))}"

    def verify(self, link: str, action: str | None = None) -> ActionLink:
        """The link's content if genuine and not expired, and (when ``action`` is given) for that action.

        Checked in this order, each with its own error: shape (LinkMalformed), signature
        (LinkTampered), expiry (LinkExpired), action (LinkWrongAction).
        """
        payload, dot, mac_text = link.partition(".")
        if not dot or not payload or not mac_text:
            raise LinkMalformed("not an action link: expected <payload>.<signature>")
        try:
            mac = _unb64(mac_text)
        except ValueError:
            raise LinkMalformed("not an action link: the signature is not URL-safe base64") from None
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise LinkTampered("this link's signature does not match: it was changed or not issued by this service")
        try:
            version, alert_id, link_action, partner_id, contact_id, expires_ns = json.loads(_unb64(payload))
        except (ValueError, TypeError):
            raise LinkMalformed("not an action link: unreadable payload") from None
        if version != 1 or not all(isinstance(v, str) for v in (alert_id, link_action, partner_id, contact_id)) \
                or isinstance(expires_ns, bool) or not isinstance(expires_ns, int):
            raise LinkMalformed("not an action link: unexpected payload")
        content = ActionLink(alert_id, link_action, partner_id, contact_id, expires_ns)
        if self.clock.now_ns() >= expires_ns:
            raise LinkExpired(f"this link to {link_action} alert {alert_id} has expired")
        if action is not None and action != link_action:
            raise LinkWrongAction(f"this link is for '{link_action}', not '{action}'")
        return content

    def _mac(self, payload: str) -> bytes:
        return hmac.new(self._key, _LINK_TAG + payload.encode("ascii", "replace"), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not URL-safe base64")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(str(exc)) from None

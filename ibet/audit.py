"""The audit log: who did what, when, from where, to which subject (table ``audit_log``, revision 0003).

Shared by the alert service (acknowledge, escalate, resolve, reopen, token issue/revoke) and the
console (log-ins, reviews, case files). An entry is written in the same transaction as the change
it records: pass the open ``Connection`` to :func:`record_audit`, so a change never commits without
its entry and an entry never outlives a rolled-back change.

    >>> actor = Actor("contact", "blaine-station-day-desk", partner_id="usbp", address="198.51.100.7")
    >>> with engine.begin() as conn:  # doctest: +SKIP
    ...     record_audit(conn, actor=actor, action="alert.acknowledged", subject_kind="alert",
    ...                  subject_id="alr-0123456789abcdef", detail={"note": "on my way"}, now_ns=clock.now_ns())
"""

from __future__ import annotations

import json
from typing import Any, Literal, NamedTuple, get_args

from sqlalchemy import JSON, BigInteger, Column, Connection, Engine, Index, Integer, MetaData, String, Table, insert, select

ActorKind = Literal["contact", "user", "system"]
ACTOR_KINDS: tuple[str, ...] = get_args(ActorKind)


class Actor(NamedTuple):
    """Who acts: a partner contact (API token or signed link), a console user, or the system itself.

    ``partner_id``: the agency a contact (or a partner's console user) belongs to. ``role``: a user's
    console role (``operator``, ``analyst``, ``supervisor``, ``admin``); for a contact ``supervisor``
    (roster level >= 1) or ``duty``. ``address``: the client's IP address, where the action came from.
    """

    kind: ActorKind
    id: str
    partner_id: str | None = None
    role: str | None = None
    address: str | None = None


SYSTEM = Actor("system", "ibet")
"""The pipeline acting on its own (opening alerts, automatic escalation)."""


class AuditEntry(NamedTuple):
    """One row of the audit log; ``detail`` is the JSON object given to :func:`record_audit` (or {})."""

    id: int
    ts_ns: int
    actor: Actor
    action: str
    subject_kind: str
    subject_id: str
    detail: dict[str, Any]


metadata = MetaData()
audit_log = Table(
    "audit_log", metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("ts_ns", BigInteger, nullable=False),
    Column("actor_kind", String(16), nullable=False),
    Column("actor_id", String(128), nullable=False),
    Column("actor_role", String(32)),
    Column("partner_id", String(64)),
    Column("address", String(128)),
    Column("action", String(64), nullable=False),
    Column("subject_kind", String(32), nullable=False),
    Column("subject_id", String(128), nullable=False),
    Column("detail", JSON),
    Index("ix_audit_log_subject", "subject_kind", "subject_id", "id"),
    Index("ix_audit_log_ts", "ts_ns"),
)

_LIMITS = {"actor.id": 128, "actor.role": 32, "actor.partner_id": 64, "actor.address": 128,
           "action": 64, "subject_kind": 32, "subject_id": 128}


def record_audit(conn_or_engine: Connection | Engine, *, actor: Actor, action: str, subject_kind: str, subject_id: str,
                 detail: dict[str, Any] | None = None, now_ns: int) -> AuditEntry:
    """Append one entry; returns it with its id.

    With a ``Connection`` the entry joins that connection's transaction (commit it with the change);
    with an ``Engine`` it is written in a transaction of its own. ``detail`` must be a JSON object
    (dict of JSON values). ValueError names the field for an unknown actor kind, an empty or too
    long text, or a detail that is not JSON.
    """
    values = _row(actor, action, subject_kind, subject_id, detail, now_ns)
    detail = values["detail"]
    if isinstance(conn_or_engine, Engine):
        with conn_or_engine.begin() as conn:
            entry_id = conn.execute(insert(audit_log).values(**values)).inserted_primary_key[0]
    else:
        entry_id = conn_or_engine.execute(insert(audit_log).values(**values)).inserted_primary_key[0]
    return AuditEntry(int(entry_id), now_ns, Actor(actor.kind, actor.id, actor.partner_id, actor.role, actor.address),
                      action, subject_kind, subject_id, detail or {})


def record_audits(conn: Connection, entries: list[dict[str, Any]]) -> None:
    """Append many entries in ``conn``'s transaction with one statement, in the given order (e.g. the
    alert stage opening a batch of alerts). Each entry holds :func:`record_audit`'s keyword arguments
    and is checked the same way (ValueError names the field)."""
    rows = [_row(e["actor"], e["action"], e["subject_kind"], e["subject_id"], e.get("detail"), e["now_ns"])
            for e in entries]
    if rows:
        conn.execute(insert(audit_log), rows)


def _row(actor: Actor, action: str, subject_kind: str, subject_id: str, detail: dict[str, Any] | None,
         now_ns: int) -> dict[str, Any]:
    _check(actor, action, subject_kind, subject_id)
    if detail is not None:
        if not isinstance(detail, dict):
            raise ValueError(f"audit detail must be a JSON object (dict), got {type(detail).__name__}")
        try:
            detail = json.loads(json.dumps(detail, allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"audit detail is not JSON: {exc}") from None
    if isinstance(now_ns, bool) or not isinstance(now_ns, int) or now_ns <= 0:
        raise ValueError(f"now_ns must be a positive int (ns since the epoch), got {now_ns!r}")
    return dict(ts_ns=now_ns, actor_kind=actor.kind, actor_id=actor.id, actor_role=actor.role,
                partner_id=actor.partner_id, address=actor.address, action=action,
                subject_kind=subject_kind, subject_id=subject_id, detail=detail)


def audit_entries(engine: Engine, subject_kind: str | None = None, subject_id: str | None = None, limit: int = 100,
                  *, before_id: int | None = None) -> list[AuditEntry]:
    """Entries, newest first: all, or those of ``subject_kind`` (and ``subject_id``), at most ``limit``.

    ``before_id``: only entries older than that id (the next page: pass the last id of this one).
    """
    if limit <= 0:
        raise ValueError(f"limit must be > 0, got {limit}")
    query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if subject_kind is not None:
        query = query.where(audit_log.c.subject_kind == subject_kind)
    if subject_id is not None:
        query = query.where(audit_log.c.subject_id == subject_id)
    if before_id is not None:
        query = query.where(audit_log.c.id < before_id)
    with engine.connect() as conn:
        return [_entry_of(row) for row in conn.execute(query)]


def _entry_of(row) -> AuditEntry:
    actor = Actor(row.actor_kind, row.actor_id, row.partner_id, row.actor_role, row.address)
    return AuditEntry(int(row.id), int(row.ts_ns), actor, row.action, row.subject_kind, row.subject_id, row.detail or {})


def _check(actor: Actor, action: str, subject_kind: str, subject_id: str) -> None:
    if actor.kind not in ACTOR_KINDS:
        raise ValueError(f"actor.kind must be one of {', '.join(ACTOR_KINDS)}, got {actor.kind!r}")
    texts = {"actor.id": actor.id, "actor.role": actor.role, "actor.partner_id": actor.partner_id,
             "actor.address": actor.address, "action": action, "subject_kind": subject_kind, "subject_id": subject_id}
    for name, text in texts.items():
        optional = name in ("actor.role", "actor.partner_id", "actor.address")
        if text is None and optional:
            continue
        if not isinstance(text, str) or not text:
            raise ValueError(f"audit {name} must be a non-empty string, got {text!r}")
        if len(text) > _LIMITS[name]:
            raise ValueError(f"audit {name} is longer than {_LIMITS[name]} characters: {text[:40]!r}...")

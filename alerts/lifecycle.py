"""Alert states in the database.

:class:`AlertLifecycle` keeps the state in ``alert_lifecycle`` (revision 0003; no foreign key to
the outbox's ``alerts``, so opening and recording may come in either order): each transition is
one transaction with its audit entry (:mod:`ibet.audit`), and ``publish`` gets the new
:class:`~ibet.messages.Alert` (state, escalation level, a later ``updated_ts_ns``) after the commit.
The rules it applies are the pure functions of :mod:`alerts.transitions`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from alerts.transitions import (
    PAST_TENSE,
    STATUS_COLUMNS,
    Action,
    AlertNotFound,
    AlertStatus,
    LifecycleError,
    Outcome,
    apply,
    authorize,
    check_note,
    initial_status,
    merge_content,
    parse_outcome,
    wire_alert,
)
from ibet.audit import SYSTEM, Actor, AuditEntry, audit_entries, record_audit, record_audits
from ibet.clock import Clock, SystemClock
from ibet.messages import Alert, AlertState

# The table, as revision 0003 creates it
_ATTEMPTS = 5  # reads and writes of one transition before a conflict is given up

metadata = MetaData()
lifecycle_table = Table(
    "alert_lifecycle", metadata,
    Column("alert_id", String(64), primary_key=True),
    Column("alert_json", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("escalated", Boolean, nullable=False),
    Column("escalation_level", Integer, nullable=False),
    Column("outcome", String(32)),
    Column("opened_ns", BigInteger, nullable=False),
    *(Column(f"{what}_{suffix}", String(256) if suffix == "by" else BigInteger)
      for what in ("acknowledged", "escalated", "resolved", "reopened") for suffix in ("by", "ns")),
    Column("updated_ts_ns", BigInteger, nullable=False),
    Column("revision", Integer, nullable=False),
    Index("ix_alert_lifecycle_state", "state", "updated_ts_ns"),
)


class LifecycleConflict(Exception):
    """Another transaction changed the row between read and write: read again."""


class AlertLifecycle:
    """Alert states in the database of ``engine`` (migrated to 0003 or later), audited and published.

    ``publish`` is called with each new alert version after its transition committed (put it on
    ``ibet.alerts.v1`` and in the outbox); if it raises, the transition stays done and the error
    propagates to the caller.
    """

    def __init__(self, engine: Engine, clock: Clock | None = None, publish: Callable[[Alert], None] | None = None):
        self.engine = engine
        self.clock = clock or SystemClock()
        self.publish = publish

    def open(self, alert: Alert, actor: Actor = SYSTEM) -> Alert:
        """Record a new alert as open (audit ``alert.opened``) and return it as the lifecycle has it.

        Idempotent: an alert already recorded keeps its state; its content is merged
        (:func:`merge_content`, audit ``alert.updated`` when something changed). Escalation levels
        change only through :meth:`escalate`. Nothing is published: the alert stage publishes the alert.
        """
        for _ in range(_ATTEMPTS):
            try:
                return self._open_once(alert, actor)
            except (IntegrityError, LifecycleConflict):
                continue  # a concurrent open of the same alert won: read again
            except SQLAlchemyError as exc:
                raise LifecycleError(f"alert lifecycle unavailable, cannot open {alert.alert_id}: {exc}") from exc
        raise LifecycleError(f"could not open alert {alert.alert_id} after {_ATTEMPTS} attempts")

    def _open_once(self, alert: Alert, actor: Actor) -> Alert:
        with self.engine.begin() as conn:
            return self.open_many(conn, [alert], actor)[0]

    def open_many(self, conn: Connection, alerts: Sequence[Alert], actor: Actor = SYSTEM) -> list[Alert]:
        """:meth:`open` for distinct alerts in the caller's transaction ``conn`` (the alert stage's
        batch): one read of the rows there are, one insert of the new ones and one of their audit
        entries. A concurrent writer makes it raise (IntegrityError, or ``LifecycleConflict`` for a changed
        row); the caller rolls back and opens them one by one."""
        t, now_ns = lifecycle_table, self.clock.now_ns()
        ids = [alert.alert_id for alert in alerts]
        if len(set(ids)) != len(ids):
            raise ValueError("open_many takes distinct alerts (open the versions of one alert in turn)")
        rows = {row.alert_id: row for row in conn.execute(select(t).where(t.c.alert_id.in_(ids)).with_for_update())}
        opened, new_rows, audits = [], [], []
        for alert in alerts:
            row = rows.get(alert.alert_id)
            if row is None:
                status = initial_status(alert, now_ns)
                new_rows.append(dict(alert_id=alert.alert_id, alert_json=_json(alert), revision=0,
                                     **_status_values(status)))
                audits.append(dict(actor=actor, action="alert.opened", subject_kind="alert", subject_id=alert.alert_id,
                                   detail={"state": status.wire_state.value, "escalation_level": status.escalation_level,
                                           "routed_partner_ids": list(alert.routed_partner_ids)}, now_ns=now_ns))
                opened.append(wire_alert(alert, status))
                continue
            stored, status = Alert.model_validate_json(row.alert_json), _status_of(row)
            merged = merge_content(stored, alert)
            if merged == stored:
                opened.append(wire_alert(stored, status))
                continue
            status = replace(status, updated_ts_ns=max(status.updated_ts_ns, merged.updated_ts_ns))
            changed = conn.execute(update(t).where(t.c.alert_id == alert.alert_id, t.c.revision == row.revision)
                                   .values(alert_json=_json(merged), updated_ts_ns=status.updated_ts_ns,
                                           revision=row.revision + 1)).rowcount
            if changed != 1:
                raise LifecycleConflict
            detail = {"added_partner_ids": [p for p in merged.routed_partner_ids if p not in stored.routed_partner_ids],
                      "added_event_ids": [e for e in merged.event_ids if e not in stored.event_ids]}
            audits.append(dict(actor=actor, action="alert.updated", subject_kind="alert", subject_id=alert.alert_id,
                               detail=detail, now_ns=now_ns))
            opened.append(wire_alert(merged, status))
        if new_rows:
            conn.execute(insert(t), new_rows)
        record_audits(conn, audits)
        return opened

    def acknowledge(self, alert_id: str, actor: Actor, note: str = "") -> Alert:
        """Open -> acknowledged by ``actor``; returns the new alert version."""
        return self._transition(alert_id, actor, Action.ACKNOWLEDGE, note)

    def escalate(self, alert_id: str, actor: Actor, note: str = "", *, level: int | None = None) -> Alert:
        """Raise the escalation level of an open or acknowledged alert (to ``level``, default one up)."""
        return self._transition(alert_id, actor, Action.ESCALATE, note, level=level)

    def resolve(self, alert_id: str, actor: Actor, outcome: Outcome | str, note: str = "") -> Alert:
        """Open or acknowledged -> resolved with ``outcome``; ValueError for an unknown outcome."""
        return self._transition(alert_id, actor, Action.RESOLVE, note, outcome=parse_outcome(outcome))

    def reopen(self, alert_id: str, actor: Actor, note: str = "") -> Alert:
        """Resolved -> open, by a supervisor (:func:`is_supervisor`)."""
        return self._transition(alert_id, actor, Action.REOPEN, note)

    def get(self, alert_id: str) -> Alert | None:
        """The alert with its current state, or None if it was never opened."""
        found = self._read(alert_id)
        return None if found is None else wire_alert(*found)

    def status(self, alert_id: str) -> AlertStatus | None:
        """The alert's lifecycle status (outcome, who/when), or None."""
        found = self._read(alert_id)
        return None if found is None else found[1]

    def audit(self, alert_id: str, limit: int = 100) -> list[AuditEntry]:
        """The alert's audit entries, newest first."""
        return audit_entries(self.engine, "alert", alert_id, limit)

    def _read(self, alert_id: str) -> tuple[Alert, AlertStatus] | None:
        t = lifecycle_table
        try:
            with self.engine.connect() as conn:
                row = conn.execute(select(t).where(t.c.alert_id == alert_id)).first()
        except SQLAlchemyError as exc:
            raise LifecycleError(f"alert lifecycle unavailable, cannot read {alert_id}: {exc}") from exc
        return None if row is None else (Alert.model_validate_json(row.alert_json), _status_of(row))

    def _transition(self, alert_id: str, actor: Actor, action: Action, note: str, **options: Any) -> Alert:
        note = check_note(note)
        for _ in range(_ATTEMPTS):
            try:
                alert = self._transition_once(alert_id, actor, action, note, **options)
                break
            except LifecycleConflict:
                continue
            except SQLAlchemyError as exc:
                raise LifecycleError(f"alert lifecycle unavailable, cannot {action} {alert_id}: {exc}") from exc
        else:
            raise LifecycleError(f"could not {action} alert {alert_id} after {_ATTEMPTS} attempts")
        if self.publish is not None:
            self.publish(alert)
        return alert

    def _transition_once(self, alert_id: str, actor: Actor, action: Action, note: str, **options: Any) -> Alert:
        t = lifecycle_table
        with self.engine.begin() as conn:
            row = conn.execute(select(t).where(t.c.alert_id == alert_id).with_for_update()).first()
            if row is None:
                raise AlertNotFound(f"no alert {alert_id!r}")
            content, before = Alert.model_validate_json(row.alert_json), _status_of(row)
            authorize(actor, content, action)
            now_ns = self.clock.now_ns()
            after = apply(before, action, actor, now_ns, **options)
            changed = conn.execute(update(t).where(t.c.alert_id == alert_id, t.c.revision == row.revision)
                                   .values(revision=row.revision + 1, **_status_values(after))).rowcount
            if changed != 1:
                raise LifecycleConflict
            detail: dict[str, Any] = {"from": before.wire_state.value, "to": after.wire_state.value,
                                      "escalation_level": after.escalation_level, "note": note}
            if after.outcome is not None:
                detail["outcome"] = after.outcome.value
            if action == Action.REOPEN and before.outcome is not None:
                detail["previous_outcome"] = before.outcome.value
            record_audit(conn, actor=actor, action=f"alert.{PAST_TENSE[action]}", subject_kind="alert",
                         subject_id=alert_id, detail=detail, now_ns=now_ns)
        return wire_alert(content, replace(after, revision=row.revision + 1))


def _json(alert: Alert) -> str:
    return alert.model_dump_json(exclude_none=True)


def _status_values(status: AlertStatus) -> dict[str, Any]:
    values = {name: getattr(status, name) for name in STATUS_COLUMNS}
    values["state"] = status.state.value
    values["outcome"] = None if status.outcome is None else status.outcome.value
    return values


def _status_of(row) -> AlertStatus:
    values = {name: getattr(row, name) for name in STATUS_COLUMNS}
    values["state"] = AlertState(row.state)
    values["escalated"] = bool(row.escalated)
    values["outcome"] = None if row.outcome is None else Outcome(row.outcome)
    return AlertStatus(alert_id=row.alert_id, revision=row.revision, **values)

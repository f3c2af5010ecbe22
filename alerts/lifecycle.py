"""The alert state machine: open -> acknowledged -> resolved (with an outcome), escalation, reopening.

States and what may happen in each (anything else raises :class:`TransitionError` naming the state):

=============  =====================================================================================
state          allowed
=============  =====================================================================================
open           acknowledge -> acknowledged; escalate -> open (escalated); resolve -> resolved
acknowledged   escalate -> acknowledged (escalated); resolve -> resolved
resolved       reopen -> open (supervisors only)
=============  =====================================================================================

Decisions:

- Escalated is a flag, not a state: it raises the escalation level (the next level of the roster,
  then mutual aid) and stays set. An *acknowledged* alert may be escalated too (the contact who has
  it asks for backup); the automatic escalation (:class:`alerts.routing.EscalationPolicy`) never
  does so because it stops once an alert is acknowledged. On the wire (:class:`AlertState`) an open
  escalated alert reads ``escalated``; an acknowledged one stays ``acknowledged`` and shows the
  escalation in ``escalation_level``.
- An open alert may be resolved without an acknowledgement first (an operator dismisses a deer as a
  false alarm); ``acknowledged_by`` then stays empty.
- Reopening needs a supervisor: a console user with role ``supervisor`` or ``admin``, a contact at
  roster level >= 1 (identity gives those role ``supervisor``) or the system. It clears the outcome
  and who acknowledged/resolved, keeps the escalation; ``reopened_ns`` tells an escalation scheduler
  where the new acknowledgement window starts.
- Partner contacts act only on alerts routed to their partner (``routed_partner_ids`` or the lead);
  console users and the system act on any alert (the console applies its own roles on top).

:class:`AlertLifecycle` keeps the state in ``alert_lifecycle`` (revision 0003; no foreign key to the
outbox's ``alerts``, so opening and recording may come in either order): each transition is
one transaction with its audit entry (:mod:`ibet.audit`), and ``publish`` gets the new
:class:`~ibet.messages.Alert` (state, escalation level, a later ``updated_ts_ns``) after the commit.
The functions above the class are pure.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, Engine, Index, Integer, MetaData, String, Table, Text, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ibet.audit import SYSTEM, Actor, AuditEntry, audit_entries, record_audit
from ibet.clock import Clock, SystemClock, ns_to_datetime_utc
from ibet.exceptions import IbetError
from ibet.messages import Alert, AlertOutcome, AlertState

MAX_NOTE_CHARS = 2000
SUPERVISOR_ROLES = frozenset({"supervisor", "admin"})
_ATTEMPTS = 5


Outcome = AlertOutcome
"""How a resolved alert ended (the wire enum, under the lifecycle's short name)."""


class Action(StrEnum):
    """What an actor asks to do with an alert."""

    VIEW = "view"
    ACKNOWLEDGE = "acknowledge"
    ESCALATE = "escalate"
    RESOLVE = "resolve"
    REOPEN = "reopen"


_PAST = {Action.ACKNOWLEDGE: "acknowledged", Action.ESCALATE: "escalated", Action.RESOLVE: "resolved",
         Action.REOPEN: "reopened"}


class LifecycleError(IbetError):
    """The lifecycle database cannot be reached or refused a write; says which operation."""


class AlertNotFound(IbetError, LookupError):
    """No alert with this id has been opened."""


class Forbidden(IbetError):
    """The actor may not do this to this alert (another partner's alert, or reopening without being a supervisor)."""


class TransitionError(IbetError):
    """The alert's state does not allow the action; ``state`` is the alert's wire state."""

    def __init__(self, alert_id: str, action: Action | str, status: AlertStatus, why: str = ""):
        self.alert_id, self.action, self.state = alert_id, str(action), status.wire_state
        since = _who_when(status)
        super().__init__(f"cannot {action} alert {alert_id}: it is {status.wire_state.value}{since}{why}")


@dataclass(frozen=True)
class AlertStatus:
    """Where an alert is in its handling. ``state`` is open, acknowledged or resolved (never escalated:
    that is the ``escalated`` flag); ``*_by`` are actor labels (:func:`actor_label`), ``*_ns`` wall clock."""

    alert_id: str
    state: AlertState
    escalated: bool
    escalation_level: int
    opened_ns: int
    updated_ts_ns: int
    outcome: Outcome | None = None
    acknowledged_by: str | None = None
    acknowledged_ns: int | None = None
    escalated_by: str | None = None
    escalated_ns: int | None = None
    resolved_by: str | None = None
    resolved_ns: int | None = None
    reopened_by: str | None = None
    reopened_ns: int | None = None
    revision: int = 0

    @property
    def wire_state(self) -> AlertState:
        """The state as ``ibet.alerts.v1`` carries it: an open escalated alert is ``escalated``."""
        return AlertState.ESCALATED if self.state == AlertState.OPEN and self.escalated else self.state


# Pure core
def actor_label(actor: Actor) -> str:
    """How an actor is named in ``*_by`` fields: ``contact:usbp/blaine-desk``, ``user:alice``, ``system:ibet``."""
    if actor.kind == "contact":
        return f"contact:{actor.partner_id}/{actor.id}"
    return f"{actor.kind}:{actor.id}"


def is_supervisor(actor: Actor) -> bool:
    """True for the system, a user with role supervisor/admin, and a contact with role supervisor."""
    if actor.kind == "system":
        return True
    if actor.kind == "contact":
        return actor.role == "supervisor"
    return actor.role in SUPERVISOR_ROLES


def authorize(actor: Actor, alert: Alert, action: Action | str) -> None:
    """Raise :class:`Forbidden` unless ``actor`` may do ``action`` to ``alert`` (state not considered)."""
    action = Action(action)
    if actor.kind == "contact":
        partners = {*alert.routed_partner_ids, *([alert.lead_partner_id] if alert.lead_partner_id else [])}
        if actor.partner_id not in partners:
            raise Forbidden(f"alert {alert.alert_id} is not routed to partner {actor.partner_id!r}; "
                            f"contact {actor.id!r} cannot {action}")
    if action == Action.REOPEN and not is_supervisor(actor):
        raise Forbidden(f"only a supervisor can reopen alert {alert.alert_id}; {actor_label(actor)} "
                        f"has role {actor.role!r}")


def initial_status(alert: Alert, now_ns: int) -> AlertStatus:
    """The status of a newly opened alert (state open or escalated, as the alert stage raised it)."""
    if alert.state not in (AlertState.OPEN, AlertState.ESCALATED):
        raise ValueError(f"open() takes an open or escalated alert, got {alert.alert_id} in state {alert.state.value}")
    return AlertStatus(alert.alert_id, AlertState.OPEN, alert.state == AlertState.ESCALATED or alert.escalation_level > 0,
                       alert.escalation_level, now_ns, alert.updated_ts_ns)


def apply(status: AlertStatus, action: Action | str, actor: Actor, now_ns: int, *,
          outcome: Outcome | str | None = None, level: int | None = None) -> AlertStatus:
    """The status after ``action`` by ``actor`` at ``now_ns`` (ns, wall clock); TransitionError if the
    state does not allow it. ``outcome`` is required for resolve; ``level`` (escalate) is the level to
    go to, default one above the current; it must be above the current level.
    """
    action, who = Action(action), actor_label(actor)
    updated = max(now_ns, status.updated_ts_ns + 1)  # every change is a later, distinct version
    if action == Action.ACKNOWLEDGE and status.state == AlertState.OPEN:
        return replace(status, state=AlertState.ACKNOWLEDGED, acknowledged_by=who, acknowledged_ns=now_ns,
                       updated_ts_ns=updated)
    if action == Action.ESCALATE and status.state in (AlertState.OPEN, AlertState.ACKNOWLEDGED):
        target = status.escalation_level + 1 if level is None else level
        if target <= status.escalation_level:
            raise TransitionError(status.alert_id, action, status,
                                  f"; already at escalation level {status.escalation_level} (asked for {target})")
        return replace(status, escalated=True, escalation_level=target, escalated_by=who, escalated_ns=now_ns,
                       updated_ts_ns=updated)
    if action == Action.RESOLVE and status.state in (AlertState.OPEN, AlertState.ACKNOWLEDGED):
        return replace(status, state=AlertState.RESOLVED, outcome=parse_outcome(outcome), resolved_by=who,
                       resolved_ns=now_ns, updated_ts_ns=updated)
    if action == Action.REOPEN and status.state == AlertState.RESOLVED:
        return replace(status, state=AlertState.OPEN, outcome=None, acknowledged_by=None, acknowledged_ns=None,
                       resolved_by=None, resolved_ns=None, reopened_by=who, reopened_ns=now_ns, updated_ts_ns=updated)
    raise TransitionError(status.alert_id, action, status)


def parse_outcome(outcome: Outcome | str | None) -> Outcome:
    """``outcome`` as an :class:`Outcome`; ValueError listing the valid ones otherwise."""
    try:
        return Outcome(outcome)
    except ValueError:
        valid = ", ".join(o.value for o in Outcome)
        raise ValueError(f"outcome must be one of {valid}; got {outcome!r}") from None


def wire_alert(content: Alert, status: AlertStatus) -> Alert:
    """The alert as published: its content with the lifecycle's state, escalation level, update time
    and outcome."""
    return Alert.model_validate({**content.model_dump(), "state": status.wire_state, "outcome": status.outcome,
                                 "escalation_level": status.escalation_level, "updated_ts_ns": status.updated_ts_ns})


def merge_content(stored: Alert, given: Alert) -> Alert:
    """The alert content after the alert stage gives ``given`` again: the newer version's content
    (by ``updated_ts_ns``), with routed partners and event ids accumulated (an escalation or a grouped
    event adds to them; nobody who had the alert loses access to it)."""
    base = given if given.updated_ts_ns >= stored.updated_ts_ns else stored
    partners = tuple(dict.fromkeys((*base.routed_partner_ids, *stored.routed_partner_ids, *given.routed_partner_ids)))
    events = tuple(dict.fromkeys((*base.event_ids, *stored.event_ids, *given.event_ids)))
    return base.model_copy(update={"routed_partner_ids": partners, "event_ids": events})


def _who_when(status: AlertStatus) -> str:
    by, at = {AlertState.ACKNOWLEDGED: (status.acknowledged_by, status.acknowledged_ns),
              AlertState.RESOLVED: (status.resolved_by, status.resolved_ns)}.get(status.state, (None, None))
    if by is None or at is None:
        return ""
    outcome = f" as {status.outcome.value}" if status.outcome else ""
    return f"{outcome} (by {by} at {ns_to_datetime_utc(at).isoformat(timespec='seconds')})"


def _check_note(note: str) -> str:
    if not isinstance(note, str):
        raise ValueError(f"note must be a string, got {type(note).__name__}")
    if len(note) > MAX_NOTE_CHARS:
        raise ValueError(f"note is {len(note)} characters long; at most {MAX_NOTE_CHARS} are kept")
    return note


# The table, as revision 0003 creates it
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
_STATUS_COLUMNS = ("state", "escalated", "escalation_level", "outcome", "opened_ns", "updated_ts_ns",
                   *(f"{what}_{suffix}" for what in ("acknowledged", "escalated", "resolved", "reopened")
                     for suffix in ("by", "ns")))


class _Conflict(Exception):
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
            except (IntegrityError, _Conflict):
                continue  # a concurrent open of the same alert won: read again
            except SQLAlchemyError as exc:
                raise LifecycleError(f"alert lifecycle unavailable, cannot open {alert.alert_id}: {exc}") from exc
        raise LifecycleError(f"could not open alert {alert.alert_id} after {_ATTEMPTS} attempts")

    def _open_once(self, alert: Alert, actor: Actor) -> Alert:
        t, now_ns = lifecycle_table, self.clock.now_ns()
        with self.engine.begin() as conn:
            row = conn.execute(select(t).where(t.c.alert_id == alert.alert_id).with_for_update()).first()
            if row is None:
                status = initial_status(alert, now_ns)
                conn.execute(insert(t).values(alert_id=alert.alert_id, alert_json=_json(alert), revision=0,
                                              **_status_values(status)))
                record_audit(conn, actor=actor, action="alert.opened", subject_kind="alert", subject_id=alert.alert_id,
                             detail={"state": status.wire_state.value, "escalation_level": status.escalation_level,
                                     "routed_partner_ids": list(alert.routed_partner_ids)}, now_ns=now_ns)
                return wire_alert(alert, status)
            stored, status = Alert.model_validate_json(row.alert_json), _status_of(row)
            merged = merge_content(stored, alert)
            if merged == stored:
                return wire_alert(stored, status)
            status = replace(status, updated_ts_ns=max(status.updated_ts_ns, merged.updated_ts_ns))
            changed = conn.execute(update(t).where(t.c.alert_id == alert.alert_id, t.c.revision == row.revision)
                                   .values(alert_json=_json(merged), updated_ts_ns=status.updated_ts_ns,
                                           revision=row.revision + 1)).rowcount
            if changed != 1:
                raise _Conflict
            detail = {"added_partner_ids": [p for p in merged.routed_partner_ids if p not in stored.routed_partner_ids],
                      "added_event_ids": [e for e in merged.event_ids if e not in stored.event_ids]}
            record_audit(conn, actor=actor, action="alert.updated", subject_kind="alert", subject_id=alert.alert_id,
                         detail=detail, now_ns=now_ns)
            return wire_alert(merged, status)

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
        note = _check_note(note)
        for _ in range(_ATTEMPTS):
            try:
                alert = self._transition_once(alert_id, actor, action, note, **options)
                break
            except _Conflict:
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
                raise _Conflict
            detail: dict[str, Any] = {"from": before.wire_state.value, "to": after.wire_state.value,
                                      "escalation_level": after.escalation_level, "note": note}
            if after.outcome is not None:
                detail["outcome"] = after.outcome.value
            if action == Action.REOPEN and before.outcome is not None:
                detail["previous_outcome"] = before.outcome.value
            record_audit(conn, actor=actor, action=f"alert.{_PAST[action]}", subject_kind="alert",
                         subject_id=alert_id, detail=detail, now_ns=now_ns)
        return wire_alert(content, replace(after, revision=row.revision + 1))


def _json(alert: Alert) -> str:
    return alert.model_dump_json(exclude_none=True)


def _status_values(status: AlertStatus) -> dict[str, Any]:
    values = {name: getattr(status, name) for name in _STATUS_COLUMNS}
    values["state"] = status.state.value
    values["outcome"] = None if status.outcome is None else status.outcome.value
    return values


def _status_of(row) -> AlertStatus:
    values = {name: getattr(row, name) for name in _STATUS_COLUMNS}
    values["state"] = AlertState(row.state)
    values["escalated"] = bool(row.escalated)
    values["outcome"] = None if row.outcome is None else Outcome(row.outcome)
    return AlertStatus(alert_id=row.alert_id, revision=row.revision, **values)


def status_json(status: AlertStatus) -> dict[str, Any]:
    """The status as a JSON object (enums as their values)."""
    values = {name: getattr(status, name) for name in ("alert_id", *_STATUS_COLUMNS)}
    values["state"] = status.state.value
    values["wire_state"] = status.wire_state.value
    values["outcome"] = None if status.outcome is None else status.outcome.value
    return json.loads(json.dumps(values))

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

These are pure functions over :class:`AlertStatus`; :class:`alerts.lifecycle.AlertLifecycle`
applies them to the stored state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from ibet.audit import Actor
from ibet.clock import ns_to_datetime_utc
from ibet.exceptions import IbetError
from ibet.messages import Alert, AlertOutcome, AlertState

MAX_NOTE_CHARS = 2000
SUPERVISOR_ROLES = frozenset({"supervisor", "admin"})


Outcome = AlertOutcome
"""How a resolved alert ended (the wire enum, under the lifecycle's short name)."""


class Action(StrEnum):
    """What an actor asks to do with an alert."""

    VIEW = "view"
    ACKNOWLEDGE = "acknowledge"
    ESCALATE = "escalate"
    RESOLVE = "resolve"
    REOPEN = "reopen"


PAST_TENSE = {Action.ACKNOWLEDGE: "acknowledged", Action.ESCALATE: "escalated", Action.RESOLVE: "resolved",
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


def check_note(note: str) -> str:
    if not isinstance(note, str):
        raise ValueError(f"note must be a string, got {type(note).__name__}")
    if len(note) > MAX_NOTE_CHARS:
        raise ValueError(f"note is {len(note)} characters long; at most {MAX_NOTE_CHARS} are kept")
    return note


STATUS_COLUMNS = ("state", "escalated", "escalation_level", "outcome", "opened_ns", "updated_ts_ns",
                  *(f"{what}_{suffix}" for what in ("acknowledged", "escalated", "resolved", "reopened")
                    for suffix in ("by", "ns")))
"""The fields of :class:`AlertStatus` that are stored as columns (besides ``alert_id`` and ``revision``)."""


def status_json(status: AlertStatus) -> dict[str, Any]:
    """The status as a JSON object (enums as their values)."""
    values = {name: getattr(status, name) for name in ("alert_id", *STATUS_COLUMNS)}
    values["state"] = status.state.value
    values["wire_state"] = status.wire_state.value
    values["outcome"] = None if status.outcome is None else status.outcome.value
    return json.loads(json.dumps(values))

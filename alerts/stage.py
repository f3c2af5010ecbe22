"""The alert stage: border events and lost feeds in, alerts recorded in the outbox and out on the bus.

For each record of ``ibet.events.v1`` the sector's :class:`~alerts.rules.AlertRules` decide:

- ``new``: route the event to the partners on duty (escalating at once when nobody is on duty),
  build the alert, record it and its deliveries in the outbox (committed before any delivery is
  tried), and produce it on ``ibet.alerts.v1``;
- ``update``: the same track's open alert grows by this event (an approach, then the crossing) and
  the new version is recorded, delivered and produced the same way;
- ``suppress``: nothing goes out; the suppression and its reason are handed to ``on_suppressed``
  (the alert service writes them to the audit log).

``feed_lost`` records of ``ibet.sensor-health.v1`` become sensor-health alerts for the sector's duty
desk. The rules' memory per sector is the stage's state, saved on ``ibet.alerts-state.v1`` with the
committed offsets. A replay after a crash decides the same way (rules read event time), gets the
same alert ids and delivery keys, and the outbox records nothing twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Sequence
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from alerts.compose import CHANNELS, deliveries_for, health_alert, new_alert, updated_alert
from alerts.lifecycle import AlertLifecycle, LifecycleConflict
from alerts.outbox import Outbox
from alerts.rosters import Roster
from alerts.routing import Routing, route, route_sector
from alerts.rules import AlertRules, Decision, RulesConfig
from ibet import topics
from ibet.bus.base import Bus, OutRecord, Record
from ibet.exceptions import IbetError, MessageDecodeError
from ibet.messages import Alert, BorderEvent, Direction, SensorHealthEvent, SensorHealthState
from ibet.registry import Registry
from ibet.stage import Outcome

log = logging.getLogger(__name__)

SuppressionHook = Callable[[BorderEvent, Decision], None]


class WorkerHost(Protocol):
    def start(self, bus: Bus) -> None: ...

    def stop(self) -> None: ...


class AlertInputError(IbetError):
    """A record the alert stage cannot use (bad JSON, an unknown sector or sensor)."""


class AlertStage:
    """Stateful: one :class:`AlertRules` per sector this worker owns (see the module doc)."""

    name = "alerts"
    input_topics = (topics.EVENTS, topics.SENSOR_HEALTH)
    state_topic = topics.ALERTS_STATE

    def __init__(self, registry: Registry, roster: Roster, outbox: Outbox, *, rules_config: RulesConfig | None = None,
                 channels: Collection[str] = CHANNELS, exercise: bool = False, max_escalation_level: int = 3,
                 on_recorded: Callable[[Alert], None] | None = None, on_suppressed: SuppressionHook | None = None,
                 lifecycle: AlertLifecycle | None = None):
        self.registry, self.roster, self.outbox = registry, roster, outbox
        self.lifecycle = lifecycle
        self.rules_config = rules_config or RulesConfig()
        self.channels = tuple(channels)
        self.exercise = exercise
        self.max_escalation_level = max_escalation_level
        self.on_recorded = on_recorded
        self.on_suppressed = on_suppressed
        self.rules: dict[str, AlertRules] = {}
        self._changed: set[str] = set()
        self.service: WorkerHost | None = None  # set by alerts.service.build_service

    # Workers around the stage (delivery, escalation), started and stopped by the runner
    def start_workers(self, bus: Bus) -> None:
        if self.service is not None:
            self.service.start(bus)

    def stop_workers(self) -> None:
        if self.service is not None:
            self.service.stop()

    # The stage
    def process_batch(self, records: Sequence[Record]) -> list[Outcome]:
        """Decide each record in turn; the alerts of the batch are recorded together (one
        transaction, see :meth:`_write`), and before an event that updates an alert of the batch
        is decided on, so it reads that alert as recorded."""
        self._outcomes: list[Outcome | None] = [None] * len(records)
        self._unwritten: dict[str, tuple[int, Alert]] = {}  # alert id -> (record index, alert as composed)
        for index, record in enumerate(records):
            try:
                alert = self._health(record) if record.topic == topics.SENSOR_HEALTH else self._event(record)
            except (IbetError, MessageDecodeError, ValueError) as exc:
                self._outcomes[index] = Outcome(error=exc)
                continue
            if alert is None:
                self._outcomes[index] = Outcome()
            else:
                if alert.alert_id in self._unwritten:
                    self._write()
                self._unwritten[alert.alert_id] = (index, alert)
        self._write()
        outcomes = [outcome or Outcome() for outcome in self._outcomes]
        del self._outcomes, self._unwritten
        return outcomes

    def _write(self) -> None:
        """Open and record the batch's alerts not yet written, in one transaction when the outbox and
        the lifecycle share a database; where that fails (a concurrent writer of one of them, the
        database unavailable) one by one, each with its own outcome."""
        pending = list(self._unwritten.values())
        self._unwritten.clear()
        if not pending:
            return
        written: list[Alert] | None = None
        if self.lifecycle is None or self.lifecycle.engine is self.outbox.engine:
            try:
                with self.outbox.engine.begin() as conn:
                    alerts = [alert for _, alert in pending]
                    if self.lifecycle is not None:
                        alerts = self.lifecycle.open_many(conn, alerts)
                    self.outbox.record_many(conn, [(alert, deliveries_for(alert, self.registry, self.channels))
                                                   for alert in alerts])
                written = alerts
            except (SQLAlchemyError, LifecycleConflict, ValueError) as exc:
                log.info("alerts: recording %d alerts together failed (%s); recording them one by one",
                         len(pending), type(exc).__name__)
        for n, (index, alert) in enumerate(pending):
            try:
                alert = written[n] if written is not None else self._record(alert)
            except (IbetError, ValueError) as exc:
                self._outcomes[index] = Outcome(error=exc)
                continue
            if written is not None and self.on_recorded is not None:
                self.on_recorded(alert)
            self._outcomes[index] = Outcome(outputs=(
                OutRecord(topics.ALERTS, key=alert.alert_id.encode(), value=alert.to_bytes()),))

    def _event(self, record: Record) -> Alert | None:
        event = BorderEvent.from_bytes(record.value)
        self.registry.sector(event.sector_id)  # an unknown sector is bad input: dead-lettered
        rules = self.rules.get(event.sector_id)
        if rules is None:
            rules = self.rules[event.sector_id] = AlertRules(self.rules_config)
        decision = rules.decide(event)
        self._changed.add(event.sector_id)
        if decision.action == "suppress":
            if self.on_suppressed is not None:
                self.on_suppressed(event, decision)
            return None
        if decision.action == "update" and decision.alert_id in self._unwritten:
            self._write()  # this event updates an alert of the batch: read it as recorded
        current = self._current(decision.alert_id) if decision.action == "update" else None
        if decision.action == "update" and current is None:
            log.warning("alert %s to update is not in the outbox; raising a new one for %s", decision.alert_id,
                        event.event_id)
        routing = self._routing(event.sector_id, event.event_ts_ns, event.direction, lambda level: route(
            event, self.registry, self.roster, level))
        if current is None:
            alert = new_alert(event, routing, self.registry, exercise=self.exercise)
            if alert.alert_id != decision.alert_id:  # an update whose alert vanished keeps the id it was given
                alert = alert.model_copy(update={"alert_id": decision.alert_id})
        else:
            alert = updated_alert(current, event, routing, self.registry)
        return alert

    def _health(self, record: Record) -> Alert | None:
        event = SensorHealthEvent.from_bytes(record.value)
        sensor = self.registry.sensor(event.sensor_id)
        if sensor.sector_id != event.sector_id:
            raise AlertInputError(f"sensor {sensor.id} belongs to sector {sensor.sector_id}, not {event.sector_id}")
        if event.state is not SensorHealthState.FEED_LOST:
            return None  # a restored feed needs nobody to act; the console shows it from the bus
        routing = self._routing(event.sector_id, event.event_ts_ns, Direction.NONE, lambda level: route_sector(
            event.sector_id, event.event_ts_ns, Direction.NONE, self.registry, self.roster, level))
        return health_alert(event, routing, self.registry, exercise=self.exercise)

    def _routing(self, sector_id: str, ts_ns: int, direction: Direction, at_level: Callable[[int], Routing]) -> Routing:
        """Level 0, or the first level with somebody on duty (nobody at the desk: escalate at once)."""
        routing = at_level(0)
        level = 0
        while routing.nobody_on_duty and level < self.max_escalation_level + 1:
            level += 1
            routing = at_level(level)
        if routing.nobody_on_duty:
            log.error("alert in %s at %d: %s; it is recorded for the console but nobody is notified", sector_id, ts_ns,
                      routing.reason)
        return routing

    def _current(self, alert_id: str) -> Alert | None:
        """The alert as it is now: with its lifecycle state (acknowledged, resolved) when there is one."""
        if self.lifecycle is not None:
            return self.lifecycle.get(alert_id)
        return self.outbox.alert(alert_id)

    def _record(self, alert: Alert) -> Alert:
        """Open (or merge into) the alert's lifecycle, then record the version and its deliveries."""
        if self.lifecycle is not None:
            alert = self.lifecycle.open(alert)
        self.outbox.record(alert, deliveries_for(alert, self.registry, self.channels))
        if self.on_recorded is not None:
            self.on_recorded(alert)
        return alert

    # State (StatefulStage)
    def restore(self, records: Sequence[Record]) -> None:
        for record in records:
            if record.key is None:
                continue
            sector = record.key.decode()
            if record.value is None or not record.value:
                self.rules.pop(sector, None)
                continue
            self.rules[sector] = AlertRules.from_state(json.loads(record.value), self.rules_config)

    def forget(self, keys: set[bytes]) -> None:
        for key in keys:
            self.rules.pop(key.decode(), None)
            self._changed.discard(key.decode())

    def snapshot(self) -> list[OutRecord]:
        out = [OutRecord(self.state_topic, key=s.encode(),
                         value=json.dumps(self.rules[s].to_state(), separators=(",", ":")).encode())
               for s in sorted(self._changed) if s in self.rules]
        self._changed.clear()
        return out

"""The alert stage through the runner on the in-memory bus, over SQLite and PostgreSQL outboxes:
events in, alerts recorded (with their deliveries) and produced, suppressions explained, lost feeds
alerted, bad input dead-lettered, state carried across a restart, and escalation when nobody
acknowledges."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from alerts.compose import deliveries_for
from alerts.lifecycle import AlertLifecycle, LifecycleConflict
from alerts.outbox import Outbox
from alerts.rosters import load_rosters
from alerts.routing import EscalationPolicy
from alerts.rules import Decision
from alerts.service import EscalationWorker
from alerts.stage import AlertStage
from ibet import topics
from ibet.bus.base import OutRecord
from ibet.bus.memory import MemoryBus
from ibet.clock import ManualClock
from ibet.config import DatabaseSettings, RunnerSettings
from ibet.db import make_engine, migrate
from ibet.dead_letter import DeadLetterInfo
from ibet.ids import alert_id, event_id, time_window_start_ns
from ibet.messages import (
    Alert,
    AlertState,
    BorderEvent,
    BorderEventType,
    Direction,
    SensorHealthEvent,
    SensorHealthState,
    Severity,
    TrackClass,
)
from ibet.registry import load_registry
from ibet.runner import StageRunner

REPO = Path(__file__).resolve().parents[2]
REGISTRY = load_registry(REPO / "config" / "registry.yaml")
ROSTER = load_rosters(REPO / "config" / "rosters.yaml", REGISTRY)
QUICK = RunnerSettings(poll_timeout_s=0.01)
S = 10**9
NOON = int(datetime(2025, 6, 10, 12, 0, tzinfo=ZoneInfo("America/Vancouver")).timestamp()) * S


def _event(kind: str = "crossing", ts_ns: int = NOON, *, track: str = "trk-1", sector: str = "pac-blaine",
           direction: Direction = Direction.CA_TO_US, lat: float = 49.0002, lon: float = -122.7540,
           port: str | None = None) -> BorderEvent:
    return BorderEvent(event_id=event_id(track, kind, time_window_start_ns(ts_ns, 60 * S)),
                       event_type=BorderEventType(kind), track_id=track, sector_id=sector, event_ts_ns=ts_ns,
                       lat_deg=lat, lon_deg=lon, direction=direction, class_name=TrackClass.PERSON,
                       confidence=0.9, sensor_ids=("blaine-cam-1",), port_of_entry_id=port)


@pytest.fixture
def outbox(database_url: str) -> Iterator[Outbox]:
    engine = make_engine(DatabaseSettings(url=database_url))
    migrate(engine)
    yield Outbox(engine, ManualClock(NOON))
    engine.dispose()


def _stage(outbox: Outbox, suppressed: list | None = None, **options) -> AlertStage:
    hook = (lambda event, decision: suppressed.append((event.event_id, decision))) if suppressed is not None else None
    return AlertStage(REGISTRY, ROSTER, outbox, on_suppressed=hook, **options)


def _feed(bus: MemoryBus, *messages) -> None:
    producer = bus.producer("test")
    for m in messages:
        if isinstance(m, BorderEvent):
            producer.send(OutRecord(topics.EVENTS, key=m.sector_id.encode(), value=m.to_bytes()))
        else:
            producer.send(OutRecord(topics.SENSOR_HEALTH, key=m.sensor_id.encode(), value=m.to_bytes()))
    producer.flush(5.0)


def _alerts_on_bus(bus: MemoryBus) -> list[Alert]:
    return [Alert.from_bytes(r.value) for r in bus.records(topics.ALERTS)]


def test_a_crossing_is_recorded_with_its_deliveries_and_produced(outbox: Outbox) -> None:
    bus = MemoryBus()
    crossing = _event()
    _feed(bus, crossing)
    StageRunner(_stage(outbox), bus, QUICK).run(idle_stop_s=0.05)

    [alert] = _alerts_on_bus(bus)
    assert alert.alert_id == alert_id(crossing.event_id)
    assert (alert.severity, alert.state, alert.direction) == (Severity.CRITICAL, AlertState.OPEN, Direction.CA_TO_US)
    assert alert.lead_partner_id == "usbp"  # entering the US: a US agency leads
    assert {"usbp", "rcmp", "cbsa"} <= set(alert.routed_partner_ids)  # both countries' partners on duty
    assert "crossed the border from Canada into the United States" in alert.summary
    assert outbox.alert(alert.alert_id) == alert
    recorded = {(d.partner_id, d.channel) for d in outbox.deliveries(alert.alert_id)}
    assert recorded == {(p, c) for p, c, _ in deliveries_for(alert, REGISTRY)}
    assert ("usbp", "webhook") in recorded and ("rcmp", "cot") in recorded and ("rcmp", "cap") in recorded


def test_duplicates_and_lawful_ports_are_suppressed_with_why_and_an_approach_grows_into_a_crossing(
        outbox: Outbox) -> None:
    bus = MemoryBus()
    suppressed: list[tuple[str, Decision]] = []
    approach = _event("approach", NOON)
    crossing = _event("crossing", NOON + 20 * S)
    lawful = _event("crossing", NOON + 30 * S, track="trk-port", port="peace-arch")
    _feed(bus, approach, crossing, crossing, lawful)
    StageRunner(_stage(outbox, suppressed), bus, QUICK).run(idle_stop_s=0.05)

    versions = _alerts_on_bus(bus)
    assert [a.alert_id for a in versions] == [alert_id(approach.event_id)] * 2
    first, grown = versions
    assert (first.severity, grown.severity) == (Severity.HIGH, Severity.CRITICAL)
    assert grown.event_ids == (approach.event_id, crossing.event_id)
    assert outbox.alert(first.alert_id) == grown
    assert [(e, d.reason) for e, d in suppressed] == [(crossing.event_id, "duplicate"), (lawful.event_id, "not_alertable")]
    # The grown version is a new delivery for every partner (its version is in the key); nothing twice.
    keys = [d.key for d in outbox.deliveries(first.alert_id)]
    assert len(keys) == len(set(keys)) == len(deliveries_for(first, REGISTRY)) + len(deliveries_for(grown, REGISTRY))


def test_a_lost_feed_alerts_the_sector_duty_desk_and_a_restored_one_does_not(outbox: Outbox) -> None:
    bus = MemoryBus()
    lost = SensorHealthEvent(sensor_id="blaine-cam-1", sector_id="pac-blaine", state=SensorHealthState.FEED_LOST,
                             event_ts_ns=NOON, last_frame_ts_ns=NOON - 12 * S, expected_interval_s=0.5, silent_s=12.0)
    restored = lost.model_copy(update={"state": SensorHealthState.FEED_RESTORED, "event_ts_ns": NOON + 60 * S})
    _feed(bus, lost, restored)
    StageRunner(_stage(outbox), bus, QUICK).run(idle_stop_s=0.05)

    [alert] = _alerts_on_bus(bus)
    assert (alert.kind, alert.severity, alert.sensor_ids) == ("sensor_health", Severity.MEDIUM, ("blaine-cam-1",))
    assert alert.title == "Feed lost: blaine-cam-1" and "12 s" in alert.summary
    assert alert.routed_partner_ids and alert.escalation_level == 0
    pose = REGISTRY.sensor("blaine-cam-1").pose
    assert (alert.lat_deg, alert.lon_deg) == (pose.lat_deg, pose.lon_deg)


def test_bad_events_are_dead_lettered_and_the_batch_goes_on(outbox: Outbox) -> None:
    bus = MemoryBus()
    producer = bus.producer("test")
    producer.send(OutRecord(topics.EVENTS, key=b"pac-blaine", value=b"{not json"))
    producer.send(OutRecord(topics.EVENTS, key=b"nowhere", value=_event(sector="nowhere").to_bytes()))
    unknown_sensor = SensorHealthEvent(sensor_id="ghost-cam", sector_id="pac-blaine", state=SensorHealthState.FEED_LOST,
                                       event_ts_ns=NOON, expected_interval_s=0.5, silent_s=12.0)
    producer.send(OutRecord(topics.SENSOR_HEALTH, key=b"ghost-cam", value=unknown_sensor.to_bytes()))
    producer.flush(5.0)
    _feed(bus, _event())
    stats = StageRunner(_stage(outbox), bus, QUICK).run(idle_stop_s=0.05)

    assert stats.dead_lettered == 3
    assert len(_alerts_on_bus(bus)) == 1
    errors = [DeadLetterInfo.from_record(r).error for t in (topics.EVENTS, topics.SENSOR_HEALTH)
              for r in bus.records(topics.dlq_topic(t))]
    assert any("nowhere" in e for e in errors) and any("ghost-cam" in e for e in errors)


def test_rules_state_survives_a_restart_so_a_replayed_event_is_no_new_alert(outbox: Outbox) -> None:
    bus = MemoryBus()
    crossing = _event()
    _feed(bus, crossing)
    StageRunner(_stage(outbox), bus, QUICK).run(idle_stop_s=0.05)
    assert bus.records(topics.ALERTS_STATE), "the rules state was not saved"

    # A new worker (fresh stage, same group) gets the same crossing again, re-sent by fusion.
    suppressed: list[tuple[str, Decision]] = []
    _feed(bus, crossing)
    StageRunner(_stage(outbox, suppressed), bus, QUICK).run(idle_stop_s=0.05)
    assert len(_alerts_on_bus(bus)) == 1
    assert [d.reason for _, d in suppressed] == ["duplicate"]


def test_nobody_acknowledges_so_the_alert_is_escalated_to_the_supervisors(outbox: Outbox) -> None:
    bus = MemoryBus()
    _feed(bus, _event())
    StageRunner(_stage(outbox), bus, QUICK).run(idle_stop_s=0.05)
    [alert] = _alerts_on_bus(bus)
    published: list[Alert] = []
    clock = outbox.clock
    worker = EscalationWorker(outbox, REGISTRY, ROSTER, EscalationPolicy(ack_timeout_s=300, max_level=1),
                              channels=("webhook", "email", "cot", "cap"), publish=published.append, clock=clock)

    clock.advance(299)
    assert worker.step() == []
    clock.advance(2)
    [escalated] = worker.step()
    assert (escalated.state, escalated.escalation_level) == (AlertState.ESCALATED, 1)
    assert set(alert.routed_partner_ids) <= set(escalated.routed_partner_ids)
    assert published == [escalated] and outbox.alert(alert.alert_id) == escalated
    clock.advance(3600)
    assert worker.step() == []  # at the policy's highest level


def test_an_acknowledged_alert_is_not_escalated(outbox: Outbox) -> None:
    bus = MemoryBus()
    _feed(bus, _event())
    StageRunner(_stage(outbox), bus, QUICK).run(idle_stop_s=0.05)
    [alert] = _alerts_on_bus(bus)
    acked = alert.model_copy(update={"state": AlertState.ACKNOWLEDGED, "updated_ts_ns": alert.updated_ts_ns + S})
    outbox.record(acked, [])
    worker = EscalationWorker(outbox, REGISTRY, ROSTER, EscalationPolicy(ack_timeout_s=300, max_level=3),
                              channels=("webhook",), publish=lambda a: None, clock=outbox.clock)
    outbox.clock.advance(3600)
    assert worker.step() == []


def _crossings(n: int) -> list[BorderEvent]:
    """``n`` crossings far enough apart not to be folded into one another, and an approach that grows
    into the third one's alert (an update of an alert of the same batch)."""
    events = [_event("crossing", NOON + i * S, track=f"trk-{i}", lat=49.0002 + i * 0.01) for i in range(n)]
    events.insert(2, _event("approach", NOON - 10 * S, track="trk-2", lat=49.0002 + 2 * 0.01))
    return events


def _run_with_lifecycle(outbox: Outbox, events: list[BorderEvent], batch: int) -> tuple[list[Alert], AlertLifecycle]:
    bus = MemoryBus()
    lifecycle = AlertLifecycle(outbox.engine, outbox.clock)
    _feed(bus, *events)
    StageRunner(_stage(outbox, lifecycle=lifecycle), bus, RunnerSettings(poll_timeout_s=0.01, batch_max_records=batch)
                ).run(idle_stop_s=0.05)
    return _alerts_on_bus(bus), lifecycle


def test_a_batch_records_its_alerts_together_as_one_by_one_would(database_url: str) -> None:
    results = []
    for batch in (1, 100):
        engine = make_engine(DatabaseSettings(url=database_url))
        migrate(engine)
        outbox = Outbox(engine, ManualClock(NOON))
        alerts, lifecycle = _run_with_lifecycle(outbox, _crossings(8), batch)
        audit = [(e.action, e.subject_id) for a in alerts for e in reversed(lifecycle.audit(a.alert_id))]
        results.append((alerts, sorted((d.key, d.status) for d in outbox.deliveries()), sorted(set(audit))))
        with engine.begin() as conn:  # the next run starts from an empty database
            for table in ("deliveries", "alerts", "alert_lifecycle", "audit_log"):
                conn.exec_driver_sql(f"DELETE FROM {table}")
        engine.dispose()
    (one_by_one, deliveries_1, audit_1), (together, deliveries_n, audit_n) = results
    assert together == one_by_one and deliveries_n == deliveries_1 and audit_n == audit_1
    assert len(together) == 9 and len({a.alert_id for a in together}) == 8  # the approach's alert grew
    assert ("alert.updated", together[3].alert_id) in audit_n


def test_a_batch_that_cannot_be_recorded_together_is_recorded_one_by_one(outbox: Outbox, monkeypatch) -> None:
    together = AlertLifecycle.open_many

    def conflict(self, conn, alerts, *args):
        if len(alerts) > 1:
            raise LifecycleConflict  # a concurrent writer changed one of the batch's alerts
        return together(self, conn, alerts, *args)
    monkeypatch.setattr(AlertLifecycle, "open_many", conflict)
    alerts, lifecycle = _run_with_lifecycle(outbox, _crossings(4), 100)
    assert len({a.alert_id for a in alerts}) == 4
    assert all(lifecycle.get(a.alert_id) is not None and outbox.deliveries(a.alert_id) for a in alerts)

"""The alert state machine: every transition and refusal (pure), and the store on SQLite and PostgreSQL
(one transaction per transition with its audit entry, publish after commit, concurrent acknowledgements)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from sqlalchemy import MetaData, Table
from wire_samples import T0, alert

from alerts.identity import metadata as identity_metadata
from alerts.lifecycle import AlertLifecycle
from alerts.lifecycle import metadata as lifecycle_metadata
from alerts.routing import EscalationPolicy
from alerts.transitions import (
    Action,
    AlertNotFound,
    AlertStatus,
    Forbidden,
    LifecycleError,
    Outcome,
    TransitionError,
    apply,
    authorize,
    initial_status,
    is_supervisor,
    merge_content,
)
from ibet.audit import SYSTEM, Actor, audit_entries, record_audit
from ibet.audit import metadata as audit_metadata
from ibet.clock import ManualClock
from ibet.config import DatabaseSettings
from ibet.db import make_engine, migrate
from ibet.messages import Alert, AlertState

NOW = T0 + 60_000_000_000
ALERT_ID = "alr-0123456789abcdef"
DESK = Actor("contact", "blaine-station-day-desk", "usbp-blaine", "duty", "198.51.100.7")
COMMANDER = Actor("contact", "blaine-watch-commander", "usbp-blaine", "supervisor", "198.51.100.8")
RCMP = Actor("contact", "pacific-ibet-day-desk", "rcmp-e-div", "duty", "203.0.113.4")
STRANGER = Actor("contact", "champlain-desk", "usbp-swanton", "supervisor", "192.0.2.1")
OPERATOR = Actor("user", "alice", None, "operator", "10.0.0.5")
SUPERVISOR = Actor("user", "bob", None, "supervisor", "10.0.0.6")
OPEN, ACKED, RESOLVED = AlertState.OPEN, AlertState.ACKNOWLEDGED, AlertState.RESOLVED


def status(state: AlertState = OPEN, escalated: bool = False, level: int = 0, **changes) -> AlertStatus:
    return AlertStatus(**(dict(alert_id=ALERT_ID, state=state, escalated=escalated, escalation_level=level, opened_ns=NOW,
                               updated_ts_ns=T0) | changes))


# Pure core: every (state, action) pair
ALLOWED = {
    (OPEN, False, Action.ACKNOWLEDGE): (ACKED, False, 0),
    (OPEN, False, Action.ESCALATE): (OPEN, True, 1),
    (OPEN, False, Action.RESOLVE): (RESOLVED, False, 0),
    (OPEN, True, Action.ACKNOWLEDGE): (ACKED, True, 1),
    (OPEN, True, Action.ESCALATE): (OPEN, True, 2),
    (OPEN, True, Action.RESOLVE): (RESOLVED, True, 1),
    (ACKED, False, Action.ESCALATE): (ACKED, True, 1),
    (ACKED, False, Action.RESOLVE): (RESOLVED, False, 0),
    (ACKED, True, Action.ESCALATE): (ACKED, True, 2),
    (ACKED, True, Action.RESOLVE): (RESOLVED, True, 1),
    (RESOLVED, False, Action.REOPEN): (OPEN, False, 0),
    (RESOLVED, True, Action.REOPEN): (OPEN, True, 1),
}
PAIRS = [(state, escalated, action) for state in (OPEN, ACKED, RESOLVED) for escalated in (False, True)
         for action in (Action.ACKNOWLEDGE, Action.ESCALATE, Action.RESOLVE, Action.REOPEN)]


@pytest.mark.parametrize(("state", "escalated", "action"), PAIRS)
def test_every_state_and_action(state, escalated, action):
    before = status(state, escalated, int(escalated), outcome=Outcome.LAWFUL if state == RESOLVED else None)
    if (state, escalated, action) not in ALLOWED:
        with pytest.raises(TransitionError, match=f"cannot {action} alert {ALERT_ID}: it is ") as caught:
            apply(before, action, SUPERVISOR, NOW, outcome=Outcome.FALSE_ALARM)
        assert caught.value.state == before.wire_state
        return
    after = apply(before, action, SUPERVISOR, NOW + 5, outcome=Outcome.FALSE_ALARM)
    assert (after.state, after.escalated, after.escalation_level) == ALLOWED[(state, escalated, action)]
    assert after.updated_ts_ns == NOW + 5 and after.revision == before.revision
    assert after.outcome == (Outcome.FALSE_ALARM if action == Action.RESOLVE else None)
    who = {Action.ACKNOWLEDGE: "acknowledged", Action.ESCALATE: "escalated", Action.RESOLVE: "resolved",
           Action.REOPEN: "reopened"}[action]
    assert (getattr(after, f"{who}_by"), getattr(after, f"{who}_ns")) == ("user:bob", NOW + 5)


def test_wire_state_shows_escalation_only_while_open():
    assert status(OPEN, True, 1).wire_state == AlertState.ESCALATED
    assert status(ACKED, True, 1).wire_state == AlertState.ACKNOWLEDGED
    assert status(OPEN, False).wire_state == AlertState.OPEN
    # the automatic escalation keeps escalating an escalated alert and stops at acknowledged
    policy = EscalationPolicy(ack_timeout_s=60, max_level=3)
    assert policy.next_escalation(status(OPEN, True, 1).wire_state, T0, T0 + 121 * 10**9, 1) == 2
    assert policy.next_escalation(status(ACKED, True, 1).wire_state, T0, T0 + 121 * 10**9, 1) is None


def test_transition_error_names_the_state_and_who_put_it_there():
    acked = apply(status(), Action.ACKNOWLEDGE, DESK, NOW)
    with pytest.raises(TransitionError, match=r"it is acknowledged \(by contact:usbp-blaine/blaine-station-day-desk at "):
        apply(acked, Action.ACKNOWLEDGE, RCMP, NOW + 1)
    resolved = apply(acked, Action.RESOLVE, DESK, NOW + 2, outcome="lawful")
    with pytest.raises(TransitionError, match="it is resolved as lawful"):
        apply(resolved, Action.ESCALATE, DESK, NOW + 3)


def test_updates_are_later_distinct_versions_even_when_the_clock_lags():
    before = status(updated_ts_ns=NOW + 10**9)
    assert apply(before, Action.ACKNOWLEDGE, DESK, NOW).updated_ts_ns == NOW + 10**9 + 1


def test_escalation_to_a_given_level_must_go_up():
    assert apply(status(), Action.ESCALATE, SYSTEM, NOW, level=3).escalation_level == 3
    with pytest.raises(TransitionError, match=r"already at escalation level 2 \(asked for 2\)"):
        apply(status(OPEN, True, 2), Action.ESCALATE, SYSTEM, NOW, level=2)


def test_resolve_needs_a_known_outcome():
    with pytest.raises(ValueError, match="outcome must be one of confirmed_crossing, false_alarm, lawful, unresolved"):
        apply(status(), Action.RESOLVE, DESK, NOW, outcome="maybe")
    with pytest.raises(ValueError, match="outcome must be one of"):
        apply(status(), Action.RESOLVE, DESK, NOW)


def test_reopen_clears_the_outcome_and_keeps_the_escalation():
    resolved = apply(apply(status(OPEN, True, 2), Action.ACKNOWLEDGE, DESK, NOW), Action.RESOLVE, DESK, NOW + 1,
                     outcome=Outcome.CONFIRMED_CROSSING)
    reopened = apply(resolved, Action.REOPEN, COMMANDER, NOW + 2)
    assert (reopened.state, reopened.escalated, reopened.escalation_level) == (OPEN, True, 2)
    assert reopened.outcome is None and reopened.acknowledged_by is None and reopened.resolved_by is None
    assert reopened.reopened_by == "contact:usbp-blaine/blaine-watch-commander" and reopened.reopened_ns == NOW + 2


@pytest.mark.parametrize(("actor", "action", "allowed"), [
    (DESK, Action.ACKNOWLEDGE, True), (RCMP, Action.RESOLVE, True), (DESK, Action.VIEW, True),
    (STRANGER, Action.VIEW, False), (STRANGER, Action.ACKNOWLEDGE, False), (STRANGER, Action.REOPEN, False),
    (DESK, Action.REOPEN, False), (COMMANDER, Action.REOPEN, True),
    (OPERATOR, Action.ACKNOWLEDGE, True), (OPERATOR, Action.REOPEN, False), (SUPERVISOR, Action.REOPEN, True),
    (Actor("user", "root", None, "admin"), Action.REOPEN, True), (SYSTEM, Action.REOPEN, True),
    (Actor("contact", "x", None, "supervisor"), Action.VIEW, False),  # a contact without a partner sees nothing
])
def test_who_may_do_what(actor, action, allowed):
    the_alert = alert()  # routed to usbp-blaine and rcmp-e-div
    if allowed:
        authorize(actor, the_alert, action)
    else:
        with pytest.raises(Forbidden):
            authorize(actor, the_alert, action)


def test_a_contact_of_the_lead_partner_may_act_even_if_not_listed_as_routed():
    authorize(DESK, alert(routed_partner_ids=()), Action.ACKNOWLEDGE)
    assert is_supervisor(COMMANDER) and not is_supervisor(DESK) and not is_supervisor(Actor("contact", "x", "p", "admin"))


def test_initial_status_takes_open_or_escalated_alerts_only():
    assert initial_status(alert(state=AlertState.ESCALATED, escalation_level=1), NOW).wire_state == AlertState.ESCALATED
    with pytest.raises(ValueError, match="open or escalated alert, got alr-0123456789abcdef in state acknowledged"):
        initial_status(alert(state=AlertState.ACKNOWLEDGED), NOW)


def test_merged_content_accumulates_partners_and_events_and_never_goes_back():
    stored = alert()
    newer = alert(routed_partner_ids=("usbp-blaine", "usbp-swanton"), event_ids=("evt-2",), summary="now 2 people",
                  updated_ts_ns=T0 + 5)
    merged = merge_content(stored, newer)
    assert merged.routed_partner_ids == ("usbp-blaine", "usbp-swanton", "rcmp-e-div")
    assert merged.event_ids == ("evt-2", "evt-0123456789abcdef") and merged.summary == "now 2 people"
    assert merge_content(merged, stored) == merged  # an older replay changes nothing


# The store, on SQLite and PostgreSQL
class Store(NamedTuple):
    lifecycle: AlertLifecycle
    clock: ManualClock
    published: list[Alert]
    url: str


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    engine = make_engine(DatabaseSettings(url=database_url))
    migrate(engine)
    migrate(engine)  # idempotent
    clock, published = ManualClock(NOW), []
    yield Store(AlertLifecycle(engine, clock, published.append), clock, published, database_url)
    engine.dispose()


def test_open_is_idempotent_and_audited_once(store: Store):
    lc = store.lifecycle
    assert lc.get(ALERT_ID) is None and lc.status(ALERT_ID) is None
    first = lc.open(alert())
    assert first == alert()
    assert lc.open(alert()) == first
    assert lc.get(ALERT_ID) == first and store.published == []  # the alert stage publishes new alerts itself
    [entry] = lc.audit(ALERT_ID)
    assert (entry.action, entry.actor, entry.ts_ns) == ("alert.opened", SYSTEM, NOW)
    assert entry.detail == {"state": "open", "escalation_level": 0, "routed_partner_ids": ["usbp-blaine", "rcmp-e-div"]}


def test_open_again_merges_routing_without_touching_the_state(store: Store):
    lc = store.lifecycle
    lc.open(alert())
    lc.acknowledge(ALERT_ID, DESK)
    store.clock.advance(1)
    rerouted = lc.open(alert(routed_partner_ids=("usbp-swanton",), updated_ts_ns=NOW + 10**9))
    assert rerouted.state == AlertState.ACKNOWLEDGED
    assert rerouted.routed_partner_ids == ("usbp-swanton", "usbp-blaine", "rcmp-e-div")
    assert lc.get(ALERT_ID) == rerouted
    updated = lc.audit(ALERT_ID)[0]
    assert updated.action == "alert.updated" and updated.detail == {"added_partner_ids": ["usbp-swanton"],
                                                                    "added_event_ids": []}
    authorize(STRANGER, lc.get(ALERT_ID), Action.RESOLVE)
    assert len(lc.audit(ALERT_ID)) == 3
    lc.open(alert())  # an old replay: nothing changes, nothing audited
    assert len(lc.audit(ALERT_ID)) == 3 and lc.get(ALERT_ID) == rerouted


def test_a_whole_life_is_published_and_audited_step_by_step(store: Store):
    lc, clock = store.lifecycle, store.clock
    lc.open(alert())
    steps = [
        (lambda: lc.escalate(ALERT_ID, SYSTEM, "nobody answered"), AlertState.ESCALATED, 1, "alert.escalated"),
        (lambda: lc.acknowledge(ALERT_ID, DESK, "on my way"), AlertState.ACKNOWLEDGED, 1, "alert.acknowledged"),
        (lambda: lc.escalate(ALERT_ID, RCMP, "need a boat"), AlertState.ACKNOWLEDGED, 2, "alert.escalated"),
        (lambda: lc.resolve(ALERT_ID, DESK, "false_alarm", "deer"), AlertState.RESOLVED, 2, "alert.resolved"),
        (lambda: lc.reopen(ALERT_ID, COMMANDER, "tracks found"), AlertState.ESCALATED, 2, "alert.reopened"),
        (lambda: lc.resolve(ALERT_ID, RCMP, Outcome.CONFIRMED_CROSSING), AlertState.RESOLVED, 2, "alert.resolved"),
    ]
    for i, (step, state, level, action) in enumerate(steps, start=1):
        clock.advance(30)
        returned = step()
        assert (returned.state, returned.escalation_level, returned.updated_ts_ns) == (state, level, clock.now_ns())
        assert store.published[-1] == returned == lc.get(ALERT_ID) and len(store.published) == i
        assert lc.audit(ALERT_ID)[0].action == action
    versions = [a.updated_ts_ns for a in store.published]
    assert versions == sorted(set(versions))
    entries = list(reversed(lc.audit(ALERT_ID)))
    assert [(e.action, e.actor, e.ts_ns) for e in entries[1:]] == [
        ("alert.escalated", SYSTEM, NOW + 30 * 10**9), ("alert.acknowledged", DESK, NOW + 60 * 10**9),
        ("alert.escalated", RCMP, NOW + 90 * 10**9), ("alert.resolved", DESK, NOW + 120 * 10**9),
        ("alert.reopened", COMMANDER, NOW + 150 * 10**9), ("alert.resolved", RCMP, NOW + 180 * 10**9)]
    assert entries[2].actor.address == "198.51.100.7"  # from where
    assert entries[4].detail == {"from": "acknowledged", "to": "resolved", "escalation_level": 2, "note": "deer",
                                 "outcome": "false_alarm"}
    assert entries[5].detail == {"from": "resolved", "to": "escalated", "escalation_level": 2, "note": "tracks found",
                                 "previous_outcome": "false_alarm"}
    final = lc.status(ALERT_ID)
    assert final.outcome == Outcome.CONFIRMED_CROSSING and final.resolved_by == "contact:rcmp-e-div/pacific-ibet-day-desk"
    assert final.acknowledged_by is None and final.reopened_ns == NOW + 150 * 10**9 and final.revision == 6


def test_refusals_change_nothing_publish_nothing_and_audit_nothing(store: Store):
    lc = store.lifecycle
    lc.open(alert())
    lc.acknowledge(ALERT_ID, DESK)
    before = (lc.get(ALERT_ID), lc.status(ALERT_ID), len(lc.audit(ALERT_ID)), len(store.published))
    refusals = [
        (lambda: lc.acknowledge(ALERT_ID, RCMP), TransitionError, "it is acknowledged"),
        (lambda: lc.reopen(ALERT_ID, SUPERVISOR), TransitionError, "cannot reopen alert .*: it is acknowledged"),
        (lambda: lc.resolve(ALERT_ID, STRANGER, "lawful"), Forbidden, "not routed to partner 'usbp-swanton'"),
        (lambda: lc.resolve(ALERT_ID, DESK, "meh"), ValueError, "outcome must be one of"),
        (lambda: lc.escalate(ALERT_ID, DESK, "x" * 2001), ValueError, "note is 2001 characters long"),
        (lambda: lc.acknowledge("alr-ffffffffffffffff", DESK), AlertNotFound, "no alert 'alr-ffffffffffffffff'"),
    ]
    for call, error, message in refusals:
        with pytest.raises(error, match=message):
            call()
    lc.resolve(ALERT_ID, DESK, "lawful")
    with pytest.raises(Forbidden, match="only a supervisor can reopen"):
        lc.reopen(ALERT_ID, DESK)
    with pytest.raises(TransitionError, match="it is resolved as lawful"):
        lc.resolve(ALERT_ID, DESK, "lawful")
    assert len(lc.audit(ALERT_ID)) == before[2] + 1 and len(store.published) == before[3] + 1
    assert lc.reopen(ALERT_ID, SUPERVISOR).state == AlertState.OPEN


def test_a_failing_publish_leaves_the_transition_done(store: Store):
    def broken(_alert: Alert) -> None:
        raise ConnectionError("bus down")

    engine = store.lifecycle.engine
    lc = AlertLifecycle(engine, store.clock, broken)
    lc.open(alert())
    with pytest.raises(ConnectionError, match="bus down"):
        lc.acknowledge(ALERT_ID, DESK)
    assert lc.get(ALERT_ID).state == AlertState.ACKNOWLEDGED


def test_concurrent_acknowledgements_one_wins(store: Store):
    store.lifecycle.open(alert())
    outcomes: list[str] = []
    engines = [make_engine(DatabaseSettings(url=store.url)) for _ in range(6)]
    barrier = threading.Barrier(len(engines))

    def worker(k: int) -> None:
        lc = AlertLifecycle(engines[k], store.clock)
        actor = Actor("contact", f"desk-{k}", "usbp-blaine", "duty", "127.0.0.1")
        barrier.wait()
        try:
            lc.acknowledge(ALERT_ID, actor)
            outcomes.append("won")
        except TransitionError as exc:
            outcomes.append(exc.state.value)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(len(engines))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for engine in engines:
        engine.dispose()
    assert sorted(outcomes) == ["acknowledged"] * 5 + ["won"]
    assert [e.action for e in store.lifecycle.audit(ALERT_ID)] == ["alert.acknowledged", "alert.opened"]


def test_concurrent_opens_record_the_alert_once(store: Store):
    engines = [make_engine(DatabaseSettings(url=store.url)) for _ in range(4)]
    barrier, results = threading.Barrier(len(engines)), []

    def worker(k: int) -> None:
        barrier.wait()
        results.append(AlertLifecycle(engines[k], store.clock).open(alert()))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(len(engines))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for engine in engines:
        engine.dispose()
    assert results == [alert()] * 4
    assert [e.action for e in store.lifecycle.audit(ALERT_ID)] == ["alert.opened"]


def test_an_unreachable_database_is_a_lifecycle_error(tmp_path: Path):
    engine = make_engine(DatabaseSettings(url=f"sqlite:///{tmp_path}/empty.sqlite3"))  # never migrated
    lc = AlertLifecycle(engine, ManualClock(NOW))
    with pytest.raises(LifecycleError, match="cannot open alr-0123456789abcdef"):
        lc.open(alert())
    with pytest.raises(LifecycleError, match="cannot acknowledge alr-0123456789abcdef"):
        lc.acknowledge(ALERT_ID, DESK)


def test_audit_log_pages_and_filters(store: Store):
    engine = store.lifecycle.engine
    for i in range(5):
        record_audit(engine, actor=OPERATOR, action="case.updated", subject_kind="case", subject_id=f"c{i % 2}",
                     detail={"i": i}, now_ns=NOW + i)
    assert [e.detail["i"] for e in audit_entries(engine, "case")] == [4, 3, 2, 1, 0]
    assert [e.detail["i"] for e in audit_entries(engine, "case", "c0")] == [4, 2, 0]
    page = audit_entries(engine, limit=2)
    assert [e.detail["i"] for e in page] == [4, 3]
    assert [e.detail["i"] for e in audit_entries(engine, limit=2, before_id=page[-1].id)] == [2, 1]
    assert audit_entries(engine)[0].actor == OPERATOR


@pytest.mark.parametrize(("changes", "message"), [
    (dict(actor=Actor("robot", "r")), "actor.kind must be one of contact, user, system"),
    (dict(actor=Actor("user", "")), "actor.id must be a non-empty string"),
    (dict(action="x" * 65), "action is longer than 64 characters"),
    (dict(detail=["not", "an", "object"]), "detail must be a JSON object"),
    (dict(detail={"when": object()}), "detail is not JSON"),
    (dict(detail={"nan": float("nan")}), "detail is not JSON"),
    (dict(now_ns=0), "now_ns must be a positive int"),
])
def test_record_audit_names_what_is_wrong(store: Store, changes, message):
    fields = dict(actor=OPERATOR, action="case.updated", subject_kind="case", subject_id="c1", detail=None, now_ns=NOW)
    with pytest.raises(ValueError, match=message):
        record_audit(store.lifecycle.engine, **(fields | changes))
    assert audit_entries(store.lifecycle.engine) == []


def test_migration_0003_creates_exactly_the_tables_of_the_lifecycle_identity_and_audit(store: Store):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    mine = MetaData()
    for table in (*lifecycle_metadata.tables.values(), *identity_metadata.tables.values(), *audit_metadata.tables.values()):
        table.to_metadata(mine)
    with store.lifecycle.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), mine)
    names = set(mine.tables)

    def table_of(d) -> str:
        kind, first, *rest = d[0] if isinstance(d, list) else d  # column modifications come as lists
        if isinstance(first, Table):
            return first.name
        return first.table.name if hasattr(first, "table") else rest[0]  # (kind, schema, table, ...)

    assert [d for d in diff if table_of(d) in names] == []

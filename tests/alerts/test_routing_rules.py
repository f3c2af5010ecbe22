"""Routing (severity, partners on duty, lead agency, escalation) and alert rules, on the shipped config."""

from __future__ import annotations

import json
from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from alerts.rosters import load_rosters
from alerts.routing import SEVERITY_RANK, EscalationPolicy, Routing, route, severity_of
from alerts.rules import AlertRules, Decision, QuietRule, RulesConfig, Silence
from ibet.ids import alert_id, event_id, time_window_start_ns
from ibet.messages import AlertState, BorderEvent, BorderEventType, Direction, Severity, TrackClass
from ibet.registry import load_registry

REPO = Path(__file__).resolve().parents[2]
REGISTRY = load_registry(REPO / "config" / "registry.yaml")
ROSTER = load_rosters(REPO / "config" / "rosters.yaml", REGISTRY)
WINDOW_NS = 60 * 10**9
S = 10**9


def _ns(local: str, zone: str = "America/Vancouver") -> int:
    """ns since the epoch of a local wall-clock time in ``zone``."""
    return int(datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(zone)).timestamp()) * S


DAY = _ns("2025-06-10T12:00:00")  # a Tuesday, Blaine
NIGHT = _ns("2025-06-10T23:30:00")
EXERCISE = _ns("2026-05-12T10:00:00")  # RCMP day desk stood down by an override


def _event(kind: str = "crossing", ts_ns: int = DAY, direction: Direction = Direction.CA_TO_US, *,
           track: str = "trk-1", sector: str = "pac-blaine", lat: float = 49.0002, lon: float = -122.7540,
           sensors: tuple[str, ...] = ("blaine-cam-1",), port: str | None = None) -> BorderEvent:
    return BorderEvent(event_id=event_id(track, kind, time_window_start_ns(ts_ns, WINDOW_NS)),
                       event_type=BorderEventType(kind), track_id=track, sector_id=sector, event_ts_ns=ts_ns,
                       lat_deg=lat, lon_deg=lon, direction=direction, class_name=TrackClass.PERSON,
                       confidence=0.9, sensor_ids=sensors, port_of_entry_id=port)


# Severity
def test_severity_order_and_lawful_port_not_alerted() -> None:
    kinds = ["crossing", "approach", "loitering", "lost_near_border"]
    ranks = [SEVERITY_RANK[severity_of(_event(k))] for k in kinds]
    assert ranks == sorted(ranks, reverse=True) and len(set(ranks)) == 4
    assert severity_of(_event("crossing")) is Severity.CRITICAL
    assert severity_of(_event("crossing", port="peace-arch")) is None


# Routing
ROUTES = [
    # (case, ts, direction, level, lead, {partner: contacts})
    ("day CA->US", DAY, Direction.CA_TO_US, 0, "usbp",
     {"usbp": ("blaine-station-day-desk",), "cbsa": ("pacific-roc-desk",), "rcmp": ("pacific-ibet-day-desk",)}),
    ("night CA->US", NIGHT, Direction.CA_TO_US, 0, "usbp",
     {"usbp": ("blaine-station-night-desk",), "cbsa": ("pacific-roc-desk",), "rcmp": ("pacific-ibet-night-desk",)}),
    ("day US->CA flips the lead", DAY, Direction.US_TO_CA, 0, "rcmp",
     {"rcmp": ("pacific-ibet-day-desk",), "cbsa": ("pacific-roc-desk",), "usbp": ("blaine-station-day-desk",)}),
    ("night US->CA", NIGHT, Direction.US_TO_CA, 0, "rcmp",
     {"rcmp": ("pacific-ibet-night-desk",), "cbsa": ("pacific-roc-desk",), "usbp": ("blaine-station-night-desk",)}),
    ("RCMP desk stood down: CBSA leads into Canada", EXERCISE, Direction.US_TO_CA, 0, "cbsa",
     {"cbsa": ("pacific-roc-desk",), "usbp": ("blaine-station-day-desk",)}),
    ("day level 1 adds supervisors", DAY, Direction.CA_TO_US, 1, "usbp",
     {"usbp": ("blaine-station-day-desk", "blaine-watch-commander"), "cbsa": ("pacific-roc-desk",),
      "rcmp": ("pacific-ibet-day-desk", "sgt-pacific-b")}),
    ("night level 1: only the RCMP NCO is on call", NIGHT, Direction.CA_TO_US, 1, "usbp",
     {"usbp": ("blaine-station-night-desk",), "cbsa": ("pacific-roc-desk",),
      "rcmp": ("pacific-ibet-night-desk", "sgt-pacific-b")}),
]


@pytest.mark.parametrize(("case", "ts", "direction", "level", "lead", "contacts"), ROUTES, ids=[r[0] for r in ROUTES])
def test_route_blaine(case: str, ts: int, direction: Direction, level: int, lead: str,
                      contacts: dict[str, tuple[str, ...]]) -> None:
    routing = route(_event(ts_ns=ts, direction=direction), REGISTRY, ROSTER, level)
    assert routing.lead_partner_id == lead
    assert routing.partner_ids[0] == lead and set(routing.partner_ids) == set(contacts)
    assert routing.contacts == contacts
    assert routing.reason is None and not routing.nobody_on_duty and routing.mutual_aid_sector_ids == ()


def test_escalation_beyond_sector_levels_adds_neighbours_duty_desks() -> None:
    detroit_night = _ns("2025-06-10T23:00:00", "America/Toronto")
    event = _event(ts_ns=detroit_night, sector="gl-detroit", direction=Direction.US_TO_CA)
    base = route(event, REGISTRY, ROSTER, 0)
    assert base.contacts == {"rcmp": ("o-division-ops-desk",), "cbsa": ("southern-ontario-roc-desk",),
                             "usbp": ("detroit-station-night-desk",)}
    assert base.lead_partner_id == "rcmp"  # into Canada: a Canadian agency leads
    aid = route(event, REGISTRY, ROSTER, 1)  # Detroit has only level 0: neighbours' desks join
    assert aid.mutual_aid_sector_ids == ("prairie-emerson", "qc-champlain")
    assert aid.contacts == {"rcmp": ("o-division-ops-desk", "d-division-ops-desk"),
                            "cbsa": ("southern-ontario-roc-desk",),
                            "usbp": ("detroit-station-night-desk", "pembina-station-night-desk",
                                     "champlain-station-night-desk"),
                            "sq": ("sq-monteregie-nuit",)}
    assert aid.lead_partner_id == "rcmp"  # the sector's own agencies lead before mutual aid of the same rank


def test_nobody_on_duty_is_a_routing_not_an_error() -> None:
    # the shipped rosters cover every sector (ibet config check); here Sweetgrass's desks are gone
    holed = ROSTER.model_copy(update={kind: tuple(e for e in getattr(ROSTER, kind) if e.sector_id != "prairie-sweetgrass")
                                      for kind in ("shifts", "rotations", "overrides")})
    routing = route(_event(sector="prairie-sweetgrass"), REGISTRY, holed)
    assert isinstance(routing, Routing) and routing.nobody_on_duty
    assert routing.lead_partner_id is None and routing.contacts == {}
    assert "nobody on duty in prairie-sweetgrass" in routing.reason
    # Beyond Blaine's levels the neighbour (Sweetgrass) has nobody: Blaine's own duties still go out.
    escalated = route(_event(ts_ns=DAY), REGISTRY, holed, 2)
    assert escalated.mutual_aid_sector_ids == ("prairie-sweetgrass",)
    assert set(escalated.partner_ids) == {"usbp", "cbsa", "rcmp"}
    unknown = route(_event(sector="nowhere"), REGISTRY, holed)
    assert unknown.nobody_on_duty and "nowhere" in unknown.reason


T0 = 1_750_000_000 * S
POLICY = EscalationPolicy(ack_timeout_s=300, max_level=3)
ESCALATIONS = [
    ("open, not yet due", AlertState.OPEN, 299 * S, 0, None),
    ("open, due", AlertState.OPEN, 300 * S, 0, 1),
    ("already at 1, level 2 not due", AlertState.ESCALATED, 599 * S, 1, None),
    ("escalated, next due", AlertState.ESCALATED, 600 * S, 1, 2),
    ("checked late: jump to the due level", AlertState.OPEN, 1000 * S, 0, 3),
    ("at the limit", AlertState.ESCALATED, 10_000 * S, 3, None),
    ("acknowledged", AlertState.ACKNOWLEDGED, 10_000 * S, 0, None),
    ("resolved", AlertState.RESOLVED, 10_000 * S, 1, None),
]


@pytest.mark.parametrize(("case", "state", "elapsed", "level", "expected"), ESCALATIONS, ids=[e[0] for e in ESCALATIONS])
def test_escalation_policy(case: str, state: AlertState, elapsed: int, level: int, expected: int | None) -> None:
    assert POLICY.next_escalation(state, T0, T0 + elapsed, level) == expected


# Rules
NIGHT_LOITER = QuietRule("blaine-night-loiter", "pac-blaine", (BorderEventType.LOITERING,), time(22, 0), time(6, 0),
                         "America/Vancouver", "wildlife at night")
CONFIG = RulesConfig(cooldown_s={BorderEventType.LOITERING: 600.0}, quiet_rules=(NIGHT_LOITER,))
FAR = 0.05  # degrees of longitude: about 3.6 km at 49 N, another cell


def _run(events: list[BorderEvent], rules: AlertRules | None = None) -> list[Decision]:
    rules = rules or AlertRules(CONFIG)
    return [rules.decide(e) for e in events]


def test_new_alert_uses_the_event_alert_id_and_duplicate_is_suppressed() -> None:
    crossing = _event()
    first, again = _run([crossing, crossing])
    assert first == Decision("new", alert_id(crossing.event_id), "new")
    assert (again.action, again.reason, again.related_alert_id) == ("suppress", "duplicate", first.alert_id)


def test_port_of_entry_event_is_suppressed_with_why() -> None:
    (decision,) = _run([_event(port="peace-arch")])
    assert (decision.action, decision.reason) == ("suppress", "not_alertable")


def test_backstop_cell_dedup_suppresses_a_retracked_crossing() -> None:
    first = _event(track="trk-1")
    retracked = _event(track="trk-9", ts_ns=DAY + 20 * S, lat=first.lat_deg + 0.0005)  # 55 m away, new track id
    elsewhere = _event(track="trk-10", ts_ns=DAY + 30 * S, lon=first.lon_deg + FAR)
    other_way = _event(track="trk-11", ts_ns=DAY + 40 * S, direction=Direction.US_TO_CA)
    later = _event(track="trk-12", ts_ns=DAY + 301 * S)
    new, dup, far, flipped, after = _run([first, retracked, elsewhere, other_way, later])
    assert (dup.action, dup.reason, dup.related_alert_id) == ("suppress", "duplicate_cell", new.alert_id)
    assert [d.action for d in (new, far, flipped, after)] == ["new"] * 4


def test_approach_then_crossing_of_the_track_updates_one_alert() -> None:
    approach = _event("approach", DAY)
    crossing = _event("crossing", DAY + 120 * S)
    much_later = _event("crossing", DAY + 2000 * S)  # outside the group window: a new alert
    opened, updated, fresh = _run([approach, crossing, much_later])
    assert opened.action == "new" and opened.alert_id == alert_id(approach.event_id)
    assert (updated.action, updated.alert_id, updated.reason) == ("update", opened.alert_id, "grouped")
    assert fresh.action == "new" and fresh.alert_id == alert_id(much_later.event_id)


def test_cooldown_per_sector_and_type() -> None:
    events = [_event("loitering", DAY, Direction.NONE, track="a"),
              _event("loitering", DAY + 100 * S, Direction.NONE, track="b", lon=-122.7540 + FAR),
              _event("loitering", DAY + 100 * S, Direction.NONE, track="c", sector="gl-detroit"),
              _event("approach", DAY + 110 * S, track="d", lon=-122.7540 + 2 * FAR),
              _event("loitering", DAY + 700 * S, Direction.NONE, track="e", lon=-122.7540 + 3 * FAR)]
    decisions = _run(events)
    assert [(d.action, d.reason) for d in decisions] == [
        ("new", "new"), ("suppress", "cooldown"), ("new", "new"), ("new", "new"), ("new", "new")]


@pytest.mark.parametrize(("silence", "sensors", "sector"), [
    (Silence("s1", DAY - 10 * S, DAY + 600 * S, "sgt-pacific-b", "drone exercise", sector_id="pac-blaine"),
     ("blaine-cam-1",), "pac-blaine"),
    (Silence("s2", DAY - 10 * S, DAY + 600 * S, "tech-1", "lens fogged", sensor_id="blaine-cam-1"),
     ("blaine-cam-1",), "pac-blaine"),
], ids=["by sector", "by sensor"])
def test_silence_suppresses_until_it_expires(silence: Silence, sensors: tuple[str, ...], sector: str) -> None:
    rules = AlertRules(CONFIG, [silence])
    inside = rules.decide(_event(sensors=sensors, sector=sector))
    assert (inside.action, inside.reason) == ("suppress", "silenced")
    assert silence.created_by in inside.detail and silence.why in inside.detail
    expired = rules.decide(_event(track="trk-2", ts_ns=DAY + 600 * S, sensors=sensors, lon=-122.7540 + FAR))
    assert expired.action == "new"


def test_sensor_silence_does_not_hide_an_event_another_sensor_saw() -> None:
    rules = AlertRules(CONFIG, [Silence("s", DAY - S, DAY + S, "tech-1", "lens fogged", sensor_id="blaine-cam-1")])
    assert rules.decide(_event(sensors=("blaine-cam-1", "blaine-drone-1"))).action == "new"


def test_quiet_rule_no_loitering_at_night() -> None:
    night, day = _event("loitering", NIGHT, Direction.NONE), _event("loitering", DAY, Direction.NONE, track="t2")
    crossing = _event("crossing", NIGHT, track="t3")
    quiet, loud, crossed = _run([night, day, crossing])
    assert (quiet.action, quiet.reason) == ("suppress", "quiet") and "blaine-night-loiter" in quiet.detail
    assert loud.action == "new" and crossed.action == "new"


def test_state_round_trip_gives_the_same_decisions() -> None:
    silence = Silence("s", DAY + 500 * S, DAY + 900 * S, "sgt", "maintenance", sector_id="pac-blaine")
    before = [_event("approach", DAY), _event("loitering", DAY + 5 * S, Direction.NONE, track="L1", lon=-122.7)]
    after = [_event("crossing", DAY + 60 * S),                               # update the approach's alert
             _event("approach", DAY),                                       # duplicate
             _event("crossing", DAY + 61 * S, track="re", lat=49.0004),     # re-tracked: duplicate_cell
             _event("loitering", DAY + 90 * S, Direction.NONE, track="L2", lon=-122.6),  # cooldown
             _event("crossing", DAY + 600 * S, track="x", lon=-122.5)]      # silenced
    live = AlertRules(CONFIG, [silence])
    _run(before, live)
    restored = AlertRules.from_state(json.loads(json.dumps(live.to_state())), CONFIG)
    expected = _run(after, live)
    assert _run(after, restored) == expected
    assert [d.reason for d in expected] == ["grouped", "duplicate", "duplicate_cell", "cooldown", "silenced"]
    assert restored.to_state() == live.to_state()

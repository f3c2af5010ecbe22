"""Groups: three people walking together through the fuse stage (as ``ibet run fuse`` builds it) are
one group of three on every member's crossing, and the alert rules make them one alert that says
"3 people" (before: a crossing per member, alerts each saying "person"). Grouping itself: close and
alike tracks link, a walker 30 m off, a vehicle beside them or one going the other way do not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fuse_samples import scenario_events

from alerts.compose import new_alert, updated_alert
from alerts.routing import Routing
from alerts.rules import AlertRules, RulesConfig
from fuse.groups import group_tracks
from ibet.messages import BorderEventType
from ibet.registry import load_registry

GROUP = str(Path(__file__).parents[1] / "data" / "scenarios" / "group-crossing-forest-vista.yaml")


def test_close_tracks_moving_alike_are_one_group_and_others_are_not():
    ids = ["t-1", "t-2", "t-3", "t-4", "t-5", "t-6"]
    classes = ["person", "person", "person", "person", "vehicle", "person"]
    xy = np.array([[0, 0], [2, 1], [4, -1], [30, 0], [1, 1], [3, 3]], float)
    v = np.array([[0, -1.4], [0.1, -1.3], [0, -1.5], [0, -1.4], [0, -1.4], [0, 1.4]], float)
    groups = group_tracks(ids, classes, xy, v, distance_m=10.0, speed_mps=1.0)
    assert {k: g.size for k, g in groups.items()} == {"t-1": 3, "t-2": 3, "t-3": 3}
    assert {g.group_id for g in groups.values()} == {"grp-t-1"}
    assert group_tracks(ids, classes, xy, v, distance_m=0.0, speed_mps=1.0) == {}


def test_three_people_crossing_together_are_one_alert_saying_three():
    registry = load_registry("config/registry.yaml")
    crossings = [e for e in scenario_events(GROUP, 1) if e.event_type is BorderEventType.CROSSING]
    assert len(crossings) == 3
    assert all(e.group_id is not None and e.group_size >= 2 for e in crossings)
    assert len({e.group_id for e in crossings}) == 1 and max(e.group_size for e in crossings) == 3
    rules = AlertRules(RulesConfig())
    decisions = [rules.decide(e) for e in crossings]
    assert [d.action for d in decisions] == ["new", "update", "update"]
    assert all(d.alert_id == decisions[0].alert_id for d in decisions)
    routing = Routing(crossings[0].sector_id, 0, "usbp", ("usbp", "rcmp"), {})
    alert = new_alert(crossings[0], routing, registry)
    for event in crossings[1:]:
        alert = updated_alert(alert, event, routing, registry)
    assert alert.group_size == 3 and "3 people" in alert.title and len(alert.track_ids) == 3
    assert alert.summary.startswith("A group of 3 people crossed the border")


def test_a_less_severe_member_event_still_updates_the_count_in_the_title():
    registry = load_registry("config/registry.yaml")
    crossing = next(e for e in scenario_events(GROUP, 1) if e.event_type is BorderEventType.CROSSING)
    routing = Routing(crossing.sector_id, 0, "usbp", ("usbp", "rcmp"), {})
    alert = new_alert(crossing.model_copy(update={"group_size": 2}), routing, registry)
    approach = crossing.model_copy(update={"event_id": "evt-approach-of-a-third", "event_type": BorderEventType.APPROACH,
                                           "track_id": "trk-third", "group_size": 3})
    grown = updated_alert(alert, approach, routing, registry)
    assert grown.group_size == 3 and "3 people" in grown.title and grown.severity == alert.severity


def test_messages_without_a_group_or_a_snapshot_read_as_before_the_fields_existed():
    crossing = next(e for e in scenario_events(GROUP, 1) if e.event_type is BorderEventType.CROSSING)
    alone = crossing.model_copy(update={"group_id": None, "group_size": 1, "evidence_refs": ()})
    assert b"group_size" not in alone.to_bytes() and b"group_id" not in alone.to_bytes()
    assert b'"group_size":3' in crossing.model_copy(update={"group_size": 3}).to_bytes()
    registry = load_registry("config/registry.yaml")
    alert = new_alert(alone, Routing(alone.sector_id, 0, "usbp", ("usbp",), {}), registry)
    assert b"group_size" not in alert.to_bytes() and b"evidence_refs" not in alert.to_bytes()

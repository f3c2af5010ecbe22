"""A person on foot beside the Peace Arch road lanes, through the fuse stage as ``ibet run fuse``
builds it: the crossing is not lawful, names the port as context, and the alert the partners get
says where it was against the port ("45 m E of the Peace Arch port of entry, outside its lanes")."""

from __future__ import annotations

from pathlib import Path

from fuse_samples import scenario_events

from alerts.compose import new_alert
from alerts.routing import Routing
from alerts.rules import AlertRules, RulesConfig
from ibet.messages import BorderEventType
from ibet.registry import load_registry

BESIDE = str(Path(__file__).parents[1] / "data" / "scenarios" / "pedestrian-beside-peace-arch.yaml")


def test_a_person_beside_the_port_alerts_with_the_port_named():
    [crossing] = [e for e in scenario_events(BESIDE, 1) if e.event_type is BorderEventType.CROSSING]
    assert crossing.port_of_entry_id is None
    near = crossing.near_port
    assert near is not None and near.port_id == "poe-peace-arch" and near.reason == "outside_lanes"
    assert 20.0 <= near.distance_m <= 40.0 and near.bearing == "E"  # 45 m from the lanes' centre, 15 m half-width
    assert AlertRules(RulesConfig()).decide(crossing).action == "new"
    registry = load_registry("config/registry.yaml")
    alert = new_alert(crossing, Routing(crossing.sector_id, 0, "rcmp", ("rcmp", "usbp"), {}), registry)
    assert f"{near.distance_m:.0f} m E of the Peace Arch port of entry, outside its lanes" in alert.summary


def test_the_lawful_vehicle_through_the_lanes_is_recorded_and_not_alerted():
    [crossing] = [e for e in scenario_events("lawful-crossing-peace-arch", 1) if e.event_type is BorderEventType.CROSSING]
    assert crossing.port_of_entry_id == "poe-peace-arch" and crossing.near_port is None
    assert AlertRules(RulesConfig()).decide(crossing).action == "suppress"

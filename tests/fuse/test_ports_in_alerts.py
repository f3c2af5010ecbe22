"""A person on foot beside the Peace Arch road lanes, through the fuse stage as ``ibet run fuse``
builds it: the crossing is not lawful, names the port as context, and the alert the partners get
says where it was against the port ("45 m E of the Peace Arch port of entry, outside its lanes")."""

from __future__ import annotations

from pathlib import Path

from fuse_samples import scenario_events, scenario_tracks

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
    # decided on the shipped line, 15 m past it: inside that line's 1.1 km accuracy, and the desk is told
    assert crossing.boundary.within_accuracy and crossing.boundary.accuracy_m == 1100.0
    assert crossing.boundary.version.startswith("sha256:")
    assert "Within the boundary data's 1100 m accuracy: verify on the ground." in alert.summary


def test_a_crossing_of_a_surveyed_line_beyond_its_accuracy_carries_no_verify_note():
    from dataclasses import replace

    from fuse.border_events import BorderEventDetector
    from fuse.border_relation import BorderModel
    from ibet.border import load_border, load_ports_of_entry

    surveyed = replace(load_border(), version="IBC 2025-11", accuracy_m=0.5, shipped_demo=False)
    model = BorderModel(surveyed, load_ports_of_entry("config/ports_of_entry.geojson"))
    shipped = [e for e in scenario_events(BESIDE, 1) if e.event_type is BorderEventType.CROSSING][0]
    detector = BorderEventDetector(model)
    events = [e for e in detector.update(scenario_tracks(BESIDE, 1)) if e.event_type is BorderEventType.CROSSING]
    [crossing] = events
    assert crossing.event_id == shipped.event_id
    assert crossing.boundary.version == "IBC 2025-11" and not crossing.boundary.within_accuracy
    alert = new_alert(crossing, Routing(crossing.sector_id, 0, "rcmp", ("rcmp", "usbp"), {}),
                      load_registry("config/registry.yaml"))
    assert "verify on the ground" not in alert.summary


def test_the_lawful_vehicle_through_the_lanes_is_recorded_and_not_alerted():
    [crossing] = [e for e in scenario_events("lawful-crossing-peace-arch", 1) if e.event_type is BorderEventType.CROSSING]
    assert crossing.port_of_entry_id == "poe-peace-arch" and crossing.near_port is None
    assert AlertRules(RulesConfig()).decide(crossing).action == "suppress"

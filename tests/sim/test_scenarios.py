"""Shipped scenarios: they load, agree with the registry, and their exact truth is what they promise."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely

from ibet.registry import load_registry
from sim.scenario import ScenarioError, load_scenario, resolve_scenario, shipped_scenarios
from sim.truth import border_events
from sim.world import build_world, seeded_targets

REGISTRY = load_registry("config/registry.yaml")
SCENARIOS = [load_scenario(p) for p in shipped_scenarios()]
IDS = [s.name for s in SCENARIOS]
WORLDS = {s.name: build_world(s, s.seed) for s in SCENARIOS}


def test_at_least_the_five_promised_scenarios_ship():
    assert len(SCENARIOS) >= 5
    kinds = {t.kind for s in SCENARIOS for t in s.targets}
    assert kinds == {"person", "vehicle", "boat"}
    assert any(s.expected.lawful_crossings and not s.expected.alerts for s in SCENARIOS)
    assert any(s.expected.approaches and not s.expected.crossings for s in SCENARIOS)
    assert any(len(s.sensors) >= 2 for s in SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_sensors_and_sector_are_in_the_registry_with_the_same_pose(scenario):
    sector = REGISTRY.sector(scenario.sector_id)
    assert sector.ground_elev_m == scenario.map.ground_elev_m
    frame = WORLDS[scenario.name].frame
    for spec in scenario.sensors:
        entry = REGISTRY.sensor(spec.id)
        assert (entry.kind, entry.sector_id) == (spec.kind, scenario.sector_id)
        assert entry.intrinsics.width_px == spec.image.width_px
        hfov = math.degrees(2 * math.atan(entry.intrinsics.width_px / 2 / entry.intrinsics.fx_px))
        assert hfov == pytest.approx(spec.image.hfov_deg, abs=0.01)
        if spec.kind == "fixed_camera":
            east, north = frame.to_local(entry.pose.lon_deg, entry.pose.lat_deg)
            assert np.hypot(east - spec.position_m[0], north - spec.position_m[1]) < 0.05
            assert (entry.pose.height_m, entry.pose.heading_deg, entry.pose.tilt_deg, entry.pose.hfov_deg) == (
                spec.height_m, spec.heading_deg, spec.tilt_deg, spec.image.hfov_deg)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_truth_matches_the_scenario_promise_for_several_seeds(scenario, seed):
    world = WORLDS[scenario.name]
    targets = seeded_targets(scenario, np.random.default_rng([seed, 0]))
    events = border_events(targets, world.border, world.border_local, world.frame, world.ports,
                           scenario.approach_distance_m, scenario.truth_step_s)
    kinds = [e.kind for e in events]
    assert kinds.count("crossing") == scenario.expected.crossings
    assert kinds.count("lawful_crossing") == scenario.expected.lawful_crossings
    assert kinds.count("approach") == scenario.expected.approaches
    for event in events:
        while_recording = 0 <= event.time_s <= scenario.duration_s  # scenario time, not a timing
        assert while_recording, "every event happens while the sensors record"


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s.expected.crossings], ids=lambda s: s.name)
def test_crossing_time_and_place_are_exact(scenario):
    world = WORLDS[scenario.name]
    targets = seeded_targets(scenario, np.random.default_rng([7, 0]))
    events = border_events(targets, world.border, world.border_local, world.frame, world.ports,
                           scenario.approach_distance_m, scenario.truth_step_s)
    for event in events:
        target = next(t for t in targets if t.spec.id == event.target_id)
        xy, _, active = target.motion.position_at(np.array([event.time_s]))
        assert active[0]
        assert shapely.distance(shapely.Point(xy[0]), world.border_local) < 1e-6  # on the line, to the micrometre
        assert np.hypot(xy[0, 0] - event.east_m, xy[0, 1] - event.north_m) < 1e-6
        assert event.direction in ("CA_TO_US", "US_TO_CA")


def test_scenario_errors_name_the_file_and_field(tmp_path):
    text = (resolve_scenario("vehicle-rural-road-tower")).read_text().replace("hfov_deg: 20", "hfov_deg: 200")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ScenarioError, match=r"bad.yaml: sensors.0.fixed_camera.image.hfov_deg"):
        load_scenario(bad)
    bad.write_text("- just a list\n")
    with pytest.raises(ScenarioError, match="mapping"):
        load_scenario(bad)
    with pytest.raises(ScenarioError, match="shipped"):
        resolve_scenario("no-such-scenario")

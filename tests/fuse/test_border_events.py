"""Border relation and border events on the shipped border: signs and distances at real places,
the vectorised relation against a per-point reference, and the event rules (crossing with
hysteresis, approach, loitering, lost near border), replay and state round trip."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pyproj import Geod

from fuse.border_events import BorderEventDetector
from fuse.border_relation import BorderModel
from ibet.border import country_at, load_border, load_ports_of_entry, local_metres, nearest_on_border, port_at
from ibet.ids import event_id, time_window_start_ns
from ibet.messages import BorderEvent, BorderEventType, Direction, TrackClass, TrackStatus, TrackUpdate
from ibet_app.bench.border import bench_border, random_points_near_border

REPO = Path(__file__).resolve().parents[2]
PORTS = REPO / "config" / "ports_of_entry.geojson"
GEOD = Geod(ellps="WGS84")
NS = 1_000_000_000
T0 = 1_718_000_040 * NS  # on a 60 s window boundary
H = 15.0  # the detector's default hysteresis, m
LINE_AT_100W = 48.99267  # latitude of the shipped line at 100 W (it runs a little south of 49 N)
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much,
                                                                            HealthCheck.too_slow])


@pytest.fixture(scope="module")
def model() -> BorderModel:
    return BorderModel(load_border(), load_ports_of_entry(PORTS))


def update(track_id: str, ts_ns: int, lat: float, lon: float, ve: float = 0.0, vn: float = 0.0,
           status: TrackStatus = TrackStatus.CONFIRMED, version: int = 0) -> TrackUpdate:
    return TrackUpdate(track_id=track_id, sector_id="prairie-test", time_ts_ns=ts_ns, lat_deg=lat, lon_deg=lon,
                       position_cov_m2=((4.0, 0.0), (0.0, 4.0)), velocity_east_mps=ve, velocity_north_mps=vn,
                       class_name=TrackClass.PERSON, sensor_ids=("cam-1",), status=status, version=version)


def walk(track_id: str, lon0: float, lat0: float, east_m: np.ndarray, north_m: np.ndarray, dt_s: float = 0.5,
         t0_ns: int = T0) -> list[TrackUpdate]:
    """Updates every dt_s along positions given in metres from (lon0, lat0); velocity by finite differences."""
    _, to_deg = local_metres(lon0, lat0)
    lon, lat = to_deg.transform(east_m, north_m)
    ve = np.gradient(east_m, dt_s) if len(east_m) > 1 else np.zeros(1)
    vn = np.gradient(north_m, dt_s) if len(north_m) > 1 else np.zeros(1)
    return [update(track_id, t0_ns + round(i * dt_s * NS), float(lat[i]), float(lon[i]), float(ve[i]), float(vn[i]),
                   version=i) for i in range(len(east_m))]


def run(detector: BorderEventDetector, updates: Sequence[TrackUpdate], chunk: int = 1) -> list[BorderEvent]:
    events: list[BorderEvent] = []
    for i in range(0, len(updates), chunk):
        events += detector.update(updates[i:i + chunk])
    return events


def of_type(events: list[BorderEvent], kind: BorderEventType) -> list[BorderEvent]:
    return [e for e in events if e.event_type is kind]


def north_of_line_m(metres: float) -> float:
    """Latitude of a point `metres` north of the shipped line at 100 W (negative: south)."""
    return LINE_AT_100W + metres / 111_200.0


# ------------------------------------------------------------------------------------- relation

def test_relation_of_no_points_is_empty(model: BorderModel) -> None:
    rel = model.relation(np.array([]), np.array([]), np.array([]), np.array([]))
    assert len(rel) == 0
    for name in rel.__slots__:
        assert getattr(rel, name).shape == (0,)


@pytest.mark.parametrize(("where", "lat", "lon", "country"), [
    ("49th parallel at 100 W, Manitoba side", 49.01, -100.0, "CA"),
    ("49th parallel at 100 W, North Dakota side", 48.99, -100.0, "US"),
    ("Detroit River, downtown Detroit", 42.3314, -83.0458, "US"),
    ("Detroit River, downtown Windsor (south of Detroit)", 42.3149, -83.0364, "CA"),
    ("Point Roberts peninsula, US side", 48.985, -123.06, "US"),
    ("141st meridian, Yukon side", 64.0, -140.9, "CA"),
])
def test_relation_sign_at_real_places(model: BorderModel, where: str, lat: float, lon: float, country: str) -> None:
    rel = model.relation(np.array([lat]), np.array([lon]), np.array([0.0]), np.array([0.0]))
    _, _, reference_m = nearest_on_border(model.border, lon, lat)
    assert rel.country[0] == country, where
    assert np.sign(rel.signed_distance_m[0]) == (1.0 if country == "CA" else -1.0), where
    assert rel.distance_m[0] == pytest.approx(reference_m, abs=0.05), where
    assert math.isinf(rel.time_to_border_s[0]) and math.isnan(rel.heading_rel_border_deg[0])  # not moving


def test_relation_at_100w_closing_speed_heading_and_time(model: BorderModel) -> None:
    # 1 km north of the line heading south at 2 m/s; 1 km south heading south: moving away
    lat = np.array([north_of_line_m(1000.0), north_of_line_m(-1000.0)])
    rel = model.relation(lat, np.full(2, -100.0), np.zeros(2), np.full(2, -2.0))
    assert rel.country.tolist() == ["CA", "US"]
    assert rel.signed_distance_m == pytest.approx([1000.0, -1000.0], abs=5.0)
    assert rel.closing_speed_mps == pytest.approx([2.0, -2.0], abs=1e-3)
    assert rel.heading_rel_border_deg == pytest.approx([0.0, 180.0], abs=0.1)
    assert rel.time_to_border_s[0] == pytest.approx(rel.distance_m[0] / 2.0)
    assert math.isinf(rel.time_to_border_s[1])


def test_relation_turns_velocity_into_the_grid_on_the_141st_meridian(model: BorderModel) -> None:
    # EPSG:3978's grid north is ~41 degrees off true north here: east must still be straight at the meridian
    rel = model.relation(np.full(2, 64.0), np.full(2, -141.05), np.array([3.0, 0.0]), np.array([0.0, 3.0]))
    assert rel.country.tolist() == ["US", "US"]
    assert rel.closing_speed_mps == pytest.approx([3.0, 0.0], abs=0.01)
    assert rel.heading_rel_border_deg == pytest.approx([0.0, 90.0], abs=0.2)


def test_relation_on_the_line_is_zero_with_no_side(model: BorderModel) -> None:
    lon, lat = shapely.get_coordinates(model.border.lines)[400]
    rel = model.relation(np.array([lat]), np.array([lon]), np.array([1.0]), np.array([1.0]))
    assert rel.country[0] is None and rel.signed_distance_m[0] == 0.0 and rel.time_to_border_s[0] == 0.0
    assert rel.closing_speed_mps[0] <= 0.0  # on the line the distance can only grow


def test_relation_rejects_non_finite_positions(model: BorderModel) -> None:
    with pytest.raises(ValueError, match="finite"):
        model.relation(np.array([np.nan]), np.array([-100.0]), np.array([0.0]), np.array([0.0]))


def test_vectorised_relation_equals_a_per_point_reference(model: BorderModel) -> None:
    lat, lon = random_points_near_border(model.border, 150, spread_deg=0.05, seed=7)
    rng = np.random.default_rng(8)
    ve, vn = rng.normal(0, 3, 150), rng.normal(0, 3, 150)
    rel = model.relation(lat, lon, ve, vn)
    checked = 0
    for i in range(150):
        q_lon, q_lat, reference_m = nearest_on_border(model.border, lon[i], lat[i])  # local azimuthal equidistant
        country = country_at(model.border, lon[i], lat[i])
        port = port_at(model.ports, lon[i], lat[i])
        assert rel.country[i] == country
        assert rel.port_id[i] == (port.id if port else None)
        assert rel.distance_m[i] == pytest.approx(reference_m, rel=1e-5, abs=0.05)
        if country is not None:
            assert rel.signed_distance_m[i] == pytest.approx((1 if country == "CA" else -1) * rel.distance_m[i])
        else:
            assert math.isnan(rel.signed_distance_m[i])
        if reference_m > 50:  # direction to the line from the geodesic azimuth to the nearest point
            azimuth, _, _ = GEOD.inv(lon[i], lat[i], q_lon, q_lat)
            closing = ve[i] * math.sin(math.radians(azimuth)) + vn[i] * math.cos(math.radians(azimuth))
            assert rel.closing_speed_mps[i] == pytest.approx(closing, abs=0.02 * math.hypot(ve[i], vn[i]) + 1e-6)
            expected_time = reference_m / closing if closing > 0.05 else None
            if expected_time is not None:
                assert rel.time_to_border_s[i] == pytest.approx(expected_time, rel=0.05)
            checked += 1
    assert checked > 100


def test_bench_border_compares_the_same_answers(model: BorderModel) -> None:
    result = bench_border(200, loop_points=10, model=model)
    assert result["bench"] == "border" and result["n_points"] == 200 and result["loop_points"] == 10
    assert result["ratio"] > 0 and result["max_abs_diff_m"] < 0.01  # a check of sameness, not of speed


# -------------------------------------------------------------------------------------- crossing

@st.composite
def crossing_paths(draw: st.DrawFn, model_: BorderModel) -> dict:
    fraction = draw(st.floats(0.0, 1.0))
    pts = shapely.line_interpolate_point(model_.border.lines, [fraction, min(fraction + 2e-6, 1.0)], normalized=True)
    (c_lon, c_lat), (d_lon, d_lat) = shapely.get_coordinates(pts)
    to_m, _ = local_metres(c_lon, c_lat)
    tx, ty = to_m.transform(d_lon, d_lat)
    length = math.hypot(tx, ty)
    assume(length > 1.0)
    normal = np.array([-ty, tx]) / length
    return {"c": (c_lon, c_lat), "normal": normal, "from_ca": draw(st.booleans()),
            "angle": math.radians(draw(st.floats(-55.0, 55.0))), "speed": draw(st.floats(1.0, 8.0)),
            "seed": draw(st.integers(0, 2**32 - 1)), "chunk": draw(st.integers(1, 16))}


def _into(model: BorderModel, c: tuple[float, float], normal: np.ndarray, to_ca: bool) -> np.ndarray:
    """The unit normal at c (local metres) that points into Canada (to_ca) or into the US."""
    _, to_deg = local_metres(*c)
    lon, lat = to_deg.transform(normal[0] * 2 * H, normal[1] * 2 * H)
    in_ca = country_at(model.border, lon, lat) == "CA"
    return normal if in_ca == to_ca else -normal


def _signed(model: BorderModel, c: tuple[float, float], east: np.ndarray, north: np.ndarray) -> np.ndarray:
    _, to_deg = local_metres(*c)
    lon, lat = to_deg.transform(east, north)
    return model.relation(lat, lon, np.zeros_like(lat), np.zeros_like(lat)).signed_distance_m


def _jitter(seed: int, n: int, amplitude_m: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    radius, angle = amplitude_m * np.sqrt(rng.uniform(0, 1, n)), rng.uniform(0, 2 * math.pi, n)
    return radius * np.cos(angle), radius * np.sin(angle)


@PROPERTY
@given(data=st.data(), depth_from=st.floats(2 * H, 4 * H), depth_to=st.floats(2 * H, 6 * H))
def test_a_straight_crossing_fires_exactly_once_with_its_direction(model: BorderModel, data: st.DataObject,
                                                                  depth_from: float, depth_to: float) -> None:
    path = data.draw(crossing_paths(model))
    c, speed, angle = path["c"], path["speed"], path["angle"]
    inward = _into(model, c, path["normal"], to_ca=not path["from_ca"])  # from the start side to the other
    heading = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]) @ inward
    start, end = -depth_from / math.cos(angle), depth_to / math.cos(angle)
    along = np.arange(start, end + speed * 0.5, speed * 0.5)
    east, north = along * heading[0], along * heading[1]
    clean = _signed(model, c, east, north)
    sign = 1.0 if path["from_ca"] else -1.0
    # the clean path starts >= 2H inside one country, ends >= 2H inside the other, and meets the line once
    assume(np.all(np.isfinite(clean)) and sign * clean[0] >= 2 * H and -sign * clean[-1] >= 2 * H)
    assume(int(np.count_nonzero(np.diff(np.sign(clean)) != 0)) == 1)
    jitter_e, jitter_n = _jitter(path["seed"], len(along), H / 2)  # noise smaller than the band
    updates = walk("trk-x", c[0], c[1], east + jitter_e, north + jitter_n)
    events = run(BorderEventDetector(model), updates, chunk=path["chunk"])
    crossings = of_type(events, BorderEventType.CROSSING)
    assert len(crossings) == 1
    event = crossings[0]
    assert event.direction is (Direction.CA_TO_US if path["from_ca"] else Direction.US_TO_CA)
    true_ts = T0 + (-start / speed) * NS  # when the clean path meets the line at c
    slack_s = 0.5 + (H / 2 + H / 2 / math.cos(angle)) / speed
    assert abs(event.event_ts_ns - true_ts) <= slack_s * NS
    _, _, from_c_m = GEOD.inv(c[0], c[1], event.lon_deg, event.lat_deg)
    assert from_c_m <= H / 2 + H / 2 / math.cos(angle) + speed * 0.5
    assert event.event_id == event_id("trk-x", "crossing", time_window_start_ns(event.event_ts_ns, 60 * NS))


@PROPERTY
@given(data=st.data(), depth_from=st.floats(2 * H, 4 * H), dip=st.floats(-0.5 * H, 0.9 * H))
def test_a_path_that_only_dips_into_the_band_fires_no_crossing(model: BorderModel, data: st.DataObject,
                                                              depth_from: float, dip: float) -> None:
    path = data.draw(crossing_paths(model))
    c, speed, angle = path["c"], path["speed"], path["angle"]
    inward = _into(model, c, path["normal"], to_ca=not path["from_ca"])
    heading = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]) @ inward
    turn = (-dip) / math.cos(angle)  # signed distance `dip` on the start side (negative: across the line)
    start = -depth_from / math.cos(angle)
    leg = np.arange(start, turn, speed * 0.5)
    along = np.concatenate([leg, [turn], leg[::-1]])
    east, north = along * heading[0], along * heading[1]
    clean = _signed(model, c, east, north)
    sign = 1.0 if path["from_ca"] else -1.0
    assume(np.all(np.isfinite(clean)) and sign * clean[0] >= 2 * H)
    assume(float(np.min(sign * clean)) >= -0.55 * H)  # never deeper than about H/2 on the other side
    jitter_e, jitter_n = _jitter(path["seed"], len(along), 0.4 * H)
    updates = walk("trk-dip", c[0], c[1], east + jitter_e, north + jitter_n)
    events = run(BorderEventDetector(model), updates, chunk=path["chunk"])
    assert of_type(events, BorderEventType.CROSSING) == []


def test_jitter_on_the_line_never_fires_twice(model: BorderModel) -> None:
    rng = np.random.default_rng(3)
    in_band = rng.uniform(-H + 1, H - 1, (2, 300))  # back and forth over the line, never H deep
    metres = np.concatenate([np.linspace(40, 0, 40), in_band[0], np.linspace(0, -40, 40), in_band[1]])
    updates = walk("trk-j", -100.0, LINE_AT_100W, np.zeros_like(metres), metres)
    crossings = of_type(run(BorderEventDetector(model), updates, chunk=7), BorderEventType.CROSSING)
    assert [e.direction for e in crossings] == [Direction.CA_TO_US]


ALL_PORTS = load_ports_of_entry(PORTS)
PEACE_ARCH_ROAD = (-122.749574, 48.9925)  # where the lawful demo scenario's road meets the shipped line


def across_line_at(lon: float, lat: float, offset_m: float = 0.0) -> tuple[float, float, np.ndarray, np.ndarray]:
    """A path square across the shipped line at its point nearest (lon, lat), shifted ``offset_m``
    along the line: origin (lon, lat) and east/north metres, 150 m from one country into the other."""
    border = load_border()
    lon0, lat0, _ = nearest_on_border(border, lon, lat)
    to_m, _ = local_metres(lon0, lat0)
    near = shapely.intersection(border.lines, shapely.box(lon0 - 0.02, lat0 - 0.02, lon0 + 0.02, lat0 + 0.02))
    near_m = shapely.transform(near, lambda xy: np.column_stack(to_m.transform(*xy.T)))
    part = min(shapely.get_parts(shapely.line_merge(near_m)), key=lambda g: g.distance(shapely.Point(0, 0)))
    d = part.project(shapely.Point(0, 0))
    a, b = (np.array(part.interpolate(x).coords[0]) for x in (max(d - 30, 0), min(d + 30, part.length)))
    tangent = (b - a) / np.hypot(*(b - a))
    normal = np.array([-tangent[1], tangent[0]])
    s = np.linspace(-150.0, 150.0, 120)
    return lon0, lat0, tangent[0] * offset_m + normal[0] * s, tangent[1] * offset_m + normal[1] * s


def crossings_along(model: BorderModel, lon0: float, lat0: float, east: np.ndarray, north: np.ndarray,
                    cls: TrackClass, t0_ns: int = T0) -> list[BorderEvent]:
    updates = [u.model_copy(update={"class_name": cls}) for u in walk("trk-p", lon0, lat0, east, north, t0_ns=t0_ns)]
    return of_type(run(BorderEventDetector(model), updates), BorderEventType.CROSSING)


def road_crossing(port) -> tuple[float, float]:
    return PEACE_ARCH_ROAD if port.id == "poe-peace-arch" else (port.lon_deg, port.lat_deg)


@pytest.mark.parametrize("port", ALL_PORTS, ids=lambda p: p.id)
def test_the_lawful_vehicle_through_every_port_is_lawful_and_a_person_beside_it_is_not(model: BorderModel,
                                                                                      port) -> None:
    lon, lat = road_crossing(port)
    vehicle = crossings_along(model, *across_line_at(lon, lat), TrackClass.VEHICLE)
    assert [e.port_of_entry_id for e in vehicle] == [port.id]
    assert vehicle[0].near_port is None

    for side in (-1, 1):  # 30 m beside the road corridor (30 m wide), on either side
        [person] = crossings_along(model, *across_line_at(lon, lat, side * (15.0 + 30.0)), TrackClass.PERSON)
        assert person.port_of_entry_id is None
        assert person.near_port is not None and person.near_port.port_id == port.id
        assert person.near_port.reason == "outside_lanes"
        assert person.near_port.distance_m == pytest.approx(30.0, abs=3.0)


@pytest.mark.parametrize("port", [p for p in ALL_PORTS if "pedestrian" not in p.modes][:4], ids=lambda p: p.id)
def test_a_person_on_foot_in_the_road_lanes_is_not_lawful(model: BorderModel, port) -> None:
    [person] = crossings_along(model, *across_line_at(*road_crossing(port)), TrackClass.PERSON)
    assert person.port_of_entry_id is None
    assert person.near_port.reason == "wrong_mode" and person.near_port.distance_m == 0.0


def test_a_person_on_the_peace_bridge_sidewalk_is_lawful_and_a_boat_under_it_is_not(model: BorderModel) -> None:
    bridge = next(p for p in ALL_PORTS if p.id == "poe-peace-bridge")
    path = across_line_at(bridge.lon_deg, bridge.lat_deg)
    assert [e.port_of_entry_id for e in crossings_along(model, *path, TrackClass.PERSON)] == [bridge.id]
    [boat] = crossings_along(model, *path, TrackClass.BOAT)
    assert boat.port_of_entry_id is None and boat.near_port.reason == "wrong_mode"


def test_the_lanes_of_a_closed_port_are_not_lawful(model: BorderModel) -> None:
    lynden = next(p for p in ALL_PORTS if p.id == "poe-lynden-aldergrove")  # 08:00-24:00 Pacific
    path = across_line_at(lynden.lon_deg, lynden.lat_deg)
    open_ns = 1_784_127_600 * NS  # 2026-07-15 08:00 PDT: opens
    closed_ns = 1_784_113_200 * NS  # 2026-07-15 04:00 PDT
    assert [e.port_of_entry_id for e in crossings_along(model, *path, TrackClass.VEHICLE, open_ns)] == [lynden.id]
    [night] = crossings_along(model, *path, TrackClass.VEHICLE, closed_ns)
    assert night.port_of_entry_id is None and night.near_port.reason == "closed"
    assert night.near_port.port_name == "Lynden - Aldergrove"


def test_loitering_in_a_ports_lanes_is_lawful_and_beside_them_names_the_port(model: BorderModel) -> None:
    """A vehicle queueing 40 m north of the line in Peace Arch's road lanes is recorded, not alerted;
    a person standing 45 m beside the lanes (outside the corridor, inside the port's area) is alerted
    with the port named; the same for an approach through and beside the lanes."""
    lon0, lat0, east, north = across_line_at(*PEACE_ARCH_ROAD)
    at_40m_north = int(np.argmin(np.abs(np.hypot(east, north) - 40.0) + (north < 0) * 1e9))
    def loiter(offset_m: float, cls: TrackClass) -> BorderEvent:
        _, _, e, n = across_line_at(*PEACE_ARCH_ROAD, offset_m)
        k = at_40m_north
        still = [u.model_copy(update={"class_name": cls})
                 for u in walk("trk-q", lon0, lat0, np.full(200, e[k]), np.full(200, n[k]))]
        [event] = of_type(run(BorderEventDetector(model), still), BorderEventType.LOITERING)
        return event

    queued = loiter(0.0, TrackClass.VEHICLE)
    assert queued.port_of_entry_id == "poe-peace-arch" and queued.near_port is None
    beside = loiter(45.0, TrackClass.PERSON)
    assert beside.port_of_entry_id is None
    assert beside.near_port.port_id == "poe-peace-arch" and beside.near_port.reason == "outside_lanes"
    assert beside.near_port.distance_m == pytest.approx(30.0, abs=3.0)
    on_foot_in_lanes = loiter(0.0, TrackClass.PERSON)
    assert on_foot_in_lanes.port_of_entry_id is None and on_foot_in_lanes.near_port.reason == "wrong_mode"

    for offset, cls, lawful in ((0.0, TrackClass.VEHICLE, True), (45.0, TrackClass.PERSON, False)):
        _, _, e, n = across_line_at(*PEACE_ARCH_ROAD, offset)
        walking = [u.model_copy(update={"class_name": cls}) for u in walk("trk-a", lon0, lat0, e, n, dt_s=0.2)]
        approach = of_type(run(BorderEventDetector(model), walking), BorderEventType.APPROACH)
        assert approach and all((a.port_of_entry_id is not None) == lawful for a in approach)
        assert all((a.near_port is None) == lawful for a in approach)


def test_far_from_any_port_a_crossing_names_none(model: BorderModel) -> None:
    [event] = crossings_along(model, *across_line_at(-100.0, 49.0), TrackClass.VEHICLE)
    assert event.port_of_entry_id is None and event.near_port is None


def test_crossing_seen_while_tentative_is_sent_when_confirmed(model: BorderModel) -> None:
    metres = np.linspace(40, -40, 60)
    updates = walk("trk-t", -100.0, LINE_AT_100W, np.zeros_like(metres), metres)
    updates = [u.model_copy(update={"status": TrackStatus.TENTATIVE}) if i < 50 else u for i, u in enumerate(updates)]
    detector = BorderEventDetector(model)
    events = run(detector, updates)
    [crossing] = of_type(events, BorderEventType.CROSSING)
    assert crossing.event_ts_ns < updates[50].time_ts_ns  # event time is when it crossed, not when confirmed
    assert of_type(run(BorderEventDetector(model), updates[:50]), BorderEventType.CROSSING) == []


# ---------------------------------------------------------------------------- approach, loitering

def test_approach_fires_once_when_closing_within_distance(model: BorderModel) -> None:
    metres = np.arange(120.0, 30.0, -0.75)  # 1.5 m/s south for 60 s, one window
    events = run(BorderEventDetector(model), walk("trk-a", -100.0, LINE_AT_100W, np.zeros_like(metres), metres))
    [approach] = of_type(events, BorderEventType.APPROACH)
    assert approach.direction is Direction.CA_TO_US
    first_within = next(i for i, m in enumerate(metres) if m <= 50.0)
    assert abs(approach.event_ts_ns - (T0 + first_within * NS // 2)) <= NS  # within a sample of 50 m
    assert approach.event_id == event_id("trk-a", "approach", T0)


def test_approach_does_not_fire_moving_away_or_along(model: BorderModel) -> None:
    away = np.arange(5.0, 100.0, 0.75)
    along_east = np.arange(0.0, 90.0, 0.75)
    detector = BorderEventDetector(model)
    events = run(detector, walk("trk-away", -100.0, LINE_AT_100W, np.zeros_like(away), -away))
    events += run(detector, walk("trk-along", -100.0, LINE_AT_100W, along_east, np.full_like(along_east, 20.0)))
    assert of_type(events, BorderEventType.APPROACH) == []


def test_approach_fires_once_per_window(model: BorderModel) -> None:
    metres = np.arange(49.0, 10.0, -0.15)  # 0.3 m/s for 130 s: three windows
    events = run(BorderEventDetector(model), walk("trk-slow", -100.0, LINE_AT_100W, np.zeros_like(metres), -metres))
    approaches = of_type(events, BorderEventType.APPROACH)
    assert [e.direction for e in approaches] == [Direction.US_TO_CA] * 3
    assert len({e.event_id for e in approaches}) == 3


def _loiter_path(seed: int, seconds: float, centre_north_m: float, radius_m: float) -> tuple[np.ndarray, np.ndarray]:
    east, north = _jitter(seed, int(seconds / 0.5) + 1, radius_m)
    return east, north + centre_north_m


def test_loitering_fires_after_loiter_min_s(model: BorderModel) -> None:
    east, north = _loiter_path(5, 90.0, -60.0, 10.0)
    events = run(BorderEventDetector(model), walk("trk-l", -100.0, LINE_AT_100W, east, north), chunk=5)
    [loiter] = of_type(events, BorderEventType.LOITERING)
    assert loiter.event_ts_ns == T0 + 60 * NS and loiter.direction is Direction.NONE
    assert of_type(run(BorderEventDetector(model), walk("trk-l", -100.0, LINE_AT_100W, east[:120], north[:120])),
                   BorderEventType.LOITERING) == []  # 59.5 s is not enough


def test_no_loitering_far_from_the_line_or_when_walking(model: BorderModel) -> None:
    east, north = _loiter_path(6, 90.0, -400.0, 10.0)
    walking = np.arange(0.0, 180.0, 0.75)
    detector = BorderEventDetector(model)
    events = run(detector, walk("trk-far", -100.0, LINE_AT_100W, east, north))
    events += run(detector, walk("trk-walk", -100.0, LINE_AT_100W, walking, np.full_like(walking, 60.0)))
    assert of_type(events, BorderEventType.LOITERING) == []


# -------------------------------------------------------------------------------- lost, replay

def test_lost_near_border_on_deletion(model: BorderModel) -> None:
    detector = BorderEventDetector(model)
    near = update("trk-n", T0, north_of_line_m(40.0), -100.0, 0.0, -1.0)
    far = update("trk-f", T0, north_of_line_m(300.0), -100.0)
    tentative = update("trk-tent", T0, north_of_line_m(40.0), -100.0, status=TrackStatus.TENTATIVE)
    detector.update([near, far, tentative])
    [lost] = detector.track_deleted(near)
    assert lost.event_type is BorderEventType.LOST_NEAR_BORDER and lost.direction is Direction.CA_TO_US
    assert lost.event_ts_ns == T0
    assert detector.track_deleted(far) == []
    assert detector.update([tentative.model_copy(update={"status": TrackStatus.DELETED, "time_ts_ns": T0 + NS})]) == []
    assert detector.track_count == 0


def scenario() -> list[TrackUpdate]:
    """Several tracks interleaved in time: a crossing, an approach, a loiterer, a jittering one."""
    cross = np.linspace(60.0, -60.0, 160)
    approach = np.arange(120.0, 20.0, -0.75)
    le, ln = _loiter_path(9, 80.0, 70.0, 8.0)
    jitter = np.random.default_rng(10).uniform(-14.0, 14.0, 160)
    tracks = [walk("trk-1", -100.0, LINE_AT_100W, np.zeros_like(cross), cross),
              walk("trk-2", -99.99, LINE_AT_100W, np.zeros_like(approach), -approach),
              walk("trk-3", -99.98, LINE_AT_100W, le, ln),
              walk("trk-4", -99.97, LINE_AT_100W, np.zeros_like(jitter), jitter)]
    return sorted((u for t in tracks for u in t), key=lambda u: (u.time_ts_ns, u.track_id))


def test_same_input_twice_gives_identical_events(model: BorderModel) -> None:
    updates = scenario()
    first = run(BorderEventDetector(model), updates, chunk=4)
    second = run(BorderEventDetector(model), updates, chunk=9)
    assert first == second
    assert {e.event_type for e in first} == {BorderEventType.CROSSING, BorderEventType.APPROACH,
                                             BorderEventType.LOITERING}
    # duplicates of updates already seen (at-least-once redelivery) add nothing
    detector = BorderEventDetector(model)
    run(detector, updates)
    assert run(detector, updates) == []


@settings(max_examples=15, deadline=None)
@given(split=st.integers(0, 600), chunk=st.integers(1, 12))
def test_state_round_trip_mid_path_gives_the_same_events(model: BorderModel, split: int, chunk: int) -> None:
    updates = scenario()
    uninterrupted = run(BorderEventDetector(model), updates, chunk=chunk)
    before = BorderEventDetector(model)
    events = run(before, updates[:split], chunk=chunk)
    saved = json.loads(json.dumps(before.to_state()))  # as the fuse worker stores it
    after = BorderEventDetector.from_state(model, saved)
    events += run(after, updates[split:], chunk=chunk)
    assert events == uninterrupted


def test_from_state_rejects_a_foreign_state(model: BorderModel) -> None:
    with pytest.raises(ValueError, match="version"):
        BorderEventDetector.from_state(model, {"version": 99, "tracks": {}})
    with pytest.raises(ValueError, match="state"):
        BorderEventDetector.from_state(model, {"version": 1, "tracks": {"t": {"nonsense": 1}}})


def test_settings_are_checked(model: BorderModel) -> None:
    with pytest.raises(ValueError, match="hysteresis_m"):
        BorderEventDetector(model, hysteresis_m=0)

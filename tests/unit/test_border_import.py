"""``ibet border import``: an agency's line (here the shipped line's geometry, saved as an agency
would: a GeoPackage in Statistics Canada's Lambert, EPSG:3978) is checked and made the line ibet
decides on; duplicated segments, gaps, a projected file without its CRS and a missing accuracy
are refused naming where."""

from __future__ import annotations

import shutil
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from typer.testing import CliRunner

from ibet.border import load_border
from ibet.config import load_config
from ibet_app.cli import app

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "config", tmp_path / "config")
    return tmp_path / "config"


def shipped_lines() -> list[shapely.LineString]:
    return list(shapely.get_parts(load_border().lines))


def save(path: Path, lines, crs: str | None = "EPSG:4326", to: str | None = "EPSG:3978", driver: str = "GPKG",
         **properties) -> Path:
    frame = gpd.GeoDataFrame({k: [v] * len(lines) for k, v in properties.items()}, geometry=lines, crs=crs)
    if to is not None:
        frame = frame.to_crs(to)
    if crs is None:
        frame = frame.set_crs(None, allow_override=True)
    frame.to_file(path, driver=driver)
    return path


def border_import(config: Path, *args: str):
    return runner.invoke(app, ["border", "import", *args, "--config", str(config / "ibet.yaml")])


def test_an_agency_line_is_checked_recorded_and_then_decided_on(config: Path, tmp_path: Path) -> None:
    gpkg = save(tmp_path / "ibc.gpkg", shipped_lines())
    result = border_import(config, str(gpkg), "--version", "IBC 2025-11 (test)", "--accuracy-m", "0.5")
    assert result.exit_code == 0, result.output
    assert "border line IBC 2025-11 (test) (accuracy 0.5 m" in result.output
    cfg = load_config(config / "ibet.yaml")
    assert cfg.border_path == config / "boundary.geojson"
    assert "# ibet configuration." in (config / "ibet.yaml").read_text()  # its comments kept
    line = load_border(cfg.border_path)
    assert (line.version, line.accuracy_m, line.shipped_demo) == ("IBC 2025-11 (test)", 0.5, False)
    assert line.lines.equals_exact(load_border().lines, tolerance=1e-6)  # through EPSG:3978 and back
    check = runner.invoke(app, ["config", "check", "--config", str(config / "ibet.yaml")])
    assert check.exit_code == 0, check.output
    assert "border: ibc.gpkg (imported), version IBC 2025-11 (test), accuracy 0.5 m;" in check.output


def test_a_duplicated_segment_is_refused_naming_both_features(config: Path, tmp_path: Path) -> None:
    lines = shipped_lines()
    longest = max(lines, key=lambda g: g.length)
    piece = shapely.LineString(list(longest.coords)[10:20])
    result = border_import(config, str(save(tmp_path / "dup.gpkg", [*lines, piece])), "--version", "v",
                           "--accuracy-m", "1")
    assert result.exit_code == 2 and "share" in result.output and "duplicated segment" in result.output
    assert f"features[{len(lines)}]" in result.output
    assert "border_path" not in (config / "ibet.yaml").read_text()


def test_a_gap_in_the_line_is_refused_with_where(config: Path, tmp_path: Path) -> None:
    lines = shipped_lines()
    k = max(range(len(lines)), key=lambda i: lines[i].length)
    coords = list(lines[k].coords)
    a = shapely.LineString(coords[:50])  # ends at vertex 49; the rest starts about 40 m further on
    start = shapely.line_interpolate_point(shapely.LineString(coords[49:51]), 40.0 / 111_000).coords[0]
    b = shapely.LineString([start, *coords[50:]])
    result = border_import(config, str(save(tmp_path / "gap.gpkg", [*lines[:k], a, b, *lines[k + 1:]])),
                           "--version", "v", "--accuracy-m", "1")
    assert result.exit_code == 2 and "a gap of" in result.output, result.output
    lat, lon = coords[49][1], coords[49][0]
    assert f"{lat:.6f}, {lon:.6f}" in result.output or f"{lat:.4f}" in result.output


def test_a_projected_file_without_its_crs_and_a_line_without_accuracy_are_refused(config: Path, tmp_path: Path) -> None:
    no_crs = save(tmp_path / "nocrs.geojson", shipped_lines(), crs=None, to=None, driver="GeoJSON")
    projected = gpd.read_file(save(tmp_path / "lambert.gpkg", shipped_lines()))
    projected.set_crs(None, allow_override=True).to_file(no_crs, driver="GeoJSON")
    result = border_import(config, str(no_crs), "--version", "v", "--accuracy-m", "1")
    assert result.exit_code == 2 and "outside lon -180..180" in result.output
    result = border_import(config, str(save(tmp_path / "ibc.gpkg", shipped_lines())), "--version", "v")
    assert result.exit_code == 2 and "give --accuracy-m" in result.output
    result = border_import(config, str(save(tmp_path / "ibc2.gpkg", shipped_lines(), version="IBC 7",
                                            accuracy_m=2.0)))
    assert result.exit_code == 0 and "IBC 7 (accuracy 2 m" in result.output, result.output


def test_near_an_imported_line_the_side_comes_from_that_line_not_the_polygons_edge(config: Path,
                                                                                   tmp_path: Path) -> None:
    """A line 500 m north of the shipped one (as a surveyed line may be): a person walking north at
    100 W crosses it, the crossing fires there, not at the countries' polygon edge."""
    import numpy as np

    from fuse.border_events import BorderEventDetector
    from fuse.border_relation import BorderModel
    from ibet.messages import BorderEventType, TrackClass, TrackStatus, TrackUpdate

    shifted = [shapely.transform(g, lambda xy: xy + [0.0, 0.0045]) for g in shipped_lines()]
    result = border_import(config, str(save(tmp_path / "north.gpkg", shifted)), "--version", "v", "--accuracy-m", "1")
    assert result.exit_code == 0, result.output
    line = load_border(load_config(config / "ibet.yaml").border_path)
    model = BorderModel(line)
    shipped_at_100w, ns = 48.99267, 1_000_000_000
    lats = np.linspace(shipped_at_100w - 0.004, shipped_at_100w + 0.009, 200)  # 1.4 km north in 100 s
    updates = [TrackUpdate(track_id="t", sector_id="s", time_ts_ns=1_718_000_040 * ns + i * ns // 2, lat_deg=float(lat),
                           lon_deg=-100.0, position_cov_m2=((4.0, 0.0), (0.0, 4.0)), velocity_east_mps=0.0,
                           velocity_north_mps=14.0, class_name=TrackClass.PERSON, sensor_ids=("c",),
                           status=TrackStatus.CONFIRMED, version=i) for i, lat in enumerate(lats)]
    detector = BorderEventDetector(model)
    events = [e for u in updates for e in detector.update([u]) if e.event_type is BorderEventType.CROSSING]
    [crossing] = events
    assert crossing.lat_deg == pytest.approx(shipped_at_100w + 0.0045, abs=0.0002)  # within ~20 m of the new line
    assert crossing.boundary.version == "v" and not crossing.boundary.within_accuracy
    rel = model.relation(np.array([shipped_at_100w + 0.002]), np.array([-100.0]), np.zeros(1), np.zeros(1))
    assert rel.country[0] == "US" and rel.signed_distance_m[0] < 0  # north of the polygons' edge, south of the line

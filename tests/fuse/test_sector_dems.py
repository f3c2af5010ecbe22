"""A sector's DEM as an administrator gives it: named in the registry, checked by ``ibet config
check`` (and by the fuse stage's factory at start-up) against the sector's cameras, and used by
the stage ``ibet run fuse`` builds: drone detections land on the DEM, not the flat ground."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from typer.testing import CliRunner

import fuse
from fuse.degrade import DetectorModel, degrade, detection_batch
from fuse.measurements import ground_points, sigmas_from
from fuse.sector_dems import load_sector_dems
from fuse.terrain import DemError
from ibet.config import load_config
from ibet.messages import DetectionBatch
from ibet.registry import load_registry
from ibet_app.cli import app
from sim.run import simulate, truth_frames
from sim.scenario import load_scenario, resolve_scenario

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def write_geographic_dem(path: Path, west: float, south: float, east: float, north: float, height_of,
                         step_deg: float = 0.0005) -> Path:
    cols, rows = round((east - west) / step_deg), round((north - south) / step_deg)
    lon = west + (np.arange(cols) + 0.5) * step_deg
    lat = north - (np.arange(rows) + 0.5) * step_deg
    glon, glat = np.meshgrid(lon, lat)
    with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=1, dtype="float32",
                       crs="EPSG:4326", transform=from_origin(west, north, step_deg, step_deg), nodata=-9999) as dst:
        dst.write(height_of(glon, glat).astype(np.float32), 1)
    return path


def hills(glon, glat):  # above sea level: 40 m, rising 60 m per 0.01 deg of latitude north of 48.99
    return 40.0 + 6000.0 * np.clip(glat - 48.99, 0.0, None)


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "config", tmp_path / "config")
    return tmp_path / "config"


def give_blaine_a_dem(config: Path, dem: str, vertical: str = "egm96") -> None:
    text = (config / "registry.yaml").read_text()
    anchor = "    neighbours: [prairie-sweetgrass]\n    ground_elev_m: 20.0\n"
    assert anchor in text
    (config / "registry.yaml").write_text(text.replace(
        anchor, anchor + f"    dem: {{path: {dem}, vertical: {vertical}, sigma_m: 1.5}}\n", 1))


def check(config: Path):
    return runner.invoke(app, ["config", "check", "--allow-gaps", "--config", str(config / "ibet.yaml")])


def test_config_check_and_the_stage_factory_load_a_covering_dem(config: Path) -> None:
    write_geographic_dem(config / "blaine.tif", -122.80, 48.95, -122.40, 49.05, hills)
    give_blaine_a_dem(config, "blaine.tif")
    result = check(config)
    assert result.exit_code == 0, result.output
    assert "DEMs: pac-blaine" in result.output

    cfg = load_config(config / "ibet.yaml")
    registry = load_registry(cfg.registry_file())
    stage = fuse.build_stage(cfg, registry)  # what `ibet run fuse` runs
    assert set(stage.terrains) == {"pac-blaine"}
    scenario = load_scenario(resolve_scenario("foot-crossing-forest-vista"))
    rng = np.random.default_rng(1)
    drone_batches = []
    for frame in truth_frames(simulate(scenario, 1)):
        dets, _ = degrade(frame.truth_boxes, frame.meta.width_px, frame.meta.height_px, DetectorModel(), rng)
        batch = DetectionBatch.from_bytes(detection_batch(frame, scenario.sector_id, dets).to_bytes())
        if batch.sensor_id == "drone-vista-1" and batch.detections:
            drone_batches.append(batch)
        if len(drone_batches) == 5:
            break
    assert drone_batches
    sigmas, fixed = sigmas_from(cfg.fuse)
    for batch in drone_batches:
        on_dem = ground_points(batch, registry, sigmas, fixed, stage.terrains)
        flat = ground_points(batch, registry, sigmas, fixed)
        assert on_dem.valid.all() and not on_dem.fallback.any()
        moved = np.hypot((on_dem.lat_deg - flat.lat_deg) * 111_200,
                         (on_dem.lon_deg - flat.lon_deg) * 111_200 * np.cos(np.radians(49.0)))
        assert (moved > 1.0).all()  # the DEM is tens of metres off the sector's flat 20 m: points move


def test_a_dem_that_misses_a_camera_is_refused_naming_the_sector_camera_and_extent(config: Path) -> None:
    write_geographic_dem(config / "west.tif", -122.80, 48.95, -122.60, 49.05, hills)  # stops short of the vista
    give_blaine_a_dem(config, "west.tif")
    result = check(config)
    assert result.exit_code == 2
    assert "sector pac-blaine: DEM" in result.output and "cam-vista-tower" in result.output
    assert "lon -122.80000..-122.60000" in result.output and "Traceback" not in result.output
    cfg = load_config(config / "ibet.yaml")
    with pytest.raises(DemError, match="cam-vista-tower"):
        fuse.build_stage(cfg, load_registry(cfg.registry_file()))


@pytest.mark.parametrize("content", [b"", b"GIF89a not a raster", b"II*\x00" + bytes(200)])
def test_a_corrupt_or_missing_dem_is_refused_naming_the_file(config: Path, content: bytes) -> None:
    (config / "bad.tif").write_bytes(content)
    give_blaine_a_dem(config, "bad.tif")
    result = check(config)
    assert result.exit_code == 2 and "sector pac-blaine: DEM" in result.output and "bad.tif" in result.output
    shutil.copy(REPO / "config" / "registry.yaml", config / "registry.yaml")
    give_blaine_a_dem(config, "nowhere.tif")
    with pytest.raises(DemError, match="nowhere.tif"):
        load_sector_dems(load_registry(config / "registry.yaml"), config)


def test_a_bad_dem_entry_is_a_registry_error(config: Path) -> None:
    give_blaine_a_dem(config, "blaine.tif", vertical="navd88")
    result = check(config)
    assert result.exit_code == 2 and "dem.vertical" in result.output

"""The administrator's commands as shipped: ``ibet sector add``, ``ibet sensors add``, ``ibet sim new``.

A new stretch of the border (Calais / St. Stephen, which the shipped registry has no sector for) is
added with the commands only, on a copy of the shipped config; ``ibet config check`` then names the
new sector's coverage hole by country, and ``ibet eval`` runs the written scenario there. Bad input
is refused in one line and leaves the registry as it was.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ibet.geoid import msl_to_ellipsoid_m
from ibet.registry import load_registry
from ibet_app.cli import app

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "config", tmp_path / "config")
    return tmp_path / "config"


def ibet(config: Path, *args: str):
    return runner.invoke(app, [*args, "--config", str(config / "ibet.yaml")])


def add_calais(config: Path):
    return ibet(config, "sector", "add", "atl-calais", "--name", "Calais / St. Stephen", "--region", "Atlantic",
                "--at", "poe-calais-st-stephen", "--ground-msl-m", "20", "--partners", "usbp,hsi,rcmp,cbsa",
                "--neighbours", "qc-derby")


def test_an_admin_adds_a_sector_and_a_camera_and_evaluates_a_new_scenario_there(config: Path) -> None:
    added = add_calais(config)
    assert added.exit_code == 0, added.output
    assert "time zone America/New_York" in added.output  # Calais side: Eastern (St. Stephen keeps Atlantic)
    registry = load_registry(config / "registry.yaml")
    [sector] = [s for s in registry.sectors if s.id == "atl-calais"]
    port = next(f for f in json.loads((config / "ports_of_entry.geojson").read_text())["features"]
                if f["properties"]["id"] == "poe-calais-st-stephen")["properties"]
    # above the ellipsoid: 20 m above sea level plus the geoid (about -24 m off Maine), not 20 m
    assert sector.ground_elev_m == pytest.approx(msl_to_ellipsoid_m(port["lat_deg"], port["lon_deg"], 20.0), abs=0.2)
    assert sector.ground_elev_m < 0
    assert {p.id for p in registry.partners if "atl-calais" in p.sectors} == {"usbp", "hsi", "rcmp", "cbsa"}
    derby = next(s for s in registry.sectors if s.id == "qc-derby")
    assert "atl-calais" in derby.neighbours and "qc-derby" in sector.neighbours  # mutual aid both ways
    text, shipped = (config / "registry.yaml").read_text(), (REPO / "config" / "registry.yaml").read_text()
    assert "# Added by `ibet sector add` at the Calais - St. Stephen" in text
    assert [c for c in shipped.splitlines() if c.lstrip().startswith("#")] == \
        [c for c in text.splitlines() if c.lstrip().startswith("#") and "Added by" not in c]  # comments kept

    camera = ibet(config, "sensors", "add", "cam-calais-1", "--sector", "atl-calais", "--owner", "usbp",
                  "--at", "poe-calais-st-stephen", "--offset-m", "250,-250", "--height-m", "12")
    assert camera.exit_code == 0, camera.output
    [cam] = [s for s in load_registry(config / "registry.yaml").sensors if s.id == "cam-calais-1"]
    assert cam.kind == "fixed_camera" and cam.pose.height_m == 12 and cam.sector_id == "atl-calais"

    # the new sector has partners but no duty shifts yet: config check names it, the hours and the country
    check = ibet(config, "config", "check")
    assert check.exit_code == 2
    holes = [line for line in check.output.splitlines() if line.startswith("error: rosters")]
    assert holes and all("atl-calais: no " in line and " partner on duty from " in line for line in holes), holes
    assert {"US", "CA"} <= {line.split("atl-calais: no ")[1].split()[0] for line in holes}

    scenario = config / "foot-crossing-calais.yaml"
    written = ibet(config, "sim", "new", "foot-crossing-calais", "--sector", "atl-calais", "--at", "45.1890,-67.2690",
                   "--out", str(scenario))
    assert written.exit_code == 0, written.output
    spec = yaml.safe_load(scenario.read_text())
    assert [s["id"] for s in spec["sensors"]] == ["cam-calais-1"] and spec["map"]["ground_elev_m"] == sector.ground_elev_m
    result = ibet(config, "eval", str(scenario), "--seeds", "1-2")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["true_crossings"] == 2 and summary["crossing_recall"] == 1.0
    assert summary["crossing_precision"] == 1.0 and summary["false_alarms"] == 0


@pytest.mark.parametrize(("args", "message"), [
    (("--partners", "usbp,nobody"), "not in the registry: 'nobody'"),
    (("--neighbours", "atlantis"), "not in the registry: 'atlantis'"),
    (("--at", "91,-67.28"), "'lat,lon' needs two finite numbers"),
    (("--at", "nan,-67.28"), "'lat,lon' needs two finite numbers"),
    (("--at", "Gotham Bridge"), "is neither 'lat,lon' nor a port of entry"),
    (("--ground-msl-m", "9000"), "must be a height above sea level"),
    (("--timezone", "Mars/Olympus_Mons"), "not written"),
])
def test_a_bad_sector_is_refused_in_one_line_and_the_registry_is_untouched(config: Path, args, message) -> None:
    before = (config / "registry.yaml").read_bytes()
    base = {"--name": "Calais", "--region": "Atlantic", "--at": "poe-calais-st-stephen", "--ground-msl-m": "20",
            "--partners": "usbp,rcmp"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    result = ibet(config, "sector", "add", "atl-calais", *[x for kv in base.items() for x in kv])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert (config / "registry.yaml").read_bytes() == before
    assert not list(config.glob(".registry-*"))  # no temporary file left beside it


def test_a_duplicate_or_misplaced_sensor_and_a_scenario_without_cameras_are_refused(config: Path) -> None:
    assert add_calais(config).exit_code == 0
    before = (config / "registry.yaml").read_bytes()
    duplicate = ibet(config, "sector", "add", "atl-calais", "--name", "again", "--region", "Atlantic",
                     "--at", "45.19,-67.28", "--ground-msl-m", "20")
    assert duplicate.exit_code == 2 and "sector 'atl-calais' is already in the registry" in duplicate.output
    for args, message in [
        (("cam-peace-arch", "--sector", "atl-calais", "--owner", "usbp"), "sensor 'cam-peace-arch' is already"),
        (("cam-calais-2", "--sector", "atl-calais", "--owner", "nobody"), "owner 'nobody' is not a partner"),
        (("cam-calais-2", "--sector", "atlantis", "--owner", "usbp"), "sector 'atlantis' is not in the registry"),
        (("cam-calais-2", "--sector", "atl-calais", "--owner", "usbp", "--offset-m", "east"), "must be 'east,north'"),
        (("cam-calais-2", "--sector", "atl-calais", "--owner", "usbp", "--offset-m", "0,0"), "stands on the border"),
        (("cam-calais-2", "--sector", "atl-calais", "--owner", "usbp", "--hfov-deg", "170"), "within 1..120"),
    ]:
        result = ibet(config, "sensors", "add", "--offset-m", "250,-250", *args, "--at", "poe-calais-st-stephen")
        assert result.exit_code == 2 and message in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert (config / "registry.yaml").read_bytes() == before
    out = config / "none.yaml"
    no_camera = ibet(config, "sim", "new", "foot-crossing-calais", "--sector", "atl-calais", "--at",
                     "poe-calais-st-stephen", "--out", str(out))
    assert no_camera.exit_code == 2 and "has no fixed camera with a pose" in no_camera.output and not out.exists()

"""Scenario files: an area on the real border, sensors, targets, environment, all validated.

Positions are east/north metres from the scenario origin (see :mod:`sim.geo`), which is given
near the border and snapped onto the shipped border line, so "north of the origin" is the
Canadian side on the 49th parallel. Times are seconds from the scenario start.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ibet.exceptions import IbetError

Point = tuple[float, float]
Path_ = Annotated[list[Point], Field(min_length=2)]


class ScenarioError(IbetError):
    """A scenario file is unreadable or invalid; the message names the file and the bad entry."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Origin(_Model):
    lat_deg: float = Field(ge=-90, le=90)
    lon_deg: float = Field(ge=-180, le=180)
    snap_to_border: bool = Field(True, description="move the origin onto the nearest point of the shipped border line")


class Environment(_Model):
    start_time: datetime = Field(description="local start time with UTC offset, e.g. 2026-07-15T14:00:00-07:00")
    sun_azimuth_deg: float | None = Field(None, ge=0, lt=360, description="default: computed from time and place")
    sun_elevation_deg: float | None = Field(None, gt=0, le=90)
    image_noise_sigma: float = Field(2.0, ge=0, le=30, description="sensor noise, grey levels")

    @field_validator("start_time")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("start_time needs a UTC offset, e.g. 2026-07-15T14:00:00-07:00")
        return value


class Road(_Model):
    points_m: Path_
    width_m: float = Field(7.0, gt=0, le=40)


class MapSpec(_Model):
    """The ground: forest everywhere except fields, roads and water (all in local metres)."""

    half_size_m: float = Field(800.0, gt=50, le=10_000, description="the area is the square ±half_size_m")
    ground_elev_m: float = Field(0.0, ge=-500, le=5000,
                                 description="flat terrain above the WGS-84 ellipsoid; match the sector's ground_elev_m")
    fields: list[Path_] = Field(default_factory=list, description="polygons of open fields")
    water: list[Path_] = Field(default_factory=list, description="polygons of lakes or rivers")
    border_river_half_width_m: float | None = Field(
        None, gt=0, le=5000, description="the border runs mid-river: water this far either side of the line")
    roads: list[Road] = Field(default_factory=list)
    all_forest: bool = Field(True, description="False: open fields wherever no forest polygon is given")
    forest: list[Path_] = Field(default_factory=list, description="forest polygons when all_forest is false")


class ImageSpec(_Model):
    width_px: int = Field(960, ge=64, le=4096)
    height_px: int = Field(540, ge=64, le=4096)
    hfov_deg: float = Field(gt=1, le=120)
    jpeg_quality: int = Field(90, ge=30, le=100)


class SensorErrors(_Model):
    """Errors in what the sensor reports; the rendering and the ground truth stay exact."""

    gps_sigma_m: float = Field(0.0, ge=0, le=100)
    gps_bias_m: tuple[float, float, float] = (0.0, 0.0, 0.0)
    attitude_sigma_deg: float = Field(0.0, ge=0, le=10)
    attitude_bias_deg: float = Field(0.0, ge=-10, le=10, description="added to heading, pitch and roll")
    timestamp_jitter_ms: float = Field(0.0, ge=0, le=2000)
    drop_rate: float = Field(0.0, ge=0, lt=1, description="share of frames never sent")


class Flight(_Model):
    waypoints_m: Path_
    altitude_m: float = Field(gt=5, le=5000, description="above ground")
    speed_mps: float = Field(gt=0, le=80)
    loop: bool = Field(True, description="fly back to the first waypoint and repeat; False: back and forth")


class Gimbal(_Model):
    """Either a ground point the gimbal tracks, or fixed angles relative to the airframe."""

    look_at_m: Point | None = None
    rel_azimuth_deg: float = Field(0.0, ge=0, lt=360)
    rel_elevation_deg: float = Field(-90.0, ge=-90, le=0)


class DroneSpec(_Model):
    id: str
    kind: Literal["drone"]
    frame_rate_hz: float = Field(gt=0, le=30)
    image: ImageSpec
    flight: Flight
    gimbal: Gimbal = Gimbal()
    errors: SensorErrors = SensorErrors()
    klv: bool = Field(True, description="also emit the telemetry as MISB ST 0601 KLV bytes")


class FixedCameraSpec(_Model):
    id: str
    kind: Literal["fixed_camera"]
    frame_rate_hz: float = Field(gt=0, le=30)
    image: ImageSpec
    position_m: Point
    height_m: float = Field(gt=1, le=300, description="camera above ground")
    heading_deg: float = Field(ge=0, lt=360)
    tilt_deg: float = Field(gt=0, le=90, description="below the horizon")
    errors: SensorErrors = SensorErrors()


SensorSpec = Annotated[DroneSpec | FixedCameraSpec, Field(discriminator="kind")]


class TargetSpec(_Model):
    id: int = Field(ge=0)
    kind: Literal["person", "vehicle", "boat"]
    waypoints_m: Path_
    speed_mps: float = Field(gt=0, le=40)
    start_s: float = Field(0.0, ge=0)
    lawful_port: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="the port of entry whose lanes this target lawfully crosses through (open, its mode); "
                    "the truth takes a crossing as lawful only from this, never from the product's port data")


class Expectation(_Model):
    """What a perfect pipeline does with this scenario (the eval checks it)."""

    crossings: int = Field(ge=0, description="true unlawful crossings")
    lawful_crossings: int = Field(0, ge=0)
    approaches: int = Field(0, ge=0)
    alerts: bool


class Scenario(_Model):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")
    description: str
    sector_id: str
    seed: int = Field(1, ge=0)
    origin: Origin
    duration_s: float = Field(gt=0, le=3600)
    truth_step_s: float = Field(0.1, gt=0, le=5)
    approach_distance_m: float = Field(50.0, gt=0, le=1000)
    environment: Environment
    map: MapSpec = MapSpec()
    sensors: list[SensorSpec] = Field(min_length=1)
    targets: list[TargetSpec] = Field(default_factory=list)
    expected: Expectation
    pixel_size_note: str = Field(description="the smallest target's size in pixels in this scenario, and why")

    @model_validator(mode="after")
    def _unique_ids(self) -> Scenario:
        for what, ids in (("sensor", [s.id for s in self.sensors]), ("target", [t.id for t in self.targets])):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            if dupes:
                raise ValueError(f"duplicate {what} id(s): {dupes}")
        return self


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario YAML file; ScenarioError names the file, entry and field."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: cannot read scenario: {exc}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: a scenario is a mapping of keys, not {type(data).__name__}")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        lines = [f"{path}: {'.'.join(map(str, e['loc'])) or 'scenario'}: {e['msg']}" for e in exc.errors()]
        raise ScenarioError("invalid scenario:\n  " + "\n  ".join(lines)) from None


SCENARIO_DIR = Path(__file__).with_name("scenarios")


def shipped_scenarios() -> list[Path]:
    """The scenario files that ship with ibet."""
    return sorted(SCENARIO_DIR.glob("*.yaml"))


def resolve_scenario(name_or_path: str) -> Path:
    """A path as given, or the shipped scenario of that name."""
    path = Path(name_or_path)
    if path.exists():
        return path
    shipped = SCENARIO_DIR / f"{name_or_path}.yaml"
    if shipped.exists():
        return shipped
    names = ", ".join(p.stem for p in shipped_scenarios())
    raise ScenarioError(f"no scenario file or shipped scenario named '{name_or_path}' (shipped: {names})")

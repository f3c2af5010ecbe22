"""The administrator's tools: place a new sector, sensor or scenario on the border with commands.

``ibet sector add``, ``ibet sensors add`` and ``ibet sim new`` take a place on the border (``lat,lon``
or a port of entry by id or name), work out what an administrator used to look up by hand (the
ground's height above the ellipsoid from its height above sea level and the shipped EGM96 geoid,
the place's time zone, a camera's pose turned to face the line, a scenario's origin on the shipped
line and its cameras in the scenario's metres) and write the registry or the scenario file. The
registry is edited with ruamel.yaml, keeping its comments; the result is validated with
:func:`ibet.registry.load_registry` before it replaces the file, so a mistake changes nothing.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from ibet.border import BorderGeometry, PortOfEntry, country_at, local_metres, nearest_on_border
from ibet.exceptions import IbetError
from ibet.geoid import msl_to_ellipsoid_m
from ibet.registry import Registry, load_registry

PERSON_HEIGHT_M = 1.75


class AdminError(IbetError):
    """A place, sector, sensor or scenario the administrator asked for that cannot be written."""


@dataclass(frozen=True)
class Place:
    """A point given on the command line: where it is and how it was named."""

    lat_deg: float
    lon_deg: float
    label: str


def resolve_place(text: str, ports: Sequence[PortOfEntry], border: BorderGeometry) -> Place:
    """``"45.19,-67.28"`` as it is; a port (``poe-calais-st-stephen``, ``calais-st-stephen`` or its
    name) as the point where its first lane meets the shipped line. AdminError otherwise."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) == 2:
        try:
            lat, lon = float(parts[0]), float(parts[1])
        except ValueError:
            lat = lon = math.nan
        if not (math.isfinite(lat) and math.isfinite(lon) and abs(lat) <= 90 and abs(lon) <= 180):
            raise AdminError(f"place {text!r}: 'lat,lon' needs two finite numbers, lat -90..90, lon -180..180")
        return Place(lat, lon, f"{lat:.6f}, {lon:.6f}")
    wanted = text.strip().casefold()
    for port in ports:
        if wanted in (port.id.casefold(), port.id.removeprefix("poe-").casefold(), port.name.casefold()):
            at = port.lanes[0].polygon.centroid if port.lanes else shapely.Point(port.lon_deg, port.lat_deg)
            lon, lat, _ = nearest_on_border(border, at.x, at.y)
            return Place(lat, lon, f"the {port.name} port of entry")
    raise AdminError(f"place {text!r} is neither 'lat,lon' nor a port of entry (e.g. "
                     f"{', '.join(p.id for p in ports[:3])})")


def offset_place(place: Place, east_m: float, north_m: float) -> tuple[float, float]:
    """(lat, lon) of the point ``east_m``, ``north_m`` from ``place``."""
    _, to_deg = local_metres(place.lon_deg, place.lat_deg)
    lon, lat = to_deg.transform(east_m, north_m)
    return float(lat), float(lon)


def time_zone_at(lat: float, lon: float) -> str:
    """The IANA zone of a point, offline (tzfpy's packaged boundaries)."""
    import tzfpy

    zone = tzfpy.get_tz(lon, lat)
    if not zone:
        raise AdminError(f"no time zone is known at {lat:.5f}, {lon:.5f}: give --timezone")
    return zone


def facing_line_deg(border: BorderGeometry, lat: float, lon: float) -> float:
    """Azimuth (deg, clockwise from true north) from (lat, lon) to the nearest point of the line."""
    line_lon, line_lat, distance = nearest_on_border(border, lon, lat)
    if distance < 1.0:
        raise AdminError("the camera stands on the border line: give --heading-deg")
    to_m, _ = local_metres(lon, lat)
    east, north = to_m.transform(line_lon, line_lat)
    return round(math.degrees(math.atan2(east, north)) % 360.0, 1)


# ------------------------------------------------------------------------------- registry editing

def _yaml() -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 120
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    return yaml


def _flow(items: Sequence) -> CommentedSeq:
    seq = CommentedSeq(items)
    seq.fa.set_flow_style()
    return seq


def _write_validated(path: Path, data: CommentedMap) -> Registry:
    """Dump ``data`` beside ``path``, load it as a registry (any problem: AdminError, nothing written), then swap."""
    buffer = io.StringIO()
    _yaml().dump(data, buffer)
    fd, tmp = tempfile.mkstemp(prefix=".registry-", suffix=".yaml", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(buffer.getvalue())
        try:
            registry = load_registry(tmp)
        except IbetError as exc:
            raise AdminError(f"{path}: not written, the change would make it invalid: {exc}") from None
        os.replace(tmp, path)
        return registry
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load(path: Path) -> CommentedMap:
    try:
        return _yaml().load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AdminError(f"{path}: cannot read the registry: {exc}") from None


@dataclass(frozen=True)
class SectorAdded:
    sector_id: str
    timezone: str
    ground_elev_m: float
    geoid_m: float
    partners: tuple[str, ...]
    countries_without_partner: tuple[str, ...]


def add_sector(registry_path: Path, registry: Registry, border: BorderGeometry, *, sector_id: str, name: str,
               region: str, place: Place, ground_msl_m: float, timezone: str | None = None,
               partners: Sequence[str] = (), neighbours: Sequence[str] = ()) -> SectorAdded:
    """Append a sector at ``place`` to the registry file, add it to ``partners``' sectors and to
    ``neighbours``' neighbours (mutual aid both ways). The ground height is ``ground_msl_m`` (above
    mean sea level, as maps give it) plus the EGM96 geoid height there."""
    if any(s.id == sector_id for s in registry.sectors):
        raise AdminError(f"sector {sector_id!r} is already in the registry")
    known_partners = {p.id: p for p in registry.partners}
    unknown = [p for p in partners if p not in known_partners] + \
        [n for n in neighbours if n not in {s.id for s in registry.sectors}]
    if unknown:
        raise AdminError(f"not in the registry: {', '.join(repr(u) for u in unknown)}")
    if not math.isfinite(ground_msl_m) or not -500 <= ground_msl_m <= 5000:
        raise AdminError(f"--ground-msl-m {ground_msl_m} must be a height above sea level, -500..5000 m")
    zone = timezone or time_zone_at(place.lat_deg, place.lon_deg)
    hae = round(msl_to_ellipsoid_m(place.lat_deg, place.lon_deg, ground_msl_m), 1)
    data = _load(registry_path)
    entry = CommentedMap(id=sector_id, name=name, ibet_region=region, timezone=zone,
                         neighbours=_flow(list(neighbours)), ground_elev_m=hae)
    data["sectors"].append(entry)
    data["sectors"].yaml_set_comment_before_after_key(
        len(data["sectors"]) - 1, before=f"Added by `ibet sector add` at {place.label}; ground {ground_msl_m} m "
        f"above sea level + geoid {hae - ground_msl_m:+.1f} m.", indent=2)
    for sector in data["sectors"]:
        if sector["id"] in neighbours:
            sector.setdefault("neighbours", _flow([])).append(sector_id)
    for partner in data["partners"]:
        if partner["id"] in partners:
            partner["sectors"].append(sector_id)
    _write_validated(registry_path, data)
    countries = {known_partners[p].country for p in partners}
    return SectorAdded(sector_id, zone, hae, round(hae - ground_msl_m, 2), tuple(partners),
                       tuple(c for c in ("CA", "US") if c not in countries))


@dataclass(frozen=True)
class CameraPose:
    lat_deg: float
    lon_deg: float
    heading_deg: float


def add_sensor(registry_path: Path, registry: Registry, border: BorderGeometry, *, sensor_id: str, sector_id: str,
               kind: str, owner: str, place: Place, offset_m: tuple[float, float] = (0.0, 0.0),
               height_m: float = 10.0, heading_deg: float | None = None, tilt_deg: float = 3.0,
               hfov_deg: float = 25.0, width_px: int = 1280, height_px: int = 720,
               detection_rate_hz: float = 2.0, source_url: str | None = None) -> CameraPose | None:
    """Append a drone or a fixed camera to the registry file. A camera stands ``offset_m`` (east,
    north) from ``place`` and, without ``heading_deg``, looks at the nearest point of the line."""
    if any(s.id == sensor_id for s in registry.sensors):
        raise AdminError(f"sensor {sensor_id!r} is already in the registry")
    if not any(s.id == sector_id for s in registry.sectors):
        raise AdminError(f"sector {sector_id!r} is not in the registry (add it with ibet sector add)")
    if not any(p.id == owner for p in registry.partners):
        raise AdminError(f"owner {owner!r} is not a partner in the registry "
                         f"({', '.join(p.id for p in registry.partners)})")
    if not all(math.isfinite(v) for v in (*offset_m, height_m, tilt_deg, hfov_deg)):
        raise AdminError("offsets, height, tilt and field of view must be finite numbers")
    if not 1 < hfov_deg <= 120:
        raise AdminError(f"--hfov-deg {hfov_deg} must be within 1..120")
    fx = round((width_px / 2) / math.tan(math.radians(hfov_deg) / 2), 2)
    intrinsics = CommentedMap(width_px=width_px, height_px=height_px, fx_px=fx, fy_px=fx,
                              cx_px=width_px / 2, cy_px=height_px / 2)
    intrinsics.fa.set_flow_style()
    entry = CommentedMap(id=sensor_id, kind=kind, owner_agency=owner, sector_id=sector_id,
                         detection_rate_hz=detection_rate_hz, intrinsics=intrinsics)
    pose = None
    if kind == "fixed_camera":
        lat, lon = offset_place(place, *offset_m)
        heading = facing_line_deg(border, lat, lon) if heading_deg is None else heading_deg % 360.0
        pose = CameraPose(round(lat, 7), round(lon, 7), heading)
        entry["pose"] = CommentedMap(lat_deg=pose.lat_deg, lon_deg=pose.lon_deg, height_m=height_m,
                                     heading_deg=heading, tilt_deg=tilt_deg, hfov_deg=hfov_deg)
        entry["pose"].fa.set_flow_style()
        if source_url:
            entry["source_url"] = source_url
    else:
        entry["credential_hash"] = None
    data = _load(registry_path)
    data["sensors"].append(entry)
    _write_validated(registry_path, data)
    return pose


# ------------------------------------------------------------------------------ scenario skeleton

def new_scenario(registry: Registry, border: BorderGeometry, *, name: str, sector_id: str, place: Place,
                 start_local: str = "11:00", date: str = "2026-07-15") -> str:
    """A scenario's YAML: origin on the shipped line at ``place``, the sector's fixed cameras within
    2 km at their registry poses (in the scenario's metres, so ``ibet eval`` accepts them), and one
    person walking across the line where the first camera looks, with the expectation filled in."""
    from sim.scenario import Origin, Scenario
    from sim.world import snapped_origin

    sector = next((s for s in registry.sectors if s.id == sector_id), None)
    if sector is None:
        raise AdminError(f"sector {sector_id!r} is not in the registry (add it with ibet sector add)")
    probe = Scenario.model_construct(origin=Origin(lat_deg=place.lat_deg, lon_deg=place.lon_deg))
    frame = snapped_origin(probe, border)
    cameras = []
    for sensor in registry.sensors_in(sector_id):
        if sensor.kind != "fixed_camera" or sensor.pose is None or sensor.pose.tilt_deg <= 0:
            continue
        east, north = (float(v) for v in frame.to_local(sensor.pose.lon_deg, sensor.pose.lat_deg))
        if math.hypot(east, north) <= 2000:
            cameras.append((sensor, east, north))
    if not cameras:
        raise AdminError(f"sector {sector_id} has no fixed camera with a pose (looking down) within 2 km of "
                         f"{place.label}: add one with ibet sensors add")
    sensor, cam_e, cam_n = cameras[0]
    # where the first camera's axis meets the line: the crossing point; the path runs square across it
    on_axis = _along_axis(border, frame, sensor.pose, cam_e, cam_n)
    line_lon, line_lat = on_axis or nearest_on_border(border, *frame.to_wgs84(cam_e, cam_n))[:2]
    cross_e, cross_n = (float(v) for v in frame.to_local(line_lon, line_lat))
    normal = np.array([cam_e - cross_e, cam_n - cross_n])
    normal /= max(float(np.hypot(*normal)), 1e-9)
    a, b = np.array([cross_e, cross_n]) + 60 * normal, np.array([cross_e, cross_n]) - 60 * normal
    distance = math.hypot(cam_e - cross_e, cam_n - cross_n)
    m_per_px = distance * 2 * math.tan(math.radians(sensor.pose.hfov_deg) / 2) / sensor.intrinsics.width_px
    start_time = datetime.fromisoformat(f"{date}T{start_local}").replace(tzinfo=ZoneInfo(sector.timezone)).isoformat()
    width, height = sensor.intrinsics.width_px, sensor.intrinsics.height_px
    sensors = "\n".join(
        f"  - id: {s.id}\n    kind: fixed_camera\n    frame_rate_hz: {s.detection_rate_hz:g}\n"
        f"    image: {{width_px: {s.intrinsics.width_px}, height_px: {s.intrinsics.height_px}, "
        f"hfov_deg: {s.pose.hfov_deg:g}}}\n    position_m: [{e:.3f}, {n:.3f}]\n    height_m: {s.pose.height_m:g}\n"
        f"    heading_deg: {s.pose.heading_deg:g}\n    tilt_deg: {s.pose.tilt_deg:g}" for s, e, n in cameras)
    countries = sorted(c for c in {country_at(border, *frame.to_wgs84(*a)), country_at(border, *frame.to_wgs84(*b))}
                       if c)
    return f"""name: {name}
description: >
  Written by `ibet sim new` at {place.label} (sector {sector_id}): a person walks across the line
  ({' to '.join(countries) or 'between the countries'}) where {sensor.id} looks. Edit the targets,
  the map (forest, fields, water, roads) and the expectation to make it your case.
sector_id: {sector_id}
seed: 1
origin: {{lat_deg: {place.lat_deg:.7f}, lon_deg: {place.lon_deg:.7f}, snap_to_border: true}}
duration_s: 100
environment:
  start_time: "{start_time}"
  image_noise_sigma: 2.0
map:
  ground_elev_m: {sector.ground_elev_m:g}
  half_size_m: {max(500, int(distance) + 300)}
  all_forest: false
sensors:
{sensors}
targets:
  - {{id: 1, kind: person, speed_mps: 1.4, start_s: 3, waypoints_m: [[{a[0]:.1f}, {a[1]:.1f}], [{b[0]:.1f}, {b[1]:.1f}]]}}
expected: {{crossings: 1, lawful_crossings: 0, alerts: true}}
pixel_size_note: >
  Person {PERSON_HEIGHT_M} m tall, {distance:.0f} m from {sensor.id}, {sensor.pose.hfov_deg:g} deg over {width} px
  ({height} px high): about {m_per_px:.3f} m/px, so about {PERSON_HEIGHT_M / m_per_px:.0f} px high.
"""


def _along_axis(border: BorderGeometry, frame, pose, cam_e: float, cam_n: float) -> tuple[float, float] | None:
    """Where the camera's heading, on the ground, first meets the line within 2 km (lon, lat), if it does."""
    h = math.radians(pose.heading_deg)
    ray = shapely.LineString([(cam_e, cam_n), (cam_e + 2000 * math.sin(h), cam_n + 2000 * math.cos(h))])
    near = border.lines.intersection(shapely.box(*frame.geometry_to_wgs84(ray.buffer(10)).bounds))
    hit = ray.intersection(frame.geometry_to_local(shapely.segmentize(near, 0.0001)))
    if hit.is_empty:
        return None
    first = min(shapely.get_parts(hit), key=lambda p: ray.project(p))
    lon, lat = frame.to_wgs84(first.x, first.y) if first.geom_type == "Point" else frame.to_wgs84(*first.coords[0])
    return float(lon), float(lat)

"""The US-Canada border: the shipped line, the two countries near it, and the ports of entry.

The border ships as GeoJSON in :mod:`ibet.data.border` (Natural Earth 1:10m, see its
``PROVENANCE.md``); any GeoJSON, Shapefile or GeoPackage can replace it, in any CRS. Ports of
entry are kept in ``config/ports_of_entry.geojson``: each is an area drawn around where that
shipped line meets the crossing (where the port is named as context) and, inside it, its lanes:
corridors tens of metres wide, one per mode (road, rail, pedestrian, ferry), through which a
crossing is lawful for the matching traffic (see :data:`MODES_OF_CLASS`), within its opening hours. Loading validates everything and stops with a message that
names the file, the feature (list position and id) and what is wrong, e.g.::

    config/ports_of_entry.geojson: features[3] (id 'poe-sumas').geometry: ring 0 is not closed

Coordinates are WGS-84 lon/lat (EPSG:4326) throughout; distances are metres, computed in a local
azimuthal equidistant projection.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import geopandas as gpd
import numpy as np
import shapely
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, ValidationError, model_validator
from pyproj import Transformer
from shapely.geometry import mapping

from ibet.exceptions import RegistryError
from ibet.registry import Id, Name

BORDER_PACKAGE = "ibet.data.border"
BOUNDARY_FILE = "us_ca_boundary.geojson"
COUNTRIES_FILE = "countries_near_border.geojson"
_LINE_TYPES = ("LineString", "MultiLineString")
_AREA_TYPES = ("Polygon", "MultiPolygon")
log = logging.getLogger(__name__)


class BorderDataError(RegistryError):
    """Border or port-of-entry data is unreadable or invalid; the message names the file and the feature."""


@dataclass(frozen=True)
class BorderGeometry:
    """The border line and the two countries near it, in lon/lat (EPSG:4326).

    ``lines``: the shared boundary; ``canada``, ``usa``: each country's land and water within the
    data's band around the line (about 50 km for the shipped data; outside it no country is known);
    ``source``: where the line comes from, for provenance in reports; ``version`` and
    ``accuracy_m`` (horizontal, metres) travel on every crossing so a desk can tell a crossing of
    the surveyed line from one of a line kilometres off. Geometries are prepared.
    """

    lines: shapely.MultiLineString
    canada: shapely.Polygon | shapely.MultiPolygon
    usa: shapely.Polygon | shapely.MultiPolygon
    source: str
    version: str = ""  # the file's ``version`` property, else ``sha256:`` of its bytes (12 hex digits)
    accuracy_m: float | None = None  # horizontal accuracy of the line (m), the worst of its features'; None: unknown
    shipped_demo: bool = False  # the shipped Natural Earth line, fit for demos and exercises, not for duty

    def __post_init__(self) -> None:
        shapely.prepare([self.lines, self.canada, self.usa])


def _shipped(name: str) -> Path:
    return Path(str(resources.files(BORDER_PACKAGE) / name))


def _where(source: str, index: int, feature_id: Any) -> str:
    return f"{source}: features[{index}]" + (f" (id '{feature_id}')" if feature_id not in (None, "") else "")


def _read_features(path: str | Path, allowed: tuple[str, ...]) -> tuple[str, gpd.GeoDataFrame]:
    """Read a vector file, reproject to EPSG:4326 and check every feature's geometry.

    Returns the file name used in messages and the frame; raises BorderDataError listing every bad feature.
    """
    source = str(path)
    try:
        frame = gpd.read_file(path, engine="pyogrio")
    except (OSError, RuntimeError, ValueError) as exc:  # pyogrio's errors are RuntimeErrors
        raise BorderDataError(f"{source}: cannot read vector data: {exc}") from None
    if len(frame) == 0:
        raise BorderDataError(f"{source}: has no features")
    if frame.crs is not None and frame.crs.to_epsg() != 4326:
        frame = frame.to_crs(4326)
    ids = frame["id"] if "id" in frame.columns else [None] * len(frame)
    problems = []
    for i, (geom, fid) in enumerate(zip(frame.geometry, ids, strict=True)):
        problem = None
        if geom is None or geom.is_empty:
            problem = "has no geometry or an empty one"
        elif geom.geom_type not in allowed:
            problem = f"geometry is a {geom.geom_type}, expected {' or '.join(allowed)}"
        elif not geom.is_valid:
            problem = f"invalid geometry: {shapely.is_valid_reason(geom)}"
        elif not _in_lon_lat(geom.bounds):
            problem = "coordinates are outside lon -180..180 / lat -90..90 (a projected file without a CRS?)"
        if problem:
            problems.append(f"{_where(source, i, fid)}: {problem}")
    if problems:
        raise BorderDataError("\n".join(problems))
    return source, frame


def _in_lon_lat(bounds: Sequence[float]) -> bool:
    x0, y0, x1, y1 = bounds
    return -180 <= x0 <= x1 <= 180 and -90 <= y0 <= y1 <= 90


def load_border(path: str | Path | None = None, countries_path: str | Path | None = None) -> BorderGeometry:
    """Load the border line and the countries near it (default: the shipped Natural Earth files).

    ``path``: LineString/MultiLineString features (an optional ``source`` property names the data).
    ``countries_path``: Polygon/MultiPolygon features with ``iso_a2`` ``CA`` or ``US`` (several per
    country are merged). Either may be GeoJSON, Shapefile or GeoPackage in any CRS. Raises
    BorderDataError naming the file and the feature on unreadable files, empty or invalid
    geometry, the wrong geometry type, a missing ``iso_a2`` or a missing or overlapping country.

    >>> load_border().lines.geom_type
    'MultiLineString'
    """
    lines_path = path or _shipped(BOUNDARY_FILE)
    source, lines_frame = _read_features(lines_path, _LINE_TYPES)
    csource, frame = _read_features(countries_path or _shipped(COUNTRIES_FILE), _AREA_TYPES)
    if "iso_a2" not in frame.columns:
        raise BorderDataError(f"{_where(csource, 0, None)}: missing property 'iso_a2' (CA or US)")
    ids = frame["id"] if "id" in frame.columns else [None] * len(frame)
    problems = [f"{_where(csource, i, fid)}: property 'iso_a2' must be 'CA' or 'US', got {code!r}"
                for i, (code, fid) in enumerate(zip(frame["iso_a2"], ids, strict=True)) if code not in ("CA", "US")]
    problems += [f"{csource}: no feature with iso_a2 '{code}'" for code in ("CA", "US")
                 if not (frame["iso_a2"] == code).any()]
    if problems:
        raise BorderDataError("\n".join(problems))
    canada, usa = (shapely.union_all(frame.geometry[frame["iso_a2"] == code].to_numpy()) for code in ("CA", "US"))
    if shapely.intersection(canada, usa).area > 1e-9:  # deg^2, about 0.01 km^2: more than rounding
        raise BorderDataError(f"{csource}: the CA and US polygons overlap; a point would be in both countries")
    lines = shapely.line_merge(shapely.union_all(lines_frame.geometry.to_numpy()))
    lines = shapely.MultiLineString(list(shapely.get_parts(lines)))
    sources = sorted({str(s) for s in lines_frame.get("source", []) if isinstance(s, str) and s})
    shipped = path is None
    return BorderGeometry(lines=lines, canada=canada, usa=usa, source="; ".join(sources) or source,
                          version=_version_of(lines_path, lines_frame),
                          accuracy_m=SHIPPED_ACCURACY_M if shipped else _accuracy_of(source, lines_frame),
                          shipped_demo=shipped)


# Natural Earth 1:10m against the surveyed boundary: up to ~1.1 km off (south of the 49th parallel in BC)
SHIPPED_ACCURACY_M = 1100.0


def _version_of(path: str | Path, frame: gpd.GeoDataFrame) -> str:
    versions = sorted({str(v) for v in frame.get("version", []) if isinstance(v, str) and v})
    if versions:
        return "; ".join(versions)
    import hashlib

    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def _accuracy_of(source: str, frame: gpd.GeoDataFrame) -> float | None:
    """The worst ``accuracy_m`` of the line's features; None when none says; BorderDataError for a bad one."""
    if "accuracy_m" not in frame.columns:
        return None
    values = []
    for i, value in enumerate(frame["accuracy_m"]):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue  # this feature does not say
        if not (math.isfinite(number) and 0 <= number <= 100_000):
            raise BorderDataError(f"{_where(source, i, None)}: accuracy_m must be metres, 0..100000, got {value!r}")
        values.append(number)
    return max(values) if values else None


def country_at(geom: BorderGeometry, lon: Any, lat: Any) -> Any:
    """Which country each lon/lat (deg) lies in: ``"CA"``, ``"US"`` or None.

    None on the line itself, and outside the data's band around the border (about 50 km for the
    shipped data). Scalars give a scalar; arrays (broadcast together) an object array.

    >>> country_at(border, -100.0, 49.1), country_at(border, np.array([-100.0]), np.array([48.9]))
    ('CA', array(['US'], dtype=object))
    """
    lon_a, lat_a = np.broadcast_arrays(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    in_ca = shapely.contains_xy(geom.canada, lon_a, lat_a)
    in_us = shapely.contains_xy(geom.usa, lon_a, lat_a)
    out = np.full(lon_a.shape, None, dtype=object)
    out[in_ca & ~in_us] = "CA"
    out[in_us & ~in_ca] = "US"
    return out.item() if out.ndim == 0 else out


def local_metres(lon: float, lat: float) -> tuple[Transformer, Transformer]:
    """Transformers lon/lat -> metres and back, in an azimuthal equidistant plane centred at (lon, lat)."""
    aeqd = f"+proj=aeqd +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m +no_defs"
    return (Transformer.from_crs("EPSG:4326", aeqd, always_xy=True),
            Transformer.from_crs(aeqd, "EPSG:4326", always_xy=True))


def nearest_on_border(geom: BorderGeometry, lon: float, lat: float) -> tuple[float, float, float]:
    """The point of the border line nearest to (lon, lat) (deg), as ``(lon, lat, distance_m)``.

    Measured in metres in a plane centred at the point, on the line densified to about 500 m.

    >>> nearest_on_border(border, -97.0, 49.05)[2] < 10_000
    True
    """
    here = shapely.Point(lon, lat)
    reach = shapely.distance(geom.lines, here) + 0.01  # deg: the metric nearest lies within this in lat ...
    window = shapely.box(lon - reach / max(math.cos(math.radians(lat)), 0.1), lat - reach,  # ... and this in lon
                         lon + reach / max(math.cos(math.radians(lat)), 0.1), lat + reach)
    near = shapely.segmentize(shapely.intersection(geom.lines, window), 0.005)
    to_m, to_deg = local_metres(lon, lat)
    near_m = shapely.transform(near, lambda xy: np.column_stack(to_m.transform(*xy.T)))
    nearest = shapely.get_coordinates(shapely.shortest_line(near_m, shapely.Point(0.0, 0.0)))[0]
    snapped_lon, snapped_lat = to_deg.transform(*nearest)
    return float(snapped_lon), float(snapped_lat), float(math.hypot(*nearest))


def lane_across_line(geom: BorderGeometry, lon: float, lat: float, width_m: float,
                     half_length_m: float) -> shapely.Polygon:
    """A corridor ``width_m`` wide crossing the border line square at its point nearest (lon, lat).

    It runs ``half_length_m`` into each country from that point, along the normal of the line
    there (the line's direction is taken over 50 m either side). Lon/lat, computed in metres.
    """
    snapped_lon, snapped_lat, _ = nearest_on_border(geom, lon, lat)
    to_m, to_deg = local_metres(snapped_lon, snapped_lat)
    near = shapely.intersection(geom.lines, shapely.box(snapped_lon - 0.05, snapped_lat - 0.05,
                                                        snapped_lon + 0.05, snapped_lat + 0.05))
    near_m = shapely.transform(near, lambda xy: np.column_stack(to_m.transform(*xy.T)))
    parts = shapely.get_parts(shapely.line_merge(near_m))
    part = parts[int(np.argmin(shapely.distance(parts, shapely.Point(0.0, 0.0))))]
    along = shapely.line_locate_point(part, shapely.Point(0.0, 0.0))
    behind, ahead = (shapely.get_coordinates(shapely.line_interpolate_point(part, d))[0]
                     for d in (max(along - 50.0, 0.0), min(along + 50.0, part.length)))
    tangent = (ahead - behind) / max(float(np.hypot(*(ahead - behind))), 1e-9)
    normal = np.array([-tangent[1], tangent[0]])
    w, h = tangent * width_m / 2, normal * half_length_m
    corners = np.array([-w - h, w - h, w + h, -w + h, -w - h])
    lon_c, lat_c = to_deg.transform(corners[:, 0], corners[:, 1])
    return shapely.set_precision(shapely.Polygon(np.column_stack([lon_c, lat_c])), 1e-7)


# ---------------------------------------------------------------------------------- ports of entry

def _ring_problem(ring: Any, k: int) -> str | None:
    if not isinstance(ring, list) or len(ring) < 4:
        return f"ring {k} needs a list of at least 4 positions"
    for j, pos in enumerate(ring):
        if (not isinstance(pos, list) or len(pos) not in (2, 3) or
                not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in pos)):
            return f"ring {k} position {j} is not [lon, lat] numbers"
        if not (-180 <= pos[0] <= 180 and -90 <= pos[1] <= 90):
            return f"ring {k} position {j} {pos[:2]} is outside lon -180..180 / lat -90..90"
    if ring[0] != ring[-1]:
        return f"ring {k} is not closed (its first and last positions differ)"
    return None


def _polygon(value: Any) -> shapely.Polygon:
    """A valid shapely Polygon from a GeoJSON Polygon mapping (or a shapely Polygon)."""
    if isinstance(value, shapely.Polygon):
        value = json.loads(json.dumps(mapping(value)))  # tuples -> lists, then the same checks
    if not isinstance(value, dict) or value.get("type") != "Polygon":
        got = value.get("type") if isinstance(value, dict) else type(value).__name__
        raise ValueError(f"must be a GeoJSON Polygon, got {got!r}")
    rings = value.get("coordinates")
    if not isinstance(rings, list) or not rings:
        raise ValueError("Polygon coordinates must be a non-empty list of rings")
    for k, ring in enumerate(rings):
        if problem := _ring_problem(ring, k):
            raise ValueError(problem)
    polygon = shapely.Polygon(rings[0], rings[1:])
    if not polygon.is_valid:
        raise ValueError(f"invalid polygon: {shapely.is_valid_reason(polygon)}")
    return polygon


GeoPolygon = Annotated[shapely.Polygon, BeforeValidator(_polygon), PlainSerializer(mapping, return_type=dict)]


Mode = Literal["road", "rail", "pedestrian", "ferry"]

#: Which lanes make a crossing lawful for a track of each class: a vehicle by road or rail (a train
#: is tracked as a vehicle), a person on foot only in a pedestrian corridor, a boat only at a ferry
#: (marine) port. An animal or an unknown track is never lawful.
MODES_OF_CLASS: dict[str, tuple[Mode, ...]] = {"vehicle": ("road", "rail"), "person": ("pedestrian",),
                                               "boat": ("ferry",)}


class PortLane(BaseModel):
    """One corridor of a port through which traffic of one mode lawfully crosses the line."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, arbitrary_types_allowed=True)

    mode: Mode = Field(..., description="Traffic the lane carries.")
    name: Name | None = Field(None, description="What it is on the ground, e.g. 'I-5 / Highway 99 lanes'.")
    polygon: GeoPolygon = Field(..., description="The corridor (lon/lat), crossing the border line.")


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^(?:24/7|(?P<open>[01]\d|2[0-3]):(?P<om>[0-5]\d)-(?P<close>[01]\d|2[0-4]):(?P<cm>[0-5]\d))$")


def _opening(text: str) -> tuple[int, int] | None:
    """'HH:MM-HH:MM' as (open, close) minutes after midnight (close may be 24:00 and before open:
    open past midnight); '24/7' as None."""
    match = _HOURS.match(text)
    if match is None or (match["close"] == "24" and match["cm"] != "00"):
        raise ValueError(f"hours {text!r} must be '24/7' or 'HH:MM-HH:MM' (e.g. '08:00-24:00')")
    if match["open"] is None:
        return None
    return int(match["open"]) * 60 + int(match["om"]), int(match["close"]) * 60 + int(match["cm"])


class OpeningHours(BaseModel):
    """When a port is open, in its own time zone: one span for every day, or per weekday.

    ``daily``: '24/7' or 'HH:MM-HH:MM' (close '24:00' is midnight; a close before the open runs past
    midnight). ``days`` overrides it for named weekdays (``mon`` .. ``sun``); ``closed`` for a day
    the port does not open. ``source`` says where the hours come from (agencies publish them).

    >>> OpeningHours(daily="08:00-24:00", time_zone="America/Vancouver").is_open(1785049200_000_000_000)
    False
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    daily: str = Field("24/7", description="Hours every day: '24/7' or 'HH:MM-HH:MM'.")
    days: dict[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], str] = Field(
        default_factory=dict, description="Per-weekday hours ('closed' for no opening), overriding daily.")
    time_zone: str = Field("UTC", description="IANA zone the hours are in, e.g. 'America/Vancouver'.")
    source: str | None = Field(None, description="Where the hours come from.")

    @model_validator(mode="after")
    def _check(self) -> OpeningHours:
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"time_zone {self.time_zone!r} is not a known IANA time zone") from None
        for text in (self.daily, *self.days.values()):
            if text != "closed":
                _opening(text)
        return self

    def is_open(self, ts_ns: int) -> bool:
        """Whether the port is open at ``ts_ns`` (ns since the epoch, UTC)."""
        local = datetime.fromtimestamp(ts_ns / 1e9, tz=ZoneInfo(self.time_zone))
        minute = local.hour * 60 + local.minute
        today = _DAYS[local.weekday()]
        yesterday = _DAYS[(local.weekday() - 1) % 7]
        for day, after_midnight in ((today, False), (yesterday, True)):
            text = self.days.get(day, self.daily)  # type: ignore[call-overload]
            if text == "closed":
                continue
            span = _opening(text)
            if span is None:
                if not after_midnight:
                    return True
                continue
            start, end = span
            if end > start:
                if not after_midnight and start <= minute < end:
                    return True
            elif (not after_midnight and minute >= start) or (after_midnight and minute < end):
                return True  # a span past midnight: the evening of its day and the morning after
        return False


class PortOfEntry(BaseModel):
    """A land or marine port of entry: its area around the shipped border line, its lanes and hours."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, arbitrary_types_allowed=True)

    id: Id = Field(..., description="Stable port id, e.g. 'poe-peace-arch'.")
    name: Name = Field(..., description="Common name of the crossing, e.g. 'Peace Arch'.")
    us_port: Name = Field(..., description="US port of entry, e.g. 'Blaine (Peace Arch), WA'.")
    ca_port: Name = Field(..., description="Canadian port of entry, e.g. 'Douglas (Surrey), BC'.")
    crossing: Name = Field(..., description="Road, bridge or tunnel, e.g. 'I-5 / BC Highway 99'.")
    sector_id: Id | None = Field(None, description="Registry sector the port lies in, if any.")
    modes: tuple[Mode, ...] = Field(..., min_length=1, description="Traffic the port handles.")
    lon_deg: float = Field(..., ge=-180, le=180, description="Real crossing point on the road, WGS-84 longitude (deg).")
    lat_deg: float = Field(..., ge=-90, le=90, description="Real crossing point on the road, WGS-84 latitude (deg).")
    snap_distance_m: float = Field(..., ge=0, description="Distance from the real crossing to the shipped line (m).")
    lanes: tuple[PortLane, ...] = Field(
        (), description="Corridors where crossing is lawful, one or more per mode; none: no crossing here is lawful.")
    hours: OpeningHours = Field(default_factory=OpeningHours, description="When the port is open (default 24/7).")
    polygon: GeoPolygon = Field(..., description="Port area (lon/lat); in the file it is the feature's geometry.")

    @model_validator(mode="after")
    def _lanes_in_modes(self) -> PortOfEntry:
        for k, lane in enumerate(self.lanes):
            if lane.mode not in self.modes:
                raise ValueError(f"lanes[{k}] is a {lane.mode} lane but the port's modes are {list(self.modes)}")
        return self

    def lanes_for(self, class_name: str) -> tuple[PortLane, ...]:
        """The lanes through which a track of ``class_name`` may lawfully cross (see MODES_OF_CLASS)."""
        modes = MODES_OF_CLASS.get(str(class_name), ())
        return tuple(lane for lane in self.lanes if lane.mode in modes)


def _problem_text(source: str, index: int, fid: Any, loc: tuple[Any, ...], msg: str) -> str:
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:])
    head = "geometry" if loc and loc[0] == "polygon" else f"properties.{loc[0]}" if loc else ""
    return f"{_where(source, index, fid)}{'.' + head + where if head else ''}: {msg}"


def _message(error: Any) -> str:
    """A pydantic error as text; an unknown key gets a did-you-mean like the registry's."""
    if error["type"] != "extra_forbidden":
        return error["msg"].removeprefix("Value error, ")
    fields = [f for f in PortOfEntry.model_fields if f != "polygon"]
    close = difflib.get_close_matches(str(error["loc"][-1]), fields, n=1)
    return "unknown key" + (f" (did you mean '{close[0]}'?)" if close else "")


def load_ports_of_entry(path: str | Path, *, sector_ids: Iterable[str] | None = None,
                        border: BorderGeometry | None = None) -> tuple[PortOfEntry, ...]:
    """Read and validate the ports-of-entry GeoJSON FeatureCollection at ``path``.

    Each feature has a Polygon geometry and the PortOfEntry fields (except ``polygon``) as
    properties. Raises BorderDataError naming the file, the feature (index and id) and the
    problem: unreadable or invalid JSON, wrong structure, invalid or open polygon rings, lon/lat
    out of range, missing or unknown properties, duplicate ids, a lane of a mode the port does not
    handle, bad opening hours; with ``sector_ids``, an unknown sector; with ``border``, an area that
    does not touch the border line or a lane that does not cross it. ``lanes`` (a list of
    ``{mode, name, polygon}`` with GeoJSON polygons) and ``hours`` are properties; a port without
    lanes loads with a warning (nothing crossing there is lawful).

    >>> [p.id for p in load_ports_of_entry("config/ports_of_entry.geojson")][:1]
    ['poe-peace-arch']
    """
    source = str(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise BorderDataError(f"{source}: cannot read ports of entry: {exc}") from None
    except json.JSONDecodeError as exc:
        raise BorderDataError(f"{source}: line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}") from None
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection" or not isinstance(data.get("features"), list):
        raise BorderDataError(f"{source}: must be a GeoJSON FeatureCollection with a 'features' list")
    ports: list[PortOfEntry] = []
    problems: list[str] = []
    first: dict[str, int] = {}
    known = set(sector_ids) if sector_ids is not None else None
    for i, feature in enumerate(data["features"]):
        props = feature.get("properties") if isinstance(feature, dict) else None
        fid = props.get("id") if isinstance(props, dict) else None
        if not isinstance(feature, dict) or feature.get("type") != "Feature" or not isinstance(props, dict):
            problems.append(f"{_where(source, i, fid)}: must be a GeoJSON Feature with a 'properties' object")
            continue
        if "polygon" in props:
            problems.append(f"{_where(source, i, fid)}.properties.polygon: unknown key (the polygon is the geometry)")
            continue
        try:
            port = PortOfEntry.model_validate({**props, "polygon": feature.get("geometry")})
        except ValidationError as exc:
            problems += [_problem_text(source, i, fid, tuple(e["loc"]), _message(e))
                         for e in exc.errors(include_url=False, include_input=False)]
            continue
        if port.id in first:
            problems.append(f"{_where(source, i, fid)}.properties.id: duplicate id '{port.id}' "
                            f"(first at features[{first[port.id]}])")
            continue
        first[port.id] = i
        if known is not None and port.sector_id is not None and port.sector_id not in known:
            problems.append(f"{_where(source, i, fid)}.properties.sector_id: '{port.sector_id}' is not a known sector")
        if border is not None and not shapely.intersects(port.polygon, border.lines):
            problems.append(f"{_where(source, i, fid)}.geometry: does not touch the border line ({border.source})")
        for k, lane in enumerate(port.lanes):
            if border is not None and not shapely.intersects(lane.polygon, border.lines):
                problems.append(f"{_where(source, i, fid)}.properties.lanes[{k}]: the {lane.mode} lane does not "
                                f"cross the border line ({border.source}), so nothing could cross through it")
        if not port.lanes:
            log.warning("%s: port %s has no lanes: every crossing there will be alerted", source, port.id)
        ports.append(port)
    if problems:
        raise BorderDataError("\n".join(problems))
    return tuple(ports)


def port_at(ports: Sequence[PortOfEntry], lon: float, lat: float) -> PortOfEntry | None:
    """The first port whose polygon covers (lon, lat) (deg), or None.

    >>> port_at(ports, -122.7567, 49.0022).id
    'poe-peace-arch'
    """
    if not ports:
        return None
    hits = np.flatnonzero(shapely.intersects_xy(np.array([p.polygon for p in ports], dtype=object), lon, lat))
    return ports[hits[0]] if hits.size else None

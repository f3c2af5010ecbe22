"""The one registry of sectors, sensors and partner agencies.

Loaded and validated once at start-up (``load_registry``) and passed to every stage, so no
stage hard-codes a sensor, a sector or a partner. A broken registry stops the program with a
message that names the file, the entry (list position and id) and the field, e.g.::

    config/registry.yaml: sensors[2] (id 'cam-7').sector_id: 'XX' is not a known sector
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ibet.exceptions import RegistryError
from ibet.urls import secret_params

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]

# Hash formats we accept for drone credentials: argon2 (PHC string), bcrypt, and Django-style
# pbkdf2_sha256 / scrypt. Anything else is treated as a clear-text secret and rejected.
_CREDENTIAL_HASHES = (
    re.compile(r"^sha256\$[0-9a-f]{64}$"),  # of a 256-bit random device token (ingest.credentials)
    re.compile(r"^\$argon2(?:id|i|d)\$v=\d+\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]+=*$"),
    re.compile(r"^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$"),
    re.compile(r"^pbkdf2_sha256\$\d+\$[^$\s]+\$[^$\s]+$"),
    re.compile(r"^scrypt\$\d+\$[^$\s]+\$\d+\$\d+\$[^$\s]+$"),
)
_EMAIL = re.compile(r"^[^@\s]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")
_HOST_PORT = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(\d{1,5})$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SectorDem(_Model):
    """A sector's terrain: a DEM raster that georeferencing casts rays onto (see fuse.terrain)."""

    path: str = Field(..., min_length=1, description="GeoTIFF or any GDAL raster of ground heights; relative "
                      "paths are taken from the registry file's folder. Any CRS (reprojected).")
    vertical: Literal["ellipsoid", "egm96"] = Field(
        "ellipsoid", description="What the heights are above: the WGS-84 ellipsoid, or mean sea level "
        "(EGM96 geoid; converted with the shipped geoid grid).")
    sigma_m: float = Field(2.0, ge=0, le=100, description="One-sigma error of the DEM's heights (m), e.g. "
                           "about 2 m for lidar-derived 1 m DEMs, 5-10 m for SRTM/CDEM.")


class Sector(_Model):
    """A stretch of border watched by one IBET team; fusion runs per sector."""

    id: Id = Field(..., description="Stable sector id, used as the Kafka key of detections, tracks and events.")
    name: Name = Field(..., description="Human-readable name, e.g. 'Blaine / Surrey'.")
    ibet_region: Literal["Pacific", "Prairie", "Great Lakes", "Quebec", "Atlantic"] = Field(
        ..., description="IBET region the sector belongs to.")
    timezone: str = Field(..., description="IANA time zone of the sector, e.g. 'America/Vancouver'.")
    neighbours: tuple[Id, ...] = Field((), description="Sector ids asked for mutual aid.")
    ground_elev_m: float = Field(
        0.0, description="Flat-terrain ground height used by georeferencing, m above the WGS-84 ellipsoid "
        "(the datum of telemetry sensor_alt_m, MISB ST 0601 tag 75)")
    dem: SectorDem | None = Field(None, description="Terrain for georeferencing; without it the ground is "
                                  "flat at ground_elev_m (on the curved Earth).")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"'{value}' is not an IANA time zone name (e.g. 'America/Toronto')") from None
        return value


class CameraIntrinsics(_Model):
    """Pinhole intrinsics of a camera, in pixels of the frames it delivers."""

    width_px: int = Field(..., gt=0, description="Frame width (px).")
    height_px: int = Field(..., gt=0, description="Frame height (px).")
    fx_px: float = Field(..., gt=0, description="Focal length along x (px).")
    fy_px: float = Field(..., gt=0, description="Focal length along y (px).")
    cx_px: float = Field(..., description="Principal point x (px).")
    cy_px: float = Field(..., description="Principal point y (px).")
    distortion: tuple[float, ...] = Field((), description="OpenCV distortion coefficients (k1, k2, p1, p2, ...).")

    @model_validator(mode="after")
    def _consistent(self) -> CameraIntrinsics:
        if not (0 <= self.cx_px <= self.width_px and 0 <= self.cy_px <= self.height_px):
            raise ValueError("principal point (cx_px, cy_px) lies outside the image")
        if len(self.distortion) not in (0, 4, 5, 8, 12, 14):
            raise ValueError("distortion needs 0, 4, 5, 8, 12 or 14 coefficients (OpenCV convention)")
        return self


class GroundControlPoint(_Model):
    """One pixel of a fixed camera's image tied to its position on the ground."""

    u_px: float = Field(..., ge=0, description="Pixel column.")
    v_px: float = Field(..., ge=0, description="Pixel row.")
    lat_deg: float = Field(..., ge=-90, le=90, description="WGS-84 latitude (deg).")
    lon_deg: float = Field(..., ge=-180, le=180, description="WGS-84 longitude (deg).")


class FixedPose(_Model):
    """Where a fixed camera stands and where it looks."""

    lat_deg: float = Field(..., ge=-90, le=90, description="WGS-84 latitude of the camera (deg).")
    lon_deg: float = Field(..., ge=-180, le=180, description="WGS-84 longitude of the camera (deg).")
    height_m: float = Field(..., gt=0, description="Height of the lens above the ground (m).")
    heading_deg: float = Field(..., ge=0, lt=360, description="Optical axis azimuth, clockwise from true north (deg).")
    tilt_deg: float = Field(..., ge=-90, le=90, description="Optical axis below horizontal (deg, positive looks down).")
    hfov_deg: float = Field(..., gt=0, le=180, description="Horizontal field of view (deg).")


class Sensor(_Model):
    """A drone (pushes frames and telemetry) or a fixed camera (pulled by ingest)."""

    id: Id = Field(..., description="Stable sensor id, used as the Kafka key of frames.")
    kind: Literal["drone", "fixed_camera"] = Field(..., description="Drone or fixed camera.")
    owner_agency: Id = Field(..., description="Id of the partner agency that operates the sensor.")
    sector_id: Id = Field(..., description="Id of the sector the sensor watches.")
    detection_rate_hz: float = Field(2.0, gt=0, description="Frames per second sampled for detection (Hz).")
    intrinsics: CameraIntrinsics | None = Field(None, description="Camera intrinsics, if calibrated.")
    pose: FixedPose | None = Field(None, description="Pose of a fixed camera; drones report theirs in telemetry.")
    ground_control_points: tuple[GroundControlPoint, ...] = Field(
        (), description="Pixel <-> lat/lon pairs of a fixed camera (at least 4, for a homography).")
    credential_hash: str | None = Field(None, repr=False, description="Hash of a drone's secret; never clear text.")
    source_url: str | None = Field(None, description="Where ingest reads the sensor's video: a camera it pulls (rtsp://, "
                                   "http(s)://, file://) or a stream (udp://, srt://, rtmp://) for `ibet ingest stream`.")

    @field_validator("ground_control_points")
    @classmethod
    def _enough_gcps(cls, value: tuple[GroundControlPoint, ...]) -> tuple[GroundControlPoint, ...]:
        if 0 < len(value) < 4:
            raise ValueError(f"needs at least 4 ground control points for a homography, got {len(value)}")
        return value

    @field_validator("credential_hash")
    @classmethod
    def _hashed_credential(cls, value: str | None) -> str | None:
        # Never echo the value: it may be a clear-text secret.
        if value is not None and not any(p.match(value) for p in _CREDENTIAL_HASHES):
            raise ValueError("credentials are stored hashed (sha256$ of a device token, argon2, bcrypt, pbkdf2_sha256 "
                             "or scrypt); this does not look like a hash - hash the drone secret and store only the hash")
        return value

    @field_validator("source_url")
    @classmethod
    def _pullable_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("rtsp", "rtsps", "http", "https", "file", "udp", "srt", "rtmp", "rtmps"):
                raise ValueError("must be an rtsp://, rtsps://, http(s)://, file://, udp://, srt:// or rtmp(s):// URL")
            if parts.password:
                raise ValueError("must not contain a password; give camera credentials through a secret")
            if secret_params(value):
                raise ValueError(f"must not contain a secret ({', '.join(secret_params(value))}); the registry is "
                                 "not a secret store: give the URL with it as `ibet up --stream ID=URL` or "
                                 "`ibet ingest stream --source URL` from a secret")
        return value

    @model_validator(mode="after")
    def _geometry_for_kind(self) -> Sensor:
        if self.kind == "fixed_camera" and self.pose is None and not self.ground_control_points:
            raise ValueError("a fixed_camera needs a pose or at least 4 ground_control_points")
        if self.kind == "drone" and (self.pose is not None or self.ground_control_points):
            raise ValueError("a drone takes no pose or ground_control_points; its pose comes from telemetry")
        return self


class PartnerContacts(_Model):
    """How a partner agency receives alerts, one entry per channel."""

    webhook_url: str | None = Field(None, description="HTTP(S) endpoint that receives alert JSON.")
    email: tuple[str, ...] = Field((), description="Addresses that receive alert e-mails.")
    tak_endpoint: str | None = Field(None, description="TAK server for CoT events, as 'host:port'.")
    cap_url: str | None = Field(None, description="HTTP(S) endpoint that receives CAP 1.2 messages.")

    @field_validator("webhook_url", "cap_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be an http:// or https:// URL with a host")
        return value

    @field_validator("email")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            if not _EMAIL.match(address):
                raise ValueError(f"'{address}' is not an e-mail address")
        return value

    @field_validator("tak_endpoint")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None:
            match = _HOST_PORT.match(value)
            if not match or not 0 < int(match.group(1)) < 65536:
                raise ValueError(f"'{value}' is not 'host:port' with a port in 1..65535")
        return value


class Partner(_Model):
    """A partner agency that receives alerts for the sectors it covers."""

    id: Id = Field(..., description="Stable partner id, e.g. 'rcmp'.")
    name: Name = Field(..., description="Full agency name.")
    country: Literal["CA", "US"] = Field(..., description="Country of the agency (ISO 3166 alpha-2).")
    agency_kind: Literal["RCMP", "CBSA", "USBP", "HSI", "state_police", "provincial_police", "other"] = Field(
        ..., description="Kind of agency.")
    jurisdiction: Name = Field(..., description="Free-text description of the agency's jurisdiction.")
    sectors: tuple[Id, ...] = Field((), description="Ids of the sectors the agency covers.")
    contacts: PartnerContacts = Field(default_factory=PartnerContacts, description="Alert channels.")


class Registry(_Model):
    """All sectors, sensors and partners, cross-checked, with lookups by id."""

    sectors: tuple[Sector, ...] = Field(..., description="Border sectors.")
    sensors: tuple[Sensor, ...] = Field(..., description="Drones and fixed cameras.")
    partners: tuple[Partner, ...] = Field(..., description="Partner agencies.")

    _by_id: dict[str, dict[str, Any]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _cross_check(self) -> Registry:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for kind, plural in (("sector", "sectors"), ("sensor", "sensors"), ("partner", "partners")):
            first: dict[str, int] = {}
            for i, item in enumerate(getattr(self, plural)):
                if item.id in first:
                    where = f"{plural}[{first[item.id]}]"
                    problems.append(((plural, i, "id"), f"duplicate {kind} id '{item.id}' (first at {where})"))
                else:
                    first[item.id] = i
            self._by_id[kind] = {item.id: item for item in getattr(self, plural)}
        sectors, partners = self._by_id["sector"], self._by_id["partner"]
        for i, sector in enumerate(self.sectors):
            for j, other in enumerate(sector.neighbours):
                if other == sector.id:
                    problems.append((("sectors", i, "neighbours", j), "a sector cannot be its own neighbour"))
                elif other not in sectors:
                    problems.append((("sectors", i, "neighbours", j), f"'{other}' is not a known sector"))
        for i, sensor in enumerate(self.sensors):
            if sensor.sector_id not in sectors:
                problems.append((("sensors", i, "sector_id"), f"'{sensor.sector_id}' is not a known sector"))
            if sensor.owner_agency not in partners:
                problems.append((("sensors", i, "owner_agency"), f"'{sensor.owner_agency}' is not a known partner"))
        for i, partner in enumerate(self.partners):
            for j, sector_id in enumerate(partner.sectors):
                if sector_id not in sectors:
                    problems.append((("partners", i, "sectors", j), f"'{sector_id}' is not a known sector"))
        if problems:
            text = "; ".join(f"{loc_text(loc)}: {msg}" for loc, msg in problems)
            raise PydanticCustomError("registry_reference", "{text}", {"text": text, "problems": problems})
        return self

    def _get(self, kind: str, id_: str) -> Any:
        try:
            return self._by_id[kind][id_]
        except KeyError:
            raise RegistryError(f"unknown {kind} '{id_}'") from None

    def sector(self, sector_id: str) -> Sector:
        """Return the sector with this id; raise RegistryError if there is none."""
        return self._get("sector", sector_id)

    def sensor(self, sensor_id: str) -> Sensor:
        """Return the sensor with this id; raise RegistryError if there is none."""
        return self._get("sensor", sensor_id)

    def partner(self, partner_id: str) -> Partner:
        """Return the partner agency with this id; raise RegistryError if there is none."""
        return self._get("partner", partner_id)

    def sensors_in(self, sector_id: str) -> tuple[Sensor, ...]:
        """Return the sensors watching a sector, in registry order (RegistryError if unknown)."""
        self.sector(sector_id)
        return tuple(s for s in self.sensors if s.sector_id == sector_id)

    def partners_for(self, sector_id: str) -> tuple[Partner, ...]:
        """Return the partner agencies covering a sector, in registry order (RegistryError if unknown)."""
        self.sector(sector_id)
        return tuple(p for p in self.partners if sector_id in p.sectors)


def loc_text(loc: tuple[str | int, ...], data: Any = None) -> str:
    """Render a pydantic loc as ``sensors[2] (id 'cam-7').pose.heading_deg``.

    ``data`` is the raw input; where a list item in it is a mapping with an id, the id is shown.
    """
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
            data = data[part] if isinstance(data, list) and -len(data) <= part < len(data) else None
            if isinstance(data, dict) and isinstance(data.get("id"), (str, int)):
                text += f" (id '{data['id']}')"
        else:
            text += f".{part}" if text else str(part)
            data = data.get(part) if isinstance(data, dict) else None
    return text


def _model_at(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """Return the model class whose fields live at ``loc`` inside a Registry, if any."""
    model: type[BaseModel] | None = Registry
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if model is not None else None
        if field is None:
            return None
        model, pending = None, [field.annotation]
        while pending:  # unwrap tuple[...] and X | None to the model inside
            ann = pending.pop()
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                model = ann
            elif typing.get_origin(ann) in (tuple, typing.Union, types.UnionType):
                pending.extend(typing.get_args(ann))
    return model


def format_validation_error(error: ValidationError, data: Any, source: str) -> str:
    """Turn a pydantic ValidationError of a Registry into one readable line per problem.

    Each line reads ``SOURCE: LOC: MESSAGE``, e.g.
    ``registry.yaml: sensors[2] (id 'cam-7').pose.heading_deg: Input should be less than 360``.
    ``data`` is the raw mapping that was validated (used to show ids of list entries).
    """
    lines = []
    for err in error.errors(include_url=False, include_input=False):
        if err["type"] == "registry_reference":
            for loc, msg in err["ctx"]["problems"]:
                lines.append(f"{source}: {loc_text(loc, data)}: {msg}")
            continue
        loc, msg = tuple(err["loc"]), err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            model = _model_at(loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields) if model else [], n=1)
            msg = "unknown key" + (f" (did you mean '{close[0]}'?)" if close else "")
        where = loc_text(loc, data)
        lines.append(f"{source}: {where}: {msg}" if where else f"{source}: {msg}")
    return "\n".join(lines)


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping instead of keeping the last."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, typing.Hashable) and key in seen:
                raise yaml.constructor.ConstructorError("while constructing a mapping", node.start_mark,
                                                        f"found duplicate key '{key}'", key_node.start_mark)
            if isinstance(key, typing.Hashable):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_registry(path: str | Path) -> Registry:
    """Read and validate the registry YAML file at ``path``.

    Raises RegistryError naming the file, the entry and the field on unreadable files, YAML
    syntax errors, a top level that is not a mapping, or any validation or cross-check failure.

    >>> load_registry("config/registry.yaml").sensor("blaine-cam-1").kind
    'fixed_camera'
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{source}: cannot read registry: {exc}") from None
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RegistryError(f"{source}: {where}invalid YAML: {problem}") from None
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise RegistryError(f"{source}: the top level must be a mapping with keys sectors, sensors, partners; "
                            f"got {got}")
    try:
        return Registry.model_validate(data)
    except ValidationError as exc:
        # 'from None': the chained pydantic error would print input values, which may be secrets.
        raise RegistryError(format_validation_error(exc, data, source)) from None

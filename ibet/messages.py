"""Wire contracts shared by every stage: the one format of each topic (schema version 1).

Units are in field names; timestamps are integer ns since the Unix epoch (UTC) in event time;
positions are WGS-84 degrees; models are frozen and reject unknown fields and non-finite floats.
Frames are raw JPEG bytes with :class:`FrameMeta` in Kafka headers; every other topic carries a
:class:`WireMessage` as compact JSON: ``DetectionBatch.from_bytes(batch.to_bytes()) == batch``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, ClassVar, Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from ibet.exceptions import MessageDecodeError

SCHEMA_VERSION = 1

SensorId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Name = Annotated[str, Field(min_length=1, max_length=256)]
TimestampNs = Annotated[int, Field(gt=0, description="ns since the Unix epoch, UTC")]
Count = Annotated[int, Field(ge=0)]
Pixels = Annotated[int, Field(gt=0)]
LatDeg = Annotated[float, Field(ge=-90.0, le=90.0, description="WGS-84 latitude, degrees")]
LonDeg = Annotated[float, Field(ge=-180.0, le=180.0, description="WGS-84 longitude, degrees")]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class WireModel(BaseModel):
    """Base of every contract: frozen, unknown fields rejected, floats finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class WireMessage(WireModel):
    """A versioned message that is a whole Kafka value (or, for frames, the headers)."""

    schema_version: Literal[1] = 1
    OMIT_AT_DEFAULT: ClassVar[frozenset[str]] = frozenset()
    """Fields added since schema 1 first shipped: left out while at their default, so a consumer
    not yet upgraded reads the message as before (upgrade consumers first for the rest)."""

    def to_bytes(self) -> bytes:
        """Compact UTF-8 JSON of this message (None fields, and newer fields at their default, left out)."""
        omit = {n for n in self.OMIT_AT_DEFAULT if getattr(self, n) == type(self).model_fields[n].default}
        return self.model_dump_json(exclude_none=True, exclude=omit or None).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Self:
        """Decode JSON strictly (no bool as int, no number as string); MessageDecodeError names
        the model and every bad field, for bad JSON, a wrong schema version or invalid values."""
        try:
            return cls.model_validate_json(bytes(data), strict=True)
        except ValidationError as exc:
            raise MessageDecodeError(_describe(cls.__name__, exc)) from exc


def _describe(model: str, exc: ValidationError, where: Callable[[tuple], str] | None = None) -> str:
    """One line per pydantic error: ``cannot decode Alert: lat_deg: Input should be ...``."""
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        place = where(loc) if where else ".".join(str(part) for part in loc)
        got = err.get("input")
        detail = err["msg"]
        if err["type"] == "literal_error" and loc[:1] == ("schema_version",):
            detail = f"unsupported schema version {got!r} (this build reads {SCHEMA_VERSION})"
        elif err["type"] != "json_invalid" and isinstance(got, str | int | float) and not isinstance(got, bool):
            shown = repr(got)
            detail += f" (got {shown if len(shown) <= 40 else shown[:36] + '...'})"
        problems.append(f"{place or 'message'}: {detail}")
    return f"cannot decode {model}: " + "; ".join(problems)


# Frames
class Telemetry(WireModel):
    """Platform and sensor pose at capture, MISB ST 0601 names and conventions, all optional.

    Angles in degrees (platform: the airframe's; sensor: relative to the platform), lengths in m;
    every value within the range ST 0601 can carry for its tag (NaN and infinities refused).
    """

    precision_ts_us: int | None = Field(None, ge=0, description="tag 2: µs since the Unix epoch")
    platform_heading_deg: float | None = Field(None, ge=0.0, lt=360.0, description="tag 5, from true north")
    platform_pitch_deg: float | None = Field(None, ge=-90.0, le=90.0, description="tag 6, nose up positive")
    platform_roll_deg: float | None = Field(None, ge=-180.0, le=180.0, description="tag 7, right wing down +")
    sensor_lat_deg: LatDeg | None = Field(None, description="tag 13")
    sensor_lon_deg: LonDeg | None = Field(None, description="tag 14")
    sensor_alt_m: float | None = Field(None, ge=-900.0, le=19_000.0,
                                       description="tag 75: height above the WGS-84 ellipsoid (ST 0601 range)")
    sensor_alt_ref: Literal["ellipsoid", "msl_egm96"] | None = Field(
        None, description="where sensor_alt_m came from: tag 75 as sent (ellipsoid), or tag 15 (above mean sea "
                          "level) plus the EGM96 geoid height at the sensor (msl_egm96)")
    sensor_rel_azimuth_deg: float | None = Field(None, ge=0.0, lt=360.0, description="tag 18")
    sensor_rel_elevation_deg: float | None = Field(None, ge=-180.0, le=180.0, description="tag 19")
    sensor_rel_roll_deg: float | None = Field(None, ge=0.0, lt=360.0, description="tag 20")
    hfov_deg: float | None = Field(None, gt=0.0, le=180.0, description="tag 16")
    vfov_deg: float | None = Field(None, gt=0.0, le=180.0, description="tag 17")
    frame_center_lat_deg: LatDeg | None = Field(None, description="tag 23")
    frame_center_lon_deg: LonDeg | None = Field(None, description="tag 24")
    frame_center_elev_m: float | None = Field(None, ge=-900.0, le=19_000.0, description="tag 25: above mean sea level")
    slant_range_m: float | None = Field(None, ge=0.0, le=5_000_000.0, description="tag 21: sensor to frame centre")


# The value of a record on ibet.frames.v1 is one JPEG: these markers open and close it.
JPEG_SOI = b"\xff\xd8\xff"  # start of image, then the first marker's FF
JPEG_EOI = b"\xff\xd9"  # end of image

_HEADER_PREFIX = "ibet."
_HEADER_OF = {"schema_version": "ibet.schema"}  # every other field: "ibet." + field name


class FrameMeta(WireMessage):
    """Metadata of one JPEG frame on ``ibet.frames.v1`` (key: sensor id), carried in headers."""

    sensor_id: SensorId
    sequence: Count = Field(description="per-sensor frame counter")
    capture_ts_ns: TimestampNs = Field(description="when the sensor captured the frame (event time)")
    ingest_ts_ns: TimestampNs = Field(description="when ingest received it (wall clock)")
    width_px: Pixels
    height_px: Pixels
    content_type: Literal["image/jpeg"] = "image/jpeg"
    device_frame_id: str | None = Field(None, max_length=256, description="the device's own frame id")
    telemetry: Telemetry | None = None

    def to_headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers ``ibet.<field>`` (UTF-8 text; telemetry as one compact JSON header).

        None fields are left out. Example: ``("ibet.capture_ts_ns", b"1718000000000000000")``.
        """
        headers = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            text = value.model_dump_json(exclude_none=True) if name == "telemetry" else str(value)
            headers.append((_header_name(name), text.encode("utf-8")))
        return headers

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[str, bytes | None]]) -> FrameMeta:
        """Rebuild the metadata from Kafka headers, ignoring those not starting with ``ibet.``;
        MessageDecodeError names the missing, unknown, duplicated or invalid header."""
        by_header = {_header_name(name): name for name in cls.model_fields}
        fields: dict[str, object] = {}
        for key, raw in headers:
            if not key.startswith(_HEADER_PREFIX):
                continue
            name = by_header.get(key)
            if name is None or name in fields or raw is None:
                problem = "unknown" if name is None else "duplicate" if name in fields else "empty"
                raise MessageDecodeError(f"cannot decode FrameMeta: {key}: {problem} header")
            try:
                text = bytes(raw).decode("utf-8")
                fields[name] = json.loads(text) if name == "telemetry" else text
            except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
                raise MessageDecodeError(f"cannot decode FrameMeta: {key}: {exc}") from exc
        for required in ("schema_version", "content_type"):  # have defaults, yet must be sent
            if required not in fields:
                raise MessageDecodeError(f"cannot decode FrameMeta: {_header_name(required)}: missing header")
        if fields["schema_version"] == str(SCHEMA_VERSION):  # header text; Literal[1] wants the int
            fields["schema_version"] = SCHEMA_VERSION
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            raise MessageDecodeError(_describe(cls.__name__, exc, _header_loc)) from exc


def _header_name(field: str) -> str:
    return _HEADER_OF.get(field, _HEADER_PREFIX + field)


def _header_loc(loc: tuple) -> str:
    """A pydantic error location as the header it came from: ``ibet.telemetry.hfov_deg``."""
    return ".".join([_header_name(str(loc[0])), *map(str, loc[1:])]) if loc else ""


# Detections
class Detection(WireModel):
    """One object found in a frame; box corners in pixels, origin top-left."""

    box_xyxy_px: tuple[float, float, float, float] = Field(description="x1, y1, x2, y2 in pixels")
    class_id: Count
    class_name: Name
    score: Probability
    sensor_track_id: Count | None = Field(None, description="per-sensor image track id")
    evidence_ref: str | None = Field(None, max_length=2048,
                                     description="where the crop of this detection's new track is stored")

    @field_validator("box_xyxy_px")
    @classmethod
    def _ordered(cls, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        if box[0] > box[2] or box[1] > box[3]:
            raise ValueError("box must have x1 <= x2 and y1 <= y2")
        return box


@dataclass(frozen=True, slots=True)
class DetectionArrays:
    """Parallel read-only arrays over the n detections of one frame.

    xyxy: (n, 4) float64, pixel boxes x1, y1, x2, y2 (shape (0, 4) when empty)
    confidence: (n,) float64 in [0, 1]
    class_id: (n,) int64
    tracker_id: (n,) int64, -1 where a detection has no per-sensor track
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    tracker_id: np.ndarray

    def __len__(self) -> int:
        return len(self.confidence)


class DetectionBatch(WireMessage):
    """The detections of one frame on ``ibet.detections.v1`` (key: sector id)."""

    sensor_id: SensorId
    sector_id: Name
    frame_sequence: Count
    capture_ts_ns: TimestampNs
    image_width_px: Pixels
    image_height_px: Pixels
    model_name: Name
    model_version: Name
    detections: tuple[Detection, ...] = ()
    telemetry: Telemetry | None = Field(None, description="snapshot at capture time")
    evidence_ref: str | None = Field(None, description="where the frame or thumbnail is stored")

    def as_arrays(self) -> DetectionArrays:
        """The detections as parallel numpy arrays (see :class:`DetectionArrays` for shapes)."""
        dets = self.detections
        arrays = DetectionArrays(
            xyxy=np.array([d.box_xyxy_px for d in dets], dtype=np.float64).reshape(-1, 4),
            confidence=np.array([d.score for d in dets], dtype=np.float64),
            class_id=np.array([d.class_id for d in dets], dtype=np.int64),
            tracker_id=np.array([-1 if d.sensor_track_id is None else d.sensor_track_id for d in dets], dtype=np.int64),
        )
        for array in (arrays.xyxy, arrays.confidence, arrays.class_id, arrays.tracker_id):
            array.setflags(write=False)
        return arrays


# Tracks and border events
class TrackClass(StrEnum):
    """What a fused track is believed to be."""

    PERSON = "person"
    VEHICLE = "vehicle"
    BOAT = "boat"
    ANIMAL = "animal"
    UNKNOWN = "unknown"


class TrackStatus(StrEnum):
    """Life cycle of a fused track."""

    TENTATIVE = "tentative"
    CONFIRMED = "confirmed"
    COASTING = "coasting"
    DELETED = "deleted"


def check_covariance(cov: tuple[tuple[float, float], tuple[float, float]]) -> tuple:
    """``cov`` if it is a symmetric positive semi-definite 2x2 matrix, else ValueError."""
    matrix = np.array(cov, dtype=np.float64)
    scale = max(1.0, float(np.abs(matrix).max()))
    if abs(matrix[0, 1] - matrix[1, 0]) > 1e-9 * scale:
        raise ValueError("covariance must be symmetric")
    if np.linalg.eigvalsh(matrix).min() < -1e-9 * scale:
        raise ValueError("covariance must be positive semi-definite")
    return cov


class TrackUpdate(WireMessage):
    """Fused state of one track on ``ibet.tracks.v1`` (key: sector id)."""

    track_id: Name
    sector_id: Name
    time_ts_ns: TimestampNs = Field(description="capture time of the latest measurement")
    lat_deg: LatDeg
    lon_deg: LonDeg
    position_cov_m2: tuple[tuple[float, float], tuple[float, float]] = Field(
        description="2x2 east/north position covariance, m², symmetric positive semi-definite"
    )
    velocity_east_mps: float
    velocity_north_mps: float
    class_name: TrackClass
    class_probabilities: dict[TrackClass, Probability] = Field(
        default_factory=dict, description="sums to 1, or empty when unknown"
    )
    sensor_ids: tuple[SensorId, ...] = Field(description="sensors that contributed measurements")
    status: TrackStatus
    border_side: Literal["CA", "US"] | None = None
    distance_to_border_m: float | None = Field(None, ge=0.0)
    version: Count = Field(description="increases with every update of this track")
    evidence_refs: tuple[str, ...] = Field(
        (), description="evidence of the sensor tracks that fed this track: each one's crop, then its frame"
    )
    group_id: Name | None = Field(None, description="the group of tracks moving together this one belongs to")
    group_size: Count = Field(1, ge=1, description="how many tracks that group has (1: alone)")
    OMIT_AT_DEFAULT: ClassVar[frozenset[str]] = frozenset({"group_size"})

    @field_validator("position_cov_m2")
    @classmethod
    def _covariance(cls, cov: tuple[tuple[float, float], tuple[float, float]]) -> tuple:
        return check_covariance(cov)

    @field_validator("class_probabilities")
    @classmethod
    def _sum_to_one(cls, probabilities: dict[TrackClass, float]) -> dict[TrackClass, float]:
        if probabilities and abs(sum(probabilities.values()) - 1.0) > 1e-6:
            raise ValueError(f"class probabilities must sum to 1 (sum {sum(probabilities.values()):.6g})")
        return probabilities


class BorderEventType(StrEnum):
    """What a track did relative to the border."""

    CROSSING = "crossing"
    APPROACH = "approach"
    LOITERING = "loitering"
    LOST_NEAR_BORDER = "lost_near_border"


class Direction(StrEnum):
    """Direction of travel across (or towards) the border."""

    CA_TO_US = "CA_TO_US"
    US_TO_CA = "US_TO_CA"
    NONE = "NONE"


class TrackSnapshot(WireModel):
    """The fused track's state at a border event: what a partner's map, its uncertainty circle and
    its course need. It travels on the BorderEvent and into the Alert, so no channel looks it up."""

    track_id: Name
    time_ts_ns: TimestampNs = Field(description="capture time of the track's latest measurement")
    lat_deg: LatDeg
    lon_deg: LonDeg
    position_cov_m2: tuple[tuple[float, float], tuple[float, float]] = Field(
        description="2x2 east/north position covariance, m²")
    velocity_east_mps: float
    velocity_north_mps: float
    class_name: TrackClass
    class_probability: Probability | None = Field(None, description="the fused probability of class_name")
    sensor_ids: tuple[SensorId, ...] = ()
    status: TrackStatus

    @field_validator("position_cov_m2")
    @classmethod
    def _covariance(cls, cov: tuple[tuple[float, float], tuple[float, float]]) -> tuple:
        return check_covariance(cov)

    @classmethod
    def of(cls, update: TrackUpdate) -> TrackSnapshot:
        """The snapshot of a published track state."""
        return cls(track_id=update.track_id, time_ts_ns=update.time_ts_ns, lat_deg=update.lat_deg,
                   lon_deg=update.lon_deg, position_cov_m2=update.position_cov_m2,
                   velocity_east_mps=update.velocity_east_mps, velocity_north_mps=update.velocity_north_mps,
                   class_name=update.class_name, class_probability=update.class_probabilities.get(update.class_name),
                   sensor_ids=update.sensor_ids, status=update.status)


class NearPortReason(StrEnum):
    """Why a crossing at or near a port of entry is not lawful."""

    OUTSIDE_LANES = "outside_lanes"  # beside the port: not through any of its lanes
    WRONG_MODE = "wrong_mode"  # through a lane for other traffic (a person on foot in the road lanes)
    CLOSED = "closed"  # through the right lane, but outside the port's opening hours


class NearPort(WireModel):
    """The port of entry an unlawful crossing happened at or beside: context for the duty desk."""

    port_id: Name
    port_name: Name
    distance_m: float = Field(ge=0.0, description="from the port's nearest lane to the event point")
    bearing: Literal["N", "NE", "E", "SE", "S", "SW", "W", "NW"] = Field(
        description="compass direction of the event point from that lane")
    reason: NearPortReason


class BoundaryRef(WireModel):
    """Which border line a crossing was decided on, and whether the track stood within its accuracy."""

    version: Name = Field(description="the line's version (its data's own, or sha256 of the file)")
    accuracy_m: float | None = Field(None, ge=0.0, description="the line's horizontal accuracy (m); None: unknown")
    within_accuracy: bool = Field(description="the track was no further from the line than its accuracy when the "
                                  "crossing fired: verify on the ground")


class BorderEvent(WireMessage):
    """A border event on ``ibet.events.v1`` (key: sector id); the id comes from :func:`ibet.ids.event_id`."""

    event_id: Name
    event_type: BorderEventType
    track_id: Name
    sector_id: Name
    event_ts_ns: TimestampNs = Field(description="event time, from the measurements' capture time")
    lat_deg: LatDeg
    lon_deg: LonDeg
    direction: Direction
    class_name: TrackClass
    confidence: Probability
    sensor_ids: tuple[SensorId, ...]
    port_of_entry_id: Name | None = Field(
        None, description="set when the crossing was lawful: through a lane of this port for the track's class, while open")
    near_port: NearPort | None = Field(
        None, description="an unlawful crossing at or beside a port of entry: which one, how far, and why not lawful")
    evidence_refs: tuple[str, ...] = Field((), description="the track's evidence (see TrackUpdate.evidence_refs)")
    track: TrackSnapshot | None = Field(None, description="the fused track at the event")
    group_id: Name | None = Field(None, description="the track's group (TrackUpdate.group_id)")
    group_size: Count = Field(1, ge=1, description="how many move together in it (1: alone)")
    boundary: BoundaryRef | None = Field(None, description="a crossing: the line it was decided on and its accuracy")
    OMIT_AT_DEFAULT: ClassVar[frozenset[str]] = frozenset({"group_size", "near_port", "boundary"})


# Alerts
class Severity(StrEnum):
    """How urgent an alert is."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class AlertOutcome(StrEnum):
    """How a resolved alert ended."""

    CONFIRMED_CROSSING = "confirmed_crossing"
    FALSE_ALARM = "false_alarm"
    LAWFUL = "lawful"
    UNRESOLVED = "unresolved"


class AlertState(StrEnum):
    """Where an alert is in its handling."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    ESCALATED = "escalated"
    RESOLVED = "resolved"


class Alert(WireMessage):
    """An alert on ``ibet.alerts.v1`` (key: alert id), with its routing and state."""

    alert_id: Name
    event_ids: tuple[Name, ...] = Field(min_length=1)
    sector_id: Name
    severity: Severity
    state: AlertState
    created_ts_ns: TimestampNs
    updated_ts_ns: TimestampNs = Field(description="not before created_ts_ns")
    title: Name
    summary: str
    direction: Direction
    lat_deg: LatDeg
    lon_deg: LonDeg
    lead_partner_id: Name | None = None
    routed_partner_ids: tuple[Name, ...] = ()
    escalation_level: Count = 0
    exercise: bool = Field(False, description="raised by an exercise (a scenario run): every channel says so")
    kind: Literal["border", "sensor_health"] = Field("border", description="a border event, or a sensor feed lost")
    sensor_ids: tuple[SensorId, ...] = ()
    track_ids: tuple[Name, ...] = ()
    outcome: AlertOutcome | None = Field(None, description="how a resolved alert ended")
    event_type: BorderEventType | None = Field(None, description="the border event behind the alert (the most severe)")
    event_ts_ns: TimestampNs | None = Field(None, description="... its event time")
    confidence: Probability | None = Field(None, description="... its confidence")
    track: TrackSnapshot | None = Field(None, description="... and the fused track at it: every channel composes from it")
    group_size: Count = Field(1, ge=1, description="how many targets moving together the alert is about")
    evidence_refs: tuple[Annotated[str, Field(max_length=2048)], ...] = Field(
        (), max_length=2, description="the alert's snapshot: the object's crop, then its frame (detect's evidence "
                                      "references); partners get signed links to them")
    OMIT_AT_DEFAULT: ClassVar[frozenset[str]] = frozenset({"group_size", "evidence_refs"})

    @field_validator("updated_ts_ns")
    @classmethod
    def _not_before_created(cls, updated: int, info: ValidationInfo) -> int:
        created = info.data.get("created_ts_ns")
        if created is not None and updated < created:
            raise ValueError("updated_ts_ns must not be before created_ts_ns")
        return updated


# Sensor health
class SensorHealthState(StrEnum):
    """Whether a sensor's feed is arriving."""

    FEED_LOST = "feed_lost"
    FEED_RESTORED = "feed_restored"


class SensorHealthEvent(WireMessage):
    """A sensor went dark or came back, on ``ibet.sensor-health.v1`` (key: sensor id)."""

    sensor_id: SensorId
    sector_id: Name
    state: SensorHealthState
    event_ts_ns: TimestampNs = Field(description="when the feed was declared lost or restored (ingest clock)")
    last_frame_ts_ns: TimestampNs | None = Field(None, description="capture time of the last frame before the gap")
    expected_interval_s: float = Field(gt=0.0, description="1 / the sensor's frame rate")
    silent_s: float = Field(ge=0.0, description="how long no frame had arrived")
    reason: str | None = Field(None, max_length=300, description="why no usable frame arrived, when ingest knows "
                               "(e.g. video without telemetry); absent: nothing arrived")

    OMIT_AT_DEFAULT: ClassVar[frozenset[str]] = frozenset({"reason"})

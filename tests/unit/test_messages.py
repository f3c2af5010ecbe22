"""Wire contracts: round trips, rejection of bad input with errors that name the field, frame headers."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from wire_samples import DETECTIONS, T0, alert, batch, event, frame_meta, telemetry, track

from ibet.exceptions import IbetError, MessageDecodeError
from ibet.messages import (
    SCHEMA_VERSION,
    Alert,
    AlertState,
    BorderEvent,
    BorderEventType,
    DetectionBatch,
    FrameMeta,
    Telemetry,
    TrackStatus,
    TrackUpdate,
    WireMessage,
)

MESSAGES = [
    pytest.param(batch(), id="batch-empty"),
    pytest.param(batch(DETECTIONS), id="batch-two-detections"),
    pytest.param(batch(telemetry=None, evidence_ref=None), id="batch-no-telemetry"),
    pytest.param(frame_meta(), id="frame-meta"),
    pytest.param(frame_meta(telemetry=None, device_frame_id=None), id="frame-meta-bare"),
    pytest.param(track(), id="track"),
    pytest.param(track(class_probabilities={}, border_side=None, distance_to_border_m=None), id="track-unknown"),
    pytest.param(track(position_cov_m2=((0.0, 0.0), (0.0, 0.0)), status=TrackStatus.DELETED), id="track-zero-cov"),
    pytest.param(event(), id="event"),
    pytest.param(event(event_type=BorderEventType.APPROACH, port_of_entry_id="poe-peace-arch"), id="event-port"),
    pytest.param(alert(), id="alert"),
    pytest.param(alert(lead_partner_id=None, routed_partner_ids=(), state=AlertState.ESCALATED), id="alert-unrouted"),
]


@pytest.mark.parametrize("message", MESSAGES)
def test_round_trip_through_bytes_is_identity(message: WireMessage):
    data = message.to_bytes()
    decoded = type(message).from_bytes(data)
    assert decoded == message
    assert decoded.to_bytes() == data
    assert json.loads(data)["schema_version"] == SCHEMA_VERSION


@pytest.mark.parametrize("message", MESSAGES)
def test_bytes_are_compact_utf8_json(message: WireMessage):
    data = message.to_bytes()
    assert data == json.dumps(json.loads(data), separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def test_enums_travel_as_their_values():
    doc = json.loads(event().to_bytes())
    assert (doc["event_type"], doc["direction"], doc["class_name"]) == ("crossing", "CA_TO_US", "person")
    assert json.loads(alert().to_bytes())["severity"] == "high"


def test_messages_are_frozen():
    message = track()
    with pytest.raises(ValidationError):
        message.lat_deg = 0.0


def _with(doc: dict, path: tuple, value) -> dict:
    target = doc
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return doc


REJECTED = [
    # (factory, path into the JSON document, bad value, field the error must name)
    (lambda: batch(DETECTIONS), ("detections", 0, "score"), math.nan, "detections.0.score"),
    (lambda: batch(DETECTIONS), ("detections", 0, "score"), 1.5, "detections.0.score"),
    (lambda: batch(DETECTIONS), ("detections", 1, "box_xyxy_px"), [0.0, 0.0, math.inf, 5.0], "detections.1.box_xyxy_px.2"),
    (lambda: batch(DETECTIONS), ("detections", 1, "box_xyxy_px"), [10.0, 0.0, 5.0, 5.0], "detections.1.box_xyxy_px"),
    (lambda: batch(DETECTIONS), ("detections", 1, "box_xyxy_px"), [0.0, 0.0, 5.0], "detections.1.box_xyxy_px.3"),
    (lambda: batch(DETECTIONS), ("detections", 0, "class_id"), -1, "detections.0.class_id"),
    (lambda: batch(DETECTIONS), ("detections", 0, "sensor_track_id"), -1, "detections.0.sensor_track_id"),
    (batch, ("telemetry", "hfov_deg"), 0.0, "telemetry.hfov_deg"),
    (batch, ("telemetry", "vfov_deg"), 180.5, "telemetry.vfov_deg"),
    (batch, ("telemetry", "platform_heading_deg"), 360.0, "telemetry.platform_heading_deg"),
    (batch, ("telemetry", "platform_pitch_deg"), -math.inf, "telemetry.platform_pitch_deg"),
    (batch, ("telemetry", "sensor_lat_deg"), 90.5, "telemetry.sensor_lat_deg"),
    (batch, ("telemetry", "sensor_alt_m"), math.nan, "telemetry.sensor_alt_m"),
    (batch, ("telemetry", "slant_range_m"), -1.0, "telemetry.slant_range_m"),
    (batch, ("sensor_id",), "drone 07", "sensor_id"),
    (batch, ("sensor_id",), "drone-07\n", "sensor_id"),
    (batch, ("sensor_id",), "", "sensor_id"),
    (batch, ("capture_ts_ns",), 0, "capture_ts_ns"),
    (batch, ("frame_sequence",), True, "frame_sequence"),
    (batch, ("image_width_px",), "1920", "image_width_px"),
    (batch, ("model_name",), "", "model_name"),
    (frame_meta, ("content_type",), "image/png", "content_type"),
    (frame_meta, ("ingest_ts_ns",), 1.5, "ingest_ts_ns"),
    (track, ("lat_deg",), 91.0, "lat_deg"),
    (track, ("lon_deg",), -180.5, "lon_deg"),
    (track, ("lat_deg",), math.nan, "lat_deg"),
    (track, ("velocity_east_mps",), math.inf, "velocity_east_mps"),
    (track, ("position_cov_m2",), [[1.0, 2.0], [3.0, 1.0]], "position_cov_m2"),
    (track, ("position_cov_m2",), [[1.0, 2.0], [2.0, 1.0]], "position_cov_m2"),
    (track, ("position_cov_m2",), [[-1.0, 0.0], [0.0, 1.0]], "position_cov_m2"),
    (track, ("position_cov_m2", 1, 1), math.nan, "position_cov_m2.1.1"),
    (track, ("class_probabilities",), {"person": 0.5, "vehicle": 0.2}, "class_probabilities"),
    (track, ("class_probabilities",), {"dragon": 1.0}, "class_probabilities.dragon"),
    (track, ("class_name",), "dragon", "class_name"),
    (track, ("status",), "lost", "status"),
    (track, ("border_side",), "MX", "border_side"),
    (track, ("distance_to_border_m",), -1.0, "distance_to_border_m"),
    (track, ("version",), -1, "version"),
    (track, ("sensor_ids", 1), "cam peace arch", "sensor_ids.1"),
    (event, ("confidence",), 1.01, "confidence"),
    (event, ("direction",), "NORTH", "direction"),
    (event, ("event_type",), "teleport", "event_type"),
    (event, ("event_ts_ns",), -5, "event_ts_ns"),
    (alert, ("updated_ts_ns",), T0 - 1, "updated_ts_ns"),
    (alert, ("event_ids",), [], "event_ids"),
    (alert, ("severity",), "urgent", "severity"),
    (alert, ("state",), "closed", "state"),
    (alert, ("escalation_level",), -1, "escalation_level"),
    (alert, ("title",), "", "title"),
]


@pytest.mark.parametrize(("factory", "path", "bad", "field"), REJECTED, ids=[f"{r[3]}={r[2]!r}" for r in REJECTED])
def test_invalid_field_is_rejected_naming_the_field(factory, path, bad, field):
    message = factory()
    data = json.dumps(_with(json.loads(message.to_bytes()), path, bad)).encode()  # NaN -> NaN literal
    with pytest.raises(MessageDecodeError) as error:
        type(message).from_bytes(data)
    text = str(error.value)
    assert text.startswith(f"cannot decode {type(message).__name__}: ")
    assert re.search(rf" {re.escape(field)}[.:]", text), text  # the field, or a part of it


@pytest.mark.parametrize("message", MESSAGES)
def test_wrong_schema_version_is_rejected(message: WireMessage):
    doc = json.loads(message.to_bytes())
    for version in (2, 0, "1"):
        doc["schema_version"] = version
        with pytest.raises(MessageDecodeError, match="schema_version: unsupported schema version"):
            type(message).from_bytes(json.dumps(doc).encode())


@pytest.mark.parametrize(
    "data",
    [b"", b"not json", b"\xff\xfe\x00", b"[1, 2]", b"null", b'"text"', b'{"schema_version": 1'],
    ids=["empty", "text", "binary", "array", "null", "string", "truncated"],
)
@pytest.mark.parametrize("model", [DetectionBatch, FrameMeta, TrackUpdate, BorderEvent, Alert])
def test_garbage_bytes_are_rejected(model: type[WireMessage], data: bytes):
    with pytest.raises(MessageDecodeError, match=f"^cannot decode {model.__name__}: "):
        model.from_bytes(data)


@pytest.mark.parametrize(
    ("path", "field"),
    [(("colour",), "colour"), (("detections", 0, "colour"), "detections.0.colour"), (("telemetry", "gps_week"), "telemetry.gps_week")],
)
def test_unknown_field_is_rejected(path, field):
    doc = _with(json.loads(batch(DETECTIONS).to_bytes()), path, "red")
    with pytest.raises(MessageDecodeError, match=f" {field}: Extra inputs are not permitted"):
        DetectionBatch.from_bytes(json.dumps(doc).encode())


def test_decode_error_is_an_ibet_error():
    assert issubclass(MessageDecodeError, IbetError)


def test_python_construction_validates_too():
    with pytest.raises(ValidationError, match="lat_deg"):
        track(lat_deg=math.nan)
    with pytest.raises(ValidationError, match="updated_ts_ns"):
        alert(updated_ts_ns=T0 - 1)


# as_arrays


@pytest.mark.parametrize(
    ("detections", "xyxy", "confidence", "class_id", "tracker_id"),
    [
        ((), np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)),
        (
            DETECTIONS,
            np.array([[10.0, 20.5, 110.0, 220.25], [400.0, 300.0, 400.0, 300.0]]),
            np.array([0.91, 0.0]),
            np.array([0, 2]),
            np.array([3, -1]),
        ),
    ],
    ids=["empty", "two"],
)
def test_as_arrays(detections, xyxy, confidence, class_id, tracker_id):
    arrays = batch(detections).as_arrays()
    assert len(arrays) == len(detections)
    for got, want, dtype in [
        (arrays.xyxy, xyxy, np.float64),
        (arrays.confidence, confidence, np.float64),
        (arrays.class_id, class_id, np.int64),
        (arrays.tracker_id, tracker_id, np.int64),
    ]:
        assert got.dtype == dtype
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)
        assert not got.flags.writeable


# FrameMeta in Kafka headers


@pytest.mark.parametrize(
    "meta",
    [frame_meta(), frame_meta(telemetry=None, device_frame_id=None), frame_meta(device_frame_id="", telemetry=Telemetry())],
    ids=["full", "bare", "empty-telemetry"],
)
def test_frame_meta_header_round_trip(meta: FrameMeta):
    headers = meta.to_headers()
    assert all(name.startswith("ibet.") and isinstance(value, bytes) for name, value in headers)
    assert FrameMeta.from_headers(headers) == meta
    assert FrameMeta.from_headers(tuple(headers)) == meta  # the bus hands headers over as a tuple


def test_frame_meta_headers_spell_the_contract():
    headers = dict(frame_meta().to_headers())
    assert headers["ibet.schema"] == b"1"
    assert headers["ibet.sensor_id"] == b"drone-07"
    assert headers["ibet.capture_ts_ns"] == str(T0).encode()
    assert headers["ibet.content_type"] == b"image/jpeg"
    assert b" " not in headers["ibet.telemetry"]
    assert Telemetry.model_validate_json(headers["ibet.telemetry"]) == telemetry()
    assert "ibet.telemetry" not in dict(frame_meta(telemetry=None).to_headers())


def test_frame_meta_ignores_foreign_headers():
    headers = [("traceparent", b"00-abc-def-01"), *frame_meta().to_headers(), ("ibet", b"not ours"), ("x-ibet.sequence", b"1")]
    assert FrameMeta.from_headers(headers) == frame_meta()


def _replace(name: str, value: bytes | None):
    return lambda headers: [(k, value if k == name else v) for k, v in headers]


def _drop(name: str):
    return lambda headers: [(k, v) for k, v in headers if k != name]


BAD_HEADERS = [
    (_drop("ibet.sensor_id"), "ibet.sensor_id: Field required"),
    (_drop("ibet.capture_ts_ns"), "ibet.capture_ts_ns: Field required"),
    (_drop("ibet.schema"), "ibet.schema: missing header"),
    (_drop("ibet.content_type"), "ibet.content_type: missing header"),
    (_replace("ibet.schema", b"2"), "ibet.schema: unsupported schema version"),
    (_replace("ibet.sequence", b"x"), "ibet.sequence: "),
    (_replace("ibet.sequence", b"-1"), "ibet.sequence: "),
    (_replace("ibet.width_px", b"0"), "ibet.width_px: "),
    (_replace("ibet.sensor_id", b"\xffdrone"), "ibet.sensor_id: "),
    (_replace("ibet.sensor_id", b"drone 07"), "ibet.sensor_id: "),
    (_replace("ibet.content_type", b"image/png"), "ibet.content_type: "),
    (_replace("ibet.telemetry", b"{not json"), "ibet.telemetry: "),
    (_replace("ibet.telemetry", b'{"hfov_deg": 0}'), "ibet.telemetry.hfov_deg: "),
    (_replace("ibet.telemetry", b'{"sensor_lat_deg": NaN}'), "ibet.telemetry.sensor_lat_deg: "),
    (_replace("ibet.telemetry", b'{"gps_week": 1}'), "ibet.telemetry.gps_week: "),
    (_replace("ibet.sequence", None), "ibet.sequence: empty header"),
    (lambda headers: [*headers, ("ibet.colour", b"red")], "ibet.colour: unknown header"),
    (lambda headers: [*headers, ("ibet.sequence", b"43")], "ibet.sequence: duplicate header"),
]


@pytest.mark.parametrize(("corrupt", "expected"), BAD_HEADERS, ids=[b[1] for b in BAD_HEADERS])
def test_bad_frame_headers_are_rejected_naming_the_header(corrupt, expected):
    with pytest.raises(MessageDecodeError) as error:
        FrameMeta.from_headers(corrupt(frame_meta().to_headers()))
    assert str(error.value).startswith("cannot decode FrameMeta: ")
    assert expected in str(error.value)


def _opt(strategy):
    return st.none() | strategy


def _floats(low: float, high: float, **bounds):
    return st.floats(low, high, allow_nan=False, allow_infinity=False, **bounds)


telemetries = st.builds(
    Telemetry,
    precision_ts_us=_opt(st.integers(0, 2**64 - 1)),
    platform_heading_deg=_opt(_floats(0, 360, exclude_max=True)),
    platform_pitch_deg=_opt(_floats(-90, 90)),
    platform_roll_deg=_opt(_floats(-180, 180)),
    sensor_lat_deg=_opt(_floats(-90, 90)),
    sensor_lon_deg=_opt(_floats(-180, 180)),
    sensor_alt_m=_opt(_floats(-900, 19_000)),  # MISB ST 0601 tag 75
    sensor_rel_azimuth_deg=_opt(_floats(0, 360, exclude_max=True)),
    sensor_rel_elevation_deg=_opt(_floats(-180, 180)),
    sensor_rel_roll_deg=_opt(_floats(0, 360, exclude_max=True)),
    hfov_deg=_opt(_floats(0, 180, exclude_min=True)),
    vfov_deg=_opt(_floats(0, 180, exclude_min=True)),
    frame_center_lat_deg=_opt(_floats(-90, 90)),
    frame_center_lon_deg=_opt(_floats(-180, 180)),
    frame_center_elev_m=_opt(_floats(-900, 19_000)),  # tag 25
    slant_range_m=_opt(_floats(0, 1e6)),
)

frame_metas = st.builds(
    FrameMeta,
    sensor_id=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", fullmatch=True),
    sequence=st.integers(0, 2**63),
    capture_ts_ns=st.integers(1, 2**63),
    ingest_ts_ns=st.integers(1, 2**63),
    width_px=st.integers(1, 100_000),
    height_px=st.integers(1, 100_000),
    device_frame_id=_opt(st.text(max_size=256)),
    telemetry=_opt(telemetries),
)


@settings(max_examples=300, deadline=None)
@given(frame_metas)
def test_frame_meta_header_round_trip_is_identity(meta: FrameMeta):
    assert FrameMeta.from_headers(meta.to_headers()) == meta
    assert FrameMeta.from_bytes(meta.to_bytes()) == meta

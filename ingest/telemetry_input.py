"""A pushed frame's telemetry and capture time, from JSON (MISB ST 0601 names) or raw ST 0601 KLV (pure).

The capture time is the sensor's, never the ingest clock's: an explicit ``capture_ts_ns`` wins,
else the telemetry's Precision Time Stamp (tag 2, ``precision_ts_us``); with neither the frame is
refused, since a frame without event time cannot be placed in any window downstream.

    >>> parse_telemetry('{"precision_ts_us": 1784149200000000, "hfov_deg": 25.0}', None, None).capture_ts_ns
    1784149200000000000
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from pydantic import ValidationError

from ibet.klv import KlvError, decode_st0601
from ibet.messages import Telemetry
from ingest.exceptions import BadKlvError, BadTelemetryError, MalformedUploadError

# A capture time outside these years is almost always a unit mistake (seconds or µs sent as ns).
MIN_CAPTURE_TS_NS = 946_684_800 * 10**9  # 2000-01-01T00:00:00Z
MAX_CAPTURE_TS_NS = 4_102_444_800 * 10**9  # 2100-01-01T00:00:00Z
MAX_TELEMETRY_CHARS = 16 * 1024


@dataclass(frozen=True)
class TelemetryInput:
    """What a push carries besides the JPEG: the telemetry, and the capture time taken from it."""

    telemetry: Telemetry
    capture_ts_ns: int


def parse_telemetry(telemetry_json: str | None, klv: bytes | None, capture_ts_ns: str | int | None) -> TelemetryInput:
    """Telemetry from exactly one of ``telemetry_json`` (Telemetry field names) and ``klv`` (one ST 0601
    packet), with the capture time: ``capture_ts_ns`` (ns since the epoch; also accepted as a key of
    the JSON object) if given, else ``precision_ts_us`` x 1000.

    Raises BadTelemetryError naming the field (malformed JSON, NaN, out-of-range angle or coordinate,
    missing or implausible capture time), BadKlvError (truncated, bad checksum, invalid value), or
    MalformedUploadError when both or neither telemetry forms are given.
    """
    if telemetry_json is not None and klv is not None:
        raise MalformedUploadError("send telemetry either as JSON ('telemetry') or as KLV ('klv'), not both")
    if telemetry_json is None and klv is None:
        raise MalformedUploadError("telemetry missing: send 'telemetry' (JSON, MISB ST 0601 names) or 'klv' "
                                   "(one MISB ST 0601 packet)")
    explicit = _explicit_capture_ts(capture_ts_ns)
    if klv is not None:
        telemetry = telemetry_from_klv(klv)
    else:
        telemetry, in_json = telemetry_from_json(telemetry_json or "")
        if in_json is not None and explicit is not None and in_json != explicit:
            raise BadTelemetryError("capture_ts_ns", f"given twice with different values ({explicit} in the form, "
                                                     f"{in_json} in the telemetry JSON)")
        explicit = explicit if explicit is not None else in_json
    return TelemetryInput(telemetry, capture_time_ns(telemetry, explicit))


def telemetry_from_json(text: str) -> tuple[Telemetry, int | None]:
    """Telemetry from a JSON object with Telemetry's field names (MISB ST 0601 terms), and its
    ``capture_ts_ns`` key if it has one. BadTelemetryError names the first bad field."""
    if len(text) > MAX_TELEMETRY_CHARS:
        raise BadTelemetryError("telemetry", f"{len(text)} characters; at most {MAX_TELEMETRY_CHARS}")
    try:
        data = json.loads(text)  # NaN and Infinity parse here, so that validation can name their field
    except ValueError as exc:
        raise BadTelemetryError("telemetry", f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadTelemetryError("telemetry", f"must be a JSON object, got {type(data).__name__}")
    in_json = _explicit_capture_ts(data.pop("capture_ts_ns")) if "capture_ts_ns" in data else None
    try:
        telemetry = Telemetry.model_validate(data, strict=True)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in err["loc"]) or "telemetry"
        got = err.get("input")
        shown = f" (got {got!r})" if isinstance(got, int | float | str) and not isinstance(got, bool) else ""
        problem = "unknown field (use MISB ST 0601 names, e.g. sensor_lat_deg)" if err["type"] == "extra_forbidden" \
            else err["msg"] + shown
        raise BadTelemetryError(field, problem) from None
    return telemetry, in_json


def telemetry_from_klv(packet: bytes) -> Telemetry:
    """Telemetry from exactly one MISB ST 0601 packet; BadKlvError says what is wrong with it."""
    if not packet:
        raise BadKlvError("the 'klv' part is empty; send one MISB ST 0601 packet")
    try:
        return decode_st0601(packet)
    except KlvError as exc:
        raise BadKlvError(str(exc)) from None


def capture_time_ns(telemetry: Telemetry, explicit_ns: int | None) -> int:
    """The frame's capture time: ``explicit_ns`` if given, else the Precision Time Stamp in ns."""
    if explicit_ns is not None:
        return explicit_ns
    if telemetry.precision_ts_us is None:
        raise BadTelemetryError("capture_ts_ns", "capture time missing: send capture_ts_ns or a precision time stamp")
    return _plausible("precision_ts_us", telemetry.precision_ts_us * 1000)


def _explicit_capture_ts(value: str | int | float | None) -> int | None:
    """``capture_ts_ns`` as sent (form text or JSON number) to int ns; None when absent or blank."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise BadTelemetryError("capture_ts_ns", "must be an integer of ns since the Unix epoch, got a boolean")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise BadTelemetryError("capture_ts_ns", f"must be an integer of ns since the Unix epoch, got {value!r}")
        value = int(value)
    if isinstance(value, str):
        text = value.strip()
        if not text.isascii() or not text.isdigit():
            raise BadTelemetryError("capture_ts_ns", f"must be an integer of ns since the Unix epoch, got {text[:40]!r}")
        value = int(text)
    return _plausible("capture_ts_ns", value)


def _plausible(field: str, ts_ns: int) -> int:
    if not MIN_CAPTURE_TS_NS <= ts_ns < MAX_CAPTURE_TS_NS:
        raise BadTelemetryError(field, f"{ts_ns // 1000 if field == 'precision_ts_us' else ts_ns} is not a time "
                                       "between 2000 and 2100 (ns since the Unix epoch for capture_ts_ns, µs for "
                                       "precision_ts_us): was it sent in another unit?")
    return ts_ns

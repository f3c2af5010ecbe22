"""Cursor-on-Target (CoT) 2.0 events for TAK: one marker per track, replaced by each update.

Follows the MITRE CoT event schema (Event-PUBLIC.xsd, version 2.0): ``<event version uid type
time start stale how opex>`` holding ``<point lat lon hae ce le>`` and a ``<detail>``.

Choices (see the schema's attribute documentation):

- uid ``ibet-<track_id>``: stable per track, so a TAK client replaces the marker ("the latest
  event for a uid overwrites all previous events"); without a track or event, ``ibet-<alert_id>``.
- type ``a-<affiliation>-<dimension>``: affiliation ``u`` (unknown) for a track no alert
  concerns, ``s`` (suspect) while an unresolved alert does, ``h`` (hostile) only once a person
  resolved the alert as a confirmed crossing (a human decision, never the machine's); any other
  outcome returns it to ``u``. Dimension ``G`` (ground),
  ``G-E-V`` (ground equipment, vehicle) for vehicles and ``S`` (sea surface) for boats, so filters
  on ``a-u-G``/``a-s-G`` still match vehicles.
- how: ``m-f`` (machine, fused: corroborated from several sensors), ``m-i`` (mensurated from
  imagery: one camera or drone), ``m-p`` (predicted: a coasting track). Not ``m-g``, which means
  "derived from a GPS receiver" and would tell fusing receivers the wrong error model.
- ce: the schema defines an error ce as "the one sigma point for a zero mean normal
  distribution", so ce = sqrt(largest eigenvalue of the 2x2 east/north covariance): the 1-sigma
  radius along the ellipse's major axis (see :func:`circular_error_m`; a radius holding 95 % of
  the position error is 2.4477 x ce). Unknown: 9999999.
- hae: the sector's ground height above the WGS-84 ellipsoid when given, else 9999999 (unknown,
  the CoT convention). le: 9999999, since the horizontal covariance says nothing about height.
- callsign what a TAK user reads: ``Person CA→US 14:02`` (class, direction, the event's time in
  the sector's zone when given), ``EX`` before it in an exercise; without an alert, class and track.
- opex ``e`` (exercise) or ``o`` (operations), and ``[EXERCISE]`` at the start of the remarks.
- ``<link url relation="r-u" mime remarks>`` for each of the partner's signed read links: the
  alert's page (``text/html``) and its snapshot (``image/jpeg``), so a TAK user can open them.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from alerts.formats import FormatError, parse_untrusted_xml, xml_safe
from ibet.messages import (
    Alert,
    AlertOutcome,
    AlertState,
    BorderEvent,
    Direction,
    TrackClass,
    TrackSnapshot,
    TrackStatus,
    TrackUpdate,
)

UNKNOWN = 9999999.0
"""CoT's value for an unknown hae, ce or le, in metres."""
DEFAULT_STALE_S = 120.0

_LINKS = {"alert": ("text/html", "IBET alert"), "crop": ("image/jpeg", "Snapshot: the object"),
          "frame": ("image/jpeg", "Snapshot: the whole frame")}
_TYPE = re.compile(r"\w+(-\w+)*(;[^;]*)?")  # the schema's patterns
_HOW = re.compile(r"\w(-\w+)*")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def circular_error_m(position_cov_m2: Sequence[Sequence[float]], probability: float | None = None) -> float:
    """Radius in m from a 2x2 east/north position covariance in m².

    ``probability=None``: sqrt(lambda_max), the 1-sigma radius along the major axis (CoT ce).
    ``probability=p``: sqrt(-2 ln(1 - p)) * sqrt(lambda_max), the radius of the circle around
    the p-probability error ellipse, so it holds at least p of the error (exactly p when the
    covariance is isotropic). lambda_max = (a + d)/2 + sqrt(((a - d)/2)² + b²) for [[a, b], [b, d]].
    Example: ``circular_error_m(((4, 0), (0, 9)))`` -> 3.0; with ``probability=0.95`` -> 7.34.
    """
    (a, b), (_, d) = position_cov_m2
    lam_max = (a + d) / 2 + math.hypot((a - d) / 2, b)
    sigma_m = math.sqrt(max(lam_max, 0.0))
    if probability is None:
        return sigma_m
    if not 0.0 < probability < 1.0:
        raise ValueError(f"probability must be in (0, 1), got {probability}")
    return math.sqrt(-2.0 * math.log1p(-probability)) * sigma_m


def cot_type(class_name: TrackClass, affiliation: str | bool) -> str:
    """CoT type of a track: ``a-u-G``, ``a-s-G``, ``a-h-G``, ``a-u-G-E-V`` (vehicle), ``a-s-S`` (boat) ...

    ``affiliation``: ``"u"``, ``"s"`` or ``"h"`` (True/False: suspect or unknown)."""
    if isinstance(affiliation, bool):
        affiliation = "s" if affiliation else "u"
    dimension = {TrackClass.VEHICLE: "G-E-V", TrackClass.BOAT: "S"}.get(class_name, "G")
    return f"a-{affiliation}-{dimension}"


def affiliation_of(alert: Alert | None) -> str:
    """``u`` without an alert, ``s`` while it is unresolved, ``h`` once resolved as a confirmed
    crossing, ``u`` again for any other outcome."""
    if alert is None:
        return "u"
    if alert.state is AlertState.RESOLVED:
        return "h" if alert.outcome is AlertOutcome.CONFIRMED_CROSSING else "u"
    return "s"


def callsign_of(class_name: TrackClass, track_id: str | None, alert: Alert | None, zone: tzinfo | None,
                exercise: bool) -> str:
    """``Person CA→US 14:02`` for an alert (``EX Person ...`` in an exercise), else ``person <track id>``."""
    if alert is None:
        return f"{class_name.value} {track_id}"
    arrow = {Direction.CA_TO_US: " CA→US", Direction.US_TO_CA: " US→CA"}.get(alert.direction, "")
    when = datetime.fromtimestamp((alert.event_ts_ns or alert.created_ts_ns) / 1e9, tz=UTC).astimezone(zone or UTC)
    return f"{'EX ' if exercise else ''}{class_name.value.capitalize()}{arrow} {when:%H:%M}{'' if zone else 'Z'}"


def cot_event(
    now: datetime,
    stale_s: float = DEFAULT_STALE_S,
    *,
    track: TrackUpdate | TrackSnapshot | None = None,
    event: BorderEvent | None = None,
    alert: Alert | None = None,
    ground_hae_m: float | None = None,
    exercise: bool = False,
    zone: tzinfo | None = None,
    links: Mapping[str, str] | None = None,
) -> bytes:
    """A CoT event (UTF-8 XML) for a track, a border event of it, and/or the alert about it.

    ``now`` (timezone-aware) is time and start; the marker goes stale ``stale_s`` seconds later.
    Position and ce come from ``track`` when given, else from ``event``, else from ``alert``
    (ce unknown without a covariance). The remarks hold the alert's title and summary.
    ``ground_hae_m``: ground height above the WGS-84 ellipsoid (``Sector.ground_elev_m``).
    ``zone``: the sector's time zone, for the callsign's time (UTC when None). ``links``: signed
    read links (``alert``: its page, ``crop``/``frame``: its snapshot), each a ``<link>`` with
    relation ``r-u`` (a related URL), its MIME type and remarks naming it.
    """
    if track is None and event is None and alert is None:
        raise ValueError("cot_event needs a track, an event or an alert")
    if track is not None and event is not None and track.track_id != event.track_id:
        raise ValueError(f"track {track.track_id!r} and event of track {event.track_id!r} differ")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if not (math.isfinite(stale_s) and stale_s > 0):
        raise ValueError(f"stale_s must be > 0 s, got {stale_s}")

    source = track or event or alert
    track_id = track.track_id if track else event.track_id if event else None
    class_name = track.class_name if track else event.class_name if event else TrackClass.UNKNOWN
    sensors = track.sensor_ids if track else event.sensor_ids if event else alert.sensor_ids
    if track is not None and track.status is TrackStatus.COASTING:
        how = "m-p"
    else:
        how = "m-i" if len(sensors) == 1 else "m-f"

    root = ET.Element(
        "event",
        {
            "version": "2.0",
            "uid": xml_safe(f"ibet-{track_id}" if track_id else f"ibet-{alert.alert_id}"),
            "type": cot_type(class_name, affiliation_of(alert)),
            "time": _cot_time(now),
            "start": _cot_time(now),
            "stale": _cot_time(now + timedelta(seconds=stale_s)),
            "how": how,
            "opex": "e" if exercise else "o",
        },
    )
    ET.SubElement(
        root,
        "point",
        {
            "lat": f"{source.lat_deg:.7f}",
            "lon": f"{source.lon_deg:.7f}",
            "hae": f"{UNKNOWN if ground_hae_m is None else ground_hae_m:.1f}",
            "ce": f"{circular_error_m(track.position_cov_m2) if track else UNKNOWN:.1f}",
            "le": f"{UNKNOWN:.1f}",
        },
    )
    detail = ET.SubElement(root, "detail")
    callsign = callsign_of(class_name, track_id or (alert.alert_id if alert else None), alert, zone, exercise)
    ET.SubElement(detail, "contact", {"callsign": xml_safe(callsign)})
    if track is not None:
        course_deg = math.degrees(math.atan2(track.velocity_east_mps, track.velocity_north_mps)) % 360.0
        speed_mps = math.hypot(track.velocity_east_mps, track.velocity_north_mps)
        ET.SubElement(detail, "track", {"course": f"{course_deg:.1f}", "speed": f"{speed_mps:.2f}"})
    for name, url in (links or {}).items():
        mime, what = _LINKS.get(name, ("text/html", name))
        ET.SubElement(detail, "link", {"url": xml_safe(url), "relation": "r-u", "mime": mime, "remarks": what})
    remarks = ET.SubElement(detail, "remarks", {"source": "ibet", "time": _cot_time(now)})
    remarks.text = xml_safe(("[EXERCISE] " if exercise else "") + _remarks(track, event, alert))
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)


def parse_cot(data: bytes) -> dict[str, Any]:
    """Parse and check a CoT event; FormatError names the first bad field.

    Returns uid, type, how, opex (or None), version (float), time/start/stale (aware UTC
    datetimes), lat/lon (deg), hae/ce/le (m, 9999999 = unknown), and from the detail
    callsign, course_deg, speed_mps and remarks (None when absent), and links (url, relation,
    mime, remarks of each ``<link>``).
    """
    root = parse_untrusted_xml(data, "CoT")
    if root.tag != "event":
        raise FormatError(f"CoT: root element is <{root.tag}>, not <event>")
    out: dict[str, Any] = {"version": _number(root, "version", "event")}
    if out["version"] < 2:
        raise FormatError(f"CoT: event version {out['version']} is before 2.0")
    for name, pattern in (("uid", None), ("type", _TYPE), ("how", _HOW)):
        value = root.get(name)
        if not value or (pattern is not None and not pattern.fullmatch(value)):
            raise FormatError(f"CoT: event {name} {value!r} is missing or malformed")
        out[name] = value
    out["opex"] = root.get("opex")
    for name in ("time", "start", "stale"):
        out[name] = _parse_time(root.get(name), name)
    if out["stale"] < out["start"]:
        raise FormatError("CoT: stale is before start")
    point = root.find("point")
    if point is None:
        raise FormatError("CoT: <point> is missing")
    for name in ("lat", "lon", "hae", "ce", "le"):
        out[name] = _number(point, name, "point")
    if not (-90 <= out["lat"] <= 90 and -180 <= out["lon"] <= 180):
        raise FormatError(f"CoT: point lat/lon {out['lat']}, {out['lon']} out of range")
    if out["ce"] < 0 or out["le"] < 0:
        raise FormatError("CoT: point ce and le must be >= 0")
    contact, track, remarks = (root.find(f"detail/{tag}") for tag in ("contact", "track", "remarks"))
    out["callsign"] = contact.get("callsign") if contact is not None else None
    out["course_deg"] = _number(track, "course", "track") if track is not None else None
    out["speed_mps"] = _number(track, "speed", "track") if track is not None else None
    out["remarks"] = (remarks.text or "") if remarks is not None else None
    out["links"] = [{k: link.get(k) for k in ("url", "relation", "mime", "remarks")} for link in root.findall("detail/link")]
    return out


def _remarks(track: TrackUpdate | TrackSnapshot | None, event: BorderEvent | None, alert: Alert | None) -> str:
    if alert is not None:
        return f"{alert.severity.value.upper()} ({alert.state.value}) {alert.title}: {alert.summary}"
    if event is not None:
        return f"{event.event_type.value} {event.direction.value}, confidence {event.confidence:.2f}"
    return f"{track.status.value} track, {len(track.sensor_ids)} sensor(s)"


def _cot_time(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds and Z: ``2024-06-10T06:13:20.123Z``."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _parse_time(text: str | None, name: str) -> datetime:
    if text is None or not _TIME.fullmatch(text):
        raise FormatError(f"CoT: event {name} {text!r} is not CCYY-MM-DDThh:mm:ss[.s]Z")
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise FormatError(f"CoT: event {name} {text!r}: {exc}") from exc


def _number(element: ET.Element, name: str, where: str) -> float:
    text = element.get(name)
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise FormatError(f"CoT: {where} {name} {text!r} is missing or not a number") from None
    if not math.isfinite(value):
        raise FormatError(f"CoT: {where} {name} {text!r} is not finite")
    return value

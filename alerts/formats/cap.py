"""OASIS Common Alerting Protocol 1.2 messages for partners that ingest CAP.

Element names, order and code values follow "Common Alerting Protocol Version 1.2" (OASIS
Standard, 1 July 2010), namespace ``urn:oasis:names:tc:emergency:cap:1.2``. Date-times carry a
numeric offset (UTC as ``-00:00``; the standard forbids ``Z``); identifier and sender hold no
space, comma, ``<`` or ``&``; a circle is ``"lat,lon radius_km"``; references are
space-separated ``sender,identifier,sent`` triples.

Mappings (an alert is about a *possible* crossing seen by machines; humans confirm it):

- identifier ``<alert_id>.<msgtype>.<version>`` (:func:`alerts.formats.alert_version`); sent is
  the alert's ``updated_ts_ns``, so a retried message is byte-identical.
- status ``Exercise`` in exercise mode (with a note), else ``Actual``; scope ``Restricted``
  (partner agencies only); incidents = the alert id, so every message of one alert groups.
- category ``Security``; event from the border event type ("Possible border crossing" ...).
- severity: critical -> Severe, high -> Moderate, medium and low -> Minor. Never Extreme
  ("extraordinary threat to life or property" is not something a sensor can tell).
- urgency: Past for a Cancel or a resolved alert; Immediate for a crossing or a critical/high
  alert; Expected for medium; Future for low.
- certainty from the event's confidence: Likely when >= 0.5, else Possible; Unknown without an
  event. Never Observed: the crossing is inferred from tracks until an operator confirms it. The
  event comes from ``event`` when given, else from what the alert carries (``Alert.event_type``,
  ``Alert.confidence``), so the channel needs no lookup.
- expires ``expires_s`` after the message is sent; each version of the alert renews it.
- a resolved alert says how it ended: parameter ``ibetOutcome`` (confirmed_crossing, false_alarm,
  lawful, unresolved) on its Update or Cancel.
- responseType Assess (AllClear for a Cancel or a resolved alert).
- two ``<info>`` blocks, ``en-CA`` and ``fr-CA`` (RCMP and CBSA are federal institutions under
  the Official Languages Act), with the same codes, area and parameters. The French headline and
  description are composed from the alert's fields with fixed wording (:data:`FRENCH`), never
  machine-translated from the English text.
- the partner's signed links (when given): ``<web>`` the alert's page; one ``<resource>`` per
  snapshot image (crop, frame; ``image/jpeg``).
- area: a circle around the alert's position, radius ``radius_m`` (pass the track's 95 %
  radius, ``cot.circular_error_m(track.position_cov_m2, 0.95)``; :func:`area_radius_m` takes it
  from the track the alert carries), at least 10 m.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from alerts.formats import FormatError, alert_version, first_version, parse_untrusted_xml, xml_safe
from alerts.formats.cot import circular_error_m
from ibet.messages import Alert, AlertState, BorderEvent, BorderEventType, Direction, Severity, TrackClass

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
MsgType = Literal["Alert", "Update", "Cancel"]
Reference = tuple[str, str, str]
"""(sender, identifier, sent) of an earlier CAP message."""
DEFAULT_RADIUS_M = 250.0
MIN_RADIUS_M = 10.0
DEFAULT_EXPIRES_S = 3600.0

_SEVERITY = {Severity.CRITICAL: "Severe", Severity.HIGH: "Moderate", Severity.MEDIUM: "Minor", Severity.LOW: "Minor"}
_URGENCY = {Severity.CRITICAL: "Immediate", Severity.HIGH: "Immediate", Severity.MEDIUM: "Expected", Severity.LOW: "Future"}
_EVENT = {
    BorderEventType.CROSSING: "Possible border crossing",
    BorderEventType.APPROACH: "Approach to the border",
    BorderEventType.LOITERING: "Loitering near the border",
    BorderEventType.LOST_NEAR_BORDER: "Track lost near the border",
}


@dataclass(frozen=True)
class Wording:
    """What an ``<info>`` block says in one language; the codes (urgency, severity, ...) stay CAP's."""

    language: str
    event: Mapping[BorderEventType | None, str]
    sender_name: str
    what: Mapping[BorderEventType, str]
    direction: Mapping[Direction, str]
    classes: Mapping[TrackClass, str]
    plurals: Mapping[TrackClass, str]
    states: Mapping[AlertState, str]
    exercise: str
    exercise_note: str
    area: str  # format with sector, lat, lon
    labels: tuple[str, str, str, str, str]  # sector, direction, position, state, confidence
    resources: Mapping[str, str]
    decimal: str


ENGLISH = Wording(
    language="en-CA",
    event={**_EVENT, None: "Border alert"},
    sender_name="IBET sensor-fusion pipeline",
    what={BorderEventType.CROSSING: "Crossing", BorderEventType.APPROACH: "Approach",
          BorderEventType.LOITERING: "Loitering", BorderEventType.LOST_NEAR_BORDER: "Lost near the border"},
    direction={Direction.CA_TO_US: "from Canada into the United States",
               Direction.US_TO_CA: "from the United States into Canada", Direction.NONE: "none"},
    classes={c: c.value for c in TrackClass},
    plurals={TrackClass.PERSON: "people", TrackClass.VEHICLE: "vehicles", TrackClass.BOAT: "boats",
             TrackClass.ANIMAL: "animals", TrackClass.UNKNOWN: "unknown objects"},
    states={s: s.value for s in AlertState},
    exercise="EXERCISE",
    exercise_note="EXERCISE - an IBET scenario run, not a real event.",
    area="IBET sector {sector}, around {lat:.5f}, {lon:.5f}",
    labels=("Sector", "Direction", "Position", "State", "Confidence"),
    resources={"crop": "Snapshot: the object (crop)", "frame": "Snapshot: the whole frame"},
    decimal=".",
)
"""The English block: headline and description are the alert's own title and summary."""

FRENCH = Wording(
    language="fr-CA",
    event={BorderEventType.CROSSING: "Franchissement possible de la frontière",
           BorderEventType.APPROACH: "Approche de la frontière",
           BorderEventType.LOITERING: "Présence prolongée près de la frontière",
           BorderEventType.LOST_NEAR_BORDER: "Piste perdue près de la frontière",
           None: "Alerte frontalière"},
    sender_name="Chaîne de fusion de capteurs des EIPF",
    what={BorderEventType.CROSSING: "Franchissement", BorderEventType.APPROACH: "Approche",
          BorderEventType.LOITERING: "Présence prolongée", BorderEventType.LOST_NEAR_BORDER: "Piste perdue"},
    direction={Direction.CA_TO_US: "du Canada vers les États-Unis",
               Direction.US_TO_CA: "des États-Unis vers le Canada", Direction.NONE: "aucune"},
    classes={TrackClass.PERSON: "personne", TrackClass.VEHICLE: "véhicule", TrackClass.BOAT: "embarcation",
             TrackClass.ANIMAL: "animal", TrackClass.UNKNOWN: "objet non identifié"},
    plurals={TrackClass.PERSON: "personnes", TrackClass.VEHICLE: "véhicules", TrackClass.BOAT: "embarcations",
             TrackClass.ANIMAL: "animaux", TrackClass.UNKNOWN: "objets non identifiés"},
    states={AlertState.OPEN: "ouverte", AlertState.ACKNOWLEDGED: "prise en charge",
            AlertState.ESCALATED: "transmise au niveau supérieur", AlertState.RESOLVED: "close"},
    exercise="EXERCICE",
    exercise_note="EXERCICE - un scénario des EIPF, pas un événement réel.",
    area="Secteur EIPF {sector}, aux environs de {lat:.5f}, {lon:.5f}",
    labels=("Secteur", "Direction", "Position", "État", "Confiance"),
    resources={"crop": "Image : l'objet (recadrage)", "frame": "Image : le cadre complet"},
    decimal=",",
)
"""The French block (Official Languages Act): composed from the alert's fields, not translated text.
EIPF: Équipes intégrées de la police des frontières, the French name of the IBETs."""

_CODES = {
    "status": {"Actual", "Exercise", "System", "Test", "Draft"},
    "msgType": {"Alert", "Update", "Cancel", "Ack", "Error"},
    "scope": {"Public", "Restricted", "Private"},
    "category": {"Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra", "CBRNE", "Other"},
    "urgency": {"Immediate", "Expected", "Future", "Past", "Unknown"},
    "severity": {"Extreme", "Severe", "Moderate", "Minor", "Unknown"},
    "certainty": {"Observed", "Likely", "Possible", "Unlikely", "Unknown"},
}
_CAP_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[-+]\d\d:\d\d")
_TOKEN = re.compile(r"[^\s,<&]+")  # identifier and sender
_CIRCLE = re.compile(r"\s*(-?\d+(?:\.\d+)?),(-?\d+(?:\.\d+)?)\s+(\d+(?:\.\d+)?)\s*")


def cap_identifier(alert: Alert, msg_type: MsgType, version: str | None = None) -> str:
    """``<alert_id>.<msg type, lower case>.<version>``; version defaults to the alert's current one."""
    return f"{alert.alert_id}.{msg_type.lower()}.{version or alert_version(alert)}"


def cap_time(ts_ns: int) -> str:
    """CAP date-time of a ns timestamp, whole seconds, UTC as ``-00:00``: ``2024-06-10T06:13:20-00:00``."""
    return datetime.fromtimestamp(ts_ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S") + "-00:00"


def first_reference(alert: Alert, sender: str) -> Reference:
    """The reference to the first CAP message of this alert (its Alert in its first version)."""
    return sender, cap_identifier(alert, "Alert", first_version(alert)), cap_time(alert.created_ts_ns)


def cap_alert(
    alert: Alert,
    sender: str,
    exercise: bool = False,
    msg_type: MsgType = "Alert",
    references: Sequence[Reference] | None = None,
    *,
    event: BorderEvent | None = None,
    radius_m: float = DEFAULT_RADIUS_M,
    expires_s: float = DEFAULT_EXPIRES_S,
    links: Mapping[str, str] | None = None,
) -> bytes:
    """CAP 1.2 XML (UTF-8) for an alert, or an Update/Cancel of it.

    ``sender``: the sender id agreed with the partner (no spaces or commas). ``references``:
    the earlier messages an Update or Cancel refers to; by default the alert's first message
    (:func:`first_reference`). ``event``: the border event, for the event name and certainty.
    ``radius_m``: radius of the area circle in m. ``links``: the partner's signed read links
    (``alert`` becomes ``<web>``, ``crop`` and ``frame`` become ``<resource>``s). One ``<info>`` in
    English (en-CA) and one in French (fr-CA). Mappings: see the module docstring.
    """
    if msg_type not in ("Alert", "Update", "Cancel"):
        raise ValueError(f"msg_type must be Alert, Update or Cancel, got {msg_type!r}")
    _check_token(sender, "sender")
    if msg_type != "Alert" and not references:
        references = [first_reference(alert, sender)]
    for ref_sender, ref_id, ref_sent in references or ():
        _check_token(ref_sender, "reference sender")
        _check_token(ref_id, "reference identifier")
        if not _CAP_TIME.fullmatch(ref_sent):
            raise ValueError(f"reference sent {ref_sent!r} is not a CAP date-time")
    over = msg_type == "Cancel" or alert.state is AlertState.RESOLVED

    root = ET.Element(_q("alert"))
    _add(root, "identifier", cap_identifier(alert, msg_type))
    _add(root, "sender", sender)
    _add(root, "sent", cap_time(alert.updated_ts_ns))
    _add(root, "status", "Exercise" if exercise else "Actual")
    _add(root, "msgType", msg_type)
    _add(root, "scope", "Restricted")
    _add(root, "restriction", "IBET partner agencies only; law enforcement sensitive")
    if exercise:
        _add(root, "note", "Exercise: an IBET scenario run, not a real event.")
    if references:
        _add(root, "references", " ".join(",".join(ref) for ref in references))
    _add(root, "incidents", alert.alert_id)

    event_type = event.event_type if event is not None else alert.event_type
    confidence = event.confidence if event is not None else alert.confidence
    for wording in (ENGLISH, FRENCH):
        _info_block(root, wording, alert, over, event_type, confidence, radius_m, expires_s, links or {}, exercise)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True, default_namespace=CAP_NS)


def _info_block(root: ET.Element, wording: Wording, alert: Alert, over: bool, event_type: BorderEventType | None,
                confidence: float | None, radius_m: float, expires_s: float, links: Mapping[str, str],
                exercise: bool) -> None:
    info = ET.SubElement(root, _q("info"))
    _add(info, "language", wording.language)
    _add(info, "category", "Security")
    _add(info, "event", wording.event[event_type])
    _add(info, "responseType", "AllClear" if over else "Assess")
    crossing = event_type is BorderEventType.CROSSING
    _add(info, "urgency", "Past" if over else "Immediate" if crossing else _URGENCY[alert.severity])
    _add(info, "severity", _SEVERITY[alert.severity])
    _add(info, "certainty", "Unknown" if confidence is None else "Likely" if confidence >= 0.5 else "Possible")
    _add(info, "effective", cap_time(alert.updated_ts_ns))
    _add(info, "onset", cap_time(alert.event_ts_ns or alert.created_ts_ns))
    _add(info, "expires", cap_time(alert.updated_ts_ns + int(expires_s * 1e9)))
    _add(info, "senderName", wording.sender_name)
    headline, description = (alert.title, _description(alert)) if wording is ENGLISH else \
        _composed(wording, alert, event_type, confidence, exercise)
    _add(info, "headline", headline if len(headline) <= 160 else headline[:159] + "\u2026")
    _add(info, "description", description)
    if links.get("alert"):
        _add(info, "web", links["alert"])
    for name, value in (
        ("ibetAlertId", alert.alert_id),
        ("ibetAlertState", alert.state.value),
        ("ibetSector", alert.sector_id),
        ("ibetDirection", alert.direction.value),
        ("ibetEscalationLevel", str(alert.escalation_level)),
        *((("ibetOutcome", alert.outcome.value),) if alert.outcome is not None else ()),
        *((("ibetTrackId", alert.track.track_id),) if alert.track is not None else ()),
    ):
        parameter = ET.SubElement(info, _q("parameter"))
        _add(parameter, "valueName", name)
        _add(parameter, "value", value)
    for which in ("crop", "frame"):
        if links.get(which):
            resource = ET.SubElement(info, _q("resource"))
            _add(resource, "resourceDesc", wording.resources[which])
            _add(resource, "mimeType", "image/jpeg")
            _add(resource, "uri", links[which])
    area = ET.SubElement(info, _q("area"))
    _add(area, "areaDesc", wording.area.format(sector=alert.sector_id, lat=alert.lat_deg, lon=alert.lon_deg))
    _add(area, "circle", f"{alert.lat_deg:.6f},{alert.lon_deg:.6f} {max(radius_m, MIN_RADIUS_M) / 1000:.3f}")


def _composed(wording: Wording, alert: Alert, event_type: BorderEventType | None, confidence: float | None,
              exercise: bool) -> tuple[str, str]:
    """Headline and description in ``wording``'s language, from the alert's fields (times in UTC)."""
    arrow = {Direction.CA_TO_US: " CA→US", Direction.US_TO_CA: " US→CA"}.get(alert.direction, "")
    what = wording.what[event_type] if event_type is not None else wording.event[None]
    thing = wording.classes[alert.track.class_name if alert.track is not None else TrackClass.UNKNOWN]
    if alert.group_size > 1:
        thing = f"{alert.group_size} {wording.plurals[alert.track.class_name if alert.track else TrackClass.UNKNOWN]}"
    headline = f"{'[' + wording.exercise + '] ' if exercise else ''}{what}{arrow} : {thing}, {alert.sector_id}"
    when = datetime.fromtimestamp((alert.event_ts_ns or alert.created_ts_ns) / 1e9, tz=UTC)
    sector, direction, position, state, sure = wording.labels
    lines = [
        f"{what} ({thing}), {when:%Y-%m-%d %H:%M:%S} UTC.",
        f"{sector} : {alert.sector_id}",
        f"{direction} : {wording.direction[alert.direction]}",
        f"{position} : {alert.lat_deg:.6f}, {alert.lon_deg:.6f} (WGS-84)",
        f"{state} : {wording.states[alert.state]}",
    ]
    if confidence is not None:
        lines.append(f"{sure} : {confidence:.2f}".replace(".", wording.decimal))
    if exercise:
        lines.insert(0, wording.exercise_note)
    return headline, "\n".join(lines)


def area_radius_m(alert: Alert, probability: float = 0.95) -> float:
    """Radius (m) of the circle holding ``probability`` of the alert's track's position error, or the
    default radius when the alert carries no track."""
    return circular_error_m(alert.track.position_cov_m2, probability) if alert.track is not None else DEFAULT_RADIUS_M


def parse_cap(data: bytes) -> dict[str, Any]:
    """Parse and check a CAP 1.2 message; FormatError names the first missing or bad element.

    Returns identifier, sender, sent, status, msg_type, scope, restriction, note, incidents,
    references (list of (sender, identifier, sent)), reference (this message's own triple) and
    info: a list of dicts with language, category (list), event, urgency, severity, certainty,
    response_types, headline, description, web, parameters (dict), resources (desc, mime_type,
    uri) and areas (area_desc, circles as (lat_deg, lon_deg, radius_km)).
    """
    root = parse_untrusted_xml(data, "CAP")
    if root.tag != _q("alert"):
        raise FormatError(f"CAP: root element is {root.tag}, not <alert> in namespace {CAP_NS}")
    out: dict[str, Any] = {}
    for name in ("identifier", "sender", "sent", "status", "msgType", "scope"):
        out[name] = _required(root, name)
    for name in ("identifier", "sender"):
        if not _TOKEN.fullmatch(out[name]):
            raise FormatError(f"CAP: {name} {out[name]!r} contains a space, comma, < or &")
    if not _CAP_TIME.fullmatch(out["sent"]):
        raise FormatError(f"CAP: sent {out['sent']!r} is not YYYY-MM-DDThh:mm:ss+hh:mm")
    for name in ("status", "msgType", "scope"):
        _check_code(name, out[name])
    out["msg_type"] = out.pop("msgType")
    out["restriction"], out["note"], out["incidents"] = (_text(root, n) for n in ("restriction", "note", "incidents"))
    if out["scope"] == "Restricted" and not out["restriction"]:
        raise FormatError("CAP: scope Restricted needs a <restriction>")
    out["references"] = [_reference(item) for item in (_text(root, "references") or "").split()]
    out["reference"] = (out["sender"], out["identifier"], out["sent"])
    out["info"] = [_info(info) for info in root.findall(_q("info"))]
    return out


def _info(info: ET.Element) -> dict[str, Any]:
    out: dict[str, Any] = {"category": [c.text or "" for c in info.findall(_q("category"))]}
    if not out["category"]:
        raise FormatError("CAP: info has no <category>")
    for category in out["category"]:
        _check_code("category", category)
    for name in ("event", "urgency", "severity", "certainty"):
        out[name] = _required(info, name)
    for name in ("urgency", "severity", "certainty"):
        _check_code(name, out[name])
    out["response_types"] = [r.text for r in info.findall(_q("responseType"))]
    out["language"] = _text(info, "language") or "en-US"  # CAP's default
    out["headline"], out["description"] = _text(info, "headline"), _text(info, "description")
    out["web"] = _text(info, "web")
    out["resources"] = [{"desc": _required(r, "resourceDesc"), "mime_type": _required(r, "mimeType"),
                         "uri": _text(r, "uri")} for r in info.findall(_q("resource"))]
    out["parameters"] = {_required(p, "valueName"): _required(p, "value") for p in info.findall(_q("parameter"))}
    out["areas"] = []
    for area in info.findall(_q("area")):
        circles = []
        for circle in area.findall(_q("circle")):
            match = _CIRCLE.fullmatch(circle.text or "")
            if not match:
                raise FormatError(f"CAP: circle {circle.text!r} is not 'lat,lon radius_km'")
            circles.append(tuple(float(x) for x in match.groups()))
        out["areas"].append({"area_desc": _required(area, "areaDesc"), "circles": circles})
    return out


def _description(alert: Alert) -> str:
    return (
        f"{alert.summary}\nSector: {alert.sector_id}\nDirection: {alert.direction.value}\n"
        f"Position: {alert.lat_deg:.6f}, {alert.lon_deg:.6f} (WGS-84)\nState: {alert.state.value}"
    )


def _q(name: str) -> str:
    return f"{{{CAP_NS}}}{name}"


def _add(parent: ET.Element, name: str, text: str) -> None:
    ET.SubElement(parent, _q(name)).text = xml_safe(text)


def _text(parent: ET.Element, name: str) -> str | None:
    element = parent.find(_q(name))
    return None if element is None else (element.text or "").strip()


def _required(parent: ET.Element, name: str) -> str:
    value = _text(parent, name)
    if not value:
        raise FormatError(f"CAP: required <{name}> is missing or empty")
    return value


def _check_code(name: str, value: str) -> None:
    if value not in _CODES[name]:
        raise FormatError(f"CAP: {name} {value!r} is not one of {sorted(_CODES[name])}")


def _check_token(value: str, name: str) -> None:
    if not _TOKEN.fullmatch(value or ""):
        raise ValueError(f"CAP {name} {value!r} must be non-empty without spaces, commas, < or &")


def _reference(item: str) -> Reference:
    parts = item.split(",")
    if len(parts) != 3 or not _CAP_TIME.fullmatch(parts[2]):
        raise FormatError(f"CAP: reference {item!r} is not sender,identifier,sent")
    return parts[0], parts[1], parts[2]

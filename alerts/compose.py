"""Alerts as partners read them: built from a border event (or a lost feed) and its routing. Pure.

:func:`new_alert` and :func:`updated_alert` turn a rules :class:`~alerts.rules.Decision` and a
:class:`~alerts.routing.Routing` into the :class:`~ibet.messages.Alert` the outbox records and the
bus carries; :func:`deliveries_for` lists the outbox rows of one alert version, one per routed
partner and channel the partner has. The delivery key ends with the alert's version, so each state
change (a crossing after an approach, an escalation, an acknowledgement) is a new delivery, and a
retry of the same version is the same key: the partner de-duplicates on it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from zoneinfo import ZoneInfo

from alerts.formats import alert_version
from alerts.routing import SEVERITY_OF_TYPE, SEVERITY_RANK, Routing, instant_of
from ibet.exceptions import IbetError
from ibet.ids import alert_id as alert_id_of
from ibet.ids import delivery_key
from ibet.messages import (
    Alert,
    AlertState,
    BorderEvent,
    BorderEventType,
    Direction,
    SensorHealthEvent,
    Severity,
    TrackClass,
)
from ibet.registry import Partner, Registry

CHANNELS = ("webhook", "email", "cot", "cap")
"""Every channel an alert can go out on (Kafka is not a delivery: every alert is on the bus)."""

_WHAT = {
    BorderEventType.CROSSING: "crossed the border",
    BorderEventType.APPROACH: "approached the border",
    BorderEventType.LOITERING: "is loitering near the border",
    BorderEventType.LOST_NEAR_BORDER: "was lost near the border",
}
_DIRECTION = {Direction.CA_TO_US: "from Canada into the United States",
              Direction.US_TO_CA: "from the United States into Canada", Direction.NONE: ""}
_PLURAL = {TrackClass.PERSON: "people", TrackClass.VEHICLE: "vehicles", TrackClass.BOAT: "boats",
           TrackClass.ANIMAL: "animals", TrackClass.UNKNOWN: "unknown objects"}
_ARROW = {Direction.CA_TO_US: " CA→US", Direction.US_TO_CA: " US→CA", Direction.NONE: ""}


class ComposeError(IbetError):
    """An alert cannot be built (no position known for a sensor-health alert)."""


def partner_channels(partner: Partner, enabled: Collection[str] = CHANNELS) -> tuple[str, ...]:
    """The channels of ``enabled`` that ``partner`` has an endpoint for, in :data:`CHANNELS` order."""
    c = partner.contacts
    have = {"webhook": c.webhook_url is not None, "email": bool(c.email), "cot": c.tak_endpoint is not None,
            "cap": c.cap_url is not None}
    return tuple(ch for ch in CHANNELS if ch in enabled and have[ch])


def deliveries_for(alert: Alert, registry: Registry, enabled: Collection[str] = CHANNELS,
                   partner_ids: Sequence[str] | None = None) -> list[tuple[str, str, str]]:
    """``(partner_id, channel, key)`` of each delivery of this alert version; ``partner_ids`` defaults to
    the routed ones. Key: ``dlv-<16 hex of alert, partner, channel>.<alert version>``."""
    version = alert_version(alert)
    if alert.kind == "sensor_health":  # a TAK marker would show a suspect at the camera
        enabled = [c for c in enabled if c != "cot"]
    rows = []
    for partner_id in alert.routed_partner_ids if partner_ids is None else partner_ids:
        for channel in partner_channels(registry.partner(partner_id), enabled):
            rows.append((partner_id, channel, f"{delivery_key(alert.alert_id, partner_id, channel)}.{version}"))
    return rows


def new_alert(event: BorderEvent, routing: Routing, registry: Registry, *, exercise: bool = False) -> Alert:
    """The first version of the alert ``event`` raises (state open), routed as ``routing`` says."""
    severity = SEVERITY_OF_TYPE[event.event_type]
    return Alert(
        alert_id=alert_id_of(event.event_id), event_ids=(event.event_id,), sector_id=event.sector_id,
        severity=severity, state=AlertState.OPEN, created_ts_ns=event.event_ts_ns, updated_ts_ns=event.event_ts_ns,
        title=title_of(event, registry), summary=summary_of(event, routing, registry, exercise),
        direction=event.direction, lat_deg=event.lat_deg, lon_deg=event.lon_deg,
        lead_partner_id=routing.lead_partner_id, routed_partner_ids=routing.partner_ids,
        escalation_level=routing.level, exercise=exercise, sensor_ids=event.sensor_ids, track_ids=(event.track_id,),
        group_size=event.group_size, **event_fields(event),
    )


def event_fields(event: BorderEvent) -> dict:
    """What an alert carries of its (most severe) event: type, time, confidence, the track at it and
    its snapshot (the first sensor track's crop and frame)."""
    return dict(event_type=event.event_type, event_ts_ns=event.event_ts_ns, confidence=event.confidence,
                track=event.track, evidence_refs=event.evidence_refs[:2])


def updated_alert(current: Alert, event: BorderEvent, routing: Routing, registry: Registry) -> Alert:
    """``current`` grown by a related event of the same track (an approach, then the crossing) or of
    another member of its group (the alert then counts them: "3 people").

    The more severe event sets the title, summary, place and direction; the routing adds partners
    (never removes one that was already told); state and escalation stay as they are.
    """
    if event.event_id in current.event_ids:
        return current
    severity = SEVERITY_OF_TYPE[event.event_type]
    worse = SEVERITY_RANK[severity] >= SEVERITY_RANK[current.severity]
    partners = current.routed_partner_ids + tuple(p for p in routing.partner_ids if p not in current.routed_partner_ids)
    fields: dict = dict(
        event_ids=current.event_ids + (event.event_id,),
        updated_ts_ns=max(current.updated_ts_ns, event.event_ts_ns),
        routed_partner_ids=partners,
        sensor_ids=tuple(dict.fromkeys(current.sensor_ids + event.sensor_ids)),
        track_ids=tuple(dict.fromkeys(current.track_ids + (event.track_id,))),
        # a member of the group joins: the alert is about all the members seen so far
        group_size=max(current.group_size, event.group_size,
                       len(set(current.track_ids) | {event.track_id}) if event.group_id is not None else 1),
    )
    if worse:
        fields.update(severity=severity, title=title_of(event, registry, fields["group_size"]),
                      summary=summary_of(event, routing, registry, current.exercise),
                      direction=event.direction, lat_deg=event.lat_deg, lon_deg=event.lon_deg,
                      lead_partner_id=current.lead_partner_id or routing.lead_partner_id, **event_fields(event))
    if not worse and fields["group_size"] != current.group_size and current.event_type is not None:
        # more members seen: the title counts them (its event stays the most severe one)
        fields["title"] = re.sub(r": (\d+ \w+|\w+), ", f": {fields['group_size']} {_PLURAL[event.class_name]}, ",
                                 current.title, count=1)
    if not fields.get("evidence_refs"):  # a snapshot once taken stays until a worse event brings its own
        fields["evidence_refs"] = current.evidence_refs or event.evidence_refs[:2]
    return current.model_copy(update=fields)


def escalated_alert(current: Alert, routing: Routing, now_ns: int) -> Alert:
    """``current`` at ``routing.level``, told to the routing's partners as well (state unchanged)."""
    partners = current.routed_partner_ids + tuple(p for p in routing.partner_ids if p not in current.routed_partner_ids)
    return current.model_copy(update=dict(escalation_level=routing.level, routed_partner_ids=partners,
                                          updated_ts_ns=max(current.updated_ts_ns + 1, now_ns),
                                          lead_partner_id=current.lead_partner_id or routing.lead_partner_id))


def health_alert(event: SensorHealthEvent, routing: Routing, registry: Registry, *, exercise: bool = False) -> Alert:
    """A sensor-health alert for a lost feed, for the sector's duty desk (severity medium)."""
    sensor = registry.sensor(event.sensor_id)
    lat, lon = sensor_position(registry, event.sensor_id)
    zone = ZoneInfo(registry.sector(event.sector_id).timezone)
    when = instant_of(event.event_ts_ns)
    source_id = f"health:{event.sensor_id}:{event.event_ts_ns}"
    summary = (f"{'EXERCISE - ' if exercise else ''}No frame from {sensor.kind.replace('_', ' ')} {sensor.id} "
               f"({sensor.owner_agency}) for {event.silent_s:.0f} s (expected every {event.expected_interval_s:g} s), "
               f"declared lost at {when.astimezone(zone):%H:%M:%S %Z} ({when:%H:%M:%S} UTC). "
               f"{f'Cause: {event.reason}. ' if event.reason else ''}"
               f"The sector has a blind spot until it is restored.")
    return Alert(
        alert_id=alert_id_of(source_id), event_ids=(source_id,), sector_id=event.sector_id, severity=Severity.MEDIUM,
        state=AlertState.OPEN, created_ts_ns=event.event_ts_ns, updated_ts_ns=event.event_ts_ns,
        title=f"Feed lost: {sensor.id}", summary=summary, direction=Direction.NONE, lat_deg=lat, lon_deg=lon,
        lead_partner_id=routing.lead_partner_id, routed_partner_ids=routing.partner_ids,
        escalation_level=routing.level, exercise=exercise, kind="sensor_health", sensor_ids=(sensor.id,),
    )


def sensor_position(registry: Registry, sensor_id: str) -> tuple[float, float]:
    """Where a sensor is, for a health alert: a fixed camera's surveyed pose, else the mean of its
    sector's fixed cameras (a drone's last position is not in the health event)."""
    sensor = registry.sensor(sensor_id)
    if sensor.pose is not None:
        return sensor.pose.lat_deg, sensor.pose.lon_deg
    poses = [s.pose for s in registry.sensors_in(sensor.sector_id) if s.pose is not None]
    if not poses:
        raise ComposeError(f"no position for sensor {sensor_id}: it has no pose and sector {sensor.sector_id} "
                           "has no fixed camera")
    return sum(p.lat_deg for p in poses) / len(poses), sum(p.lon_deg for p in poses) / len(poses)


def title_of(event: BorderEvent, registry: Registry, group_size: int | None = None) -> str:
    """``"Crossing CA→US: person, Blaine / Surrey"``, ``"Crossing CA→US: 3 people, ..."`` for a group."""
    kind = event.event_type.value.replace("_", " ").capitalize()
    return f"{kind}{_ARROW[event.direction]}: {what_of(event, group_size)}, {registry.sector(event.sector_id).name}"


def what_of(event: BorderEvent, group_size: int | None = None) -> str:
    """``person``, or ``3 people`` for a group of three."""
    n = max(group_size or 1, event.group_size)
    return event.class_name.value if n <= 1 else f"{n} {_PLURAL[event.class_name]}"


def summary_of(event: BorderEvent, routing: Routing, registry: Registry, exercise: bool) -> str:
    """One paragraph a duty desk can act on: what, where, when (sector time and UTC), who saw it, who leads."""
    sector = registry.sector(event.sector_id)
    when = instant_of(event.event_ts_ns)
    local = when.astimezone(ZoneInfo(sector.timezone))
    direction = f" {_DIRECTION[event.direction]}" if event.direction is not Direction.NONE else ""
    lead = f" Lead: {routing.lead_partner_id}." if routing.lead_partner_id else " Nobody on duty was found."
    who = f"A group of {what_of(event)}" if event.group_size > 1 else f"A {event.class_name.value}"
    return (f"{'EXERCISE - ' if exercise else ''}{who} {_WHAT[event.event_type]}{direction} "
            f"at {event.lat_deg:.5f}, {event.lon_deg:.5f} ({sector.name}{near_port_of(event)}) at {local:%H:%M:%S %Z} "
            f"({when:%H:%M:%S} UTC), seen by {', '.join(event.sensor_ids) or 'no sensor'}, "
            f"confidence {event.confidence:.2f}.{boundary_note_of(event)}{lead}")


def boundary_note_of(event: BorderEvent) -> str:
    """``" Within the boundary data's 1100 m accuracy: verify on the ground."`` for a crossing decided
    closer to the line than the line's own accuracy, else ``""``."""
    b = event.boundary
    if b is None or not b.within_accuracy:
        return ""
    return f" Within the boundary data's {b.accuracy_m:.0f} m accuracy: verify on the ground."


_NOT_LAWFUL = {"outside_lanes": "outside its lanes", "wrong_mode": "in lanes not for a {cls}",
               "closed": "while it was closed"}


def near_port_of(event: BorderEvent) -> str:
    """``", 280 m E of the Calais - St. Stephen (Ferry Point) port of entry, outside its lanes"``, or ``""``."""
    near = event.near_port
    if near is None:
        return ""
    why = _NOT_LAWFUL[near.reason].format(cls=event.class_name.value)
    where = f"at the {near.port_name}" if near.distance_m < 5 else f"{near.distance_m:.0f} m {near.bearing} of the " \
        f"{near.port_name}"
    return f", {where} port of entry, {why}"

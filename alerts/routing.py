"""Who gets an alert: severity from the event type, partners on duty, the lead agency, escalation.

Pure functions of (event, registry, roster, level): no I/O, no wall clock; the duty roster is read
at the event's own (capture) time, so a replay routes exactly as the live run did.

Routing rules:

- Every border event concerns both countries' partners on duty in the event's sector (the side left
  and the side entered); who is on duty comes from :func:`alerts.rosters.on_duty`.
- The direction decides the lead: entering the US (``CA_TO_US``) a US partner leads, entering Canada
  (``US_TO_CA``) a Canadian one. Tie-break among candidates, in order: agency kind (USBP/RCMP first,
  then HSI/CBSA, then state/provincial police, then other), lower duty level, the event's own sector
  before a mutual-aid sector, then partner id. If no partner of the entering country is on duty, the
  other country's best candidate leads (someone must own the alert); ``Direction.NONE`` (loitering,
  a track lost near the line) has no preferred country and takes the best candidate of either.
- Escalation level N routes to the sector's duties of levels 0..N. Beyond the highest level in the
  sector's roster, the neighbouring sectors' (mutual aid) level-0 duty desks are added as well.
- Nobody on duty gives a :class:`Routing` with no partners and a ``reason``; the caller escalates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from alerts.rosters import Duty, Roster, on_duty
from ibet.exceptions import RegistryError
from ibet.messages import AlertState, BorderEvent, BorderEventType, Direction, Severity
from ibet.registry import Partner, Registry

SEVERITY_OF_TYPE: dict[BorderEventType, Severity] = {
    BorderEventType.CROSSING: Severity.CRITICAL,
    BorderEventType.APPROACH: Severity.HIGH,
    BorderEventType.LOITERING: Severity.MEDIUM,
    BorderEventType.LOST_NEAR_BORDER: Severity.LOW,
}
"""Severity of each event type: crossing > approach > loitering > lost near the border."""

SEVERITY_RANK: dict[Severity, int] = {Severity.CRITICAL: 3, Severity.HIGH: 2, Severity.MEDIUM: 1, Severity.LOW: 0}
"""Order of severities, higher is more urgent (``Severity`` values are strings and do not sort)."""

_ENTERING: dict[Direction, str | None] = {Direction.CA_TO_US: "US", Direction.US_TO_CA: "CA", Direction.NONE: None}
_KIND_RANK = {"USBP": 0, "RCMP": 0, "HSI": 1, "CBSA": 1, "state_police": 2, "provincial_police": 2, "other": 3}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def is_alertable(event: BorderEvent) -> bool:
    """False for an event inside a lawful port of entry (``port_of_entry_id`` set): never alerted."""
    return event.port_of_entry_id is None


def severity_of(event: BorderEvent) -> Severity | None:
    """Severity of the alert an event raises, or None when it is not alertable (a lawful port of entry).

    Example: a ``crossing`` between ports -> ``Severity.CRITICAL``; an ``approach`` -> ``HIGH``.
    """
    return SEVERITY_OF_TYPE[event.event_type] if is_alertable(event) else None


def instant_of(ts_ns: int) -> datetime:
    """An aware UTC datetime for ns since the Unix epoch (microsecond precision, no float rounding)."""
    return _EPOCH + timedelta(microseconds=ts_ns // 1000)


@dataclass(frozen=True)
class Routing:
    """Where one event's alert goes at one escalation level.

    ``partner_ids`` has the lead first, then the others by level and id; ``contacts`` maps each
    routed partner id to its contact ids on duty (merged over its duties, in roster order);
    ``duties`` are the roster duties used, for the record; ``mutual_aid_sector_ids`` are the
    neighbouring sectors consulted (empty below the sector's highest level). ``reason`` says why
    nobody was routed (then ``partner_ids`` is empty and the caller escalates), else None.
    """

    sector_id: str
    level: int
    lead_partner_id: str | None
    partner_ids: tuple[str, ...]
    contacts: dict[str, tuple[str, ...]]
    duties: tuple[Duty, ...] = ()
    mutual_aid_sector_ids: tuple[str, ...] = ()
    reason: str | None = None

    @property
    def nobody_on_duty(self) -> bool:
        """True when no partner is routed: the caller must escalate."""
        return not self.partner_ids


@dataclass(frozen=True)
class _Candidate:
    duty: Duty
    partner: Partner
    mutual_aid: bool = field(default=False)


def route(event: BorderEvent, registry: Registry, roster: Roster, escalation_level: int = 0) -> Routing:
    """Partners on duty that get ``event``'s alert at ``escalation_level`` (0 duty desk, 1 supervisor, ...).

    Example: a ``CA_TO_US`` crossing in ``pac-blaine`` at noon -> lead ``usbp``, partners
    ``("usbp", "cbsa", "rcmp")`` with their day desks. Never raises for an empty roster: the
    result's ``reason`` says nobody is on duty. An unknown sector is routed to nobody, with why.
    """
    return route_sector(event.sector_id, event.event_ts_ns, event.direction, registry, roster, escalation_level)


def route_sector(sector_id: str, ts_ns: int, direction: Direction, registry: Registry, roster: Roster,
                 escalation_level: int = 0) -> Routing:
    """:func:`route` for anything that happens in a sector at ``ts_ns`` (a border event, a feed lost)."""
    if escalation_level < 0:
        raise ValueError(f"escalation_level must be >= 0, got {escalation_level}")
    at = instant_of(ts_ns)
    try:
        sector = registry.sector(sector_id)
        own = [d for d in on_duty(roster, sector_id, at) if d.level <= escalation_level]
    except RegistryError as exc:
        return Routing(sector_id, escalation_level, None, (), {}, reason=f"cannot route: {exc}")
    candidates = [_Candidate(d, registry.partner(d.partner_id)) for d in own]
    top_level = max((e.level for _, _, e in roster.entries() if e.sector_id == sector_id), default=0)
    aid_sectors: tuple[str, ...] = ()
    if escalation_level > top_level:
        aid_sectors = tuple(n for n in sector.neighbours if n in roster.timezones)
        for neighbour in aid_sectors:
            candidates += [_Candidate(d, registry.partner(d.partner_id), mutual_aid=True)
                           for d in on_duty(roster, neighbour, at) if d.level == 0]
    if not candidates:
        where = sector_id + (f" or its mutual-aid sectors {', '.join(aid_sectors)}" if aid_sectors else "")
        return Routing(sector_id, escalation_level, None, (), {}, mutual_aid_sector_ids=aid_sectors,
                       reason=f"nobody on duty in {where} at level <= {escalation_level} at {at.isoformat()}")
    lead = min(candidates, key=lambda c: _lead_key(c, _ENTERING[direction])).partner.id
    contacts: dict[str, tuple[str, ...]] = {}
    for c in sorted(candidates, key=lambda c: (c.partner.id != lead, c.mutual_aid, c.duty.level, c.partner.id)):
        known = contacts.setdefault(c.partner.id, ())
        contacts[c.partner.id] = known + tuple(x for x in c.duty.contacts if x not in known)
    return Routing(sector_id, escalation_level, lead, tuple(contacts), contacts,
                   duties=tuple(c.duty for c in candidates), mutual_aid_sector_ids=aid_sectors)


def _lead_key(c: _Candidate, entering: str | None) -> tuple[int, int, int, bool, str]:
    """Sort key of a lead candidate: entering country first, then the documented tie-break."""
    other_country = int(entering is not None and c.partner.country != entering)
    return other_country, _KIND_RANK[c.partner.agency_kind], c.duty.level, c.mutual_aid, c.partner.id


@dataclass(frozen=True)
class EscalationPolicy:
    """If nobody acknowledges within ``ack_timeout_s`` per level, notify the next level, up to ``max_level``.

    Level k is due ``k * ack_timeout_s`` after the alert was created, so a caller that checks late
    (after a restart) jumps straight to the level that is due. Pure: the caller supplies ``now_ns``.
    """

    ack_timeout_s: float = 300.0
    max_level: int = 3

    def __post_init__(self) -> None:
        if not self.ack_timeout_s > 0:
            raise ValueError(f"ack_timeout_s must be > 0, got {self.ack_timeout_s}")
        if self.max_level < 0:
            raise ValueError(f"max_level must be >= 0, got {self.max_level}")

    def due_ns(self, created_ns: int, level: int) -> int:
        """When ``level`` is due (ns since the epoch), for scheduling the next check."""
        return created_ns + level * round(self.ack_timeout_s * 1e9)

    def next_escalation(self, alert_state: AlertState, created_ns: int, now_ns: int, level: int) -> int | None:
        """The level to escalate to now, or None (acknowledged, resolved, at the limit, or not yet due).

        Example: ``EscalationPolicy(300, 3).next_escalation(OPEN, t0, t0 + 301e9, 0) == 1``.
        """
        if alert_state in (AlertState.ACKNOWLEDGED, AlertState.RESOLVED) or level >= self.max_level:
            return None
        elapsed_ns = now_ns - created_ns
        target = min(self.max_level, elapsed_ns // round(self.ack_timeout_s * 1e9)) if elapsed_ns > 0 else 0
        return int(target) if target > level else None

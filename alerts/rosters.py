"""Duty rosters: which contacts of each partner agency are on duty in a sector at an instant.

A roster holds three kinds of entries, each for one partner in one sector:

- shifts: recurring windows in the sector's local time, e.g. MO-FR 07:00-19:00; an end before the
  start runs past midnight, and the window belongs to the day it starts on;
- rotations: teams taking turns every N days from an anchor date, handing over at a local time;
- overrides: one-off time ranges (with a UTC offset, or ``local: true`` for the sector's time)
  naming who is on duty instead, or ``nobody`` for a stand-down. An override replaces the
  partner's shifts and rotations at its escalation level; of overlapping ones the last listed wins.

Local times follow zoneinfo (PEP 495, fold=0): a time skipped on a spring-forward night reads
with the offset before the change (02:30 -> 03:30 PDT), a repeated one on a fall-back night as
its first occurrence; so a 19:00-07:00 night shift lasts 11 h or 13 h on those nights.
:func:`on_duty` is a pure function of roster and instant; only the loaders do I/O.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar
import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from ibet.exceptions import RegistryError
from ibet.registry import Registry, UniqueKeyLoader, loc_text

Weekday = Literal["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
WEEKDAYS: tuple[Weekday, ...] = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def _time_of_day(value: Any) -> Any:
    if isinstance(value, time) and value.tzinfo is None:
        return value
    match = _HHMM.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"{value!r} is not a time of day 'HH:MM' (00:00 to 23:59)")
    return time(int(match[1]), int(match[2]))


def _iana(name: str) -> str:
    try:
        return ZoneInfo(name).key
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"'{name}' is not an IANA time zone name (e.g. 'America/Toronto')") from None


TimeOfDay = Annotated[time, BeforeValidator(_time_of_day)]
Zone = Annotated[str, AfterValidator(_iana)]
Contacts = Annotated[tuple[Annotated[str, Field(min_length=1)], ...], Field(min_length=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Duty(_Model):
    """Contacts of one partner on duty at an instant, with the window they are on duty for."""

    partner_id: str = Field(..., description="Partner agency id.")
    contacts: tuple[str, ...] = Field(..., description="Contact ids on duty.")
    level: int = Field(..., description="Escalation level: 0 duty desk, 1 supervisor, ...")
    source: Literal["shift", "rotation", "override"] = Field(..., description="Kind of roster entry.")
    entry_id: str = Field(..., description="Id of the roster entry.")
    start: datetime = Field(..., description="Start of the duty window (aware, UTC).")
    end: datetime = Field(..., description="End of the duty window, exclusive (aware, UTC).")


class _Entry(_Model):
    id: str = Field(..., min_length=1, description="Entry id, unique in the roster (the UID on iCalendar import).")
    partner_id: str = Field(..., description="Partner agency id (registry partners[].id).")
    sector_id: str = Field(..., description="Sector id (registry sectors[].id); the partner must cover it.")
    level: int = Field(0, ge=0, description="Escalation level: 0 duty desk, 1 supervisor, 2 ...")


class _Daily(_Entry):
    """An entry whose window starts each day at a local time and belongs to the day it starts on."""

    source: ClassVar[Literal["shift", "rotation"]]
    start: TimeOfDay = Field(..., description="Local start time, 'HH:MM'.")
    end: TimeOfDay | None = Field(None, description="Local end time, 'HH:MM'; at or before start = the next day.")
    timezone: Zone | None = Field(None, description="IANA zone of start/end when not the sector's (an iCalendar TZID).")

    @model_validator(mode="after")
    def _has_length(self) -> _Daily:
        if self.end == self.start:
            raise ValueError("end: equals start; a window needs a length (an end before the start runs past midnight)")
        return self

    def _team(self, day: date) -> tuple[str, ...] | None:
        """Contacts on duty in the window starting on local ``day``, None if there is none that day."""
        raise NotImplementedError

    def duty_at(self, now: datetime, sector_tz: ZoneInfo) -> Duty | None:
        """The duty of this entry at ``now`` (aware), or None; ``sector_tz`` reads times without ``timezone``."""
        tz = ZoneInfo(self.timezone) if self.timezone else sector_tz
        today = now.astimezone(tz).date()
        end = self.start if self.end is None else self.end
        for day in (today - timedelta(days=1), today):
            start_utc = datetime.combine(day, self.start, tz).astimezone(UTC)
            end_utc = datetime.combine(day + timedelta(days=end <= self.start), end, tz).astimezone(UTC)
            if start_utc <= now < end_utc and (team := self._team(day)):
                return Duty(partner_id=self.partner_id, contacts=team, level=self.level,
                            source=self.source, entry_id=self.id, start=start_utc, end=end_utc)
        return None


class Shift(_Daily):
    """A recurring shift: on ``days``, ``start`` to ``end`` local time, e.g. MO-FR 19:00-07:00 (ends the next day)."""

    source: ClassVar[Literal["shift"]] = "shift"
    end: TimeOfDay = Field(..., description="Local end time, 'HH:MM'; before start = the next day.")
    days: tuple[Weekday, ...] = Field(WEEKDAYS, min_length=1, description="Days the shift starts on (MO..SU).")
    contacts: Contacts = Field(..., description="Contact ids on duty (free strings of the partner).")
    valid_from: date | None = Field(None, description="First local date the shift starts on (inclusive).")
    valid_until: date | None = Field(None, description="Last local date the shift starts on (inclusive).")
    every_weeks: int = Field(1, ge=1, description="Runs every Nth week (weeks from Monday), counted from valid_from.")

    @model_validator(mode="after")
    def _valid_dates(self) -> Shift:
        if self.every_weeks > 1 and self.valid_from is None:
            raise ValueError("every_weeks: needs valid_from, the week the count starts from")
        if self.valid_from and self.valid_until and self.valid_until < self.valid_from:
            raise ValueError("valid_until: is before valid_from")
        return self

    def _team(self, day: date) -> tuple[str, ...] | None:
        first = self.valid_from or day - timedelta(days=day.weekday())  # without valid_from every week runs
        runs = _week_match(day, first, self.days, self.every_weeks) and day <= (self.valid_until or day)
        return self.contacts if runs else None


class Rotation(_Daily):
    """Teams taking turns: ``teams[k]`` covers the k-th block of ``every_days`` days from ``anchor``, cycling.

    Each day's window runs ``start`` to ``end``, or without ``end`` to the next day's start (a handover).
    """

    source: ClassVar[Literal["rotation"]] = "rotation"
    anchor: date = Field(..., description="Local date on which teams[0] starts its first block.")
    every_days: int = Field(..., ge=1, description="Days each team stays on before the next takes over (days).")
    teams: tuple[Contacts, ...] = Field(..., min_length=1, description="Contact ids of each team, in turn order.")

    def _team(self, day: date) -> tuple[str, ...] | None:
        return self.teams[(day - self.anchor).days // self.every_days % len(self.teams)]


class Override(_Entry):
    """One-off: from ``start`` to ``end`` these contacts (or ``nobody``) replace the partner's duties at ``level``."""

    start: datetime = Field(..., description="Start, with a UTC offset (or without, and local: true).")
    end: datetime = Field(..., description="End, exclusive, in the same form as start.")
    local: bool = Field(False, description="start and end carry no offset and are read in the sector's zone.")
    contacts: Contacts | Literal["nobody"] = Field(..., description="Contact ids on duty instead, or 'nobody'.")

    @model_validator(mode="after")
    def _range(self) -> Override:
        naive = [name for name in ("start", "end") if getattr(self, name).utcoffset() is None]
        if self.local and len(naive) < 2:
            raise ValueError("local: true takes start and end without a UTC offset")
        if not self.local and naive:
            raise ValueError(f"{' and '.join(naive)}: no UTC offset; give one (e.g. 2025-07-01T08:00:00-07:00 "
                             "or ...Z), or set local: true to read the times in the sector's time zone")
        if self.end <= self.start:
            raise ValueError("end: must be after start")
        return self

    def span(self, sector_tz: ZoneInfo) -> tuple[datetime, datetime]:
        """Start and end as aware UTC datetimes; local times are read in ``sector_tz``."""
        if self.local:
            return self.start.replace(tzinfo=sector_tz).astimezone(UTC), self.end.replace(tzinfo=sector_tz).astimezone(UTC)
        return self.start.astimezone(UTC), self.end.astimezone(UTC)


class Roster(_Model):
    """The duty roster of all partners and sectors; ``timezones`` comes from the registry."""

    timezones: dict[str, Zone] = Field(default_factory=dict, description="IANA zone per sector id (from the registry).")
    shifts: tuple[Shift, ...] = Field((), description="Recurring shifts.")
    rotations: tuple[Rotation, ...] = Field((), description="Rotations of teams.")
    overrides: tuple[Override, ...] = Field((), description="One-off overrides and stand-downs.")

    @model_validator(mode="after")
    def _unique_ids(self) -> Roster:
        seen: dict[str, str] = {}
        for kind, i, entry in self.entries():
            if entry.id in seen:
                raise ValueError(f"{kind}[{i}] (id '{entry.id}').id: already used by {seen[entry.id]}")
            seen[entry.id] = f"{kind}[{i}]"
        return self

    def entries(self) -> list[tuple[str, int, _Entry]]:
        """Every entry as (list name, index, entry)."""
        return [(kind, i, e) for kind in ("shifts", "rotations", "overrides") for i, e in enumerate(getattr(self, kind))]


def on_duty(roster: Roster, sector_id: str, instant: datetime) -> list[Duty]:
    """Who is on duty in ``sector_id`` at ``instant`` (aware, any zone), by level then partner.

    >>> [d.contacts for d in on_duty(roster, "pac-blaine", datetime(2025, 3, 9, 9, 0, tzinfo=UTC))]
    [('pacific-roc-desk',), ('pacific-ibet-night-desk',), ('blaine-station-night-desk',), ('sgt-pacific-c',)]
    """
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"instant must be timezone-aware, got naive {instant.isoformat()}")
    if sector_id not in roster.timezones:
        raise RegistryError(f"no time zone for sector '{sector_id}': not a sector of the roster's registry")
    tz, now = ZoneInfo(roster.timezones[sector_id]), instant.astimezone(UTC)
    duties = [d for e in (*roster.shifts, *roster.rotations) if e.sector_id == sector_id if (d := e.duty_at(now, tz))]
    winners: dict[tuple[str, int], tuple[Override, datetime, datetime]] = {}
    for override in (o for o in roster.overrides if o.sector_id == sector_id):
        start, end = override.span(tz)
        if start <= now < end:
            winners[(override.partner_id, override.level)] = (override, start, end)
    duties = [d for d in duties if (d.partner_id, d.level) not in winners]
    duties += [Duty(partner_id=o.partner_id, contacts=o.contacts, level=o.level, source="override", entry_id=o.id,
                    start=start, end=end) for o, start, end in winners.values() if o.contacts != "nobody"]
    return sorted(duties, key=lambda d: (d.level, d.partner_id, d.entry_id))


class _Loader(UniqueKeyLoader):
    """Keeps 19:00 a string: YAML 1.1 reads it unquoted as the base-60 integer 1140."""


_Loader.yaml_implicit_resolvers = {first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:int"]
                                   for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$"), list("-+0123456789"))


def load_rosters(path: str | Path, registry: Registry) -> Roster:
    """Read the roster YAML at ``path`` and check it against ``registry`` (partners, sectors, coverage).

    Raises RegistryError naming the file, the entry (index and id) and the field, e.g.
    ``config/rosters.yaml: shifts[0] (id 'usbp-day').start: '25:00' is not a time of day 'HH:MM' ...``.
    """
    source = str(path)
    try:
        data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RegistryError(f"{source}: cannot read rosters: {exc}") from None
    if not isinstance(data, dict):
        raise RegistryError(f"{source}: the top level must be a mapping with keys shifts, rotations, overrides")
    if "timezones" in data:
        raise RegistryError(f"{source}: timezones: comes from the registry (sectors[].timezone); remove this key")
    data = {**data, "timezones": {s.id: s.timezone for s in registry.sectors}}
    try:
        roster = Roster.model_validate(data)
    except ValidationError as exc:
        raise RegistryError("\n".join(
            ": ".join(filter(None, (source, loc_text(tuple(err["loc"]), data),
                                    "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, "))))
            for err in exc.errors(include_url=False, include_input=False))) from None
    partners, problems = {p.id: p for p in registry.partners}, []
    for kind, i, entry in roster.entries():
        where, partner = f"{source}: {kind}[{i}] (id '{entry.id}')", partners.get(entry.partner_id)
        if partner is None:
            problems.append(f"{where}.partner_id: '{entry.partner_id}' is not a known partner")
        if entry.sector_id not in roster.timezones:
            problems.append(f"{where}.sector_id: '{entry.sector_id}' is not a known sector")
        elif partner is not None and entry.sector_id not in partner.sectors:
            problems.append(f"{where}.sector_id: partner '{partner.id}' does not cover sector '{entry.sector_id}'")
    if problems:
        raise RegistryError("\n".join(problems))
    return roster


def import_ical(source: str | Path | bytes, partner_id: str, sector_id: str, level: int = 0) -> list[Shift | Override]:
    """Turn an iCalendar (RFC 5545) duty calendar into roster entries for one partner and sector.

    A one-off VEVENT becomes an Override; one with a FREQ=WEEKLY RRULE (BYDAY, INTERVAL, UNTIL,
    COUNT) or FREQ=DAILY becomes a Shift, mapped from the rule rather than expanded. Times with a
    TZID or in UTC keep their zone; floating ones take X-WR-TIMEZONE, else the sector's zone.
    Contacts are the ATTENDEE addresses, else the SUMMARY ('nobody': a stand-down); X-IBET-LEVEL
    sets the level (default ``level``); cancelled events are skipped. Raises RegistryError naming
    the event (index and UID) for what a roster cannot hold (EXDATE, RDATE, RECURRENCE-ID, other
    rules, a recurring duty of 24 h or more).
    """
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    try:
        calendar = icalendar.Calendar.from_ical(source if isinstance(source, bytes) else Path(source).read_bytes())
    except (OSError, ValueError) as exc:
        raise RegistryError(f"{name}: cannot read iCalendar: {exc}") from None
    floating = str(calendar.get("X-WR-TIMEZONE", "")).strip() or None
    entries: list[Shift | Override] = []
    for i, event in enumerate(calendar.walk("VEVENT")):
        uid, summary = str(event.get("UID", f"{partner_id}-{sector_id}-{i}")), str(event.get("SUMMARY", "")).strip()
        attendees = event.get("ATTENDEE", [])
        contacts = [re.sub(r"(?i)^mailto:", "", str(a)) for a in (attendees if isinstance(attendees, list) else [attendees])]
        try:
            common = {"id": uid, "partner_id": partner_id, "sector_id": sector_id,
                      "level": int(str(event.get("X-IBET-LEVEL", level))),
                      "contacts": contacts or ("nobody" if summary.lower() == "nobody" else [summary])}
            if str(event.get("STATUS", "")).upper() != "CANCELLED":
                entries.append(_from_event(event, common, floating))
        except (ValueError, TypeError, ZoneInfoNotFoundError) as exc:
            raise RegistryError(f"{name}: VEVENT[{i}] (UID '{uid}'): {exc}") from None
    return entries


def _from_event(event: Any, common: dict[str, Any], floating: str | None) -> Shift | Override:
    for prop in ("EXDATE", "RDATE", "RECURRENCE-ID"):
        if prop in event:
            raise ValueError(f"{prop}: not supported; publish each changed occurrence as its own event")
    start, end = (t if isinstance(t, datetime) else datetime.combine(t, time()) for t in (event.start, event.end))
    tz = start.tzinfo or (ZoneInfo(floating) if floating else None)
    start, end = (t if t.tzinfo or tz is None else t.replace(tzinfo=tz) for t in (start, end))
    if (rule := event.get("RRULE")) is None:
        return Override(start=start, end=end, local=tz is None, **common)
    parts = {key.upper(): value for key, value in rule.items()}
    freq, interval = parts.pop("FREQ", [None])[0], int(parts.pop("INTERVAL", [1])[0])
    if freq not in ("WEEKLY", "DAILY") or set(parts) - {"BYDAY", "UNTIL", "COUNT", "WKST"} or (
            interval > 1 and (freq == "DAILY" or str(parts.get("WKST", ["MO"])[0]) != "MO")):
        raise ValueError(f"RRULE: only FREQ=WEEKLY (BYDAY, INTERVAL, UNTIL, COUNT) or FREQ=DAILY is supported, "
                         f"got {rule.to_ical().decode()}")
    if tz is not None and not isinstance(tz, ZoneInfo):
        raise ValueError(f"DTSTART: time zone {tz} has no IANA name")
    end = end.astimezone(tz) if tz else end
    if not timedelta(0) < end.replace(tzinfo=None) - start.replace(tzinfo=None) < timedelta(hours=24) or start.second or end.second:
        raise ValueError("DTSTART/DTEND: a recurring duty lasts more than 0 and less than 24 h, in whole minutes")
    days = tuple(str(d) for d in parts.get("BYDAY", [])) or (WEEKDAYS if freq == "DAILY" else (WEEKDAYS[start.weekday()],))
    if not set(days) <= set(WEEKDAYS):
        raise ValueError(f"RRULE: BYDAY takes plain weekdays (MO..SU), got {','.join(days)}")
    until = parts.get("UNTIL", [None])[0]
    if isinstance(until, datetime):  # the last day whose occurrence starts at or before UNTIL
        until = (until.astimezone(tz) if tz and until.tzinfo else until).replace(tzinfo=None)
        until = until.date() - timedelta(days=until.time() < start.time())
    elif "COUNT" in parts:
        until, left = start.date(), int(parts["COUNT"][0])
        while (left := left - _week_match(until, start.date(), days, interval)) > 0:
            until += timedelta(days=1)
    return Shift(start=time(start.hour, start.minute), end=time(end.hour, end.minute), days=days, valid_from=start.date(),
                 valid_until=until, every_weeks=interval, timezone=tz.key if tz else None, **common)


def _week_match(day: date, first: date, days: tuple[str, ...], every_weeks: int) -> bool:
    """Whether a weekly rule starting on ``first`` has an occurrence on ``day``."""
    return WEEKDAYS[day.weekday()] in days and (day - first).days >= 0 and (
        (day - first).days + first.weekday()) // 7 % every_weeks == 0

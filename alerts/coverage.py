"""Roster coverage as a checked rule: for every sector, the times when no partner agency of a country
has its duty desk (level 0) on duty, so an alert there would reach nobody of that country. Pure.

Checked at every ``step_min`` minutes over a week from ``start``, and over the week after each of the
sectors' next daylight-saving changes (a night shift written 19:00-07:00 is 11 or 13 hours long on
those nights, and a shift written in another zone moves against the sector's). Both countries'
agencies are expected in every sector: a crossing concerns both sides of the line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from alerts.rosters import Roster, on_duty
from ibet.registry import Registry

COUNTRIES = ("CA", "US")


@dataclass(frozen=True)
class CoverageGap:
    """From ``start`` to ``end`` (aware, the sector's zone) no ``country`` partner is on duty in ``sector_id``."""

    sector_id: str
    country: str
    start: datetime
    end: datetime

    def __str__(self) -> str:
        hours = (self.end - self.start).total_seconds() / 3600
        return (f"{self.sector_id}: no {self.country} partner on duty from {self.start:%a %Y-%m-%d %H:%M} to "
                f"{self.end:%a %Y-%m-%d %H:%M} {self.start:%Z} ({hours:g} h)")


def dst_changes(zone: ZoneInfo, start: datetime, days: int = 366) -> list[datetime]:
    """The instants (UTC, to the hour) in ``days`` from ``start`` at which ``zone``'s UTC offset changes."""
    changes, hour = [], start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    offset = hour.astimezone(zone).utcoffset()
    for _ in range(days * 24):
        hour += timedelta(hours=1)
        now = hour.astimezone(zone).utcoffset()
        if now != offset:
            changes.append(hour)
            offset = now
    return changes


def weeks_to_check(registry: Registry, start: datetime) -> list[datetime]:
    """``start``, and the day before each of the sectors' daylight-saving changes in the coming year."""
    starts = {start.astimezone(UTC)}
    for zone in {s.timezone for s in registry.sectors}:
        starts.update(change - timedelta(days=1) for change in dst_changes(ZoneInfo(zone), start))
    return sorted(starts)


def coverage_gaps(roster: Roster, registry: Registry, starts: Iterable[datetime], days: float = 7.0,
                  step_min: int = 15, level: int = 0) -> list[CoverageGap]:
    """Every gap in the weeks from ``starts``: per sector and country, the spans with no partner of
    that country on duty at ``level``, merged where they touch."""
    country = {p.id: p.country for p in registry.partners}
    step = timedelta(minutes=step_min)
    gaps: list[CoverageGap] = []
    for sector in registry.sectors:
        zone = ZoneInfo(sector.timezone)
        open_gap: dict[str, datetime] = {}
        last: dict[str, datetime] = {}
        instants = sorted({s.astimezone(UTC) + k * step for s in starts for k in range(int(days * 24 * 60 / step_min))})
        for instant in instants:
            present = {country.get(d.partner_id) for d in on_duty(roster, sector.id, instant) if d.level == level}
            for c in COUNTRIES:
                if c in present:
                    if c in open_gap:  # closes where it was last seen open (a later checked week may follow)
                        end = instant if instant - last[c] <= step else last[c] + step
                        gaps.append(CoverageGap(sector.id, c, open_gap.pop(c).astimezone(zone), end.astimezone(zone)))
                    continue
                if c in open_gap and instant - last[c] > step:  # the previous checked span ended: close it
                    gaps.append(CoverageGap(sector.id, c, open_gap.pop(c).astimezone(zone),
                                            (last[c] + step).astimezone(zone)))
                open_gap.setdefault(c, instant)
                last[c] = instant
        for c, began in open_gap.items():
            gaps.append(CoverageGap(sector.id, c, began.astimezone(zone), (last[c] + step).astimezone(zone)))
    return sorted(gaps, key=lambda g: (g.sector_id, g.country, g.start))

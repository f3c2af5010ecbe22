"""Alert rules: which border events raise a new alert, update an open one, or are suppressed (and why).

:class:`AlertRules` is a pure core with memory: ``decide(event)`` reads and updates it, and
``to_state()`` / ``from_state()`` carry it across restarts as JSON. Every time it uses is event time,
so a replay decides the same way. Checks, in order (the first that applies wins):

1. ``not_alertable``: inside a lawful port of entry.
2. ``duplicate``: the event's alert id (``ibet.ids.alert_id(event_id)``, one per track, type and
   event window) was seen before: a replayed or re-sent event.
3. ``silenced``: a silence covers the event (time-bounded, by sector and/or sensor, with who and why).
   A sensor silence suppresses an event only when every sensor that saw it is silenced.
4. ``quiet``: a quiet rule covers the sector, the event type and the sector's local time of day.
5. ``update``: the same track had an alert within ``group_window_s`` (an approach, then a crossing),
   or another member of the same group of tracks moving together (fuse's ``group_id``): the event
   updates that alert rather than raising a new one (three people crossing are one alert).
6. ``duplicate_cell``: backstop for a re-tracked or replayed target under a new track id: an alerted
   event (new or update) of the same sector, direction and type within ``dedup_window_s`` and a ``cell_m`` grid cell of it
   (or a neighbouring cell, so a cell edge does not split a target).
7. ``cooldown``: a new alert of the same sector and type was raised less than its cooldown ago.
8. Otherwise ``new``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import time
from typing import Any, Literal
from zoneinfo import ZoneInfo

from alerts.routing import instant_of, is_alertable
from ibet.ids import alert_id
from ibet.messages import BorderEvent, BorderEventType

STATE_VERSION = 1
_NS = 1_000_000_000
_M_PER_DEG = 111_320.0  # metres per degree of latitude (and of longitude at the equator)


@dataclass(frozen=True)
class Decision:
    """What to do with one event: ``new`` alert, ``update`` an open one, or ``suppress`` it.

    ``alert_id`` is the new alert's id, the id of the alert to update, or (suppress) the id the
    event's own alert would have had; ``related_alert_id`` names the alert a suppressed event
    duplicates, if any; ``reason`` is the record of why (``new``, ``grouped``, ``duplicate`` ...).
    """

    action: Literal["new", "update", "suppress"]
    alert_id: str
    reason: str
    detail: str = ""
    related_alert_id: str | None = None


@dataclass(frozen=True)
class Silence:
    """Suppress alerts from ``start_ns`` (inclusive) to ``end_ns`` (exclusive), event time, ns.

    Matches events of ``sector_id`` and/or seen only by ``sensor_id`` (at least one is set);
    ``created_by`` and ``why`` go into every suppression record.
    """

    silence_id: str
    start_ns: int
    end_ns: int
    created_by: str
    why: str
    sector_id: str | None = None
    sensor_id: str | None = None

    def __post_init__(self) -> None:
        if self.sector_id is None and self.sensor_id is None:
            raise ValueError(f"silence {self.silence_id}: give a sector_id or a sensor_id")
        if self.end_ns <= self.start_ns:
            raise ValueError(f"silence {self.silence_id}: end_ns must be after start_ns")

    def active(self, ts_ns: int) -> bool:
        """Whether the silence holds at ``ts_ns``."""
        return self.start_ns <= ts_ns < self.end_ns


@dataclass(frozen=True)
class QuietRule:
    """No alerts of ``event_types`` in ``sector_id`` between local ``start`` and ``end`` (end before
    start runs past midnight), read in the sector's IANA ``timezone``; e.g. no loitering at night."""

    rule_id: str
    sector_id: str
    event_types: tuple[BorderEventType, ...]
    start: time
    end: time
    timezone: str
    why: str = ""

    def covers(self, event: BorderEvent) -> bool:
        """Whether the event falls under this rule (sector, type and local time of day)."""
        if event.sector_id != self.sector_id or event.event_type not in self.event_types:
            return False
        local = instant_of(event.event_ts_ns).astimezone(ZoneInfo(self.timezone)).time()
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


@dataclass(frozen=True)
class RulesConfig:
    """Windows of the rules, in seconds and metres; ``cooldown_s`` per event type (absent: none)."""

    dedup_window_s: float = 300.0
    cell_m: float = 250.0
    group_window_s: float = 900.0
    cooldown_s: Mapping[BorderEventType, float] | None = None
    quiet_rules: tuple[QuietRule, ...] = ()
    retention_s: float = 86_400.0

    def cooldown_ns(self, event_type: BorderEventType) -> int:
        """Cooldown of a sector and event type, ns (0 when none)."""
        return round((self.cooldown_s or {}).get(event_type, 0.0) * _NS)


class AlertRules:
    """De-duplication, grouping, cooldowns, silences and quiet rules, with memory (see the module doc).

    Example: the first ``decide(crossing)`` gives ``Decision("new", alert_id(crossing.event_id), "new")``;
    the same event again gives ``action="suppress", reason="duplicate"``.
    """

    def __init__(self, config: RulesConfig | None = None, silences: Iterable[Silence] = ()) -> None:
        self.config = config or RulesConfig()
        self._silences: dict[str, Silence] = {s.silence_id: s for s in silences}
        self._seen: dict[str, list[Any]] = {}  # alert id of an event -> [event ts, alert it went to or None]
        self._tracks: dict[str, list[Any]] = {}  # track id -> [alert id, last event ts]
        self._groups: dict[str, list[Any]] = {}  # fuse's group id -> [alert id, last event ts]
        self._cells: list[list[Any]] = []  # [sector, direction, type, ix, iy, ts, alert id] of alerted events
        self._cell_index: dict[tuple, list[tuple[int, list[Any]]]] = {}  # (sector, direction, type, ix, iy) -> cells
        self._next_sweep_ns = -(2**63)  # _forget sweeps the memory when the horizon passes this
        self._last_new: dict[str, int] = {}  # "sector|type" -> ts of the last new alert
        self._watermark_ns = 0

    # Silences
    def add_silence(self, silence: Silence) -> None:
        """Add (or replace, by id) a silence."""
        self._silences[silence.silence_id] = silence

    def remove_silence(self, silence_id: str) -> None:
        """Lift a silence early; unknown ids are ignored."""
        self._silences.pop(silence_id, None)

    @property
    def silences(self) -> tuple[Silence, ...]:
        """Silences in force or scheduled, by id."""
        return tuple(self._silences[k] for k in sorted(self._silences))

    # Decisions
    def decide(self, event: BorderEvent, now_ns: int | None = None) -> Decision:
        """Decide and remember what ``event`` does: a new alert, an update, or a suppression with its reason.

        ``now_ns`` (default: the event time) only advances the watermark that forgets memory older
        than ``retention_s``; rules themselves read the event time.
        """
        ts, own = event.event_ts_ns, alert_id(event.event_id)
        self._forget(max(ts, now_ns or ts))
        decision = self._check(event, own)
        if decision.action != "suppress" or own not in self._seen:
            kept = decision.alert_id if decision.action != "suppress" else None
            self._seen[own] = [ts, kept]
        if decision.action == "new":
            self._last_new[f"{event.sector_id}|{event.event_type.value}"] = ts
        if decision.action in ("new", "update"):  # an update's type and place also back-stop re-tracks
            ix, iy = self._cell(event)
            self._add_cell([event.sector_id, event.direction.value, event.event_type.value, ix, iy, ts,
                            decision.alert_id])
            self._tracks[event.track_id] = [decision.alert_id, max(ts, self._tracks.get(event.track_id, [None, ts])[1])]
            if event.group_id is not None:
                self._groups[event.group_id] = [decision.alert_id,
                                                max(ts, self._groups.get(event.group_id, [None, ts])[1])]
        return decision

    def _check(self, event: BorderEvent, own: str) -> Decision:
        ts, cfg = event.event_ts_ns, self.config
        if not is_alertable(event):
            return Decision("suppress", own, "not_alertable", f"lawful port of entry {event.port_of_entry_id}")
        if own in self._seen:
            return Decision("suppress", own, "duplicate", f"event {event.event_id} seen before", self._seen[own][1])
        if (silence := self._silence_for(event)) is not None:
            return Decision("suppress", own, "silenced",
                            f"silence {silence.silence_id} by {silence.created_by}: {silence.why}")
        for rule in cfg.quiet_rules:
            if rule.covers(event):
                return Decision("suppress", own, "quiet", f"quiet rule {rule.rule_id}: {rule.why}")
        group = self._tracks.get(event.track_id)
        if group is not None and abs(ts - group[1]) <= cfg.group_window_s * _NS:
            return Decision("update", group[0], "grouped", f"same track {event.track_id}")
        party = self._groups.get(event.group_id) if event.group_id is not None else None
        if party is not None and abs(ts - party[1]) <= cfg.group_window_s * _NS:
            return Decision("update", party[0], "grouped", f"same group {event.group_id} (another member)")
        if (other := self._same_cell(event)) is not None:
            return Decision("suppress", own, "duplicate_cell",
                            f"alert {other} of the same sector, direction and type nearby", other)
        key = f"{event.sector_id}|{event.event_type.value}"
        cooldown_ns, last = cfg.cooldown_ns(event.event_type), self._last_new.get(key)
        if last is not None and abs(ts - last) < cooldown_ns:
            return Decision("suppress", own, "cooldown",
                            f"{event.event_type.value} in {event.sector_id} {abs(ts - last) / _NS:.0f} s after the last")
        return Decision("new", own, "new")

    def _silence_for(self, event: BorderEvent) -> Silence | None:
        ts = event.event_ts_ns
        active = [s for s in self.silences if s.active(ts)]
        for s in active:  # by sector (optionally narrowed to one sensor)
            if s.sector_id == event.sector_id and (s.sensor_id is None or s.sensor_id in event.sensor_ids):
                return s
        by_sensor = {s.sensor_id: s for s in active if s.sector_id is None}
        if event.sensor_ids and all(sensor in by_sensor for sensor in event.sensor_ids):
            return by_sensor[event.sensor_ids[0]]
        return None

    def _cell(self, event: BorderEvent) -> tuple[int, int]:
        """Grid cell of ``cell_m`` of the event's position (local equirectangular)."""
        size = self.config.cell_m
        iy = math.floor(event.lat_deg * _M_PER_DEG / size)
        ix = math.floor(event.lon_deg * _M_PER_DEG * math.cos(math.radians(event.lat_deg)) / size)
        return ix, iy

    def _same_cell(self, event: BorderEvent) -> str | None:
        """The alert of the oldest remembered cell of the same sector, direction and type in the 3 x 3
        cells around the event within ``dedup_window_s`` (an index lookup, not a scan of all cells)."""
        ix, iy = self._cell(event)
        window_ns = self.config.dedup_window_s * _NS
        kind = (event.sector_id, event.direction.value, event.event_type.value)
        found = [(seq, cell[6]) for dx in (-1, 0, 1) for dy in (-1, 0, 1)
                 for seq, cell in self._cell_index.get((*kind, ix + dx, iy + dy), ())
                 if abs(event.event_ts_ns - cell[5]) <= window_ns]
        return min(found)[1] if found else None

    def _add_cell(self, cell: list[Any]) -> None:
        self._cells.append(cell)
        self._cell_index.setdefault(tuple(cell[:5]), []).append((len(self._cells) - 1, cell))

    def _index_cells(self) -> None:
        self._cell_index = {}
        for seq, cell in enumerate(self._cells):
            self._cell_index.setdefault(tuple(cell[:5]), []).append((seq, cell))

    def _forget(self, now_ns: int) -> None:
        """Drop memory older than ``retention_s`` before the watermark (the latest time seen).

        The sweep runs when the horizon has moved 1 % of ``retention_s`` (15 min of 24 h) since the
        last, not on every event, so an entry may outlive the retention by that much; every window
        the rules compare against is far shorter than the retention."""
        self._watermark_ns = max(self._watermark_ns, now_ns)
        horizon = self._watermark_ns - round(self.config.retention_s * _NS)
        if horizon < self._next_sweep_ns:
            return
        self._next_sweep_ns = horizon + max(_NS, round(self.config.retention_s * _NS / 100))
        self._seen = {k: v for k, v in self._seen.items() if v[0] >= horizon}
        self._tracks = {k: v for k, v in self._tracks.items() if v[1] >= horizon}
        self._groups = {k: v for k, v in self._groups.items() if v[1] >= horizon}
        self._cells = [c for c in self._cells if c[5] >= horizon]
        self._last_new = {k: v for k, v in self._last_new.items() if v >= horizon}
        self._index_cells()

    # State
    def to_state(self) -> dict[str, Any]:
        """The memory and silences as a JSON-serialisable dict (config is not included)."""
        return {"version": STATE_VERSION, "watermark_ns": self._watermark_ns, "seen": self._seen,
                "tracks": self._tracks, "groups": self._groups, "cells": self._cells, "last_new": self._last_new,
                "silences": [asdict(s) for s in self.silences]}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], config: RulesConfig | None = None) -> AlertRules:
        """Rebuild rules from :meth:`to_state` output (after ``json.loads``); ValueError on another version."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"alert rules state version {state.get('version')!r}, this build reads {STATE_VERSION}")
        rules = cls(config, (Silence(**s) for s in state["silences"]))
        rules._watermark_ns = int(state["watermark_ns"])
        rules._seen = {k: list(v) for k, v in state["seen"].items()}
        rules._tracks = {k: list(v) for k, v in state["tracks"].items()}
        rules._groups = {k: list(v) for k, v in state.get("groups", {}).items()}  # absent before groups
        rules._cells = [list(c) for c in state["cells"]]
        rules._index_cells()
        rules._last_new = {k: int(v) for k, v in state["last_new"].items()}
        return rules

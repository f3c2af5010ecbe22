"""The report of one pipeline run over a simulated scenario: a PNG map, scores against the truth, and
what each stage did.

- ``run-report.png``: the scenario's map (border, ports, ground, sensor footprints, true paths and
  events; :func:`sim.plot.plot_scenario`) with the run on top: each fused track's positions, the
  fused border events, and the alerts raised (numbered as printed).
- ``run-report.json``: the event scores of :func:`fuse.scoring.score_events` (crossing recall and
  precision, lawful crossings not alerted, false alarms per hour, latency), alerts raised, and
  per-stage records consumed, produced and dead-lettered.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fuse.scoring import FiredEvent, TrueEvent, score_events
from ibet.messages import Alert, BorderEvent, TrackUpdate
from ibet.runner import RunStats
from sim.plot import plot_scenario
from sim.run import Simulation

_EVENT_MARKERS = {"crossing": ("X", "darkred"), "approach": ("o", "darkorange"), "loitering": ("s", "gold"),
                  "lost_near_border": ("v", "grey")}


def true_events(sim: Simulation) -> list[TrueEvent]:
    """The scenario's true events with absolute times, as the scorer wants them."""
    return [TrueEvent(e.kind, e.direction, sim.start_ns + int(round(e.time_s * 1e9)), e.lat_deg, e.lon_deg, e.target_id)
            for e in sim.events]


def scores(sim: Simulation, events: Sequence[BorderEvent]) -> dict[str, Any]:
    """The run's border events against the truth (each event's own time stands in for its emission)."""
    fired = [FiredEvent(e, e.event_ts_ns) for e in events]
    return score_events(fired, true_events(sim), sim.scenario.duration_s)


def write_run_report(sim: Simulation, tracks: Sequence[TrackUpdate], events: Sequence[BorderEvent],
                     alerts: Sequence[Alert], stage_stats: Mapping[str, RunStats], out_dir: Path,
                     extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write ``run-report.png`` and ``run-report.json`` into ``out_dir``; return the JSON content."""
    out_dir.mkdir(parents=True, exist_ok=True)
    latest: dict[str, Alert] = {}
    for alert in alerts:
        latest[alert.alert_id] = alert

    def overlay(ax: Any, sim: Simulation) -> None:
        to_local = sim.world.frame.to_local
        by_track: dict[str, list[TrackUpdate]] = {}
        for update in tracks:
            if update.status == "confirmed":
                by_track.setdefault(update.track_id, []).append(update)
        for n, (_track, updates) in enumerate(sorted(by_track.items())):
            east, north = to_local([u.lon_deg for u in updates], [u.lat_deg for u in updates])
            ax.plot(east, north, ".", ms=2.5, color="black", alpha=0.6,
                    label="fused tracks (confirmed positions)" if n == 0 else None)
        seen: set[str] = set()
        for event in events:
            marker, colour = _EVENT_MARKERS.get(event.event_type.value, ("*", "black"))
            east, north = to_local(event.lon_deg, event.lat_deg)
            label = f"fused {event.event_type.value}" if event.event_type.value not in seen else None
            seen.add(event.event_type.value)
            ax.plot(east, north, marker, mfc="none", mec=colour, mew=2, ms=16, label=label)
        for n, alert in enumerate(latest.values(), 1):
            east, north = to_local(alert.lon_deg, alert.lat_deg)
            ax.annotate(f"alert {n}: {alert.severity.value}", (float(east), float(north)), xytext=(12, 12),
                        textcoords="offset points", fontsize=8, color="darkred", weight="bold",
                        arrowprops={"arrowstyle": "->", "color": "darkred"})

    scored = scores(sim, events)
    title = (f"ibet run of {sim.scenario.name} (seed {sim.seed}): {len(events)} border events, {len(latest)} alerts; "
             f"crossing recall {scored.get('crossing_recall')}, false alarms/h {scored.get('false_alarms_per_hour')}\n"
             "pink: Canada, blue: US; lines: true paths; hollow markers: fused events; black dots: fused tracks")
    image = plot_scenario(sim, out_dir / "run-report.png", overlay=overlay, title=title)
    content = {
        "scenario": sim.scenario.name, "seed": sim.seed, "image": str(image),
        "scores": scored,
        "expected": sim.scenario.expected.model_dump(),
        "alerts": [{"alert_id": a.alert_id, "title": a.title, "severity": a.severity.value, "state": a.state.value,
                    "direction": a.direction.value, "lead_partner_id": a.lead_partner_id,
                    "routed_partner_ids": list(a.routed_partner_ids), "exercise": a.exercise} for a in latest.values()],
        "stages": {name: {"consumed": s.consumed, "produced": s.produced, "dead_lettered": s.dead_lettered,
                          "batches": s.batches} for name, s in stage_stats.items()},
        **(extra or {}),
    }
    (out_dir / "run-report.json").write_text(json.dumps(content, indent=2, default=str) + "\n")
    return content

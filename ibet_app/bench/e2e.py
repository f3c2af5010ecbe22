"""``ibet bench e2e``: from a frame's capture to the partner's webhook receiving the alert.

The shipped scenarios with crossings are rendered once (before any clock starts) and then sent
onto ``ibet.frames.v1`` paced at their own frame rates; the wall-clock instant each frame is sent
counts as its capture. The same frames go through two set-ups of the same stages (detect with the
shipped demo model, fuse, alerts delivering webhooks, the console's store), from one configuration:

- embedded: everything in this process on the in-memory bus, each stage in a thread (as ``ibet demo``);
- kafka: each stage its own ``ibet run`` process on a real local broker (as ``ibet up``), the
  frames produced from this process.

A partner webhook endpoint in this process (signature checked) notes when each alert version
arrives. Afterwards each delivered alert version is traced back: the alert version on
``ibet.alerts.v1`` -> its newest event (the one that made this version) on ``ibet.events.v1`` ->
the frame whose measurement made that event (same sensor and capture time; for a crossing, the
frame that put its track past the hysteresis, found on ``ibet.tracks.v1``) -> that frame's
detections on ``ibet.detections.v1``. The producer timestamps of those records
(:attr:`~ibet.bus.base.Record.timestamp_ms`: set at send by the in-memory bus, Kafka's CreateTime
set by the producing stage's client) split the time into stages: detect (frame sent -> detections
produced, the transport included), fuse (-> border event produced: it includes the fuse stage's
``reorder_window_s`` wait for late measurements, by design), alerts (-> alert produced) and
delivery (-> webhook received). Versions that no frame made (a state change, a lost feed, a
track lost near the border after frames without it) are counted apart. Reported per side and
scenario: p50/p95 of the total, each stage's p50 and share of the summed time, frames sent to
detections produced over every frame (whether detect kept up), and the ratio kafka / embedded.
A benchmark: nothing here asserts a timing.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from ibet_app.bench.e2e_sides import Feed, Partner, local_broker, render_feed, run_embedded, run_kafka, write_config
from ibet_app.bench.e2e_summary import COLUMNS, SideTotals, table_rows

SIDES = ("embedded", "kafka")
CROSSING_SCENARIOS = ("foot-crossing-forest-vista", "boat-crossing-detroit-river", "vehicle-rural-road-tower")
SEED = 211  # the detector was trained on seeds 1-6 and 101

log = logging.getLogger(__name__)


def _run_side(side: str, feeds: Sequence[Feed], folder: Path, bootstrap: str | None, timeout_s: float,
              totals: SideTotals) -> None:
    """One round of one side, with its own partner endpoint, configuration, database (and broker)."""
    from ibet.config import load_config

    folder.mkdir(parents=True)
    partner = Partner()
    try:
        config_path = write_config(folder, partner, folder / f"{side}.sqlite3")
        if side == "embedded":
            run = run_embedded(config_path, feeds, partner, timeout_s)
        else:
            with local_broker(bootstrap) as servers:
                run = run_kafka(config_path, servers, feeds, partner, folder / "logs", timeout_s)
        run.arrivals = list(partner.arrivals)
        if partner.bad_signatures:
            log.warning("%s: %d webhooks with a bad signature", side, partner.bad_signatures)
    finally:
        partner.stop()
    totals.add(run, load_config(config_path).fuse.hysteresis_m)


def run_e2e_bench(scenarios: Sequence[str], seed: int, sides: Sequence[str], bootstrap: str | None,
                  timeout_s: float, rounds: int = 1) -> dict[str, Any]:
    """Render ``scenarios``, run them through each of ``sides`` ``rounds`` times (the order of the
    sides alternating between rounds, so a machine whose load drifts weighs on both alike), and
    return the summary (see the module doc)."""
    feeds = [render_feed(s, seed) for s in scenarios]
    totals = {side: SideTotals(side) for side in sides}
    load = [round(os.getloadavg()[0], 2)]
    with tempfile.TemporaryDirectory(prefix="ibet-bench-e2e-") as tmp:
        for i in range(rounds):
            for side in (sides if i % 2 == 0 else list(reversed(sides))):
                _run_side(side, feeds, Path(tmp) / f"round-{i + 1}" / side, bootstrap, timeout_s, totals[side])
                load.append(round(os.getloadavg()[0], 2))
    overall = {side: t.summary() for side, t in totals.items()}
    result: dict[str, Any] = {"bench": "e2e", "baseline": "embedded (in-memory bus, one process)", "seed": seed,
                              "rounds": rounds, "scenarios": [f.name for f in feeds]}
    if "embedded" in overall and "kafka" in overall:
        for q in ("p50", "p95"):
            ours, base = overall["kafka"][f"{q}_ms"], overall["embedded"][f"{q}_ms"]
            result[f"ratio_{q}"] = round(ours / base, 2) if ours is not None and base else None
    result.update({
        "sides": {side: {**overall[side], "untraced": t.untraced, "not_made_by_a_frame": t.not_frames}
                  for side, t in totals.items()},
        "per_scenario": [t.summary(f.name) for t in totals.values() for f in feeds],
        "chains": {side: [{"scenario": n, **vars(c)} for n, cs in t.chains.items() for c in cs] for side, t in totals.items()},
        "machine": {"cpus": os.cpu_count(), "load_avg_1m": load},
    })
    return result


def _parse_list(value: str, allowed: Sequence[str] | None, what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in items if allowed is not None and v not in allowed]
    if not items or unknown:
        raise typer.BadParameter(f"{what}: {', '.join(unknown) or 'none given'}; choose from {', '.join(allowed or ())}")
    return items


def bench_e2e_command(
    scenarios: Annotated[str, typer.Option(help="Comma-separated scenarios (shipped names or YAML files).")]
    = ",".join(CROSSING_SCENARIOS),
    sides: Annotated[str, typer.Option(help="Comma-separated: embedded, kafka.")] = ",".join(SIDES),
    seed: Annotated[int, typer.Option(help="Simulator seed (>= 201: never used in training).")] = SEED,
    bootstrap: Annotated[str | None, typer.Option(
        help="host:port of a fresh broker (no ibet topics: earlier stage state would meet the same frames); "
             "default: start a local one per round.")] = None,
    rounds: Annotated[int, typer.Option(help="Rounds per side, alternating which side goes first.")] = 1,
    timeout_s: Annotated[float, typer.Option(help="Longest wait for a side to start or to finish a scenario.")] = 900.0,
) -> None:
    """Frame capture -> partner webhook p50/p95, embedded vs Kafka (ratio), and each stage's share."""
    from ibet_app.bench.report import report
    from sim.scenario import ScenarioError, resolve_scenario

    side_list = _parse_list(sides, SIDES, "unknown sides")
    if rounds < 1:
        raise typer.BadParameter(f"rounds must be at least 1, got {rounds}")
    if bootstrap is not None and rounds > 1 and "kafka" in side_list:
        raise typer.BadParameter("--bootstrap takes one round: a later round would meet the earlier round's stage "
                                 "state on the broker (the same frames again); leave it out to start a broker per round")
    names = _parse_list(scenarios, None, "scenarios")
    for name in names:
        try:
            resolve_scenario(name)
        except ScenarioError as exc:
            raise typer.BadParameter(str(exc)) from None
    logging.basicConfig(level=logging.WARNING)
    result = run_e2e_bench(names, seed, side_list, bootstrap, timeout_s, rounds)
    ratio = f", ratio kafka/embedded p50 {result.get('ratio_p50')} p95 {result.get('ratio_p95')}" if "ratio_p50" in result else ""
    report("bench-e2e", f"ibet bench e2e: frame capture -> partner webhook (seed {seed}, {rounds} round(s)){ratio}", COLUMNS,
           table_rows(result), result)

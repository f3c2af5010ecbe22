"""The embedded demo: every stage that exists, in one process, on the in-memory bus.

The simulator feeds a shipped scenario's frames onto ``ibet.frames.v1`` (and, while detect is
not built, stand-in detections onto ``ibet.detections.v1``); every stage that is built then runs,
its border events are printed, and the demo says which stages are not built yet. The full demo
(console, alerts, run report) is issue #10.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table

from ibet import topics
from ibet.bus.memory import MemoryBus
from ibet.clock import ns_to_datetime_utc
from ibet.config import IbetConfig
from ibet.messages import Alert, BorderEvent
from ibet.registry import Registry
from ibet.runner import StageRunner
from ibet.stages import PIPELINE, build_stage


@dataclass
class DemoResult:
    built: list[str]
    not_built: list[str]
    records_per_topic: dict[str, int]


def feed_scenario(bus: MemoryBus, scenario_name: str, seed: int | None, console: Console,
                  stand_in_detections: bool = False) -> None:
    """Render ``scenario_name`` onto the bus's frames topic and print its true events.

    With ``stand_in_detections`` (while the detect stage is not built), each frame's exact boxes,
    degraded like a real detector (:mod:`fuse.degrade`), also go onto ``ibet.detections.v1``.
    """
    import numpy as np
    from rich.progress import Progress

    from fuse.degrade import DetectorModel, degrade, detection_batch
    from ibet.bus.base import OutRecord
    from sim.run import simulate
    from sim.scenario import load_scenario, resolve_scenario
    from sim.sinks import BusSink

    scenario = load_scenario(resolve_scenario(scenario_name))
    sim = simulate(scenario, seed)
    sink = BusSink(bus.producer("ibet-sim"))
    total = sum(int(scenario.duration_s * s.frame_rate_hz) for s in scenario.sensors)
    rng, detector, producer = np.random.default_rng(sim.seed), DetectorModel(), bus.producer("ibet-demo")
    with Progress(console=console) as progress:
        task = progress.add_task(f"simulating {scenario.name} (seed {sim.seed})", total=total)
        for frame in sim.frames():
            sink.write(frame)
            if stand_in_detections:
                dets, _ = degrade(frame.truth_boxes, frame.meta.width_px, frame.meta.height_px, detector, rng)
                batch = detection_batch(frame, scenario.sector_id, dets)
                producer.send(OutRecord(topics.DETECTIONS, scenario.sector_id.encode(), batch.to_bytes()))
            progress.advance(task)
    sink.close(sim)
    console.print(f"{sink.count} frames from {len(scenario.sensors)} sensors on {topics.FRAMES}; truth:")
    for e in sim.events:
        console.print(f"  {e.kind} of a {e.target_kind} at t={e.time_s:.1f} s, {e.direction}, "
                      f"({e.lat_deg:.5f}, {e.lon_deg:.5f}){' at ' + e.port_of_entry_id if e.port_of_entry_id else ''}")


def run_demo(config: IbetConfig, registry: Registry, scenario: str | None = "foot-crossing-forest-vista",
             seed: int | None = None, idle_stop_s: float = 2.0, console: Console | None = None) -> DemoResult:
    """Feed ``scenario`` and run the built stages on one in-memory bus until idle; print what happened."""
    console = console or Console()
    console.print(
        f"[bold]ibet embedded demo[/]: {len(registry.sectors)} sectors, {len(registry.sensors)} sensors, "
        f"{len(registry.partners)} partner agencies from {config.registry_file()}"
    )
    if scenario:  # alerts from a scenario run are an exercise on every channel
        config = config.model_copy(update={"alerts": config.alerts.model_copy(update={"exercise": True})})
    bus = MemoryBus(default_partitions=config.bus.kafka.default_partitions)
    bus.create_topics([spec.name for spec in topics.all_topic_specs()])
    detect_built = next(i for i in PIPELINE if i.name == "detect").is_built()
    if scenario:
        feed_scenario(bus, scenario, seed, console, stand_in_detections=not detect_built)
        if not detect_built:
            console.print("[yellow]detect is not built yet: the simulator's boxes, degraded like a detector "
                          "(misses, false boxes, jitter), stand in on ibet.detections.v1[/]")

    built = [info for info in PIPELINE if not info.is_source and info.is_built()]
    not_built = [info for info in PIPELINE if not info.is_source and not info.is_built()]
    runners = [StageRunner(build_stage(info.name, config, registry), bus, config.runner) for info in built]
    threads = [threading.Thread(target=r.run, kwargs={"idle_stop_s": idle_stop_s}, name=r.stage.name) for r in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    counts = {spec.name: len(bus.records(spec.name)) for spec in topics.TOPICS}
    table = Table(title="Pipeline")
    for column in ("stage", "consumes", "produces", "status"):
        table.add_column(column)
    for info in PIPELINE:
        if info.is_source:
            status = "[green]the simulator fed the frames[/] (drones: ibet ingest serve; cameras: ibet ingest pull)"
        else:
            status = "[green]ran[/]" if info in built else f"[yellow]not built yet (issue #{info.issue})[/]"
        table.add_row(info.name, ", ".join(info.consumes) or "sensors", ", ".join(info.produces), status)
    console.print(table)
    console.print("records on the bus: " + ", ".join(f"{t} {n}" for t, n in counts.items()))
    for record in bus.records(topics.EVENTS):
        event = BorderEvent.from_bytes(record.value)
        where = f" inside {event.port_of_entry_id} (lawful)" if event.port_of_entry_id else ""
        console.print(f"  event: {event.event_type.value} {event.direction.value} by track {event.track_id} "
                      f"({event.class_name.value}) at {ns_to_datetime_utc(event.event_ts_ns):%H:%M:%S} UTC, "
                      f"({event.lat_deg:.5f}, {event.lon_deg:.5f}){where}")
    for record in bus.records(topics.ALERTS):
        alert = Alert.from_bytes(record.value)
        zone = ZoneInfo(registry.sector(alert.sector_id).timezone)
        when = ns_to_datetime_utc(alert.updated_ts_ns)
        console.print(f"  [bold red]ALERT[/] {alert.alert_id} {alert.severity.value} {alert.state.value}"
                      f"{' (exercise)' if alert.exercise else ''}: {alert.title}; {alert.direction.value}; "
                      f"{when.astimezone(zone):%H:%M:%S %Z} ({when:%H:%M:%S} UTC); lead {alert.lead_partner_id}, "
                      f"partners notified: {', '.join(alert.routed_partner_ids) or 'nobody on duty'}")
    if not_built:
        console.print(f"[yellow]{len(not_built)} of {len(PIPELINE) - 1} consuming stages are not built yet; "
                      "the full demo (scenario, console, run report) is issue #10.[/]")
    return DemoResult([i.name for i in built], [i.name for i in not_built], counts)

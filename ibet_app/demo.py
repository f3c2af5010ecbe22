"""The embedded demo (``ibet demo``): the whole pipeline in one process on the in-memory bus.

A shipped scenario is simulated onto ``ibet.frames.v1`` (with a progress bar; ``realtime`` paces the
frames at their capture times), and every built stage runs beside it in threads: detect (the
shipped demo model), fuse, alerts (SQLite outbox, exercise mode) and the console's store. Stand-in
partner agencies on 127.0.0.1 (:mod:`ibet_app.demo_peers`) receive the webhooks, e-mails, CoT events
and CAP messages, so every channel really delivers. Each alert is printed as it is raised (time,
sector, direction, partners notified). At the end the demo writes a run report (PNG map, scores
against the scenario's truth, stage counts; :mod:`ibet_app.run_report`) and, unless told not to, keeps
serving the console on localhost (printed URL and demo login) until Ctrl-C.
"""

from __future__ import annotations

import secrets
import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from ibet import topics
from ibet.bus.base import OutRecord, Record
from ibet.bus.memory import MemoryBus
from ibet.clock import ns_to_datetime_utc
from ibet.config import DatabaseSettings, IbetConfig, SmtpSettings
from ibet.messages import Alert, BorderEvent, BorderEventType, TrackUpdate
from ibet.registry import Registry
from ibet.runner import RunStats, StageRunner
from ibet.stage import FunctionStage
from ibet_app.demo_peers import DemoPeers, demo_registry
from ibet_app.stages import CONSOLE_STORE, PIPELINE, build_stage

DEMO_DATABASE = Path("var/demo/ibet-demo.sqlite3")
DEMO_USER = "demo"


@dataclass
class DemoResult:
    built: list[str]
    not_built: list[str]
    records_per_topic: dict[str, int]
    alerts: list[Alert] = field(default_factory=list)
    report: dict = field(default_factory=dict)
    deliveries: dict[str, int] = field(default_factory=dict)


def demo_config(config: IbetConfig, peers: DemoPeers, registry: Registry, database: Path, exercise: bool) -> IbetConfig:
    """``config`` for the demo: its own SQLite file, alerts to the stand-in partners (exercise mode
    for a scenario run), the actions API and console on free/local ports."""
    alerts = config.alerts.model_copy(update={
        "exercise": exercise or config.alerts.exercise,
        "webhook_secrets": {p.id: SecretStr(peers.secret) for p in registry.partners},
        "smtp": SmtpSettings(host="127.0.0.1", port=peers.smtp_port, security="none", sender="ibet-demo@localhost"),
        "delivery_poll_s": 0.2, "api_port": 0, "api_host": "127.0.0.1",
        "link_secret": SecretStr(secrets.token_urlsafe(32)),
    })
    console = config.console.model_copy(update={"cookie_secure": False})
    return config.model_copy(update={"database": DatabaseSettings(url=f"sqlite:///{database}"), "alerts": alerts,
                                     "console": console})


def _alert_printer(console: Console, registry: Registry, seen: dict[str, tuple[str, int, int]]) -> FunctionStage:
    """A stage on ``ibet.alerts.v1`` that prints each alert when it is raised and when it changes."""
    def show(record: Record) -> Iterable[OutRecord]:
        alert = Alert.from_bytes(record.value)
        state = (alert.state.value, alert.escalation_level, len(alert.event_ids))
        if seen.get(alert.alert_id) == state:
            return ()
        first = alert.alert_id not in seen
        seen[alert.alert_id] = state
        zone = ZoneInfo(registry.sector(alert.sector_id).timezone)
        when = ns_to_datetime_utc(alert.updated_ts_ns)
        console.print(f"[bold red]{'ALERT' if first else 'update'}[/] {when.astimezone(zone):%H:%M:%S %Z} "
                      f"({when:%H:%M:%S} UTC) [bold]{alert.title}[/] {alert.severity.value}, {alert.state.value}"
                      f"{' (exercise)' if alert.exercise else ''}; sector {alert.sector_id}, "
                      f"{alert.direction.value}; lead {alert.lead_partner_id or '-'}; partners notified: "
                      f"{', '.join(alert.routed_partner_ids) or 'nobody on duty'}")
        return ()
    return FunctionStage("demo-alert-printer", (topics.ALERTS,), show)


def _serve_console(config: IbetConfig, registry: Registry, console: Console,
                   publish=None) -> tuple[str, str, object]:
    """Start the console on localhost in a thread with a fresh demo operator; (url, password, server).
    ``publish``: what an operator's acknowledge or resolve hands its new alert version to (the alert
    service's version recorder, so the partners hear of it)."""
    import uvicorn

    from console.accounts import Accounts
    from console.app import create_app, server_config
    from ibet.border import load_border, load_ports_of_entry
    from ibet.db import make_engine, migrate

    engine = make_engine(config.database)
    migrate(engine)
    password = secrets.token_urlsafe(9)
    Accounts(engine, partner_ids=[p.id for p in registry.partners]).create_user(DEMO_USER, password, "operator")
    border = load_border(config.border_path)
    ports = load_ports_of_entry(config.ports_of_entry_file(), sector_ids=[s.id for s in registry.sectors], border=border)
    app = create_app(config.console, engine, registry=registry, border=border, ports=ports, publish=publish)
    host = "127.0.0.1" if config.console.host in ("0.0.0.0", "") else config.console.host
    server = uvicorn.Server(server_config(app, config.console.model_copy(update={"host": host}), config.http,
                                          log_level="warning"))
    threading.Thread(target=server.run, name="demo-console", daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        console.print(f"[yellow]the console could not start on {host}:{config.console.port} (port in use?); "
                      "set console.port or run with --no-console[/]")
    return f"http://{host}:{config.console.port}/", password, server


def feed_scenario(bus: MemoryBus, scenario_name: str, seed: int | None, console: Console, *,
                  realtime: bool = False, stand_in_detections: bool = False, ingest: str = "bus",
                  registry: Registry | None = None):
    """Render ``scenario_name`` onto the frames topic (paced at capture times when ``realtime``) and
    return the simulation. ``stand_in_detections``: while detect is not built, each frame's exact
    boxes, degraded like a real detector (:mod:`fuse.degrade`), also go onto ``ibet.detections.v1``.
    ``ingest="stream"``: each drone's frames go the real way, as a STANAG 4609 stream (H.264 + ST 0601
    KLV) read back by ``ibet ingest stream``'s decoder, pairing and sampling (see :func:`_streamed`)."""
    import numpy as np
    from rich.progress import Progress

    from fuse.degrade import DetectorModel, degrade, detection_batch
    from sim.run import simulate
    from sim.scenario import load_scenario, resolve_scenario
    from sim.sinks import BusSink

    scenario = load_scenario(resolve_scenario(scenario_name))
    sim = simulate(scenario, seed)
    staging = MemoryBus() if ingest == "stream" else bus  # streamed: frames meet in capture order below
    sink = BusSink(staging.producer("ibet-sim"))
    drones = {s.id for s in scenario.sensors if s.kind == "drone"} if ingest == "stream" else set()
    streams = _DroneStreams(drones)
    total = sum(int(scenario.duration_s * s.frame_rate_hz) for s in scenario.sensors)
    rng, detector, producer = np.random.default_rng(sim.seed), DetectorModel(), bus.producer("ibet-demo")
    started = time.monotonic()
    with Progress(console=console, transient=False) as progress:
        task = progress.add_task(f"{scenario.name} (seed {sim.seed}){' in real time' if realtime else ''}", total=total)
        for frame in sim.frames():
            if realtime:
                delay = started + frame.true_time_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            if frame.meta.sensor_id in drones:
                streams.write(frame)
            else:
                sink.write(frame)
            if stand_in_detections:
                dets, _ = degrade(frame.truth_boxes, frame.meta.width_px, frame.meta.height_px, detector, rng)
                batch = detection_batch(frame, scenario.sector_id, dets)
                producer.send(OutRecord(topics.DETECTIONS, scenario.sector_id.encode(), batch.to_bytes()))
            progress.advance(task)
    sink.close(sim)
    if drones:
        _streamed(streams, staging, bus, registry, console)
    console.print(f"{sink.count + streams.count} frames from {len(scenario.sensors)} sensors on {topics.FRAMES}; "
                  "truth:")
    for e in sim.events:
        console.print(f"  true {e.kind} of a {e.target_kind} at t={e.time_s:.1f} s, {e.direction}, "
                      f"({e.lat_deg:.5f}, {e.lon_deg:.5f}){' at ' + e.port_of_entry_id if e.port_of_entry_id else ''}")
    return sim


class _DroneStreams:
    """Each drone's frames muxed into its own STANAG 4609 file, as its ground station would send them."""

    def __init__(self, drones: set[str]):
        import tempfile

        from sim.stanag_sink import StanagSink

        self.folder = Path(tempfile.mkdtemp(prefix="ibet-demo-streams-")) if drones else None
        self.sinks = {d: StanagSink(str(self.folder / f"{d}.ts"), d, at_now=False) for d in drones}
        self.count = 0

    def write(self, frame) -> None:
        self.sinks[frame.meta.sensor_id].write(frame)
        self.count += 1

    def close(self) -> None:
        for sink in self.sinks.values():
            sink.close()


def _streamed(streams: _DroneStreams, staging: MemoryBus, bus: MemoryBus, registry: Registry | None,
              console: Console) -> None:
    """Read each drone's stream with ``ibet ingest stream``'s own runner into ``staging``, then hand
    every frame to the pipeline in capture order (the drones' stream and the cameras' frames meet as
    they would from live feeds)."""
    import shutil

    from ibet.clock import SystemClock
    from ibet.config import IngestSettings
    from ibet.messages import FrameMeta
    from ibet.registry import Sensor
    from ingest.stream import StreamIngest

    streams.close()
    for drone, sink in streams.sinks.items():
        known = registry is not None and any(s.id == drone for s in registry.sensors)
        sensor = registry.sensor(drone) if known else Sensor(
            id=drone, kind="drone", owner_agency="demo", sector_id="demo", detection_rate_hz=sink.frame_rate_hz)
        stats = StreamIngest(sensor, sink.target, staging.producer(f"ibet-ingest-stream-{drone}"), IngestSettings(),
                             SystemClock()).run()
        console.print(f"ibet ingest stream: {stats}", soft_wrap=True, markup=False)
    records = sorted(staging.records(topics.FRAMES), key=lambda r: FrameMeta.from_headers(r.headers).capture_ts_ns)
    producer = bus.producer("ibet-demo-feed")
    for record in records:
        producer.send(OutRecord(topics.FRAMES, record.key, record.value, tuple(record.headers)))
    producer.flush(60)
    if streams.folder is not None:
        shutil.rmtree(streams.folder, ignore_errors=True)


def _wait_until_quiet(runners: list[StageRunner], idle_s: float, timeout_s: float = 1800.0) -> None:
    """Until no stage has a batch in hand or has consumed a record for ``idle_s`` (all is processed)."""
    last, quiet_since = None, time.monotonic()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = tuple(r.stats.consumed for r in runners)
        if now != last or any(r.busy for r in runners):
            last, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since >= idle_s:
            return
        time.sleep(0.1)


def run_demo(config: IbetConfig, registry: Registry, scenario: str | None = "foot-crossing-forest-vista",
             seed: int | None = None, idle_stop_s: float = 2.0, console: Console | None = None, *,
             realtime: bool = False, serve_console: bool = True, hold_console: bool = True,
             report_dir: Path = Path("reports/demo"), database: Path = DEMO_DATABASE,
             ingest: str = "bus") -> DemoResult:
    """Feed ``scenario`` through every built stage in one process; print alerts; write the run report."""
    console = console or Console()
    console.print(f"[bold]ibet embedded demo[/]: {len(registry.sectors)} sectors, {len(registry.sensors)} sensors, "
                  f"{len(registry.partners)} partner agencies from {config.registry_file()}")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    peers = DemoPeers().start()
    registry = demo_registry(registry, peers)
    config = demo_config(config, peers, registry, database, exercise=bool(scenario))
    console.print(f"stand-in partner agencies on 127.0.0.1: webhooks and CAP :{peers.http_port}, "
                  f"SMTP :{peers.smtp_port}, TAK :{peers.tak.port}; alerts are marked as an exercise")

    bus = MemoryBus(default_partitions=config.bus.kafka.default_partitions)
    bus.create_topics([spec.name for spec in topics.all_topic_specs()])
    built = [info for info in PIPELINE if not info.is_source and info.is_built()]
    not_built = [info for info in PIPELINE if not info.is_source and not info.is_built()]
    stages = [build_stage(info.name, config, registry) for info in built]
    seen: dict[str, tuple[str, int, int]] = {}
    stages.append(_alert_printer(console, registry, seen))
    if serve_console:
        stages.append(build_stage(CONSOLE_STORE, config, registry))
    runners = [StageRunner(stage, bus, config.runner) for stage in stages]
    threads = [threading.Thread(target=r.run, name=r.stage.name, daemon=True) for r in runners]
    for thread in threads:
        thread.start()
    url = password = server = None
    alert_service = next((getattr(s, "service", None) for s in stages if getattr(s, "service", None)), None)
    if serve_console:
        url, password, server = _serve_console(config, registry, console, _console_publisher(alert_service, bus))
        console.print(f"[bold green]console[/]: {url}  (operator login: [bold]{DEMO_USER}[/] / [bold]{password}[/])")

    sim = None
    detect_built = any(info.name == "detect" for info in built)
    try:
        if scenario:
            sim = feed_scenario(bus, scenario, seed, console, realtime=realtime, stand_in_detections=not detect_built,
                                ingest=ingest, registry=registry)
            if not detect_built:
                console.print("[yellow]detect is not built: the simulator's boxes, degraded like a detector, stand in "
                              "on ibet.detections.v1[/]")
        _wait_until_quiet(runners, idle_stop_s)
        if alert_service is not None:  # let the workers deliver what is due
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and any(
                    alert_service.outbox.counts()[k] for k in ("pending", "sending")):
                time.sleep(0.2)
    except BaseException:
        _stop(runners, threads)
        raise

    counts = {spec.name: len(bus.records(spec.name)) for spec in topics.TOPICS}
    _print_pipeline(console, built, not_built, counts)
    alerts = [Alert.from_bytes(r.value) for r in bus.records(topics.ALERTS)]
    deliveries = {f"{p}/{c}": n for (p, c), n in sorted(peers.deliveries().items())}
    if deliveries:
        console.print("delivered to the stand-in partners: " + ", ".join(f"{k} {n}" for k, n in deliveries.items()))
    report: dict = {}
    if sim is not None:
        from ibet_app.run_report import write_run_report

        stats: dict[str, RunStats] = {r.stage.name: r.stats for r in runners}
        out = report_dir / f"{sim.scenario.name}-s{sim.seed}"
        events = [BorderEvent.from_bytes(r.value) for r in bus.records(topics.EVENTS)]
        report = write_run_report(
            sim, [TrackUpdate.from_bytes(r.value) for r in bus.records(topics.TRACKS)], events, alerts, stats, out,
            extra={"deliveries": deliveries, "records_per_topic": counts, "detector": "ibet-demo-det"
                   if detect_built else "stand-in (degraded truth)"})
        s = report["scores"]
        lawful = {e.event_id for e in events if e.event_type is BorderEventType.CROSSING and e.port_of_entry_id}
        lawful_alerted = sum(1 for a in alerts if lawful & set(a.event_ids))
        console.print(f"scores against the truth: crossing recall {s['crossing_recall']}, precision "
                      f"{s['crossing_precision']}, lawful crossings recorded {s['lawful_crossing_events']} "
                      f"(true {s['true_lawful_crossings']}), alerted {lawful_alerted}, "
                      f"false alarms/h {s['false_alarms_per_hour']}")
        console.print(f"run report: {out / 'run-report.png'} and {out / 'run-report.json'}")
    if not_built:
        console.print(f"[yellow]{len(not_built)} of {len(PIPELINE) - 1} consuming stages are not built yet[/]")
    if server is not None and hold_console:  # the stages stay up: an operator's action reaches the partners
        console.print(f"[bold green]the console keeps running at {url}[/] (login {DEMO_USER} / {password}), and "
                      "so do the stages and the alert actions API; Ctrl-C to stop")
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        stop.wait()
    _stop(runners, threads)
    if server is not None:
        server.should_exit = True
    peers.stop()
    return DemoResult([i.name for i in built], [i.name for i in not_built], counts, alerts, report, deliveries)


def _stop(runners: list[StageRunner], threads: list[threading.Thread]) -> None:
    for runner in runners:
        runner.stop()
    for thread in threads:
        thread.join(60)


def _console_publisher(alert_service, bus: MemoryBus):
    """The console's publish hook in the demo: the alert service's own version recorder (outbox
    deliveries to every routed partner, the version on ibet.alerts.v1, the delivery worker woken)."""
    if alert_service is None:
        return None
    from alerts.service import bus_publisher, version_recorder

    return version_recorder(alert_service.outbox, alert_service.registry, alert_service.settings.channels,
                            bus_publisher(bus.producer("ibet-console")),
                            wake=lambda: alert_service.delivery.wake() if alert_service.delivery else None)


def _print_pipeline(console: Console, built, not_built, counts: dict[str, int]) -> None:
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

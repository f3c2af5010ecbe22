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

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
import yaml

from alerts.formats import alert_version
from alerts.formats.webhook import verify_webhook
from ibet import topics
from ibet.bus.base import OutRecord, Producer, Record
from ibet.messages import Alert, BorderEvent, BorderEventType, DetectionBatch, Direction, TrackUpdate

STAGES = ("detect", "fuse", "alerts", "delivery")
SIDES = ("embedded", "kafka")
CROSSING_SCENARIOS = ("foot-crossing-forest-vista", "boat-crossing-detroit-river", "vehicle-rural-road-tower")
PIPELINE_STAGES = ("detect", "fuse", "alerts", "console-store")
SECRET = "bench-e2e-partner-secret"
SEED = 211  # the detector was trained on seeds 1-6 and 101
MS = 1_000_000

log = logging.getLogger(__name__)


# -- the pure core: trace delivered alerts back to their frames, summarise -------------------------
@dataclass(frozen=True)
class Chain:
    """When one delivered alert version's triggering frame passed each stage (ns since the epoch).

    ``sent_ns``: the frame sent (its capture); ``detect_ns``/``fuse_ns``/``alerts_ns``: its detections,
    the border event and the alert version produced; ``delivered_ns``: the webhook received.
    """

    alert_id: str
    event_type: str
    sensor_id: str
    sent_ns: int
    detect_ns: int
    fuse_ns: int
    alerts_ns: int
    delivered_ns: int

    @property
    def total_ns(self) -> int:
        return self.delivered_ns - self.sent_ns

    def stage_ns(self) -> dict[str, int]:
        """Time in each stage; every boundary is held between the one before it and the delivery, so
        the stages add up to the total even where a millisecond timestamp or a worker that delivers
        before the alert record is produced puts one boundary out of order."""
        bounds = [self.sent_ns]
        for t in (self.detect_ns, self.fuse_ns, self.alerts_ns):
            bounds.append(min(max(t, bounds[-1]), self.delivered_ns))
        bounds.append(max(self.delivered_ns, bounds[-1]))
        return {stage: bounds[i + 1] - bounds[i] for i, stage in enumerate(STAGES)}


@dataclass
class Trace:
    chains: list[Chain] = field(default_factory=list)
    untraced: dict[str, int] = field(default_factory=dict)  # reason -> delivered versions that should trace
    not_frames: dict[str, int] = field(default_factory=dict)  # what made the version -> versions no frame made

    def miss(self, reason: str) -> None:
        self.untraced[reason] = self.untraced.get(reason, 0) + 1

    def not_a_frame(self, cause: str) -> None:
        self.not_frames[cause] = self.not_frames.get(cause, 0) + 1


def _earliest(pairs: Sequence[tuple[int, Any]], key) -> dict[Any, tuple[int, Any]]:
    """``key(item)`` -> (first timestamp, item): a duplicate (at-least-once) keeps the first."""
    out: dict[Any, tuple[int, Any]] = {}
    for ts, item in pairs:
        k = key(item)
        if k not in out or ts < out[k][0]:
            out[k] = (ts, item)
    return out


def trigger_capture_ns(event: BorderEvent, track_updates: Sequence[TrackUpdate], hysteresis_m: float) -> int | None:
    """The capture time of the measurement that made ``event``.

    Most events carry it as ``event_ts_ns``. A crossing carries the interpolated instant the track
    crossed the line instead; it is made by the first update of its track after that instant that
    is ``hysteresis_m`` deep into the destination country (see :mod:`fuse.border_events`), whose
    time is its latest measurement's capture time. None when the track's updates do not show it.
    """
    if event.event_type is not BorderEventType.CROSSING:
        return event.event_ts_ns
    destination = "US" if event.direction is Direction.CA_TO_US else "CA"
    deep = [u.time_ts_ns for u in track_updates if u.track_id == event.track_id and u.time_ts_ns >= event.event_ts_ns
            and u.border_side == destination and (u.distance_to_border_m or 0.0) >= hysteresis_m - 1e-6]
    return min(deep, default=None)


def trace_chains(sent: Mapping[tuple[str, int], int], detections: Sequence[tuple[int, DetectionBatch]],
                 events: Sequence[tuple[int, BorderEvent]], alerts: Sequence[tuple[int, Alert]],
                 arrivals: Sequence[tuple[int, str, str]], track_updates: Sequence[TrackUpdate] = (),
                 hysteresis_m: float = 3.0) -> Trace:
    """Trace each delivered alert version back to the frame that triggered it.

    ``sent``: (sensor id, capture_ts_ns) -> wall ns the frame was sent; ``detections``, ``events``,
    ``alerts``: (producer timestamp ns, message) as on their topics; ``arrivals``: (wall ns, alert id,
    version) per webhook received; ``track_updates`` (``ibet.tracks.v1``) and the fuse stage's
    ``hysteresis_m`` find the frame that made a crossing (:func:`trigger_capture_ns`). A version
    counts once, at its first arrival. Versions no frame made are counted by cause in
    :attr:`Trace.not_frames` and left out: a state change (escalation, acknowledgement: its newest
    event was already counted), a lost feed (sensor health), a track lost near the border (made by
    the track's deletion after frames without it). What should trace but cannot is counted by
    reason in :attr:`Trace.untraced`.
    """
    by_track: dict[str, list[TrackUpdate]] = {}
    for update in track_updates:
        by_track.setdefault(update.track_id, []).append(update)
    first_arrival: dict[tuple[str, str], int] = {}
    for ts, alert_id, version in arrivals:
        key = (alert_id, version)
        first_arrival[key] = min(ts, first_arrival.get(key, ts))
    versions = _earliest(alerts, lambda a: (a.alert_id, alert_version(a)))
    by_event = _earliest(events, lambda e: e.event_id)
    frames_detected = _earliest(detections, lambda d: (d.sensor_id, d.capture_ts_ns))
    trace, counted = Trace(), set()
    for (alert_id, version), delivered in sorted(first_arrival.items(), key=lambda kv: kv[1]):
        if (alert_id, version) not in versions:
            trace.miss("alert version not on ibet.alerts.v1")
            continue
        alerts_ts, alert = versions[(alert_id, version)]
        if alert.kind != "border":
            trace.not_a_frame(alert.kind)
            continue
        event_id = alert.event_ids[-1]
        if event_id in counted:
            trace.not_a_frame("state change")
            continue
        counted.add(event_id)
        if event_id not in by_event:
            trace.miss("event not on ibet.events.v1")
            continue
        fuse_ts, event = by_event[event_id]
        if event.event_type is BorderEventType.LOST_NEAR_BORDER:
            trace.not_a_frame(event.event_type.value)
            continue
        capture = trigger_capture_ns(event, by_track.get(event.track_id, ()), hysteresis_m)
        if capture is None:
            trace.miss("crossing: no track update deep on the destination side")
            continue
        frame = next(((s, capture) for s in event.sensor_ids if (s, capture) in sent), None)
        if frame is None:
            trace.miss("no frame sent with the event's capture time")
            continue
        if frame not in frames_detected:
            trace.miss("the frame's detections not on ibet.detections.v1")
            continue
        trace.chains.append(Chain(alert_id, event.event_type.value, frame[0], sent[frame], frames_detected[frame][0],
                                  fuse_ts, alerts_ts, delivered))
    return trace


def percentiles_ms(values_ns: Sequence[int], qs: Sequence[float] = (50, 95)) -> list[float | None]:
    """The ``qs`` percentiles of ``values_ns`` in ms (rounded to 0.1), None for no values."""
    if not values_ns:
        return [None for _ in qs]
    return [round(float(v), 1) for v in np.percentile(np.asarray(values_ns, dtype=np.float64) / MS, list(qs))]


def summarize(chains: Sequence[Chain]) -> dict[str, Any]:
    """p50/p95 of the total (ms), each stage's p50 (ms) and share of the summed time (0..1)."""
    p50, p95 = percentiles_ms([c.total_ns for c in chains])
    per_stage = [c.stage_ns() for c in chains]
    total = sum(c.total_ns for c in chains)
    out: dict[str, Any] = {"alerts_traced": len(chains), "p50_ms": p50, "p95_ms": p95}
    for stage in STAGES:
        values = [s[stage] for s in per_stage]
        out[f"{stage}_p50_ms"] = percentiles_ms(values, (50,))[0]
        out[f"{stage}_share"] = round(sum(values) / total, 3) if total > 0 else None
    return out


def frame_detect_ns(sent: Mapping[tuple[str, int], int], detections: Sequence[tuple[int, DetectionBatch]]) -> list[int]:
    """Frame sent -> its detections produced, for every frame that has them (did detect keep up?)."""
    done = _earliest(detections, lambda d: (d.sensor_id, d.capture_ts_ns))
    return [done[k][0] - t for k, t in sent.items() if k in done]


# -- the harness ----------------------------------------------------------------------------------
@dataclass
class Feed:
    """One scenario's frames, rendered before any clock starts."""

    name: str
    frames: list  # sim.run.SimFrame, in capture order


def render_feed(scenario: str, seed: int) -> Feed:
    from sim.run import simulate
    from sim.scenario import load_scenario, resolve_scenario

    loaded = load_scenario(resolve_scenario(scenario))
    return Feed(loaded.name, list(simulate(loaded, seed).frames()))


class Partner:
    """Every partner's webhook endpoint (``/hook/<partner>``): notes (wall ns, alert id, version)."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[int, str, str]] = []
        self.bad_signatures = 0
        self.lock = threading.Lock()
        partner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real partner endpoint would

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                now = time.time_ns()
                ok = verify_webhook(dict(self.headers.items()), body, SECRET.encode(), time.time())
                with partner.lock:
                    if ok:
                        doc = json.loads(body)
                        partner.arrivals.append((now, doc["alert"]["alert_id"], doc["version"]))
                    else:
                        partner.bad_signatures += 1
                self.send_response(200 if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="bench-e2e-partner", daemon=True).start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def received(self) -> set[tuple[str, str]]:
        with self.lock:
            return {(a, v) for _, a, v in self.arrivals}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def write_config(folder: Path, partner: Partner, database: Path, repo: Path = Path(".")) -> Path:
    """A configuration folder like the shipped one, every partner's webhook at ``partner``, webhook
    only, the acknowledge API on a free port, evidence and the SQLite database in ``folder``."""
    registry = yaml.safe_load((repo / "config" / "registry.yaml").read_text())
    for p in registry["partners"]:
        p["contacts"] = {"webhook_url": f"http://127.0.0.1:{partner.port}/hook/{p['id']}"}
    (folder / "registry.yaml").write_text(yaml.safe_dump(registry))
    for name in ("rosters.yaml", "ports_of_entry.geojson"):
        (folder / name).write_text((repo / "config" / name).read_text())
    path = folder / f"ibet-{database.stem}.yaml"
    path.write_text(yaml.safe_dump({
        "registry_path": "registry.yaml",
        "log_level": "WARNING",
        "metrics": {"enabled": False, "port": 0},
        "database": {"url": f"sqlite:///{database}"},
        "alerts": {"channels": ["webhook"], "api_port": 0, "api_host": "127.0.0.1", "exercise": True,
                   "webhook_secrets": {p["id"]: SECRET for p in registry["partners"]},
                   "link_secret": "bench-e2e-link-secret-0123456789"},
        "console": {"evidence_dir": str(folder / "evidence")},
        "detect": {"evidence": {"directory": str(folder / "evidence")}},
    }))
    return path


def send_paced(producer: Producer, feed: Feed, flush_each: bool) -> dict[tuple[str, int], int]:
    """Send ``feed`` at its frames' capture pace; (sensor, capture_ts_ns) -> wall ns when sent."""
    sent: dict[tuple[str, int], int] = {}
    start = time.perf_counter() - feed.frames[0].true_time_s if feed.frames else 0.0
    for frame in feed.frames:
        delay = start + frame.true_time_s - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        meta = frame.meta
        sent[(meta.sensor_id, meta.capture_ts_ns)] = time.time_ns()
        producer.send(OutRecord(topics.FRAMES, meta.sensor_id.encode(), frame.jpeg, tuple(meta.to_headers())))
        if flush_each:
            producer.flush(60)
    producer.flush(60)
    return sent


def _wait_delivered(partner: Partner, alert_records: Sequence[Record], timeout_s: float) -> None:
    """Until every routed alert version on the topic has reached the partner (or ``timeout_s``)."""
    expected = set()
    for r in alert_records:
        alert = Alert.from_bytes(r.value)
        if alert.routed_partner_ids:
            expected.add((alert.alert_id, alert_version(alert)))
    deadline = time.monotonic() + timeout_s
    while not expected <= partner.received() and time.monotonic() < deadline:
        time.sleep(0.2)


@dataclass
class SideRun:
    """What one side left: frames sent, the records of the traced topics, the arrivals."""

    side: str
    sent: dict[str, dict[tuple[str, int], int]] = field(default_factory=dict)  # scenario -> frames sent
    records: dict[str, list[Record]] = field(default_factory=dict)  # topic -> records
    arrivals: list[tuple[int, str, str]] = field(default_factory=list)


def run_embedded(config_path: Path, feeds: Sequence[Feed], partner: Partner, timeout_s: float) -> SideRun:
    """Every stage in threads of this process on one in-memory bus, as ``ibet demo`` runs them."""
    from ibet.bus.memory import MemoryBus
    from ibet.config import load_config
    from ibet.registry import load_registry
    from ibet.runner import StageRunner
    from ibet.stages import build_stage

    config = load_config(config_path)
    registry = load_registry(config.registry_file())
    bus = MemoryBus(default_partitions=config.bus.kafka.default_partitions)
    bus.create_topics([spec.name for spec in topics.all_topic_specs()])
    runners = [StageRunner(build_stage(name, config, registry), bus, config.runner) for name in PIPELINE_STAGES]
    threads = [threading.Thread(target=r.run, name=f"bench-{r.stage.name}", daemon=True) for r in runners]
    for thread in threads:
        thread.start()
    run = SideRun("embedded")
    try:
        producer = bus.producer("ibet-bench-e2e")
        for feed in feeds:
            run.sent[feed.name] = send_paced(producer, feed, flush_each=False)
            _wait_quiet(runners, idle_s=2.0, timeout_s=timeout_s)
            _wait_delivered(partner, bus.records(topics.ALERTS), 30.0)
    finally:
        for runner in runners:
            runner.stop()
        for thread in threads:
            thread.join(60)
    run.records = {t: bus.records(t) for t in (topics.DETECTIONS, topics.TRACKS, topics.EVENTS, topics.ALERTS)}
    return run


def _wait_quiet(runners: Sequence[Any], idle_s: float, timeout_s: float) -> None:
    """Until no runner has a batch in hand or has consumed a record for ``idle_s``."""
    last, quiet_since, deadline = None, time.monotonic(), time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = tuple(r.stats.consumed for r in runners)
        if now != last or any(r.busy for r in runners):
            last, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since >= idle_s:
            return
        time.sleep(0.1)
    raise RuntimeError(f"the embedded pipeline was still busy after {timeout_s:.0f} s")


def _assigned(group: Mapping[str, Any]) -> bool:
    """Whether a member of the described group holds a partition (it has seen its topics)."""
    return any(a.get("partitions") for m in group.get("members") or ()
               for a in ((m.get("member_assignment") or {}).get("assigned_partitions") or ()))


def _group_state(bootstrap: str, groups: Sequence[str]) -> tuple[dict[str, bool], dict[str, int | None]]:
    """Whether each consumer group is stable with partitions assigned, and its unconsumed records (None
    before its first commit, or while the broker has no group coordinator yet)."""
    from kafka import KafkaAdminClient
    from kafka.admin import OffsetSpec
    from kafka.errors import KafkaError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        described = admin.describe_groups(list(groups))
        members = {g: (described.get(g) or {}).get("group_state") == "Stable" and _assigned(described[g]) for g in groups}
        committed = admin.list_group_offsets({g: None for g in groups})
        partitions = {tp for offsets in committed.values() for tp in (offsets or {})}
        ends = admin.list_partition_offsets(dict.fromkeys(partitions, OffsetSpec.LATEST)) if partitions else {}
        lags = {g: sum(max(0, ends[tp].offset - meta.offset) for tp, meta in committed[g].items())
                if committed.get(g) else None for g in groups}
        return members, lags
    except KafkaError:  # the group coordinator is not up yet (a fresh broker): ask again
        return dict.fromkeys(groups, False), dict.fromkeys(groups)
    finally:
        admin.close()


def _wait_kafka(pipeline: Any, bootstrap: str, timeout_s: float, *, ready: bool) -> None:
    """``ready``: until every stage's group has a member (models loaded, subscribed); else until the
    groups of the traced stages have consumed everything, three polls in a row."""
    deadline, quiet = time.monotonic() + timeout_s, 0
    while time.monotonic() < deadline:
        dead = pipeline.dead()
        if dead:
            raise RuntimeError("stage process(es) died: " + "; ".join(f"{c.name}: {pipeline.tail(c.name, 1500)}" for c in dead))
        members, lags = _group_state(bootstrap, PIPELINE_STAGES)
        if ready and all(members.values()):
            return
        quiet = quiet + 1 if not ready and all(lags[g] == 0 for g in ("detect", "fuse", "alerts")) else 0
        if quiet >= 3:
            return
        time.sleep(1.0)
    raise RuntimeError(f"the Kafka pipeline was not {'ready' if ready else 'done'} after {timeout_s:.0f} s")


def _read_topic(bus: Any, topic: str, partitions: int) -> list[Record]:
    return [r for p in range(partitions) for r in bus.read_partition(topic, p, 60.0)]


def run_kafka(config_path: Path, bootstrap: str, feeds: Sequence[Feed], partner: Partner, log_dir: Path,
              timeout_s: float) -> SideRun:
    """Each stage its own ``ibet run`` process on the broker at ``bootstrap``, as ``ibet up`` runs them."""
    from ibet.bus.kafka import KafkaBus
    from ibet.config import load_config
    from ibet.up import Pipeline

    settings = load_config(config_path).bus.kafka.model_copy(update={"bootstrap_servers": [bootstrap]})
    bus = KafkaBus(settings)
    pipeline = Pipeline(bootstrap, config_path, stages=PIPELINE_STAGES, console=False, log_dir=log_dir).start()
    run = SideRun("kafka")
    producer = None
    try:
        _wait_kafka(pipeline, bootstrap, timeout_s, ready=True)
        producer = bus.producer("ibet-bench-e2e")
        for feed in feeds:
            run.sent[feed.name] = send_paced(producer, feed, flush_each=True)
            _wait_kafka(pipeline, bootstrap, timeout_s, ready=False)
            _wait_delivered(partner, _read_topic(bus, topics.ALERTS, settings.default_partitions), 30.0)
        run.records = {t: _read_topic(bus, t, settings.default_partitions)
                       for t in (topics.DETECTIONS, topics.TRACKS, topics.EVENTS, topics.ALERTS)}
    finally:
        if producer is not None:
            producer.close()
        failed = {name: code for name, code in pipeline.stop().items() if code != 0}
        if failed:
            log.warning("stage processes exited with %s; their logs are in %s", failed, log_dir)
    return run


@contextmanager
def local_broker(bootstrap: str | None) -> Iterator[str]:
    """The broker at ``bootstrap``, or a local one started for the benchmark and stopped after it."""
    if bootstrap is not None:
        yield bootstrap
        return
    from ibet.testing.kafka_broker import LocalKafkaBroker

    broker = LocalKafkaBroker(Path(tempfile.mkdtemp(prefix="ibet-bench-e2e-kafka-")), heap_mb=1024)
    try:
        yield broker.start()
    finally:
        broker.stop()


@dataclass
class SideTotals:
    """One side's traced alerts and per-frame detect times, by scenario, over every round."""

    side: str
    chains: dict[str, list[Chain]] = field(default_factory=dict)
    frame_detect: dict[str, list[int]] = field(default_factory=dict)  # ns per detected frame
    frames_sent: dict[str, int] = field(default_factory=dict)
    untraced: dict[str, int] = field(default_factory=dict)
    not_frames: dict[str, int] = field(default_factory=dict)

    def add(self, run: SideRun, hysteresis_m: float) -> None:
        """Trace one round's run (producer timestamps are ms: see :attr:`Record.timestamp_ms`)."""
        detections = [(r.timestamp_ms * MS, DetectionBatch.from_bytes(r.value)) for r in run.records[topics.DETECTIONS]]
        events = [(r.timestamp_ms * MS, BorderEvent.from_bytes(r.value)) for r in run.records[topics.EVENTS]]
        alerts = [(r.timestamp_ms * MS, Alert.from_bytes(r.value)) for r in run.records[topics.ALERTS]]
        tracks = [TrackUpdate.from_bytes(r.value) for r in run.records[topics.TRACKS]]
        everything = {k: t for sent in run.sent.values() for k, t in sent.items()}
        trace = trace_chains(everything, detections, events, alerts, run.arrivals, tracks, hysteresis_m)
        for mine, theirs in ((self.untraced, trace.untraced), (self.not_frames, trace.not_frames)):
            for reason, n in theirs.items():
                mine[reason] = mine.get(reason, 0) + n
        for name, sent in run.sent.items():
            sensors = {s for s, _ in sent}
            self.chains.setdefault(name, []).extend(c for c in trace.chains if c.sensor_id in sensors)
            self.frame_detect.setdefault(name, []).extend(frame_detect_ns(sent, detections))
            self.frames_sent[name] = self.frames_sent.get(name, 0) + len(sent)

    def summary(self, scenario: str | None = None) -> dict[str, Any]:
        """Figures for ``scenario``, or over every scenario (None)."""
        names = [scenario] if scenario is not None else list(self.chains)
        chains = [c for n in names for c in self.chains.get(n, [])]
        detect = [v for n in names for v in self.frame_detect.get(n, [])]
        p50, p95 = percentiles_ms(detect)
        return {"side": self.side, "scenario": scenario or "all", **summarize(chains),
                "frames_sent": sum(self.frames_sent.get(n, 0) for n in names), "frames_detected": len(detect),
                "frame_detect_p50_ms": p50, "frame_detect_p95_ms": p95}


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


COLUMNS = ["side", "scenario", "alerts", "p50 ms", "p95 ms", "det %", "fuse %", "alrt %", "dlv %", "frames",
           "frame->det p95"]


def table_rows(result: Mapping[str, Any]) -> list[list[Any]]:
    """One row per side and scenario, then one per side over every scenario."""
    def row(r: Mapping[str, Any]) -> list[Any]:
        shown = [r[k] if r[k] is not None else "-" for k in ("p50_ms", "p95_ms")]
        shares = [f"{100 * r[f'{s}_share']:.0f}" if r[f"{s}_share"] is not None else "-" for s in STAGES]
        detect_p95 = r["frame_detect_p95_ms"] if r["frame_detect_p95_ms"] is not None else "-"
        return [r["side"], r["scenario"], r["alerts_traced"], *shown, *shares, f"{r['frames_detected']}/{r['frames_sent']}",
                detect_p95]
    rows = [row(r) for r in result["per_scenario"]]
    rows += [row(r) for r in result["sides"].values()] if len(result["scenarios"]) > 1 else []
    return rows


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
    from ibet.bench.report import report
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

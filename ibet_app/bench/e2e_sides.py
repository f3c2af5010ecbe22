"""The two sides of ``ibet bench e2e`` and what they share: the rendered feed, the partner webhook
endpoint, the configuration, pacing, and each side's run (embedded threads; ``ibet run`` processes on Kafka)."""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from alerts.formats import alert_version
from alerts.formats.webhook import verify_webhook
from ibet import topics
from ibet.bus.base import OutRecord, Producer, Record
from ibet.messages import Alert

PIPELINE_STAGES = ("detect", "fuse", "alerts", "console-store")
SECRET = "bench-e2e-partner-secret"

log = logging.getLogger(__name__)


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
    from ibet_app.stages import build_stage

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
    from ibet_app.up import Pipeline

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
    from ibet_testing.kafka_broker import LocalKafkaBroker

    broker = LocalKafkaBroker(Path(tempfile.mkdtemp(prefix="ibet-bench-e2e-kafka-")), heap_mb=1024)
    try:
        yield broker.start()
    finally:
        broker.stop()

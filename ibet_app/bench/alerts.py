"""``ibet bench alerts``: border event -> webhook delivered at the partner, against a bare HTTP POST.

One process, one partner HTTP server (stdlib, threaded, on 127.0.0.1) that notes when each
idempotency key arrives (``perf_counter``, same clock as the sender). At each rate (events/s) the
same crossings, in ``pac-blaine`` at the current time so the duty roster routes them to the partners
on duty, go through:

- the pipeline: produced on ``ibet.events.v1`` of the in-memory bus, consumed by the alert stage
  (rules, routing, the lifecycle and the outbox, committed before any delivery), built by
  ``build_service`` as `ibet run alerts` builds it, and delivered by the delivery
  worker's :class:`~alerts.delivery.WebhookChannel` (signed, with an idempotency key);
- the baseline: the same signed webhook bodies POSTed by one ``httpx.Client`` from this process, as
  each event is due, with no bus, no rules and no outbox.

Latency of a delivery: its arrival at the partner minus when its event was produced (pipeline) or
when the POST started (baseline). Reported: p50/p99 per side and rate and the ratios pipeline /
baseline; whether each side kept up (everything arrived). The rules' place-based de-duplication
grid is set to 1 m here so that thousands of synthetic crossings are not folded into a few alerts
by place (the real default is 250 m); everything else is the default configuration. A benchmark:
nothing here asserts a timing.
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from alerts.compose import new_alert
from alerts.delivery import WebhookChannel
from alerts.formats.webhook import idempotency_key_of, webhook_request
from alerts.rosters import load_rosters
from alerts.routing import route
from alerts.service import build_service
from ibet import topics
from ibet.bus.base import OutRecord
from ibet.bus.memory import MemoryBus
from ibet.config import AlertSettings, DatabaseSettings, IbetConfig, RunnerSettings
from ibet.ids import alert_id, event_id
from ibet.messages import BorderEvent, BorderEventType, Direction, TrackClass
from ibet.registry import Registry, load_registry
from ibet.runner import StageRunner

SECRET = b"bench-secret"
S = 10**9


class Partner:
    """Every partner's webhook endpoint (``/hook/<partner>``): notes the arrival time of each key."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.arrivals: dict[str, float] = {}
        self.lock = threading.Lock()
        partner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real partner endpoint would

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                now = time.perf_counter()
                key = idempotency_key_of(dict(self.headers.items())) or ""
                with partner.lock:
                    repeat = key in partner.arrivals
                    partner.arrivals.setdefault(key, now)
                if delay_s > 0:
                    time.sleep(delay_s)  # a partner across a WAN, or one that takes its time to answer (after arrival)
                self.send_response(409 if repeat else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, partner_id: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook/{partner_id}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class SideResult:
    deliveries: int
    arrived: int
    p50_ms: float
    p99_ms: float
    delivered_per_s: float = float("nan")  # deliveries arrived / (last arrival - first event sent)


def _events(n: int, rate: float, tag: str) -> list[BorderEvent]:
    now = time.time_ns()
    return [BorderEvent(event_id=event_id(f"bench-{tag}-{i}", "crossing", now), event_type=BorderEventType.CROSSING,
                        track_id=f"bench-{tag}-{i}", sector_id="pac-blaine", event_ts_ns=now + round(i / rate * S),
                        lat_deg=49.0002 + (i % 100) * 1e-4, lon_deg=-122.80 + (i // 100) * 1e-4,
                        direction=Direction.CA_TO_US, class_name=TrackClass.PERSON, confidence=0.9,
                        sensor_ids=("blaine-cam-1",)) for i in range(n)]


def _percentiles(latencies_s: list[float]) -> tuple[float, float]:
    if not latencies_s:
        return float("nan"), float("nan")
    p50, p99 = np.percentile(np.array(latencies_s) * 1000.0, [50, 99])
    return float(p50), float(p99)


def _paced(n: int, rate: float):
    """Yield 0..n-1, each at its due time (start + i / rate)."""
    start = time.perf_counter()
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        yield i


def _pipeline(registry: Registry, registry_path: Path, rosters: Path, partner: Partner, events: list[BorderEvent],
              rate: float, database_url: str, timeout_s: float) -> SideResult:
    config = IbetConfig(registry_path=registry_path, database=DatabaseSettings(url=database_url),
                        alerts=AlertSettings(channels=["webhook"], cell_m=1.0, rosters_path=rosters,
                                             link_secret="bench-link-secret-of-at-least-32-bytes"))
    client = httpx.Client(timeout=config.alerts.http_timeout_s)
    channel = WebhookChannel(client, {p.id: (partner.url(p.id), SECRET) for p in registry.partners})
    service = build_service(config, registry, channels={"webhook": channel}, with_api=False)  # as `ibet run alerts`
    stage, outbox = service.stage, service.outbox
    bus = MemoryBus(default_partitions=1)
    bus.create_topics([topics.EVENTS, topics.SENSOR_HEALTH, topics.ALERTS, topics.ALERTS_STATE])
    runner = StageRunner(stage, bus, RunnerSettings(poll_timeout_s=0.01, batch_max_records=100))
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    producer = bus.producer("bench")
    sent: dict[str, float] = {}
    for i in _paced(len(events), rate):
        sent[alert_id(events[i].event_id)] = time.perf_counter()
        producer.send(OutRecord(topics.EVENTS, b"pac-blaine", events[i].to_bytes()))
        producer.flush(5.0)
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        counts = outbox.counts()
        if counts["pending"] == 0 and counts["sending"] == 0 and sum(counts.values()) > 0 and \
                len({d.alert_id for d in outbox.deliveries()}) >= len(events):
            break
        time.sleep(0.5)  # the harness reads rarely, not to compete with the stage for the database
    runner.stop()
    thread.join(30)
    client.close()
    rows = outbox.deliveries()
    outbox.engine.dispose()
    arrivals = [partner.arrivals[d.key] for d in rows if d.key in partner.arrivals]
    latencies = [partner.arrivals[d.key] - sent[d.alert_id] for d in rows if d.key in partner.arrivals]
    span = max(arrivals) - min(sent.values()) if arrivals else 0.0
    return SideResult(len(rows), len(latencies), *_percentiles(latencies), len(arrivals) / span if span > 0 else float("nan"))


def _baseline(registry: Registry, rosters: Path, partner: Partner, events: list[BorderEvent], rate: float) -> SideResult:
    roster = load_rosters(rosters, registry)
    bodies = []
    for event in events:  # built before the clock starts: the baseline is the POST alone
        alert = new_alert(event, route(event, registry, roster), registry)
        for partner_id in alert.routed_partner_ids:
            if registry.partner(partner_id).contacts.webhook_url:
                headers, body = webhook_request(alert, partner_id, SECRET, time.time_ns() // S)
                bodies.append((partner_id, headers, body))
    per_event = max(1, len(bodies) // max(1, len(events)))
    latencies = []
    with httpx.Client(timeout=10.0) as client:
        for i in _paced(len(events), rate):
            for partner_id, headers, body in bodies[i * per_event:(i + 1) * per_event]:
                started = time.perf_counter()
                client.post(partner.url(partner_id), content=body, headers=headers)
                latencies.append(partner.arrivals[idempotency_key_of(headers) or ""] - started)
    return SideResult(len(bodies), len(latencies), *_percentiles(latencies))


def run_alerts_bench(rates: list[float], seconds: float, registry_path: Path = Path("config/registry.yaml"),
                     rosters: Path = Path("config/rosters.yaml"), timeout_s: float = 120.0,
                     databases: Sequence[str] = ("sqlite",), postgres_url: str | None = None,
                     partner_latency_ms: float = 0.0) -> list[dict[str, Any]]:
    """One row per database and rate: both sides' p50/p99 (ms), deliveries and arrivals, the
    deliveries per second that reached the partner, and the ratios. ``postgres``: the server at
    ``postgres_url``, else one started here (Debian's PostgreSQL, as the tests do); a fresh
    database per run."""
    unknown = set(databases) - {"sqlite", "postgres"}
    if unknown:
        raise ValueError(f"unknown databases {sorted(unknown)}: sqlite, postgres")
    registry = load_registry(registry_path)
    results = []
    with tempfile.TemporaryDirectory(prefix="ibet-bench-alerts-") as tmp, _postgres(databases, postgres_url, Path(tmp)) as server:
        for n_run, (db, rate) in enumerate((db, rate) for db in databases for rate in rates):
            n = max(1, round(rate * seconds))
            partner, remote = Partner(), Partner(partner_latency_ms / 1000.0)
            try:
                bare = _baseline(registry, rosters, partner, _events(n, rate, f"bare-{db}-{rate:g}"), rate)
                url = (f"sqlite:///{Path(tmp) / f'bench-alerts-{n_run}.sqlite3'}" if db == "sqlite"
                       else server(f"ibet_bench_{uuid.uuid4().hex[:10]}"))
                ours = _pipeline(registry, registry_path, rosters, remote, _events(n, rate, f"pipe-{db}-{rate:g}"),
                                 rate, url, timeout_s)
            finally:
                partner.stop()
                remote.stop()
            results.append({
                "db": db, "events_per_s": rate, "events": n,
                "pipeline_p50_ms": round(ours.p50_ms, 2), "pipeline_p99_ms": round(ours.p99_ms, 2),
                "bare_post_p50_ms": round(bare.p50_ms, 2), "bare_post_p99_ms": round(bare.p99_ms, 2),
                "partner_latency_ms": partner_latency_ms,
                "ratio_p50": round(ours.p50_ms / bare.p50_ms, 1) if bare.p50_ms > 0 else None,
                "ratio_p99": round(ours.p99_ms / bare.p99_ms, 1) if bare.p99_ms > 0 else None,
                "pipeline_delivered": f"{ours.arrived}/{ours.deliveries}", "bare_delivered": f"{bare.arrived}/{bare.deliveries}",
                "pipeline_deliveries_per_s": round(ours.delivered_per_s, 1),
            })
    return results


@contextmanager
def _postgres(databases: Sequence[str], url: str | None, workdir: Path) -> Iterator[Callable[[str], str]]:
    """A function database name -> URL of a fresh database on PostgreSQL (when asked for)."""
    if "postgres" not in databases:
        yield lambda name: ""
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = None
    if url is None:
        from ibet_testing.postgres import LocalPostgres

        server = LocalPostgres(workdir / "postgres")
        url = server.start()
    admin = create_engine(url, isolation_level="AUTOCOMMIT")

    def fresh(name: str) -> str:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return make_url(url).set(database=name).render_as_string(hide_password=False)

    made: list[str] = []
    try:
        yield fresh
    finally:
        with admin.connect() as conn:  # on a server of the caller's, leave nothing behind
            for name in made:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        if server is not None:
            server.stop()

"""`ibet run alerts` as a real process on the real broker, SIGKILLed between sending a webhook and
recording that it was delivered, then restarted: every alert reaches the partner, and after the
partner's de-duplication on the idempotency key, each key exactly once. And with two versions of one
alert (an approach, then the crossing of the same track), killed while the partner holds its answer
to the first, or run while the partner is down: no partner gets the older version after the newer,
and each ends holding the newest.

The partner is a real HTTP server that checks each HMAC signature. It holds its answer to the first
delivery it gets (it has the alert, the sender does not know yet) while the test kills the service:
that is the window between sending and recording. After the restart, the delivery's lease ends, it
is sent again with the same key, and the partner answers 409 (already have it).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from alerts.formats.webhook import idempotency_key_of, verify_webhook
from alerts.outbox import DELIVERED, Outbox
from ibet import topics
from ibet.bus.base import OutRecord
from ibet.clock import SystemClock
from ibet.config import DatabaseSettings
from ibet.db import make_engine
from ibet.ids import alert_id, event_id
from ibet.messages import BorderEvent, BorderEventType, Direction, TrackClass

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]
S = 10**9
SECRET = "partner-secret-for-the-kill-test"


class HoldingPartner:
    """Webhook receiver of every partner (path /hook/<partner>): verifies, de-duplicates, and holds
    the answer to the first delivery until :attr:`release` is set."""

    def __init__(self, port: int = 0, hold: bool = True) -> None:
        self.lock = threading.Lock()
        self.seen: list[str] = []
        self.kept: dict[str, dict] = {}
        self.arrivals: list[tuple[str, str, int]] = []  # (partner, alert id, version_order) as they came
        self.bad_signatures = 0
        self.truncated = 0
        self.holding = threading.Event()
        if not hold:
            self.holding.set()
        self.release = threading.Event()
        partner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                headers = dict(self.headers.items())
                if len(body) < length:  # cut off: its sender was killed while sending it (lanes send side by side)
                    with partner.lock:
                        partner.truncated += 1
                    return self._answer(400)
                if not verify_webhook(headers, body, SECRET.encode(), time.time()):
                    with partner.lock:
                        partner.bad_signatures += 1
                    return self._answer(401)
                key = idempotency_key_of(headers)
                with partner.lock:
                    partner.seen.append(key)
                    repeat = key in partner.kept
                    document = json.loads(body)
                    partner.arrivals.append((self.path.rsplit("/", 1)[-1], document["alert"]["alert_id"],
                                             document["version_order"]))
                    if not repeat:
                        partner.kept[key] = document
                    hold = not partner.holding.is_set()
                    partner.holding.set()
                if hold:
                    partner.release.wait(60)  # the sender is killed while it waits for this answer
                self._answer(409 if repeat else 200)

            def _answer(self, status: int) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the killed sender's socket is gone

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def partner() -> Iterator[HoldingPartner]:
    made = HoldingPartner()
    yield made
    made.stop()


def _config(tmp_path: Path, bootstrap: str, port: int) -> Path:
    registry = yaml.safe_load((REPO / "config" / "registry.yaml").read_text())
    for p in registry["partners"]:
        p["contacts"] = {"webhook_url": f"http://127.0.0.1:{port}/hook/{p['id']}"}
    (tmp_path / "registry.yaml").write_text(yaml.safe_dump(registry))
    (tmp_path / "ports_of_entry.geojson").write_text((REPO / "config" / "ports_of_entry.geojson").read_text())
    (tmp_path / "rosters.yaml").write_text((REPO / "config" / "rosters.yaml").read_text())
    config = {
        "registry_path": "registry.yaml",
        "bus": {"kind": "kafka", "kafka": {"bootstrap_servers": [bootstrap], "linger_ms": 1, "session_timeout_ms": 6000,
                                           "heartbeat_interval_ms": 1000, "default_partitions": 3}},
        "runner": {"poll_timeout_s": 0.2},
        "metrics": {"port": 0},
        "database": {"url": f"sqlite:///{tmp_path / 'alerts.sqlite3'}"},
        "alerts": {"channels": ["webhook"], "delivery_poll_s": 0.2, "delivery_lease_s": 3, "retry_initial_s": 0.5,
                   "retry_max_s": 2, "api_port": 0},
    }
    path = tmp_path / "ibet.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _start(config: Path, tmp_path: Path, n: int) -> subprocess.Popen:
    partners = yaml.safe_load((tmp_path / "registry.yaml").read_text())["partners"]
    env = {**os.environ, "IBET_ALERTS__WEBHOOK_SECRETS": json.dumps({p["id"]: SECRET for p in partners})}
    log = open(tmp_path / f"alerts-{n}.log", "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, "-m", "ibet_app.cli", "run", "alerts", "--config", str(config)],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def _events(unique: str, n: int) -> list[BorderEvent]:
    now = time.time_ns()
    return [BorderEvent(event_id=event_id(f"trk-kill-{unique}-{i}", "crossing", now), event_type=BorderEventType.CROSSING,
                        track_id=f"trk-kill-{unique}-{i}", sector_id="pac-blaine", event_ts_ns=now + i * S,
                        lat_deg=49.0002, lon_deg=-122.70 + 0.02 * i,  # 1.5 km apart: not one place
                        direction=Direction.CA_TO_US, class_name=TrackClass.PERSON, confidence=0.9,
                        sensor_ids=("blaine-cam-1",)) for i in range(n)]


def test_sigkill_between_sending_and_recording_loses_nothing_and_sends_no_duplicate(
        kafka_bootstrap, kafka_bus, produce, partner, tmp_path, unique):
    config = _config(tmp_path, kafka_bootstrap, partner.port)
    kafka_bus.create_topics([topics.EVENTS, topics.SENSOR_HEALTH, topics.ALERTS, topics.ALERTS_STATE,
                             topics.dlq_topic(topics.EVENTS), topics.dlq_topic(topics.SENSOR_HEALTH)], partitions=3)
    events = _events(unique, 4)
    produce([OutRecord(topics.EVENTS, b"pac-blaine", e.to_bytes()) for e in events])
    mine = {alert_id(e.event_id) for e in events}

    first = _start(config, tmp_path, 1)
    try:
        assert partner.holding.wait(120), (tmp_path / "alerts-1.log").read_text()[-3000:]
        os.kill(first.pid, signal.SIGKILL)  # the partner has the delivery; the service never heard back
        assert first.wait(10) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
    held_key = partner.seen[0]
    partner.release.set()

    outbox = Outbox(make_engine(DatabaseSettings(url=f"sqlite:///{tmp_path / 'alerts.sqlite3'}")), SystemClock())
    second = _start(config, tmp_path, 2)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            rows = [d for a in mine for d in outbox.deliveries(a)]
            recorded = {d.alert_id for d in rows}  # every alert, not only enough rows of some of them
            if recorded == mine and all(d.status == DELIVERED for d in rows):
                break
            time.sleep(0.5)
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    finally:
        if second.poll() is None:
            second.kill()
    log = (tmp_path / "alerts-2.log").read_text()[-3000:]

    rows = [d for a in mine for d in outbox.deliveries(a)]
    assert {outbox.alert(a).alert_id for a in mine} == mine, log  # every alert recorded
    assert rows and all(d.status == DELIVERED for d in rows), [(d.key, d.status, d.last_error) for d in rows]
    kept_mine = {k for k, doc in partner.kept.items() if doc["alert"]["alert_id"] in mine}
    assert kept_mine == {d.key for d in rows}  # the partner has every delivery of every alert...
    assert partner.seen.count(held_key) == 2  # ...the interrupted one was sent again and refused as a repeat
    assert partner.bad_signatures == 0


def _approach_then_crossing(unique: str, lon_deg: float) -> tuple[BorderEvent, BorderEvent]:
    """An approach and the crossing of one track, at ``lon_deg`` (each test its own place: the alert
    stage rebuilds its de-duplication from the alerts topic, which the tests of a session share)."""
    now, track = time.time_ns(), f"trk-order-{unique}"
    approach = BorderEvent(event_id=event_id(track, "approach", now), event_type=BorderEventType.APPROACH,
                           track_id=track, sector_id="pac-blaine", event_ts_ns=now, lat_deg=49.0010, lon_deg=lon_deg,
                           direction=Direction.NONE, class_name=TrackClass.PERSON, confidence=0.8,
                           sensor_ids=("blaine-cam-1",))
    crossing = approach.model_copy(update={"event_id": event_id(track, "crossing", now + 20 * S),
                                           "event_type": BorderEventType.CROSSING, "event_ts_ns": now + 20 * S,
                                           "lat_deg": 48.9998, "direction": Direction.CA_TO_US, "confidence": 0.95})
    return approach, crossing


def _assert_in_order_and_newest_last(partner: HoldingPartner, the_alert: str, newest_order: int) -> None:
    arrivals = [(p, order) for p, a, order in partner.arrivals if a == the_alert]
    by_partner: dict[str, list[int]] = {}
    for p, order in arrivals:
        by_partner.setdefault(p, []).append(order)
    assert by_partner, "no partner got the alert"
    for p, orders in by_partner.items():
        assert orders == sorted(orders), f"{p} got an older version after a newer one: {orders}"
        assert orders[-1] == newest_order, (p, orders, newest_order)


def _wait_settled(outbox: Outbox, the_alert: str, versions: int, timeout_s: float = 120) -> list:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = outbox.deliveries(the_alert)
        if len({r.version for r in rows}) >= versions and all(r.status in (DELIVERED, "superseded") for r in rows):
            return rows
        time.sleep(0.5)
    raise AssertionError([(r.version, r.status, r.last_error) for r in outbox.deliveries(the_alert)])


def test_killed_while_a_partner_holds_the_older_version_no_partner_ends_on_it(
        kafka_bootstrap, kafka_bus, produce, partner, tmp_path, unique):
    config = _config(tmp_path, kafka_bootstrap, partner.port)
    kafka_bus.create_topics([topics.EVENTS, topics.SENSOR_HEALTH, topics.ALERTS, topics.ALERTS_STATE,
                             topics.dlq_topic(topics.EVENTS), topics.dlq_topic(topics.SENSOR_HEALTH)], partitions=3)
    approach, crossing = _approach_then_crossing(unique, -122.62)
    the_alert = alert_id(approach.event_id)
    produce([OutRecord(topics.EVENTS, b"pac-blaine", approach.to_bytes())])
    first = _start(config, tmp_path, 1)
    try:
        assert partner.holding.wait(120), (tmp_path / "alerts-1.log").read_text()[-3000:]
        os.kill(first.pid, signal.SIGKILL)  # a partner has the approach; the service never heard back
        assert first.wait(10) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
    produce([OutRecord(topics.EVENTS, b"pac-blaine", crossing.to_bytes())])  # the newer version, while it is down
    partner.release.set()

    outbox = Outbox(make_engine(DatabaseSettings(url=f"sqlite:///{tmp_path / 'alerts.sqlite3'}")), SystemClock())
    second = _start(config, tmp_path, 2)
    try:
        _wait_settled(outbox, the_alert, versions=2)
        time.sleep(4)  # past the interrupted delivery's lease (3 s): a stale resend would have happened by now
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
        if second.poll() is None:
            second.kill()
    _assert_in_order_and_newest_last(partner, the_alert, outbox.alert(the_alert).updated_ts_ns)
    assert partner.bad_signatures == 0


def test_a_partner_down_while_two_versions_wait_gets_them_in_order(kafka_bootstrap, kafka_bus, produce, tmp_path, unique):
    with socket.socket() as probe:  # a free port with nothing listening: the partner is down
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = _config(tmp_path, kafka_bootstrap, port)
    kafka_bus.create_topics([topics.EVENTS, topics.SENSOR_HEALTH, topics.ALERTS, topics.ALERTS_STATE,
                             topics.dlq_topic(topics.EVENTS), topics.dlq_topic(topics.SENSOR_HEALTH)], partitions=3)
    approach, crossing = _approach_then_crossing(unique, -122.58)
    the_alert = alert_id(approach.event_id)
    outbox = Outbox(make_engine(DatabaseSettings(url=f"sqlite:///{tmp_path / 'alerts.sqlite3'}")), SystemClock())
    service = _start(config, tmp_path, 1)
    partner = None
    try:
        produce([OutRecord(topics.EVENTS, b"pac-blaine", approach.to_bytes())])
        deadline = time.monotonic() + 120
        while not any(r.attempts >= 1 for r in _rows_or_none(outbox, the_alert)):
            assert time.monotonic() < deadline, (tmp_path / "alerts-1.log").read_text()[-3000:]
            time.sleep(0.3)
        produce([OutRecord(topics.EVENTS, b"pac-blaine", crossing.to_bytes())])
        while len({r.version for r in _rows_or_none(outbox, the_alert)}) < 2:
            assert time.monotonic() < deadline, (tmp_path / "alerts-1.log").read_text()[-3000:]
            time.sleep(0.3)
        partner = HoldingPartner(port, hold=False)  # back up
        _wait_settled(outbox, the_alert, versions=2)
        time.sleep(3)  # every retry the backoff still held has come due (retry_max_s is 2 s)
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(30)
        if service.poll() is None:
            service.kill()
        if partner is not None:
            partner.stop()
    _assert_in_order_and_newest_last(partner, the_alert, outbox.alert(the_alert).updated_ts_ns)


def _rows_or_none(outbox: Outbox, the_alert: str) -> list:
    try:
        return outbox.deliveries(the_alert)
    except Exception:  # noqa: BLE001 - the service has not created the database yet
        return []

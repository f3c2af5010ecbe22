"""Partners whose endpoints misbehave, against the alert service as ``build_service`` builds it (the
factory of ``ibet run alerts``, ``ibet up`` and ``ibet demo``), its workers running: a webhook URL
that redirects, a webhook that answers 200 with a 10 MB body, a CAP endpoint answering 410, and a
TAK server that accepts the connection and never reads. Each gets the outcome docs/partners.md
documents, recorded in the per-partner delivery state, while the partners' mail server (aiosmtpd)
keeps getting every alert (how long that takes is for `ibet bench alerts`, not a test)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from partner_peers import MailInbox

from alerts.service import build_service
from ibet import topics
from ibet.bus.base import OutRecord
from ibet.bus.memory import MemoryBus
from ibet.config import load_config
from ibet.ids import alert_id, event_id
from ibet.messages import BorderEvent, BorderEventType, Direction, TrackClass
from ibet.registry import load_registry
from ibet.runner import StageRunner

REPO = Path(__file__).resolve().parents[2]
BIG = 10 * 1024 * 1024


class BadHttp:
    """``/redirect/<partner>`` answers 302 elsewhere, ``/big/<partner>`` 200 with 10 MB, ``/gone/<partner>`` 410."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.big_bytes_sent: list[int] = []  # of each 10 MB answer, what got out before ibet hung up

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                kind = self.path.split("/")[1]
                server.hits[kind] = server.hits.get(kind, 0) + 1
                if kind == "redirect":
                    self.send_response(302)
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif kind == "big":
                    self.send_response(200)
                    self.send_header("Content-Length", str(BIG))
                    self.end_headers()
                    sent = 0
                    try:
                        chunk = b"x" * 65536
                        for _ in range(BIG // len(chunk)):
                            self.wfile.write(chunk)
                            self.wfile.flush()
                            sent += len(chunk)
                    except OSError:
                        pass  # ibet stopped reading, as it should
                    server.big_bytes_sent.append(sent)
                else:
                    self.send_response(410)
                    self.send_header("Content-Length", "4")
                    self.end_headers()
                    self.wfile.write(b"gone")

            def log_message(self, *args: Any) -> None:
                pass

        server = self
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class DeafTak:
    """A "TAK server" that accepts connections and never reads a byte (a small receive buffer)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)  # held open, never read

    def stop(self) -> None:
        for conn in self.accepted:
            conn.close()
        self.sock.close()


@pytest.fixture
def peers() -> Iterator[tuple[BadHttp, DeafTak, MailInbox]]:
    made = BadHttp(), DeafTak(), MailInbox()
    yield made
    for peer in made:
        peer.stop()


def _service(tmp_path: Path, monkeypatch, webhook: str, bad: BadHttp, tak: DeafTak, mail: MailInbox):
    registry = yaml.safe_load((REPO / "config" / "registry.yaml").read_text())
    for p in registry["partners"]:
        p["contacts"] = {"webhook_url": f"http://127.0.0.1:{bad.port}/{webhook}/{p['id']}",
                         "cap_url": f"http://127.0.0.1:{bad.port}/gone/{p['id']}",
                         "tak_endpoint": f"127.0.0.1:{tak.port}", "email": [f"desk@{p['id']}.example.org"]}
    (tmp_path / "registry.yaml").write_text(yaml.safe_dump(registry))
    (tmp_path / "rosters.yaml").write_text((REPO / "config" / "rosters.yaml").read_text())
    (tmp_path / "ibet.yaml").write_text(yaml.safe_dump({
        "registry_path": "registry.yaml", "database": {"url": f"sqlite:///{tmp_path / 'alerts.sqlite3'}"},
        "alerts": {"channels": ["webhook", "email", "cap", "cot"], "api_port": 0, "delivery_poll_s": 0.1,
                   "retry_initial_s": 0.2, "retry_max_s": 0.5, "cot_timeout_s": 1.0, "cot_stale_s": 5.0,
                   "cot_keepalive_s": 0.05, "smtp": {"host": "127.0.0.1", "port": mail.port, "security": "none"}}}))
    monkeypatch.setenv("IBET_ALERTS__WEBHOOK_SECRETS", json.dumps({p["id"]: "a-partner-secret" for p in registry["partners"]}))
    monkeypatch.setenv("IBET_ALERTS__LINK_SECRET", "a-link-secret-of-at-least-32-bytes-long")
    return build_service(load_config(tmp_path / "ibet.yaml"), load_registry(tmp_path / "registry.yaml"))


def _crossing(n: int) -> BorderEvent:
    now = time.time_ns()
    return BorderEvent(event_id=event_id(f"trk-bad-{n}", "crossing", now), event_type=BorderEventType.CROSSING,
                       track_id=f"trk-bad-{n}", sector_id="pac-blaine", event_ts_ns=now, lat_deg=49.0002 + n * 0.01,
                       lon_deg=-122.754, direction=Direction.CA_TO_US, class_name=TrackClass.PERSON, confidence=0.9,
                       sensor_ids=("blaine-cam-1",))


def _run(service, events: list[BorderEvent], until, timeout_s: float = 30.0):
    bus = MemoryBus()
    producer = bus.producer("test")
    runner = StageRunner(service.stage, bus)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        for event in events:
            producer.send(OutRecord(topics.EVENTS, b"pac-blaine", event.to_bytes()))
        producer.flush(5)
        deadline = time.monotonic() + timeout_s
        while not (done := until()):
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.05)
        return done
    finally:
        runner.stop()
        thread.join(30)


def _rows(service, channel: str) -> list:
    return [r for r in service.outbox.deliveries() if r.channel == channel]


def test_a_redirect_a_gone_cap_and_a_deaf_tak_server_get_their_outcomes_while_mail_flows(peers, tmp_path, monkeypatch):
    bad, tak, mail = peers
    service = _service(tmp_path, monkeypatch, "redirect", bad, tak, mail)
    first, second = _crossing(1), _crossing(2)
    # the mail of both alerts arrives at once for every routed partner, whatever the others do
    _run(service, [first, second], lambda: len({m["X-Ibet-Alert-Id"] for m in mail.messages}) == 2
         and len(mail.messages) >= 2 * len(service.outbox.alert(alert_id(first.event_id)).routed_partner_ids))

    webhooks, caps = _rows(service, "webhook"), _rows(service, "cap")
    assert webhooks and {r.status for r in webhooks} == {"dead"}  # a redirect is not followed: dead, not retried
    assert all("HTTP 302" in r.last_error and r.attempts == 1 for r in webhooks)
    assert caps and {r.status for r in caps} == {"dead"} and all("HTTP 410" in r.last_error for r in caps)
    health = {(h.partner_id, h.channel): h for h in service.outbox.delivery_health()}
    assert all(health[(r.partner_id, "webhook")].dead >= 1 for r in webhooks)

    # the deaf TAK server: CoT has no acknowledgement, so sends count until its buffers are full;
    # then each keep-alive or delivery times out after cot_timeout_s and the connection is dropped
    cot = service.channels["cot"]
    alert = service.outbox.alert(alert_id(first.event_id))
    results, deadline = [], time.monotonic() + 60
    while time.monotonic() < deadline and not any(r.outcome.value == "retry" for r in results):
        results.extend(cot.refresh(alert, time.time_ns()))
    retry = next((r for r in results if r.outcome.value == "retry"), None)
    assert retry is not None, (len(results), results[:3], results[-3:])
    assert "timed out" in retry.detail or "TimeoutError" in retry.detail, retry.detail
    assert len(results) < 2000  # a bounded send buffer: found out within a few hundred kB, not megabytes


def test_a_webhook_answering_10_mb_is_delivered_without_reading_it(peers, tmp_path, monkeypatch):
    bad, tak, mail = peers
    service = _service(tmp_path, monkeypatch, "big", bad, tak, mail)
    _run(service, [_crossing(3)], lambda: (rows := _rows(service, "webhook")) and all(r.status == "delivered" for r in rows))
    rows = _rows(service, "webhook")
    assert rows and all(r.attempts == 1 for r in rows) and bad.hits["big"] == len(rows)
    deadline = time.monotonic() + 10
    while len(bad.big_bytes_sent) < len(rows) and time.monotonic() < deadline:
        time.sleep(0.05)
    # ibet closed each answer after its first 64 KiB: the rest could not even be written (kernel
    # buffers on loopback hold a few MB at most)
    assert bad.big_bytes_sent and max(bad.big_bytes_sent) < BIG, bad.big_bytes_sent

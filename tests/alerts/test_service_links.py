"""The whole alert service in one process (stage, outbox, lifecycle, channels, actions API) with real
peers: a partner's webhook endpoint (HTTP, signature checked) and its mail server (aiosmtpd). The
partner follows the signed acknowledge link it was sent: the alert is acknowledged, the partner
gets the new state on both channels, the audit says who and from where, and nothing escalates."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml
from aiosmtpd.controller import Controller

from alerts.formats.webhook import idempotency_key_of, verify_webhook
from alerts.service import build_service
from ibet import topics
from ibet.audit import audit_entries
from ibet.bus.base import OutRecord
from ibet.bus.memory import MemoryBus
from ibet.config import load_config
from ibet.ids import alert_id, event_id
from ibet.messages import Alert, AlertState, BorderEvent, BorderEventType, Direction, TrackClass
from ibet.registry import load_registry
from ibet.runner import StageRunner

REPO = Path(__file__).resolve().parents[2]
SECRET = "webhook-secret-of-the-partner"
S = 10**9


class Webhooks:
    def __init__(self) -> None:
        self.documents: list[dict] = []
        self.bad = 0
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                ok = verify_webhook(dict(self.headers.items()), body, SECRET.encode(), time.time())
                if ok:
                    document = json.loads(body)
                    assert document["idempotency_key"] == idempotency_key_of(dict(self.headers.items()))
                    hooks.documents.append(document)
                else:
                    hooks.bad += 1
                self.send_response(200 if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]


class Inbox:
    def __init__(self) -> None:
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def peers() -> Iterator[tuple[Webhooks, Inbox, int]]:
    hooks, inbox = Webhooks(), Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield hooks, inbox, controller.port
    controller.stop()
    hooks.server.shutdown()
    hooks.server.server_close()


def _wait(condition, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_partner_acknowledges_through_the_signed_link_it_was_sent(peers, tmp_path, monkeypatch) -> None:
    hooks, inbox, smtp_port = peers
    registry = yaml.safe_load((REPO / "config" / "registry.yaml").read_text())
    for p in registry["partners"]:
        p["contacts"] = {"webhook_url": f"http://127.0.0.1:{hooks.port}/hook/{p['id']}",
                         "email": [f"desk@{p['id']}.example.org"]}
    (tmp_path / "registry.yaml").write_text(yaml.safe_dump(registry))
    (tmp_path / "rosters.yaml").write_text((REPO / "config" / "rosters.yaml").read_text())
    (tmp_path / "ibet.yaml").write_text(yaml.safe_dump({
        "registry_path": "registry.yaml", "database": {"url": f"sqlite:///{tmp_path / 'alerts.sqlite3'}"},
        "alerts": {"channels": ["webhook", "email"], "api_port": 0, "delivery_poll_s": 0.1,
                   "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none"}}}))
    monkeypatch.setenv("IBET_ALERTS__WEBHOOK_SECRETS", json.dumps({p["id"]: SECRET for p in registry["partners"]}))
    monkeypatch.setenv("IBET_ALERTS__LINK_SECRET", "a-link-secret-of-at-least-32-bytes-long")
    config = load_config(tmp_path / "ibet.yaml")
    service = build_service(config, load_registry(tmp_path / "registry.yaml"))

    now = time.time_ns()
    crossing = BorderEvent(event_id=event_id("trk-link", "crossing", now), event_type=BorderEventType.CROSSING,
                           track_id="trk-link", sector_id="pac-blaine", event_ts_ns=now, lat_deg=49.0002,
                           lon_deg=-122.754, direction=Direction.CA_TO_US, class_name=TrackClass.PERSON,
                           confidence=0.9, sensor_ids=("blaine-cam-1",))
    bus = MemoryBus()
    producer = bus.producer("test")
    producer.send(OutRecord(topics.EVENTS, b"pac-blaine", crossing.to_bytes()))
    producer.flush(5)
    runner = StageRunner(service.stage, bus)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        the_alert = alert_id(crossing.event_id)
        _wait(lambda: any(d["partner_id"] == "usbp" for d in hooks.documents)
              and any(m["To"] == "desk@usbp.example.org" for m in inbox.messages))  # partners' mails come in any order
        [first] = [d for d in hooks.documents if d["partner_id"] == "usbp"]
        assert first["alert"]["alert_id"] == the_alert and first["alert"]["state"] == "open"
        link = first["actions"]["acknowledge"]
        assert link.startswith(service.api_url + "/a/")
        mail = next(m for m in inbox.messages if m["To"] == "desk@usbp.example.org")
        assert service.api_url + "/a/" in mail.get_body(preferencelist=("plain",)).get_content()

        with httpx.Client(timeout=10) as http:
            page = http.get(link)  # what a mail scanner would fetch: changes nothing
            assert page.status_code == 200 and service.lifecycle.get(the_alert).state is AlertState.OPEN
            done = http.post(link, data={"action": "acknowledge", "note": "unit 12 en route"})
            assert done.status_code == 200, done.text
            tampered = http.post(link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB"),
                                 data={"action": "acknowledge"})
            assert tampered.status_code in (400, 403)

        assert service.lifecycle.get(the_alert).state is AlertState.ACKNOWLEDGED
        _wait(lambda: any(d["alert"]["state"] == "acknowledged" for d in hooks.documents if d["partner_id"] == "usbp"))
        acked_on_bus = [Alert.from_bytes(r.value) for r in bus.records(topics.ALERTS)]
        assert acked_on_bus[-1].state is AlertState.ACKNOWLEDGED
        [entry] = [e for e in audit_entries(service.outbox.engine, "alert", the_alert) if e.action.endswith("acknowledged")
                   or e.action == "alert.acknowledge"]
        assert entry.actor.partner_id == "usbp" and entry.actor.address == "127.0.0.1"
        assert hooks.bad == 0
    finally:
        runner.stop()
        thread.join(30)

"""The delivery pump against real local HTTP partners (stdlib servers on 127.0.0.1): sends in flight
per partner up to the lane's bound, a slow partner that does not hold the others, a dead endpoint
that costs one attempt and holds its lane, and everything delivered once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from wire_samples import T0, alert

from alerts.delivery import WebhookChannel
from alerts.delivery_pump import DeliveryPump
from alerts.formats.webhook import idempotency_key, idempotency_key_of
from alerts.outbox import DELIVERED, PENDING, Outbox
from ibet.clock import SystemClock
from ibet.config import DatabaseSettings
from ibet.db import make_engine, migrate


class Partner:
    """A webhook endpoint that takes ``delay_s`` per request (with ``gate``: answers nothing until
    it is set) and notes the most requests at once."""

    def __init__(self, delay_s: float = 0.0, gate: threading.Event | None = None):
        self.delay_s, self.gate, self.now, self.most = delay_s, gate, 0, 0
        self.keys: list[str] = []
        self.lock = threading.Lock()
        partner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with partner.lock:
                    partner.now += 1
                    partner.most = max(partner.most, partner.now)
                time.sleep(partner.delay_s)
                if partner.gate is not None:
                    partner.gate.wait(30)
                with partner.lock:
                    partner.now -= 1
                    partner.keys.append(idempotency_key_of(dict(self.headers.items())) or "")
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def outbox(database_url: str) -> Iterator[Outbox]:
    engine = make_engine(DatabaseSettings(url=database_url))
    migrate(engine)
    yield Outbox(engine, SystemClock())
    engine.dispose()


@pytest.fixture
def partners() -> Iterator[Callable[..., Partner]]:
    made: list[Partner] = []

    def make(delay_s: float = 0.0, gate: threading.Event | None = None) -> Partner:
        made.append(Partner(delay_s, gate))
        return made[-1]

    yield make
    for partner in made:
        partner.stop()


def _record(outbox: Outbox, n: int, partner_ids: tuple[str, ...], first: int = 0) -> list[str]:
    keys = []
    for i in range(first, first + n):
        an_alert = alert(alert_id=f"alr-{i:016x}", created_ts_ns=T0 + i, updated_ts_ns=T0 + i)
        wanted = [(p, "webhook", idempotency_key(an_alert, p)) for p in partner_ids]
        outbox.record(an_alert, wanted)
        keys += [key for _, _, key in wanted]
    return keys


def _pump_until(pump: DeliveryPump, done: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "the pump did not get there in time"
        pump.step()
        time.sleep(0.01)


def test_sends_to_one_partner_go_out_side_by_side_up_to_the_lane_bound_and_each_arrives_once(outbox, partners):
    partner = partners(0.2)
    keys = _record(outbox, 24, ("usbp-blaine",))
    with httpx.Client(timeout=10) as client:
        pump = DeliveryPump(outbox, {"webhook": WebhookChannel(client, {"usbp-blaine": (partner.url, b"s")},
                                                               lane_concurrency=4)})
        _pump_until(pump, lambda: outbox.counts()[DELIVERED] == 24)
        pump.close()
    assert sorted(partner.keys) == sorted(keys)  # each once
    assert 2 <= partner.most <= 4  # side by side, never more than the bound


def test_a_slow_partner_does_not_hold_the_others_and_what_it_had_waiting_is_given_back_at_close(outbox, partners):
    answer = threading.Event()
    slow, fast = partners(gate=answer), partners(0.0)  # the slow one answers nothing until told
    slow_keys = _record(outbox, 8, ("usbp-blaine",))  # recorded first: the oldest, claimed first
    fast_keys = _record(outbox, 12, ("rcmp-e-div",), first=100)
    endpoints = {"usbp-blaine": (slow.url, b"s"), "rcmp-e-div": (fast.url, b"r")}
    with httpx.Client(timeout=30) as client:
        pump = DeliveryPump(outbox, {"webhook": WebhookChannel(client, endpoints, lane_concurrency=1)},
                            batch=2, max_in_flight=2, lane_queue=1)  # room for 4 claimed at once
        # Its full lane (one in flight, one waiting) was left out of the claims; else its backlog
        # would have taken all the room and the fast partner would have waited on it for good.
        _pump_until(pump, lambda: sorted(fast.keys) == sorted(fast_keys), timeout_s=20)
        assert slow.keys == [] and slow.most == 1
        answer.set()  # the one in flight is answered; the one waiting in its lane was never sent
        pump.close()
    rows = {key: outbox.get(key) for key in slow_keys}
    assert [k for k, d in rows.items() if d.status == DELIVERED] == slow.keys and len(slow.keys) == 1
    rest = [d for k, d in rows.items() if k not in slow.keys]
    assert {d.status for d in rest} == {PENDING} and {d.attempts for d in rest} == {0}  # given back, none an attempt
    assert all(d.next_attempt_ns <= outbox.clock.now_ns() for d in rest)  # due at once for the next worker


def test_a_dead_endpoint_costs_one_attempt_and_holds_its_lane_while_others_deliver(outbox, partners):
    fast = partners(0.0)
    keys = _record(outbox, 5, ("usbp-blaine", "rcmp-e-div"))
    endpoints = {"usbp-blaine": ("http://127.0.0.1:9/hook", b"s"), "rcmp-e-div": (fast.url, b"r")}  # 9: discard, closed
    with httpx.Client(timeout=5) as client:
        pump = DeliveryPump(outbox, {"webhook": WebhookChannel(client, endpoints, lane_concurrency=1)})
        _pump_until(pump, lambda: len(fast.keys) == 5 and pump.holding == 0)
        pump.close()
    down = [d for d in map(outbox.get, keys) if d.partner_id == "usbp-blaine"]
    assert {d.status for d in down} == {PENDING}  # retried later, nothing lost
    tried = [d for d in down if not d.last_error.startswith("not tried")]
    assert len(tried) == 1 and "cannot reach" in tried[0].last_error
    assert all("cannot reach" in d.last_error for d in down)  # the others say why they waited

"""CAP channel against a real HTTP receiver (Starlette under uvicorn on 127.0.0.1) that checks each
signature, de-duplicates on the idempotency key (409 for a repeat) and parses the CAP it gets."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from wire_samples import T0, alert, event, track

from alerts.cap_channel import (
    CONTENT_TYPE,
    CapChannel,
    cap_idempotency_key,
    cap_msg_type,
    classify_http_error,
    classify_http_response,
)
from alerts.delivery import Outcome, deliver_due
from alerts.formats.cap import parse_cap
from alerts.formats.cot import circular_error_m
from alerts.formats.webhook import idempotency_key_of, verify_webhook
from alerts.outbox import DELIVERED, PENDING, SUPERSEDED, DeliveryJob, Outbox
from ibet.clock import ManualClock
from ibet.config import DatabaseSettings
from ibet.db import make_engine, migrate
from ibet.messages import AlertState
from ibet.registry import load_registry
from ibet_testing.http_server import serve_in_thread

REPO = Path(__file__).resolve().parents[2]
SECRET = b"hsi-cap-secret"
SENDER = "ibet.pacific"
ACKED = alert(state=AlertState.ACKNOWLEDGED, updated_ts_ns=T0 + 1_000_000_000)
RESOLVED = alert(state=AlertState.RESOLVED, updated_ts_ns=T0 + 2_000_000_000)


class CapReceiver:
    """A partner's CAP endpoint: checks the signature (401), answers scripted statuses first,
    keeps the first copy of each idempotency key and answers 409 to a repeat."""

    def __init__(self, secret: bytes = SECRET) -> None:
        self.secret = secret
        self.received: list[dict] = []
        self.requests = 0
        self.script: list[int] = []
        self.delay_s = 0.0
        self._seen: set[str] = set()
        self.app = Starlette(routes=[Route("/cap/{partner}", self.cap, methods=["POST"])])

    async def cap(self, request: Request) -> Response:
        self.requests += 1
        body = await request.body()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.script:
            return Response(f"scripted {self.script[0]}", status_code=self.script.pop(0))
        headers = dict(request.headers)
        if not verify_webhook(headers, body, self.secret, time.time()):
            return Response("bad signature", status_code=401)
        key = idempotency_key_of(headers)
        if key in self._seen:
            return Response("already have it", status_code=409)
        self._seen.add(key)
        self.received.append({"partner": request.path_params["partner"], "headers": headers, "body": body,
                              "key": key, "cap": parse_cap(body)})
        return Response(status_code=204)


@pytest.fixture
def receiver() -> CapReceiver:
    return CapReceiver()


@pytest.fixture
def base_url(receiver: CapReceiver) -> Iterator[str]:
    with serve_in_thread(receiver.app) as url:
        yield url


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0) as http:
        yield http


def job(an_alert=None, partner: str = "hsi", attempt: int = 1) -> DeliveryJob:
    return DeliveryJob(f"dlv-test.{partner}", an_alert or alert(), partner, "cap", "v", attempt, 0)


def now_ns() -> int:
    """The receiver checks signatures against its own clock, as a partner would."""
    return time.time_ns()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_alert_then_update_and_cancel_referencing_it_signed(receiver, base_url, client):
    the_track = track(position_cov_m2=((400.0, 50.0), (50.0, 900.0)))  # a 95 % radius of about 74 m
    context = lambda a: (the_track, event())  # noqa: E731 - the alert service's look-up of the alert's track
    channel = CapChannel(client, {"hsi": (f"{base_url}/cap/hsi", SECRET)}, SENDER, context_for=context)

    results = [channel.send(job(a), now_ns()) for a in (alert(), ACKED, RESOLVED)]

    assert [r.outcome for r in results] == [Outcome.DELIVERED] * 3, results
    first, update, cancel = (r["cap"] for r in receiver.received)
    assert [c["msg_type"] for c in (first, update, cancel)] == ["Alert", "Update", "Cancel"]
    assert first["references"] == [] and update["references"] == cancel["references"] == [first["reference"]]
    assert first["identifier"] in results[0].detail and "HTTP 204" in results[0].detail
    assert {c["status"] for c in (first, update, cancel)} == {"Actual"} and first["sender"] == SENDER
    assert first["info"][0]["event"] == "Possible border crossing" and first["info"][0]["certainty"] == "Likely"
    radius_km = first["info"][0]["areas"][0]["circles"][0][2]
    assert radius_km == pytest.approx(circular_error_m(the_track.position_cov_m2, 0.95) / 1000, abs=0.0005)
    assert cancel["info"][0]["response_types"] == ["AllClear"]
    headers = receiver.received[0]["headers"]
    assert headers["content-type"] == CONTENT_TYPE
    assert [r["key"] for r in receiver.received] == [cap_idempotency_key(a, "hsi") for a in (alert(), ACKED, RESOLVED)]


def test_a_resend_is_byte_identical_and_the_receivers_409_counts_as_delivered(receiver, base_url, client):
    channel = CapChannel(client, {"hsi": (f"{base_url}/cap/hsi", SECRET)}, SENDER)
    first = channel.send(job(), now_ns())
    headers, body = channel.request(alert(), "hsi", SECRET, 1_800_000_000)
    again = channel.send(job(attempt=2), now_ns())
    assert first.outcome is again.outcome is Outcome.DELIVERED and "HTTP 409" in again.detail, again
    assert receiver.requests == 2 and len(receiver.received) == 1 and receiver.received[0]["body"] == body


def test_exercise_status(receiver, base_url, client):
    drill = CapChannel(client, {"hsi": (f"{base_url}/cap/hsi", SECRET)}, SENDER, exercise=True)
    assert drill.send(job(), now_ns()).outcome is Outcome.DELIVERED
    channel = CapChannel(client, {"hsi": (f"{base_url}/cap/hsi", SECRET)}, SENDER)
    assert channel.send(job(alert(alert_id="alr-00000000000000ee", exercise=True)), now_ns()).outcome is Outcome.DELIVERED
    assert channel.send(job(alert(alert_id="alr-00000000000000ff")), now_ns()).outcome is Outcome.DELIVERED
    marked, flagged, real = (r["cap"] for r in receiver.received)
    assert marked["status"] == flagged["status"] == "Exercise" and "Exercise" in marked["note"]
    assert real["status"] == "Actual"


@pytest.mark.parametrize(("status", "outcome"), [
    (503, Outcome.RETRY), (500, Outcome.RETRY), (429, Outcome.RETRY), (408, Outcome.RETRY),
    (400, Outcome.DEAD), (404, Outcome.DEAD), (301, Outcome.DEAD), (202, Outcome.DELIVERED),
])
def test_http_answers_are_classified(receiver, base_url, client, status, outcome):
    receiver.script = [status]
    result = CapChannel(client, {"hsi": (f"{base_url}/cap/hsi", SECRET)}, SENDER).send(job(), now_ns())
    assert result.outcome is outcome and f"HTTP {status}" in result.detail, result


def test_a_wrong_secret_is_refused_by_the_receiver_and_dead(receiver, base_url, client):
    result = CapChannel(client, {"hsi": (f"{base_url}/cap/hsi", "another secret")}, SENDER).send(job(), now_ns())
    assert result.outcome is Outcome.DEAD and "401" in result.detail and "bad signature" in result.detail
    assert receiver.received == []


def test_server_down_and_timeouts_are_retried(receiver, base_url):
    down = CapChannel(httpx.Client(timeout=5.0), {"hsi": (f"http://127.0.0.1:{_closed_port()}/cap/hsi", SECRET)}, SENDER)
    result = down.send(job(), now_ns())
    assert result.outcome is Outcome.RETRY and "ConnectError" in result.detail, result

    receiver.delay_s = 1.0
    with httpx.Client(timeout=0.1) as impatient:
        slow = CapChannel(impatient, {"hsi": (f"{base_url}/cap/hsi", SECRET)}, SENDER).send(job(), now_ns())
    assert slow.outcome is Outcome.RETRY and "timeout" in slow.detail, slow


def test_a_partner_down_for_a_while_gets_the_newest_version_once_through_the_outbox(receiver, client, tmp_path):
    engine = make_engine(DatabaseSettings(url=f"sqlite:///{tmp_path / 'outbox.db'}"))
    migrate(engine)
    clock = ManualClock(now_ns())
    outbox = Outbox(engine, clock)
    for version in (alert(), ACKED):
        outbox.record(version, [("hsi", "cap", cap_idempotency_key(version, "hsi"))])
    port = _closed_port()
    channel = CapChannel(client, {"hsi": (f"http://127.0.0.1:{port}/cap/hsi", SECRET)}, SENDER)

    assert deliver_due(outbox, {"cap": channel}).retried == 1  # only the newest version is tried
    assert [r.status for r in outbox.deliveries()] == [SUPERSEDED, PENDING]
    with serve_in_thread(receiver.app) as url:
        channel.endpoints["hsi"] = (f"{url}/cap/hsi", SECRET)  # the partner is back (on a port of its choosing)
        clock.advance(5.0)  # past the first backoff (1 s at most); signatures stay within the receiver's tolerance
        assert deliver_due(outbox, {"cap": channel}).delivered == 1
    assert [r.status for r in outbox.deliveries()] == [SUPERSEDED, DELIVERED]
    # the superseded Alert is never sent after its successor: the partner holds the newest version
    assert [r["cap"]["msg_type"] for r in receiver.received] == ["Update"]
    engine.dispose()


def test_a_partner_without_a_cap_url_is_dead(client):
    result = CapChannel(client, {"hsi": ("http://127.0.0.1:9/cap", SECRET)}, SENDER).send(job(partner="cbsa"), now_ns())
    assert result.outcome is Outcome.DEAD and result.detail == "no CAP URL configured for partner 'cbsa'"


@pytest.mark.parametrize(("endpoints", "sender", "words"), [
    ({"hsi": ("ftp://cap.hsi.example/in", SECRET)}, SENDER, "partner 'hsi': CAP URL 'ftp://cap.hsi.example/in'"),
    ({"hsi": ("cap.hsi.example:8443", SECRET)}, SENDER, "partner 'hsi': CAP URL"),
    ({"hsi": ("https://cap.hsi.example/in", b"")}, SENDER, "partner 'hsi': the CAP signing secret"),
    ({"hsi": ("https://cap.hsi.example/in", SECRET)}, "ibet pacific", "CAP sender 'ibet pacific'"),
    ({"hsi": ("https://cap.hsi.example/in", SECRET)}, "", "CAP sender ''"),
])
def test_constructor_refuses_bad_endpoints_and_senders(client, endpoints, sender, words):
    with pytest.raises(ValueError, match=words):
        CapChannel(client, endpoints, sender)


def test_from_registry_needs_a_secret_for_every_cap_url(client):
    registry = load_registry(REPO / "config" / "registry.yaml")
    urls = {p.id: p.contacts.cap_url for p in registry.partners if p.contacts.cap_url}
    assert set(urls) == {"rcmp", "hsi"}
    with pytest.raises(ValueError, match="'rcmp'"):
        CapChannel.from_registry(registry, client, {"hsi": SECRET}, SENDER)
    channel = CapChannel.from_registry(registry, client, {"hsi": SECRET, "rcmp": "rcmp-secret", "cbsa": "x"}, SENDER,
                                       exercise=True)
    assert channel.endpoints == {"hsi": (urls["hsi"], SECRET), "rcmp": (urls["rcmp"], b"rcmp-secret")}
    assert channel.exercise


def test_msg_type_and_classification_helpers():
    assert [cap_msg_type(a) for a in (alert(), ACKED, RESOLVED)] == ["Alert", "Update", "Cancel"]
    assert classify_http_response(409, "u").outcome is Outcome.DELIVERED
    assert classify_http_response(425, "u").outcome is Outcome.RETRY
    assert classify_http_response(422, "u", "bad CAP").detail == "HTTP 422 from u: bad CAP"
    assert classify_http_error(httpx.UnsupportedProtocol("no"), "u").outcome is Outcome.DEAD
    assert classify_http_error(httpx.ReadTimeout("slow"), "u").outcome is Outcome.RETRY

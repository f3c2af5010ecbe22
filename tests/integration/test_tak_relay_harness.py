"""The TAK harness itself: a CoT event a plain TCP client sends through a real taky server reaches a
real pytak subscriber, and a silent server delivers nothing (so the check can fail)."""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from ibet_testing.tak_server import TakServer, TakSubscriber


@pytest.fixture
def tak_server() -> Iterator[TakServer]:
    with TakServer() as server:
        yield server


@pytest.fixture
def subscriber(tak_server: TakServer) -> Iterator[TakSubscriber]:
    with TakSubscriber(tak_server.host, tak_server.port) as sub:
        yield sub


def _cot(uid: str, cot_type: str = "a-u-G") -> bytes:
    now = datetime.now(UTC)

    def stamp(moment: datetime) -> str:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    return (f'<?xml version="1.0" encoding="UTF-8"?><event version="2.0" uid="{uid}" type="{cot_type}" how="m-g" '
            f'time="{stamp(now)}" start="{stamp(now)}" stale="{stamp(now + timedelta(minutes=5))}">'
            '<point lat="49.0" lon="-122.7" hae="0" ce="10" le="10"/>'
            '<detail><contact callsign="x"/></detail></event>').encode()


def test_an_event_from_another_client_reaches_the_subscriber(tak_server: TakServer, subscriber: TakSubscriber):
    with socket.create_connection((tak_server.host, tak_server.port), timeout=5) as sender:
        sender.sendall(_cot("test-1"))
        received = subscriber.wait_for(lambda event: b'uid="test-1"' in event, timeout_s=5)

    assert len(received) == 1, subscriber.events()
    event = ET.fromstring(received[0])
    assert (event.get("uid"), event.get("type")) == ("test-1", "a-u-G")
    assert event.find("detail/contact").get("callsign") == "x"
    assert float(event.find("point").get("lat")) == 49.0


def test_nothing_arrives_when_nothing_is_sent(subscriber: TakSubscriber):
    assert subscriber.wait_for(lambda event: True, timeout_s=2) == []
    assert subscriber.events() == []

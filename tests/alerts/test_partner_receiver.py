"""docs/partners.md's example webhook receiver (docs/examples/webhook_receiver.py, standard library
only) against the webhook channel as production builds it (alerts.service.make_channels) through
the outbox: it accepts what ibet signs, refuses what it does not, drops retries, and ends on the
newest version of an alert even when an older one reaches it last."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from wire_samples import T0, alert

from alerts.delivery import deliver_due
from alerts.formats.webhook import idempotency_key
from alerts.outbox import DEAD, DELIVERED, DeliveryJob, Outbox
from alerts.service import make_channels
from ibet.clock import ManualClock
from ibet.config import AlertSettings, DatabaseSettings
from ibet.db import make_engine, migrate
from ibet.messages import AlertState
from ibet.registry import Registry, load_registry

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "docs" / "examples" / "webhook_receiver.py"
SECRET = "the-secret-agreed-with-the-partner"
PARTNER = "usbp"


@pytest.fixture
def receiver() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen([sys.executable, str(EXAMPLE), str(port)], env={**os.environ, "IBET_WEBHOOK_SECRET": SECRET})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while True:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(10)


def registry_with(url: str) -> Registry:
    data = load_registry(REPO / "config" / "registry.yaml").model_dump(mode="python")
    for partner in data["partners"]:
        if partner["id"] == PARTNER:
            partner["contacts"]["webhook_url"] = f"{url}/ibet"
    return Registry.model_validate(data)


def test_the_documented_receiver_takes_ibets_webhooks_and_keeps_the_newest(receiver, tmp_path):
    registry = registry_with(receiver)
    settings = AlertSettings(channels=["webhook"], webhook_secrets={PARTNER: SECRET})
    channels = make_channels(settings, registry)
    engine = make_engine(DatabaseSettings(url=f"sqlite:///{tmp_path}/outbox.sqlite3"))
    migrate(engine)
    clock = ManualClock(int(time.time() * 1e9))
    outbox = Outbox(engine, clock)
    first = alert(routed_partner_ids=(PARTNER,), lead_partner_id=PARTNER, created_ts_ns=T0, updated_ts_ns=T0)
    acked = first.model_copy(update={"state": AlertState.ACKNOWLEDGED, "updated_ts_ns": T0 + 10**9})
    for version in (first, acked):
        outbox.record(version, [(PARTNER, "webhook", idempotency_key(version, PARTNER))])
        assert deliver_due(outbox, channels, clock.now_ns()).delivered == 1, outbox.deliveries()
    assert httpx.get(receiver).json() == {first.alert_id: "acknowledged"}
    # a retry of a delivered version, and the older version arriving last (e.g. from a restored backup)
    for version in (acked, first):
        job = DeliveryJob(idempotency_key(version, PARTNER), version, PARTNER, "webhook", "", 2, 0)
        assert channels["webhook"].send(job, clock.now_ns()).outcome.value == DELIVERED
    assert httpx.get(receiver).json() == {first.alert_id: "acknowledged"}  # it kept the highest version_order
    # a sender that does not know the secret is refused, and ibet calls that delivery dead (no retry)
    wrong = make_channels(AlertSettings(channels=["webhook"], webhook_secrets={PARTNER: "not-the-secret"}), registry)
    job = DeliveryJob(idempotency_key(acked, PARTNER), acked, PARTNER, "webhook", "", 1, 0)
    result = wrong["webhook"].send(job, clock.now_ns())
    assert result.outcome.value == DEAD and "401" in result.detail
    engine.dispose()

"""CoT channel against a real TCP/TLS listener (ibet_app.cot_listener) that parses every event:
uid per track over one persistent connection, reconnects, client certificates, failure classes."""

from __future__ import annotations

import socket
import ssl
from datetime import timedelta
from pathlib import Path

import pytest
from wire_samples import T0, track
from wire_samples import alert as sample_alert

from alerts.cot_channel import CotChannel, parse_host_port, tak_tls_context
from alerts.delivery import Outcome, deliver_due
from alerts.formats.cot import circular_error_m
from alerts.outbox import DELIVERED, DeliveryJob, Outbox
from ibet.clock import ManualClock, ns_to_datetime_utc
from ibet.config import DatabaseSettings
from ibet.db import make_engine, migrate
from ibet.messages import AlertState
from ibet.registry import load_registry
from ibet_app.cot_listener import CotListener, server_tls_context, split_events

REPO = Path(__file__).resolve().parents[2]
NOW = T0 + 5_000_000_000
TRACK_ID = "trk-pacific-blaine-17"
TRACK_UID = f"ibet-{TRACK_ID}"


def alert(**changes):
    """The sample alert, about track 17 as the alert stage records it."""
    return sample_alert(**({"track_ids": (TRACK_ID,)} | changes))


def job(an_alert=None, partner: str = "rcmp", attempt: int = 1) -> DeliveryJob:
    return DeliveryJob(f"dlv-test.{partner}", an_alert or alert(), partner, "cot", "v", attempt, NOW + 60_000_000_000)


def track_17(track_id: str):
    """track_for: the latest state of the tracks the service knows (track 17 only)."""
    return track() if track_id == TRACK_ID else None


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def tak():
    with CotListener() as listener:
        yield listener


@pytest.fixture
def tls_tak(pki):
    with CotListener(ssl_context=server_tls_context(str(pki.server_cert), str(pki.server_key), str(pki.ca))) as listener:
        yield listener


def test_updates_of_one_track_reuse_the_connection_and_the_uid(tak):
    acked = alert(state=AlertState.ACKNOWLEDGED, updated_ts_ns=T0 + 1_000_000_000)
    with CotChannel({"rcmp": tak.endpoint}, track_for=track_17, ground_hae_m={"pacific-blaine": 18.5}) as channel:
        first = channel.send(job(), NOW)
        second = channel.send(job(acked), NOW + 2_000_000_000)
        third = channel.send(job(alert(alert_id="alr-00000000000000ff")), NOW + 3_000_000_000)  # another alert on the track

    assert [r.outcome for r in (first, second, third)] == [Outcome.DELIVERED] * 3, (first, second, third)
    assert "new connection" in first.detail and "open connection" in second.detail
    events = tak.wait_for(3)
    assert tak.connections_accepted == 1 and tak.errors == []
    cots = [e.cot for e in events]
    assert {c["uid"] for c in cots} == {TRACK_UID}  # every update replaces the one marker
    assert cots[0]["time"] == ns_to_datetime_utc(NOW).replace(microsecond=ns_to_datetime_utc(NOW).microsecond // 1000 * 1000)
    assert cots[0]["stale"] - cots[0]["time"] == timedelta(seconds=120)
    assert (cots[0]["type"], cots[0]["how"], cots[0]["opex"], cots[0]["hae"]) == ("a-s-G", "m-f", "o", 18.5)
    assert cots[0]["remarks"] == f"HIGH (open) {alert().title}: {alert().summary}"
    assert cots[1]["remarks"].startswith("HIGH (acknowledged) ")
    assert (cots[0]["lat"], cots[0]["lon"]) == (track().lat_deg, track().lon_deg) and cots[0]["ce"] == pytest.approx(
        circular_error_m(track().position_cov_m2), abs=0.05)


def test_one_marker_per_track_at_the_alert_position_when_the_track_state_is_unknown(tak):
    two_tracks = alert(track_ids=(TRACK_ID, "trk-pacific-blaine-18"))
    with CotChannel({"rcmp": tak.endpoint}, track_for=track_17) as channel:
        result = channel.send(job(two_tracks), NOW)
    assert result.outcome is Outcome.DELIVERED and result.detail.startswith("2 event(s)"), result
    known, unknown = (e.cot for e in tak.wait_for(2))
    assert (known["uid"], unknown["uid"]) == (TRACK_UID, "ibet-trk-pacific-blaine-18")
    assert (known["lat"], known["lon"]) == (track().lat_deg, track().lon_deg) and known["course_deg"] is not None
    assert (unknown["lat"], unknown["lon"], unknown["ce"]) == (alert().lat_deg, alert().lon_deg, 9999999.0)
    assert unknown["type"] == known["type"] == "a-s-G" and unknown["remarks"] == known["remarks"]


def test_without_tracks_the_uid_is_the_alerts_and_exercise_is_marked(tak):
    with CotChannel({"rcmp": tak.endpoint}, exercise=True, stale_s=30.0) as channel:
        assert channel.send(job(alert(track_ids=())), NOW).outcome is Outcome.DELIVERED
    with CotChannel({"rcmp": tak.endpoint}) as channel:  # an exercise alert is marked whatever the channel says
        assert channel.send(job(alert(track_ids=(), alert_id="alr-00000000000000ff", exercise=True)), NOW).outcome \
            is Outcome.DELIVERED
        assert channel.send(job(alert()), NOW).outcome is Outcome.DELIVERED
    by_uid = {e.cot["uid"]: e.cot for e in tak.wait_for(3)}  # two connections: no order between them
    one, other, real = (by_uid[uid] for uid in ("ibet-alr-0123456789abcdef", "ibet-alr-00000000000000ff", TRACK_UID))
    assert one["opex"] == other["opex"] == "e" and one["remarks"].startswith("[EXERCISE] ")
    assert real["opex"] == "o" and not real["remarks"].startswith("[EXERCISE]")
    assert one["stale"] - one["time"] == timedelta(seconds=30)
    assert (one["lat"], one["lon"]) == (alert().lat_deg, alert().lon_deg)


def test_a_sensor_health_alert_is_not_sent_as_a_marker(tak):
    lost_feed = alert(kind="sensor_health", track_ids=(), sensor_ids=("cam-peace-arch",), title="Feed lost: cam-peace-arch")
    result = CotChannel({"rcmp": tak.endpoint}).send(job(lost_feed), NOW)
    assert result.outcome is Outcome.DEAD and "sensor-health" in result.detail
    assert tak.connections_accepted == 0


def test_a_connection_the_server_dropped_is_replaced_without_losing_the_event(tak):
    with CotChannel({"rcmp": tak.endpoint, "usbp": tak.endpoint}) as channel:
        assert channel.send(job(), NOW).outcome is Outcome.DELIVERED
        tak.wait_for(1)
        tak.drop_connections()  # the TAK server restarts its connection handling
        acked = alert(state=AlertState.ACKNOWLEDGED, updated_ts_ns=T0 + 1)  # a new version: sent again
        again = channel.send(job(acked, partner="usbp"), NOW + 1_000_000_000)
    assert again.outcome is Outcome.DELIVERED and "new connection" in again.detail, again
    assert len(tak.wait_for(2)) == 2 and tak.connections_accepted == 2


def test_server_down_is_retried_and_gets_the_event_when_it_comes_back():
    port = _closed_port()
    with CotChannel({"rcmp": f"127.0.0.1:{port}"}) as channel:
        down = channel.send(job(), NOW)
        assert down.outcome is Outcome.RETRY and "ConnectionRefusedError" in down.detail, down
        with CotListener(port=port) as tak:
            assert channel.send(job(attempt=2), NOW + 10_000_000_000).outcome is Outcome.DELIVERED
            assert tak.wait_for(1)[0].cot["uid"] == TRACK_UID


def test_tls_with_a_client_certificate(tls_tak, pki):
    context = tak_tls_context(str(pki.client_cert), str(pki.client_key), str(pki.ca))
    with CotChannel({"rcmp": tls_tak.endpoint}, ssl_context=context, track_for=track_17) as channel:
        acked = alert(state=AlertState.ACKNOWLEDGED, updated_ts_ns=T0 + 1)  # a second version, on the open connection
        results = [channel.send(job(), NOW), channel.send(job(acked), NOW)]
    assert [r.outcome for r in results] == [Outcome.DELIVERED] * 2, results
    events = tls_tak.wait_for(2)
    assert {e.client_cn for e in events} == {"ibet-test-client"} and {e.cot["uid"] for e in events} == {TRACK_UID}
    assert tls_tak.connections_accepted == 1


@pytest.mark.parametrize("client", ["none", "rogue"])
def test_tls_server_refusing_our_certificate_is_a_retry(tls_tak, pki, client):
    if client == "rogue":
        context = tak_tls_context(str(pki.rogue_client_cert), str(pki.rogue_client_key), str(pki.ca))
    else:
        context = ssl.create_default_context(cafile=str(pki.ca))
    with CotChannel({"rcmp": tls_tak.endpoint}, ssl_context=context, tls_settle_s=10.0) as channel:
        result = channel.send(job(), NOW)
    assert result.outcome is Outcome.RETRY and "SSL" in result.detail, result
    assert "TLS handshake" in tls_tak.wait_for_errors(1)[0][1] and tls_tak.events == []


def test_a_tak_server_we_do_not_trust_is_a_retry(tls_tak, pki):
    context = tak_tls_context(str(pki.client_cert), str(pki.client_key), str(pki.rogue_ca))
    with CotChannel({"rcmp": tls_tak.endpoint}, ssl_context=context) as channel:
        result = channel.send(job(), NOW)
    assert result.outcome is Outcome.RETRY and "CERTIFICATE_VERIFY_FAILED" in result.detail, result


def test_a_partner_without_an_endpoint_is_dead():
    result = CotChannel({"rcmp": "127.0.0.1:8087"}).send(job(partner="cbsa"), NOW)
    assert result.outcome is Outcome.DEAD and result.detail == "no TAK endpoint configured for partner 'cbsa'"


@pytest.mark.parametrize("text", ["127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "tak:8087:1", ":8087", "tak: 8087",
                                  "http://tak:8087", "::1:8087", "", None])
def test_an_endpoint_that_is_not_host_port_is_refused_naming_the_partner(text):
    with pytest.raises(ValueError, match="is not 'host:port'"):
        parse_host_port(text)
    with pytest.raises(ValueError, match="partner 'rcmp'"):
        CotChannel({"usbp": "tak.usbp.example:8089", "rcmp": text})


def test_parse_host_port_accepts_names_addresses_and_ipv6():
    assert parse_host_port("tak.rcmp.example:8089") == ("tak.rcmp.example", 8089)
    assert parse_host_port("10.0.0.7:8087") == ("10.0.0.7", 8087)
    assert parse_host_port("[::1]:8087") == ("::1", 8087)


def test_split_events_keeps_the_unfinished_tail():
    documents, rest = split_events(b'<?xml version="1.0"?>\n<event a="1"></event>\n<event a="2"></ev')
    assert documents == [b'<?xml version="1.0"?>\n<event a="1"></event>'] and rest == b'<event a="2"></ev'


def test_from_registry_and_deliver_due_through_the_outbox(tak, tmp_path):
    registry = load_registry(REPO / "config" / "registry.yaml")
    channel = CotChannel.from_registry(registry)
    assert channel.endpoints == {"rcmp": ("127.0.0.1", 8087), "usbp": ("127.0.0.1", 8088)}
    assert channel.ground_hae_m == {s.id: s.ground_elev_m for s in registry.sectors}

    engine = make_engine(DatabaseSettings(url=f"sqlite:///{tmp_path / 'outbox.db'}"))
    migrate(engine)
    outbox = Outbox(engine, ManualClock(NOW))
    outbox.record(alert(), [("rcmp", "cot", "dlv-cot-rcmp"), ("cbsa", "cot", "dlv-cot-cbsa")])
    channel = CotChannel.from_registry(registry, track_for=track_17)
    channel.endpoints["rcmp"] = parse_host_port(tak.endpoint)  # the registry's port 8087 stands for this listener
    with channel:
        stats = deliver_due(outbox, {"cot": channel}, NOW)
    assert (stats.claimed, stats.delivered, stats.dead) == (2, 1, 1)  # cbsa has no TAK server
    assert tak.wait_for(1)[0].cot["uid"] == TRACK_UID
    assert {r.partner_id: r.status for r in outbox.deliveries()}["rcmp"] == DELIVERED
    engine.dispose()


def test_partners_sharing_a_tak_server_get_each_version_once_and_open_alerts_are_kept_alive(tak):
    with CotChannel({"rcmp": tak.endpoint, "usbp": tak.endpoint, "cbsa": tak.endpoint}) as channel:
        first = [channel.send(job(partner=p), NOW) for p in ("rcmp", "usbp")]
        assert [r.outcome for r in first] == [Outcome.DELIVERED] * 2
        assert "already on TAK server" in first[1].detail and "(sent for rcmp)" in first[1].detail
        assert len(tak.wait_for(1)) == 1
        routed = alert(routed_partner_ids=("rcmp", "usbp", "cbsa"))
        refreshed = channel.refresh(routed, NOW + 200_000_000_000)  # the keep-alive, one send per server
        assert [r.outcome for r in refreshed] == [Outcome.DELIVERED]
        events = tak.wait_for(2)
    assert events[1].cot["uid"] == events[0].cot["uid"] and events[1].cot["stale"] > events[0].cot["stale"]

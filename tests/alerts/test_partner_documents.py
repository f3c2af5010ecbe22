"""What partners receive carries the track, as shipped: a crossing found by the fuse stage (built by
the factory ``ibet run fuse`` uses) becomes an alert, and the CAP and CoT channels built by the
factory ``ibet run alerts``, ``ibet up`` and ``ibet demo`` use (``alerts.service.make_channels``, no
lookup passed in) compose from that alert alone: the event's name and certainty, the track's 95 %
circle, course and speed, a callsign a TAK user reads, how the sensors saw it, and what follows a
resolution. Before, production built both channels without the track, and partners got
"Border alert", certainty Unknown, a fixed 250 m circle and ce 9999999."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fuse_samples import crossing_event

from alerts.compose import new_alert
from alerts.formats.cap import parse_cap
from alerts.formats.cot import circular_error_m, parse_cot
from alerts.routing import Routing
from alerts.service import make_channels
from ibet.config import AlertSettings
from ibet.messages import AlertOutcome, AlertState
from ibet.registry import load_registry

REGISTRY = load_registry("config/registry.yaml")
SETTINGS = AlertSettings(channels=["cap", "cot"], webhook_secrets={p.id: "a-partner-secret" for p in REGISTRY.partners},
                         cap_sender="ibet@prairie.ibet.example")


@pytest.fixture(scope="module")
def crossing():
    event = crossing_event("vehicle-rural-road-tower")
    partners = tuple(p.id for p in REGISTRY.partners if event.sector_id in p.sectors)
    routing = Routing(event.sector_id, 0, partners[0], partners, {})
    return event, new_alert(event, routing, REGISTRY)


def test_the_alert_carries_the_event_and_the_fused_track(crossing):
    event, alert = crossing
    assert event.track is not None and event.track.track_id == event.track_id
    assert (alert.event_type, alert.confidence, alert.event_ts_ns) == (event.event_type, event.confidence,
                                                                      event.event_ts_ns)
    assert alert.track == event.track


def test_cap_says_what_happened_how_sure_and_where_from_the_alert_alone(crossing):
    _event, alert = crossing
    channel = make_channels(SETTINGS, REGISTRY)["cap"]
    partner = next(iter(channel.endpoints), None)
    if partner is None:
        pytest.skip("no partner of the shipped registry has a CAP URL")
    _headers, body = channel.request(alert, partner, b"secret", 1_800_000_000)
    cap = parse_cap(body)
    info, french = cap["info"]
    assert (info["language"], french["language"]) == ("en-CA", "fr-CA")
    assert info["event"] == "Possible border crossing"
    assert french["event"] == "Franchissement possible de la frontière" and french["headline"].startswith("Franchissement")
    for same in ("certainty", "urgency", "severity", "parameters"):
        assert french[same] == info[same], same
    assert french["areas"][0]["circles"] == info["areas"][0]["circles"]
    assert info["certainty"] == ("Likely" if alert.confidence >= 0.5 else "Possible")
    [circle] = info["areas"][0]["circles"]
    radius_m = circular_error_m(alert.track.position_cov_m2, 0.95)
    assert circle[2] * 1000 == pytest.approx(max(radius_m, 10.0), abs=0.6) and circle[2] != 0.25
    assert info["parameters"]["ibetTrackId"] == alert.track.track_id
    assert b"<expires>" in body and cap["sender"] == "ibet@prairie.ibet.example"
    resolved = alert.model_copy(update={"state": AlertState.RESOLVED, "outcome": AlertOutcome.FALSE_ALARM,
                                        "updated_ts_ns": alert.updated_ts_ns + 60 * 10**9})
    cancel = parse_cap(channel.request(resolved, partner, b"secret", 1_800_000_060)[1])
    assert cancel["msg_type"] == "Cancel" and cancel["info"][0]["parameters"]["ibetOutcome"] == "false_alarm"


def test_cot_shows_the_track_its_error_course_and_a_callsign_a_tak_user_reads(crossing):
    event, alert = crossing
    channel = make_channels(SETTINGS.model_copy(update={"cot_stale_s": 900.0}), REGISTRY)["cot"]
    now_ns = alert.updated_ts_ns + 10**9
    [data] = channel.events(alert, now_ns)
    cot = parse_cot(data)
    track = alert.track
    assert cot["uid"] == f"ibet-{track.track_id}"
    assert cot["type"] == "a-s-G-E-V"  # a vehicle, suspect while the alert is open
    assert cot["ce"] == pytest.approx(circular_error_m(track.position_cov_m2), abs=0.06) and cot["ce"] < 1000
    assert (cot["lat"], cot["lon"]) == (pytest.approx(track.lat_deg, abs=1e-7), pytest.approx(track.lon_deg, abs=1e-7))
    assert cot["course_deg"] is not None and cot["speed_mps"] > 0
    assert cot["how"] == ("m-i" if len(track.sensor_ids) == 1 else "m-f")
    zone = ZoneInfo(REGISTRY.sector(alert.sector_id).timezone)
    when = datetime.fromtimestamp(event.event_ts_ns / 1e9, tz=UTC).astimezone(zone)
    assert cot["callsign"] == f"Vehicle US→CA {when:%H:%M}"
    assert cot["stale"] - cot["start"] == timedelta(seconds=900)
    confirmed = alert.model_copy(update={"state": AlertState.RESOLVED, "outcome": AlertOutcome.CONFIRMED_CROSSING})
    [done] = [parse_cot(d) for d in channel.events(confirmed, now_ns)]
    assert done["type"] == "a-h-G-E-V" and done["stale"] - done["start"] <= timedelta(seconds=1)
    dismissed = confirmed.model_copy(update={"outcome": AlertOutcome.FALSE_ALARM})
    assert parse_cot(channel.events(dismissed, now_ns)[0])["type"] == "a-u-G-E-V"

"""The acknowledge/resolve API served by uvicorn on 127.0.0.1, called with httpx, on SQLite and PostgreSQL:
every transition and refusal code, the audit (who, when, from where), and one-click links that a mail
scanner can fetch without acting."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from wire_samples import T0, alert

from alerts.api import create_app
from alerts.identity import ContactTokens, LinkSigner
from alerts.lifecycle import AlertLifecycle
from ibet.clock import ManualClock
from ibet.config import DatabaseSettings
from ibet.db import make_engine, migrate
from ibet.messages import Alert, AlertState
from ibet_testing.http_server import serve_in_thread

NOW = T0 + 60_000_000_000
ALERT_ID = "alr-0123456789abcdef"  # routed to usbp-blaine and rcmp-e-div
OTHER_ID = "alr-00000000000000aa"  # routed to usbp-swanton only
SECRET = "a-link-secret-of-at-least-32-bytes!"


@dataclass
class Api:
    client: httpx.Client
    lifecycle: AlertLifecycle
    tokens: ContactTokens
    signer: LinkSigner
    clock: ManualClock
    published: list[Alert]
    desk: dict[str, str]
    commander: dict[str, str]
    rcmp: dict[str, str]
    swanton: dict[str, str]

    def post(self, path: str, headers: dict[str, str] | None, **body) -> httpx.Response:
        return self.client.post(path, headers=headers, json=body or None)


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    engine = make_engine(DatabaseSettings(url=database_url))
    migrate(engine)
    clock, published = ManualClock(NOW), []
    lifecycle, tokens = AlertLifecycle(engine, clock, published.append), ContactTokens(engine, clock)
    lifecycle.open(alert(title="Possible crossing <script>alert(1)</script>"))
    lifecycle.open(alert(alert_id=OTHER_ID, routed_partner_ids=("usbp-swanton",), lead_partner_id="usbp-swanton"))

    def bearer(partner: str, contact: str, level: int = 0) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens.issue(partner, contact, level=level).token}"}

    app = create_app(lifecycle, tokens, link_secret=SECRET, clock=clock)
    with serve_in_thread(app) as base_url, httpx.Client(base_url=base_url, timeout=30) as client:
        yield Api(client, lifecycle, tokens, LinkSigner(SECRET, clock), clock, published,
                  bearer("usbp-blaine", "blaine-station-day-desk"), bearer("usbp-blaine", "blaine-watch-commander", 1),
                  bearer("rcmp-e-div", "pacific-ibet-day-desk"), bearer("usbp-swanton", "swanton-desk", 1))
    engine.dispose()


# Transitions
def test_acknowledge_escalate_resolve_reopen_over_http(api: Api):
    api.clock.advance(10)
    r = api.post(f"/alerts/{ALERT_ID}/acknowledge", api.desk, note="on my way")
    assert r.status_code == 200, r.text
    assert r.json()["alert"]["state"] == "acknowledged" and r.json()["alert"]["updated_ts_ns"] == api.clock.now_ns()
    assert r.json()["status"]["acknowledged_by"] == "contact:usbp-blaine/blaine-station-day-desk"

    api.clock.advance(10)
    r = api.post(f"/alerts/{ALERT_ID}/escalate", api.rcmp)  # no body at all
    assert r.status_code == 200 and r.json()["alert"]["escalation_level"] == 1
    assert r.json()["alert"]["state"] == "acknowledged" and r.json()["status"]["escalated"] is True

    r = api.post(f"/alerts/{ALERT_ID}/resolve", api.desk, outcome="confirmed_crossing", note="2 apprehended")
    assert r.status_code == 200 and r.json()["alert"]["state"] == "resolved"
    assert r.json()["status"]["outcome"] == "confirmed_crossing"

    r = api.post(f"/alerts/{ALERT_ID}/reopen", api.commander, note="a third one ran")
    assert r.status_code == 200 and r.json()["alert"]["state"] == "escalated"  # open again, and still escalated
    assert r.json()["status"]["outcome"] is None

    got = api.client.get(f"/alerts/{ALERT_ID}", headers=api.rcmp)
    assert got.status_code == 200 and got.json() == r.json()
    assert [a.state for a in api.published] == [AlertState.ACKNOWLEDGED, AlertState.ACKNOWLEDGED, AlertState.RESOLVED,
                                                AlertState.ESCALATED]
    assert Alert.model_validate(got.json()["alert"]) == api.lifecycle.get(ALERT_ID)


# Refusals
def test_401_for_every_bad_or_missing_token_and_nothing_changes(api: Api):
    revoked = api.tokens.issue("usbp-blaine", "old-desk")
    api.tokens.revoke(revoked.info.token_id)
    expiring = api.tokens.issue("usbp-blaine", "temp-desk", ttl_s=60).token
    api.clock.advance(61)
    cases = [
        (None, "no API token given"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "no API token given"),
        ({"Authorization": "Bearer nonsense"}, "malformed API token"),
        ({"Authorization": "Bearer ibetc_000000000000_" + "A" * 43}, "unknown API token"),
        ({"Authorization": f"Bearer {revoked.token}"}, "was revoked"),
        ({"Authorization": f"Bearer {expiring}"}, "has expired"),
    ]
    for headers, message in cases:
        for r in (api.post(f"/alerts/{ALERT_ID}/acknowledge", headers), api.client.get(f"/alerts/{ALERT_ID}", headers=headers),
                  api.client.get(f"/alerts/{ALERT_ID}/audit", headers=headers)):
            assert r.status_code == 401, (headers, r.text)
            assert message in r.json()["detail"] and r.headers["www-authenticate"] == "Bearer"
    assert api.lifecycle.get(ALERT_ID).state == AlertState.OPEN and api.published == []


def test_403_for_another_partners_alert_and_for_reopening_without_supervision(api: Api):
    for r in (api.post(f"/alerts/{OTHER_ID}/acknowledge", api.desk), api.client.get(f"/alerts/{OTHER_ID}", headers=api.desk),
              api.client.get(f"/alerts/{OTHER_ID}/audit", headers=api.desk),
              api.post(f"/alerts/{ALERT_ID}/resolve", api.swanton, outcome="lawful")):
        assert r.status_code == 403 and "is not routed to partner" in r.json()["detail"]
    assert api.post(f"/alerts/{ALERT_ID}/resolve", api.desk, outcome="lawful").status_code == 200
    r = api.post(f"/alerts/{ALERT_ID}/reopen", api.rcmp)
    assert r.status_code == 403 and "only a supervisor can reopen" in r.json()["detail"]
    assert api.lifecycle.get(ALERT_ID).state == AlertState.RESOLVED


def test_404_for_an_unknown_alert(api: Api):
    for r in (api.post("/alerts/alr-ffffffffffffffff/acknowledge", api.desk),
              api.client.get("/alerts/alr-ffffffffffffffff", headers=api.desk),
              api.client.get("/alerts/alr-ffffffffffffffff/audit", headers=api.desk)):
        assert r.status_code == 404 and r.json()["detail"] == "no alert 'alr-ffffffffffffffff'"


def test_409_names_the_state_the_alert_is_in(api: Api):
    assert api.post(f"/alerts/{ALERT_ID}/acknowledge", api.desk).status_code == 200
    r = api.post(f"/alerts/{ALERT_ID}/acknowledge", api.rcmp)
    assert r.status_code == 409 and r.json()["state"] == "acknowledged"
    assert "it is acknowledged (by contact:usbp-blaine/blaine-station-day-desk at " in r.json()["detail"]
    assert api.post(f"/alerts/{ALERT_ID}/reopen", api.commander).status_code == 409
    assert api.post(f"/alerts/{ALERT_ID}/resolve", api.desk, outcome="false_alarm").status_code == 200
    for action, body in (("acknowledge", {}), ("escalate", {}), ("resolve", {"outcome": "lawful"})):
        r = api.post(f"/alerts/{ALERT_ID}/{action}", api.desk, **body)
        assert r.status_code == 409 and r.json()["state"] == "resolved", action
        assert "it is resolved as false_alarm" in r.json()["detail"]


def test_422_for_a_bad_body(api: Api):
    bad = [({"outcome": "maybe"}, "outcome"), ({}, "outcome"), ({"outcome": "lawful", "note": "x" * 2001}, "note"),
           ({"outcome": "lawful", "extra": 1}, "extra")]
    for body, field in bad:
        r = api.client.post(f"/alerts/{ALERT_ID}/resolve", headers=api.desk, json=body)
        assert r.status_code == 422 and field in str(r.json()["detail"]), r.text
    r = api.client.post(f"/alerts/{ALERT_ID}/acknowledge", headers=api.desk | {"Content-Type": "application/json"},
                        content=b"{not json")
    assert r.status_code == 422
    assert api.lifecycle.get(ALERT_ID).state == AlertState.OPEN


# Audit: who, when, from where
def test_the_audit_says_who_when_and_from_where(api: Api):
    api.clock.advance(30)
    api.post(f"/alerts/{ALERT_ID}/acknowledge", api.desk, note="on my way")
    api.clock.advance(30)
    api.post(f"/alerts/{ALERT_ID}/escalate", api.rcmp, note="need a boat")
    r = api.client.get(f"/alerts/{ALERT_ID}/audit", headers=api.desk)
    assert r.status_code == 200
    escalated, acked, opened = r.json()["entries"]
    assert acked["actor"] == {"kind": "contact", "id": "blaine-station-day-desk", "partner_id": "usbp-blaine",
                              "role": "duty", "address": "127.0.0.1"}
    assert acked["action"] == "alert.acknowledged" and acked["ts_ns"] == NOW + 30 * 10**9
    assert acked["detail"] == {"from": "open", "to": "acknowledged", "escalation_level": 0, "note": "on my way"}
    assert escalated["ts_ns"] == NOW + 60 * 10**9 and escalated["actor"]["id"] == "pacific-ibet-day-desk"
    assert escalated["actor"]["address"] is None  # another agency's people: their address is not shown
    assert opened["action"] == "alert.opened" and opened["actor"]["kind"] == "system"
    assert api.lifecycle.audit(ALERT_ID)[0].actor.address == "127.0.0.1"  # but it is recorded
    own = api.client.get(f"/alerts/{ALERT_ID}/audit", headers=api.rcmp).json()["entries"]
    assert own[0]["actor"]["address"] == "127.0.0.1" and own[1]["actor"]["address"] is None
    assert len(api.client.get(f"/alerts/{ALERT_ID}/audit?limit=1", headers=api.desk).json()["entries"]) == 1
    assert api.client.get(f"/alerts/{ALERT_ID}/audit?limit=0", headers=api.desk).status_code == 422


# One-click links
def test_fetching_a_link_only_shows_a_confirmation_page(api: Api):
    link = api.signer.sign(ALERT_ID, "acknowledge", "usbp-blaine", "blaine-station-day-desk", ttl_s=3600)
    for _ in range(3):  # a mail scanner, a preview, the person
        page = api.client.get(f"/a/{link}")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert '<form method="post">' in page.text and 'name="action" value="acknowledge"' in page.text
        assert "&lt;script&gt;" in page.text and "<script>" not in page.text
        assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
    assert api.lifecycle.get(ALERT_ID).state == AlertState.OPEN and len(api.lifecycle.audit(ALERT_ID)) == 1

    api.clock.advance(5)
    done = api.client.post(f"/a/{link}", data={"action": "acknowledge", "note": "from my phone"})
    assert done.status_code == 200 and "Alert acknowledged" in done.text
    entry = api.lifecycle.audit(ALERT_ID)[0]
    assert (entry.action, entry.actor.id, entry.actor.partner_id, entry.actor.address, entry.ts_ns) == (
        "alert.acknowledged", "blaine-station-day-desk", "usbp-blaine", "127.0.0.1", NOW + 5 * 10**9)
    assert entry.detail["note"] == "from my phone" and api.published[-1].state == AlertState.ACKNOWLEDGED
    again = api.client.post(f"/a/{link}", data={"action": "acknowledge"})
    assert again.status_code == 409 and "Already handled" in again.text and "it is acknowledged" in again.text


def test_a_resolve_link_asks_for_the_outcome(api: Api):
    link = api.signer.sign(ALERT_ID, "resolve", "rcmp-e-div", "pacific-ibet-day-desk", ttl_s=3600)
    page = api.client.get(f"/a/{link}")
    assert page.status_code == 200 and '<select name="outcome" required>' in page.text
    assert re.findall(r'<option value="(\w+)">', page.text) == ["confirmed_crossing", "false_alarm", "lawful", "unresolved"]
    missing = api.client.post(f"/a/{link}", data={"action": "resolve"})
    assert missing.status_code == 422 and api.lifecycle.get(ALERT_ID).state == AlertState.OPEN
    done = api.client.post(f"/a/{link}", data={"action": "resolve", "outcome": "lawful", "note": "hikers"})
    assert done.status_code == 200 and api.lifecycle.status(ALERT_ID).outcome == "lawful"
    escalate = api.signer.sign(ALERT_ID, "escalate", "rcmp-e-div", "pacific-ibet-day-desk", ttl_s=3600)
    assert api.client.post(f"/a/{escalate}", data={"action": "escalate"}).status_code == 409


def test_an_escalate_link_escalates(api: Api):
    link = api.signer.sign(ALERT_ID, "escalate", "usbp-blaine", "blaine-station-day-desk", ttl_s=3600)
    assert api.client.post(f"/a/{link}", data={"action": "escalate"}).status_code == 200
    assert api.lifecycle.get(ALERT_ID).state == AlertState.ESCALATED


def test_expired_tampered_wrong_and_foreign_links_are_refused(api: Api):
    link = api.signer.sign(ALERT_ID, "acknowledge", "usbp-blaine", "blaine-station-day-desk", ttl_s=60)
    payload, mac = link.split(".")
    wrong = api.client.post(f"/a/{link}", data={"action": "resolve", "outcome": "lawful"})
    assert wrong.status_code == 400 and "this link is for &#x27;acknowledge&#x27;, not &#x27;resolve&#x27;" in wrong.text
    for status, url in ((403, f"/a/{payload}.{mac[:-3]}AAA"), (400, "/a/not-a-link"), (400, f"/a/{payload}.{mac}*")):
        assert api.client.get(url).status_code == status, url
        assert api.client.post(url, data={"action": "acknowledge"}).status_code == status, url
    foreign = api.signer.sign(OTHER_ID, "acknowledge", "usbp-blaine", "blaine-station-day-desk", ttl_s=60)
    assert api.client.get(f"/a/{foreign}").status_code == 403
    assert api.client.post(f"/a/{foreign}", data={"action": "acknowledge"}).status_code == 403
    unknown = api.signer.sign("alr-ffffffffffffffff", "acknowledge", "usbp-blaine", "desk", ttl_s=60)
    assert api.client.get(f"/a/{unknown}").status_code == 404
    assert api.client.post(f"/a/{unknown}", data={"action": "acknowledge"}).status_code == 404
    forged = LinkSigner("another-secret-that-is-32-bytes-long", api.clock).sign(
        ALERT_ID, "acknowledge", "usbp-blaine", "blaine-station-day-desk", ttl_s=60)
    assert api.client.post(f"/a/{forged}", data={"action": "acknowledge"}).status_code == 403
    api.clock.advance(60)
    expired_page = api.client.get(f"/a/{link}")
    assert expired_page.status_code == 410 and "This link has expired" in expired_page.text
    assert api.client.post(f"/a/{link}", data={"action": "acknowledge"}).status_code == 410
    assert api.lifecycle.get(ALERT_ID).state == AlertState.OPEN and len(api.lifecycle.audit(ALERT_ID)) == 1

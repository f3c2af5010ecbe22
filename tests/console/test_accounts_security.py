"""Accounts, sessions, CSRF, the log-in throttle, roles (403) and partner scoping, over real HTTP."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from console_samples import PASSWORD, csrf_of, log_in, login, make_alert
from wire_samples import track

from console.accounts import Accounts
from console.errors import AccountError
from console.store import ConsoleStore
from ibet.audit import audit_entries
from ibet.messages import SensorHealthEvent, SensorHealthState


def test_pages_need_a_login(console):
    with httpx.Client(base_url=console.url) as anonymous:
        assert anonymous.get("/operator").status_code == 303
        assert anonymous.get("/operator").headers["location"] == "/login"
        assert anonymous.get("/api/alerts").status_code == 401
        assert anonymous.post("/admin/retention/purge").status_code == 303  # pages send to /login
        assert anonymous.get("/healthz").json() == {"status": "ok"}


def test_login_sets_a_hardened_session_cookie_and_is_audited(console):
    client = httpx.Client(base_url=console.url)
    response = log_in(client, "oper1", PASSWORD)
    assert response.status_code == 303 and response.headers["location"] == "/operator"
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith("ibet_session="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert client.get("/api/alerts").status_code == 200
    assert [e.action for e in audit_entries(console.engine, "user")][:1] == ["login"]
    client.post("/logout", data={"csrf_token": csrf_of(client)})
    assert client.get("/api/alerts").status_code == 401


def test_wrong_password_and_then_the_throttle(console):
    client = httpx.Client(base_url=console.url)
    for _ in range(3):  # login_max_failures=3 in the fixture
        assert log_in(client, "oper1", "wrong password!!").status_code == 401
    refused = log_in(client, "oper1", PASSWORD)  # even the right password, while throttled
    assert refused.status_code == 429 and "Too many failed log-ins" in refused.text
    assert int(refused.headers["retry-after"]) > 0


def test_login_form_without_its_csrf_token_is_refused(console):
    with httpx.Client(base_url=console.url) as client:
        response = client.post("/login", data={"username": "oper1", "password": PASSWORD, "csrf_token": "forged"})
    assert response.status_code == 403


def test_forged_csrf_is_refused_and_the_real_one_accepted(console):
    alert = console.lifecycle.open(make_alert(("usbp",)))
    client = login(console.url, "oper1")
    url = f"/api/alerts/{alert.alert_id}/acknowledge"
    assert client.post(url, json={"note": "x"}).status_code == 403  # no token
    assert client.post(url, json={"note": "x"}, headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert console.lifecycle.get(alert.alert_id).state.value == "open"
    ok = client.post(url, json={"note": "on it"}, headers={"X-CSRF-Token": csrf_of(client)})
    assert ok.status_code == 200 and ok.json()["state"] == "acknowledged"
    # a cross-site form post (cookie sent, no token) to an admin route is refused too
    admin = login(console.url, "admin1")
    assert admin.post("/admin/users", data={"username": "evil", "password": "x" * 20, "role": "admin"}).status_code == 403
    assert "evil" not in [u.username for u in Accounts(console.engine).list_users()]


@pytest.mark.parametrize(("username", "method", "path"), [
    ("oper1", "GET", "/review"),
    ("oper1", "GET", "/cases"),
    ("oper1", "GET", "/reports"),
    ("oper1", "GET", "/admin/users"),
    ("oper1", "GET", "/api/dataset/yolo"),
    ("analyst1", "POST", "/api/alerts/{alert}/acknowledge"),
    ("analyst1", "GET", "/admin/users"),
    ("analyst1", "POST", "/admin/retention/purge"),
    ("usbp1", "POST", "/api/alerts/{alert}/acknowledge"),
    ("usbp1", "GET", "/review"),
    ("usbp1", "GET", "/cases"),
    ("usbp1", "GET", "/api/evidence/x.jpg"),
    ("usbp1", "GET", "/admin/users"),
    ("oper1", "POST", "/api/tracks/trk-pacific-blaine-17/review"),
    ("oper1", "POST", "/api/detections/det-0/review"),
    ("usbp1", "GET", "/api/review/tracks"),
    ("usbp1", "POST", "/api/tracks/trk-pacific-blaine-17/review"),
])
def test_each_role_is_refused_what_it_must_not_do(console, username, method, path):
    alert = console.lifecycle.open(make_alert(("usbp", "rcmp")))
    client = login(console.url, username)
    response = client.request(method, path.format(alert=alert.alert_id), json={"note": "x"},
                              headers={"X-CSRF-Token": csrf_of(client)})
    assert response.status_code == 403, response.text


def test_a_partner_sees_only_its_alerts_and_cannot_read_another_by_id(console):
    ours = console.lifecycle.open(make_alert(("usbp",), title="for usbp"))
    theirs = console.lifecycle.open(make_alert(("rcmp",), title="for rcmp", lead="rcmp"))
    usbp = login(console.url, "usbp1")
    listed = [a["alert_id"] for a in usbp.get("/api/alerts").json()]
    assert ours.alert_id in listed and theirs.alert_id not in listed
    assert usbp.get(f"/api/alerts/{ours.alert_id}").status_code == 200
    refused = usbp.get(f"/api/alerts/{theirs.alert_id}")
    assert refused.status_code == 404 and "for rcmp" not in refused.text
    operator = login(console.url, "oper1")
    assert {ours.alert_id, theirs.alert_id} <= {a["alert_id"] for a in operator.get("/api/alerts").json()}


def test_api_tokens_for_machines_need_no_csrf_and_keep_their_scope(console):
    accounts = Accounts(console.engine)
    _, secret = accounts.create_token("wallboard", "partner", "admin1", partner_id="rcmp")
    theirs = console.lifecycle.open(make_alert(("usbp",)))
    with httpx.Client(base_url=console.url, headers={"Authorization": f"Bearer {secret}"}) as machine:
        assert machine.get("/api/alerts").status_code == 200
        assert machine.get(f"/api/alerts/{theirs.alert_id}").status_code == 404
        assert machine.post(f"/api/alerts/{theirs.alert_id}/acknowledge", json={}).status_code == 403
    with httpx.Client(base_url=console.url, headers={"Authorization": "Bearer ibet_not-a-token"}) as stranger:
        assert stranger.get("/api/alerts").status_code == 401


@pytest.mark.parametrize(("args", "message"), [
    (("ab", "short", "operator", None), "at least 12"),
    (("Bad Name!", PASSWORD, "operator", None), "username"),
    (("p1", PASSWORD, "partner", None), "needs the partner agency"),
    (("p2", PASSWORD, "operator", "usbp"), "only partner accounts"),
    (("p3", PASSWORD, "partner", "nasa"), "not a partner in the registry"),
    (("p4", PASSWORD, "wizard", None), "role 'wizard'"),
    (("oper1", PASSWORD, "operator", None), "taken"),
])
def test_bad_accounts_are_refused_with_the_reason(console, registry, args, message):
    accounts = Accounts(console.engine, partner_ids=[p.id for p in registry.partners])
    with pytest.raises(AccountError, match=message):
        accounts.create_user(*args)


def test_disabling_a_user_ends_its_sessions(console):
    client = login(console.url, "oper1")
    accounts = Accounts(console.engine)
    user = next(u for u in accounts.list_users() if u.username == "oper1")
    accounts.set_active(user.user_id, False)
    assert client.get("/api/alerts").status_code == 401
    assert log_in(httpx.Client(base_url=console.url), "oper1", PASSWORD).status_code == 401


@pytest.mark.parametrize(("username", "paths"), [
    ("oper1", ["/operator", "/api/alerts", "/api/map/layers", "/api/tracks", "/api/sensor-health"]),
    ("analyst1", ["/review", "/cases", "/reports", "/api/reports", "/api/detections", "/api/dataset/yolo", "/operator"]),
    ("usbp1", ["/operator", "/api/alerts", "/api/map/layers"]),
    ("admin1", ["/admin/users", "/operator", "/review", "/cases", "/reports"]),
])
def test_each_role_reaches_its_own_pages(console, username, paths):
    client = login(console.url, username)
    for path in paths:
        assert client.get(path).status_code == 200, path


def test_admin_adds_a_partner_account_in_the_console(console):
    admin = login(console.url, "admin1")
    token = csrf_of(admin)
    refused = admin.post("/admin/users", data={"username": "cbsa1", "password": PASSWORD, "role": "partner",
                                               "partner_id": "", "csrf_token": token})
    assert refused.status_code == 200 and "needs the partner agency" in refused.text
    created = admin.post("/admin/users", data={"username": "cbsa1", "password": PASSWORD, "role": "partner",
                                               "partner_id": "cbsa", "display_name": "CBSA desk", "csrf_token": token})
    assert created.status_code == 303
    assert [e.action for e in audit_entries(console.engine, "user")][0] == "user.created"
    partner = login(console.url, "cbsa1")
    assert partner.get("/api/alerts").status_code == 200
    purged = admin.post("/admin/retention/purge", headers={"X-CSRF-Token": token})
    assert purged.status_code == 200 and purged.json()["detections_purged"] == 0


def test_a_partner_sees_live_tracks_and_sensor_health_only_in_the_sectors_its_agency_covers(console):
    Accounts(console.engine).create_user("wsp1", PASSWORD, "partner", "wsp", display_name="WSP")  # covers pac-blaine only
    store = ConsoleStore(console.engine)

    def health(sensor: str, sector: str) -> SensorHealthEvent:
        return SensorHealthEvent(sensor_id=sensor, sector_id=sector, state=SensorHealthState.FEED_LOST,
                                 event_ts_ns=track().time_ts_ns, expected_interval_s=0.5, silent_s=9.0)

    store.write([track(track_id="trk-blaine", sector_id="pac-blaine"), track(track_id="trk-derby", sector_id="qc-derby"),
                 health("cam-vista-tower", "pac-blaine"), health("cam-derby-1", "qc-derby")])
    wsp, operator = login(console.url, "wsp1"), login(console.url, "oper1")
    assert [t["track_id"] for t in wsp.get("/api/tracks").json()] == ["trk-blaine"]
    assert [h["sensor_id"] for h in wsp.get("/api/sensor-health").json()] == ["cam-vista-tower"]
    assert {t["track_id"] for t in operator.get("/api/tracks").json()} == {"trk-blaine", "trk-derby"}
    assert len(operator.get("/api/sensor-health").json()) == 2

    seen: list[str] = []

    def listen() -> None:
        with wsp.stream("GET", "/api/live", timeout=20) as events:
            for line in events.iter_lines():
                if line.startswith("data:") and '"track_id"' in line:
                    seen.append(json.loads(line[5:])["track_id"])
                    if seen[-1] == "trk-blaine-2":
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    time.sleep(1.0)  # the stream's cursor starts at "now": write after it opened
    store.write([track(track_id="trk-derby-2", sector_id="qc-derby")])
    store.write([track(track_id="trk-blaine-2", sector_id="pac-blaine")])  # stored after: streamed after
    listener.join(15)
    assert seen == ["trk-blaine-2"]

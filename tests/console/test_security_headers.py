"""Security headers on every console response (pages, API, static files, errors, the live stream),
over real HTTP; and templates that keep to the Content-Security-Policy (no inline script or style)."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx
import pytest
from console_samples import REPO, csrf_of, login, make_alert

from console.cases import create_case
from ibet.audit import Actor
from ibet.clock import SystemClock

POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
          "frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'")
EXPECTED = {"x-frame-options": "DENY", "x-content-type-options": "nosniff", "referrer-policy": "same-origin"}


def assert_secured(response: httpx.Response, policy: str = POLICY) -> None:
    where = f"{response.request.method} {response.request.url.path} ({response.status_code})"
    assert response.headers.get("content-security-policy") == policy, where
    for name, value in EXPECTED.items():
        assert response.headers.get(name) == value, f"{where}: {name}"


def test_every_kind_of_response_carries_the_security_headers(console):
    alert = console.lifecycle.open(make_alert(("usbp",)))
    anonymous = httpx.Client(base_url=console.url)
    for path in ("/login", "/healthz", "/operator", "/api/alerts", "/static/operator.js", "/static/console.css",
                 "/static/vendor/leaflet/leaflet.js", "/static/vendor/leaflet/leaflet.css", "/static/nothing-here.js",
                 "/no-such-page"):
        assert_secured(anonymous.get(path))  # 200, 303 to /login, 401, 404
    assert_secured(anonymous.post("/login", data={"username": "x", "password": "y", "csrf_token": "forged"}))  # 403
    admin = login(console.url, "admin1")
    for path in ("/operator", "/review", "/review?kind=tracks", "/cases", "/reports", "/admin/users", "/api/map/layers",
                 "/api/tracks", "/api/sensor-health", f"/api/alerts/{alert.alert_id}", "/api/alerts/alr-nope",
                 "/api/detections", "/api/reports"):
        assert_secured(admin.get(path))
    assert_secured(admin.post(f"/api/alerts/{alert.alert_id}/acknowledge", json={"note": "x"},
                              headers={"X-CSRF-Token": csrf_of(admin)}))
    with admin.stream("GET", "/api/live") as live:  # the Server-Sent Events stream
        assert live.status_code == 200
        assert_secured(live)


def test_the_case_report_allows_exactly_its_own_inline_stylesheet(console):
    alert = console.lifecycle.open(make_alert(("usbp",)))
    case_id = create_case(console.engine, console.lifecycle, "Vista crossing", [alert.alert_id], Actor("user", "a"),
                          SystemClock().now_ns())
    admin = login(console.url, "admin1")
    assert_secured(admin.get(f"/cases/{case_id}"))
    report = admin.get(f"/cases/{case_id}/export.html")
    (css,) = re.findall(r"<style>(.*?)</style>", report.text, flags=re.S)
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    assert "margin:2em" in css
    assert_secured(report, POLICY.replace("style-src 'self'", f"style-src 'self' 'sha256-{digest}'"))
    assert_secured(admin.get(f"/cases/{case_id}/export.csv"))


@pytest.mark.parametrize("template", sorted((REPO / "console/templates").glob("*.html")), ids=lambda p: p.name)
def test_templates_have_no_inline_script_or_style_attributes(template):
    html = template.read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script>: move it to console/static"
    assert not re.search(r"\sstyle\s*=", html), "style= attribute: use a class in console/static/console.css"
    assert not re.search(r"\son[a-z]+\s*=", html), "on...= handler: add it with addEventListener in console/static"

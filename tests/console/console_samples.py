"""Helpers of the console tests (a unique module name, so tests import it unambiguously)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from alerts.lifecycle import AlertLifecycle
from console.app import server_config
from console.settings import ConsoleSettings
from ibet.clock import SystemClock
from ibet.messages import Alert, AlertState, Direction, Severity
from ibet_testing.http_server import serve_config_in_thread

IN_CI = os.environ.get("CI", "").lower() == "true"
REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"
ROLES = {"admin1": ("admin", None), "oper1": ("operator", None), "analyst1": ("analyst", None),
         "usbp1": ("partner", "usbp"), "rcmp1": ("partner", "rcmp")}


def service_missing(reason: str) -> None:
    """Skip locally; fail in CI (as tests/conftest.py's service_missing)."""
    if IN_CI:
        pytest.fail(f"CI=true and a required service is missing: {reason}", pytrace=False)
    pytest.skip(reason)


@dataclass
class Console:
    url: str
    engine: object
    settings: ConsoleSettings
    lifecycle: AlertLifecycle
    evidence_dir: Path


@contextmanager
def serve_console(app, settings: ConsoleSettings, timeout_s: float = 30.0) -> Iterator[str]:
    """Serve the console ``app`` with uvicorn configured as ``ibet console`` does (:func:`console.app.server_config`:
    uvicorn's proxy headers off, the slow-client bounds) on a free loopback port while the block runs; yields its URL."""
    with serve_config_in_thread(server_config(app, settings, log_level="warning"), timeout_s) as url:
        yield url


def wait_for_js(page, expression: str, timeout_s: float = 30.0) -> None:
    """Wait until the JavaScript ``expression`` is truthy on ``page``.

    Playwright's ``wait_for_function`` polls with ``eval`` inside the page, which the console's
    Content-Security-Policy (no 'unsafe-eval') refuses; ``page.evaluate`` is not subject to it.
    """
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout_s} s: {expression}")
        page.wait_for_timeout(50)


def login(url: str, username: str, password: str = PASSWORD) -> httpx.Client:
    """An httpx client logged in as ``username`` (raises if the log-in fails)."""
    client = httpx.Client(base_url=url, follow_redirects=False, timeout=30)
    response = log_in(client, username, password)
    assert response.status_code == 303, response.text
    return client


def log_in(client: httpx.Client, username: str, password: str) -> httpx.Response:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token})


def csrf_of(client: httpx.Client) -> str:
    """The session's CSRF token, as a page carries it."""
    page = client.get("/operator")
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text).group(1)


_counter = iter(range(1, 10**6))


def make_alert(partners: tuple[str, ...], sector: str = "pac-blaine", title: str | None = None, lead: str | None = None,
               lat: float = 49.0005, lon: float = -122.7520, event_ids: tuple[str, ...] | None = None) -> Alert:
    """An open alert as the alert stage raises it."""
    n = next(_counter)
    now = SystemClock().now_ns()
    return Alert(alert_id=f"alr-{n:016x}", event_ids=event_ids or (f"evt-{n:016x}",), sector_id=sector,
                 severity=Severity.HIGH, state=AlertState.OPEN, created_ts_ns=now, updated_ts_ns=now,
                 title=title or f"Crossing CA->US #{n}", summary="person crossing through the forest vista",
                 direction=Direction.CA_TO_US, lat_deg=lat, lon_deg=lon, lead_partner_id=lead or partners[0],
                 routed_partner_ids=partners)

"""Console fixtures: a migrated database, the console served by uvicorn on loopback, users of every
role, alerts opened through the real alert lifecycle, and log-in helpers for httpx clients."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from alerts.lifecycle import AlertLifecycle
from console.accounts import Accounts
from console.app import create_app
from console.settings import ConsoleSettings
from ibet.border import load_border, load_ports_of_entry
from ibet.clock import SystemClock
from ibet.db import make_engine, migrate
from ibet.config import DatabaseSettings
from ibet.messages import Alert, AlertState, Direction, Severity
from ibet.registry import load_registry
from ibet.testing.http_server import serve_in_thread

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"
ROLES = {"admin1": ("admin", None), "oper1": ("operator", None), "analyst1": ("analyst", None),
         "usbp1": ("partner", "usbp"), "rcmp1": ("partner", "rcmp")}


@dataclass
class Console:
    url: str
    engine: object
    settings: ConsoleSettings
    lifecycle: AlertLifecycle
    evidence_dir: Path


@pytest.fixture(scope="session")
def registry():
    return load_registry(REPO / "config/registry.yaml")


@pytest.fixture(scope="session")
def border_and_ports(registry):
    border = load_border()
    ports = load_ports_of_entry(REPO / "config/ports_of_entry.geojson", sector_ids=[s.id for s in registry.sectors])
    return border, ports


@pytest.fixture
def console_db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/db/console.sqlite3"


@pytest.fixture
def console(console_db_url: str, tmp_path: Path, registry, border_and_ports) -> Iterator[Console]:
    engine = make_engine(DatabaseSettings(url=console_db_url))
    migrate(engine)
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    settings = ConsoleSettings(cookie_secure=False, evidence_dir=evidence, live_poll_s=0.2, login_max_failures=3)
    accounts = Accounts(engine, SystemClock(), [p.id for p in registry.partners])
    for username, (role, partner) in ROLES.items():
        accounts.create_user(username, PASSWORD, role, partner, display_name=username.upper())
    border, ports = border_and_ports
    app = create_app(settings, engine, registry=registry, border=border, ports=ports)
    with serve_in_thread(app) as url:
        yield Console(url, engine, settings, AlertLifecycle(engine), evidence)
    engine.dispose()


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

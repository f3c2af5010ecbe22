"""Console fixtures: a migrated database, the console served by uvicorn on loopback with users of
every role, and the registry, border and ports it draws."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from console_samples import PASSWORD, REPO, ROLES, Console

from alerts.lifecycle import AlertLifecycle
from console.accounts import Accounts
from console.app import create_app
from console.settings import ConsoleSettings
from ibet.border import load_border, load_ports_of_entry
from ibet.clock import SystemClock
from ibet.config import DatabaseSettings
from ibet.db import make_engine, migrate
from ibet.registry import load_registry
from ibet_testing.http_server import serve_in_thread


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

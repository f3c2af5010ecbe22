"""Console fixtures: a migrated database, the console served by uvicorn on loopback with users of
every role (as ``ibet console`` serves it), the registry, border and ports it draws, and Chromium."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from console_samples import PASSWORD, REPO, ROLES, Console, serve_console, service_missing

from alerts.lifecycle import AlertLifecycle
from console.accounts import Accounts
from console.app import create_app
from console.settings import ConsoleSettings
from ibet.border import PortOfEntry, load_border, load_ports_of_entry
from ibet.clock import Clock, SystemClock
from ibet.config import DatabaseSettings
from ibet.db import make_engine, migrate
from ibet.registry import Registry, load_registry
from ibet_testing.browser import CHROMIUM, launch_chromium


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
def start_console(console_db_url: str, tmp_path: Path, registry, border_and_ports) -> Iterator[Callable[..., Console]]:
    """``start_console(registry=, ports=, clock=, **settings)``: a console on the test's migrated database (users of
    every role, ``console.evidence_dir`` in tmp), served as ``ibet console`` serves it until the test ends."""
    engine = make_engine(DatabaseSettings(url=console_db_url))
    migrate(engine)
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    accounts = Accounts(engine, SystemClock(), [p.id for p in registry.partners])
    for username, (role, partner) in ROLES.items():
        accounts.create_user(username, PASSWORD, role, partner, display_name=username.upper())
    border, ports = border_and_ports
    defaults = dict(cookie_secure=False, evidence_dir=evidence, live_poll_s=0.2, login_max_failures=3)
    with ExitStack() as servers:

        def start(*, registry: Registry = registry, ports: tuple[PortOfEntry, ...] = ports, clock: Clock | None = None,
                  **settings: Any) -> Console:
            console_settings = ConsoleSettings(**{**defaults, **settings})
            app = create_app(console_settings, engine, registry=registry, border=border, ports=ports, clock=clock)
            url = servers.enter_context(serve_console(app, console_settings))
            return Console(url, engine, console_settings, AlertLifecycle(engine), evidence)

        yield start
    engine.dispose()


@pytest.fixture
def console(start_console) -> Console:
    return start_console()


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium (ibet_testing.browser), headless; skipped locally (failed in CI) where it is missing.

    Per module, not per session: Playwright's sync API runs its own event loop, and a session-long one
    would still be running when the end-to-end test starts its own Playwright (which then refuses)."""
    if not CHROMIUM.exists():
        service_missing(f"Chromium is not installed at {CHROMIUM} (run scripts/setup-browser.sh)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        service_missing("the playwright Python package is not installed (run scripts/setup-browser.sh)")
    with sync_playwright() as p:
        chromium = launch_chromium(p)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, console):
    context = browser.new_context(viewport={"width": 1400, "height": 850}, base_url=console.url)
    page = context.new_page()
    yield page
    context.close()

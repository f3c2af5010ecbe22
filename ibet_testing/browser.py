"""Debian's Chromium driven by Playwright, as the tests and the README's screenshots use it: headless,
from ``executable_path`` (Playwright never downloads a browser), no sandbox and no background
networking on this closed network; and the console's log-in form."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

CHROMIUM = Path(os.environ.get("IBET_CHROMIUM", "/usr/bin/chromium"))


def launch_chromium(playwright: Any) -> Any:
    """A headless Chromium browser from ``playwright`` (a ``sync_playwright()`` context)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                      args=["--no-sandbox", "--disable-background-networking"])


def console_log_in(page: Any, base_url: str, username: str, password: str) -> None:
    """Log in to the console at ``base_url`` (no trailing slash) and wait to leave the log-in page."""
    page.goto(base_url + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)

"""Regenerate the README's pictures from a real demo run: the console and the run report.

    .venv/bin/python scripts/readme_images.py [--scenario foot-crossing-forest-vista]

Runs `ibet demo` (every stage, the shipped model, stand-in partners), waits until it says the
console keeps running, logs in with the printed demo login in Debian's Chromium (Playwright, no
browser download), opens the operator view and the first alert, saves a screenshot, copies the run
report's map, and stops the demo. Writes docs/images/console.png and docs/images/run-report.png.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="foot-crossing-forest-vista")
    parser.add_argument("--seed", default="1")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from ibet_testing.browser import console_log_in, launch_chromium

    OUT.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb"}
    demo = subprocess.Popen([sys.executable, "-m", "ibet_app.cli", "demo", "--scenario", args.scenario, "--seed", args.seed],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        url = password = report = None
        for line in demo.stdout:
            lines.append(line)
            print(line, end="", flush=True)
            if m := re.search(r"console: (http://\S+)\s+\(operator login: (\S+) / (\S+)\)", line):
                url, password = m.group(1), m.group(3)
            if m := re.search(r"run report: (\S+run-report\.png)", line):
                report = ROOT / m.group(1)
            if "the console keeps running" in line:
                break
        if not (url and password and report):
            raise SystemExit("the demo did not print its console login and run report:\n" + "".join(lines[-30:]))
        shutil.copyfile(report, OUT / "run-report.png")
        with sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page(viewport={"width": 1400, "height": 850})
            console_log_in(page, url.rstrip("/"), "demo", password)
            page.goto(url + "operator")
            page.wait_for_selector("#alert-list li", timeout=30_000)
            page.click("#alert-list li")
            time.sleep(2.0)  # map tiles are vector layers: let them draw
            page.screenshot(path=str(OUT / "console.png"))
            browser.close()
        print(f"wrote {OUT / 'console.png'} and {OUT / 'run-report.png'}")
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(60)
        except subprocess.TimeoutExpired:
            demo.kill()


if __name__ == "__main__":
    main()

"""An operator's acknowledgement in the embedded demo's console reaches the partners: ``ibet demo``
as a user runs it (the real detector, the stand-in partners), then the operator acknowledges the
alert through the console's API, and a delivery of that new version is recorded and sent to every
routed partner on every channel by the demo's alert service, which stays up with the console.

Before, the demo built the console without the alert service's hook, and the alert service stopped
when the run was over: an acknowledgement changed the console's record and nothing else.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO_DB = REPO / "var" / "demo" / "ibet-demo.sqlite3"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lines_until(process: subprocess.Popen, pattern: str, seen: list[str], timeout_s: float) -> re.Match:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                break
            continue
        seen.append(line)
        found = re.search(pattern, line)
        if found:
            return found
    raise AssertionError(f"no line matching {pattern!r} in the demo's output:\n{''.join(seen)[-4000:]}")


@pytest.mark.timeout(1200)  # the demo runs the real detector over the whole scenario first
def test_an_acknowledgement_in_the_demo_console_reaches_every_routed_partner():
    env = {**os.environ, "IBET_CONSOLE__PORT": str(_free_port()), "COLUMNS": "200", "NO_COLOR": "1",
           "PYTHONUNBUFFERED": "1"}  # its lines as they are printed: the test waits for them
    demo = subprocess.Popen([sys.executable, "-m", "ibet_app.cli", "demo", "--scenario", "vehicle-rural-road-tower",
                             "--seed", "201"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    seen: list[str] = []
    try:
        found = _lines_until(demo, r"console\W+(http://[\d.:]+)/?\s+\(operator login: (\S+) / (\S+?)\)", seen, 300)
        url, user, password = found.group(1), found.group(2), found.group(3)
        _lines_until(demo, r"the console keeps running", seen, 600)
        scores = next(line for line in seen if "scores against the truth" in line)
        assert re.search(r"lawful crossings recorded \d+ \(true \d+\), alerted 0", scores), scores
        with httpx.Client(base_url=url, timeout=30) as client:
            page = client.get("/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
            assert client.post("/login", data={"username": user, "password": password, "csrf_token": token}).status_code == 303
            csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', client.get("/operator").text).group(1)
            alerts = client.get("/api/alerts").json()
            unhandled = [a for a in alerts if a["state"] in ("open", "escalated")]
            assert unhandled, f"no alert to acknowledge after the demo's run: {alerts}"
            alert_id, partners = unhandled[0]["alert_id"], set(unhandled[0]["routed_partner_ids"])
            answer = client.post(f"/api/alerts/{alert_id}/acknowledge", json={"note": "on my way"},
                                 headers={"X-CSRF-Token": csrf})
            assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 60
        while True:
            with sqlite3.connect(f"file:{DEMO_DB}?mode=ro", uri=True) as db:
                rows = db.execute("SELECT partner_id, channel, status FROM deliveries WHERE alert_id = ? "
                                  "AND alert_version LIKE 'acknowledged.%'", (alert_id,)).fetchall()
            if rows and all(status == "delivered" for _, _, status in rows) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert rows, "the acknowledged version was not recorded for any partner"
        assert {status for _, _, status in rows} == {"delivered"}, rows
        assert {p for p, _, _ in rows} == partners
        assert {c for _, c, _ in rows} == {"webhook", "email", "cap", "cot"}
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(60)
        except subprocess.TimeoutExpired:
            demo.kill()

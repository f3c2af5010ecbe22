"""``ibet console`` serves /metrics on the metrics port (9400 in the cluster, where the Service's port
"metrics" and the ServiceMonitor scrape it, and IbetStageDown watches it), with the console's
requests by route template and status and its log-ins by outcome."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from console_samples import PASSWORD, REPO, log_in, login

from console.accounts import Accounts
from ibet.config import DatabaseSettings
from ibet.db import make_engine, migrate


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def ibet_console(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``ibet console --config ...`` as its own process on loopback, with a user; (console URL, metrics URL)."""
    db, http_port, metrics_port = f"sqlite:///{tmp_path}/ibet.sqlite3", free_port(), free_port()
    config = tmp_path / "ibet.yaml"
    config.write_text(yaml.safe_dump({
        "registry_path": str(REPO / "config/registry.yaml"),
        "ports_of_entry_path": str(REPO / "config/ports_of_entry.geojson"),
        "database": {"url": db}, "metrics": {"host": "127.0.0.1", "port": metrics_port},
        "console": {"host": "127.0.0.1", "port": http_port, "cookie_secure": False, "evidence_dir": str(tmp_path)}}))
    engine = make_engine(DatabaseSettings(url=db))
    migrate(engine)
    Accounts(engine).create_user("oper1", PASSWORD, "operator")
    engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IBET_")}
    ibet = Path(sys.executable).with_name("ibet")
    process = subprocess.Popen([str(ibet), "console", "--config", str(config)], env=env, cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ibet console did not start:\n{process.communicate(timeout=5)[0]}")
            time.sleep(0.2)
        yield url, f"http://127.0.0.1:{metrics_port}/metrics"
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


def test_ibet_console_serves_request_and_login_metrics(ibet_console):
    url, metrics = ibet_console
    assert log_in(httpx.Client(base_url=url), "oper1", "not the password").status_code == 401
    client = login(url, "oper1")
    assert client.get("/api/alerts/alr-0000000000000000").status_code == 404
    assert client.get("/static/operator.js").status_code == 200
    scrape = httpx.get(metrics, timeout=5)
    assert scrape.status_code == 200 and scrape.headers["content-type"].startswith("text/plain")
    text = scrape.text
    for sample in ('ibet_console_requests_total{method="GET",route="/healthz",status="200"}',
                   'ibet_console_requests_total{method="POST",route="/login",status="401"}',
                   'ibet_console_requests_total{method="POST",route="/login",status="303"}',
                   'ibet_console_requests_total{method="GET",route="/api/alerts/{alert_id}",status="404"}',
                   'ibet_console_requests_total{method="GET",route="/static",status="200"}',
                   'ibet_console_request_seconds_bucket{le="0.005",method="GET",route="/login",status="200"}',
                   'ibet_console_logins_total{outcome="failed"} 1.0', 'ibet_console_logins_total{outcome="ok"} 1.0',
                   "ibet_console_account_lockouts_total 0.0"):
        assert sample in text, sample
    assert "alr-0000000000000000" not in text  # route templates, never paths, are labels

"""Every shipped scenario through the full pipeline: the real detector (the shipped model), a real
Kafka broker of this module's own, each stage a separate process (`ibet up`), the alert service
delivering to a partner's real webhook endpoint (signature checked), and the console checked in
Chromium.

For each scenario, in turn: its frames go onto Kafka (`ibet sim run --to kafka`, seeds never used
in training); once every stage has consumed everything (consumer-group lag 0), the alerts that
arrived at the partner since the scenario started are this scenario's. Each true unlawful crossing
must be alerted as a crossing in its direction; a lawful crossing at a port of entry must raise no
alert at all. At the end an operator logs in to the console and sees the crossings' alerts.
"""

from __future__ import annotations

import re
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
from kafka import KafkaAdminClient, KafkaConsumer
from pipeline_samples import REPO, WebhookPartner, own_broker, pipeline_config, service_missing

from ibet_app.up import Pipeline
from ibet_testing.browser import CHROMIUM, console_log_in, launch_chromium
from sim.scenario import load_scenario, shipped_scenarios

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(2400)]  # five scenarios through CPU inference

SECRET = "end-to-end-partner-secret"
PASSWORD = "end-to-end-operator-pw"
SEED = 211  # training used seeds 1-6 and 101
GROUPS = ("detect", "fuse", "alerts")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Iterator[str]:
    yield from own_broker(tmp_path_factory.mktemp("e2e-kafka"))


@pytest.fixture(scope="module")
def partner() -> Iterator[WebhookPartner]:
    made = WebhookPartner(SECRET)
    yield made
    made.stop()


@pytest.fixture(scope="module")
def pipeline(broker, partner, tmp_path_factory) -> Iterator[Pipeline]:
    folder = tmp_path_factory.mktemp("e2e")
    config, env = pipeline_config(folder, partner, {
        "runner": {"poll_timeout_s": 0.2, "batch_max_records": 16},
        "database": {"url": f"sqlite:///{folder / 'ibet.sqlite3'}"},
        "alerts": {"channels": ["webhook"], "delivery_poll_s": 0.2, "api_port": 0, "exercise": True},
        "console": {"host": "127.0.0.1", "port": _free_port(), "cookie_secure": False,
                    "evidence_dir": str(folder / "evidence")},
        "detect": {"evidence": {"directory": str(folder / "evidence")}},
        "ingest": {"host": "127.0.0.1", "port": _free_port()},
    })
    made = Pipeline(broker, config, push_api=True, log_dir=folder / "logs", env=env).start()
    made.folder = folder  # type: ignore[attr-defined]
    yield made
    codes = made.stop()
    # 0, or ended by the SIGTERM it was sent once it had shut down (uvicorn re-raises the signal)
    assert all(code in (0, -signal.SIGTERM) for code in codes.values()), codes


def _lag(bootstrap: str, group: str) -> int | None:
    """Records the group has not consumed yet (None before it has committed anything)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        committed = admin.list_group_offsets(group).get(group) or {}
        if not committed:
            return None
        ends = consumer.end_offsets(list(committed))
        return sum(max(0, ends[tp] - meta.offset) for tp, meta in committed.items())
    finally:
        consumer.close()
        admin.close()


def _wait_processed(pipeline: Pipeline, timeout_s: float = 900.0) -> None:
    deadline, quiet = time.monotonic() + timeout_s, 0
    while time.monotonic() < deadline:
        dead = pipeline.dead()
        assert not dead, {c.name: pipeline.tail(c.name) for c in dead}
        lags = [_lag(pipeline.bootstrap, g) for g in GROUPS]
        quiet = quiet + 1 if all(lag == 0 for lag in lags) else 0
        if quiet >= 3:  # three polls in a row with nothing left anywhere
            return
        time.sleep(2.0)
    raise AssertionError(f"not processed in {timeout_s} s; detect log:\n{pipeline.tail('detect')}")


def _feed(pipeline: Pipeline, path: Path) -> str:
    out = pipeline.folder / "runs" / path.stem
    result = subprocess.run([sys.executable, "-m", "ibet_app.cli", "sim", "run", str(path), "--to", "kafka", "--seed",
                             str(SEED), "--config", str(pipeline.config), "--out", str(out)],
                            env=pipeline.environment(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_every_shipped_scenario_alerts_its_true_crossings_and_not_the_lawful_one(pipeline, partner):
    raised: dict[str, list[dict]] = {}
    for path in shipped_scenarios():
        scenario = load_scenario(path)
        before = set(partner.alerts())
        _feed(pipeline, path)
        _wait_processed(pipeline)
        time.sleep(2.0)  # the delivery worker polls every 0.2 s
        new = [a for k, a in partner.alerts().items() if k not in before]
        raised[scenario.name] = new
        crossings = [a for a in new if a["title"].startswith("Crossing")]
        mine = [a for a in new if a["sector_id"] == scenario.sector_id]
        if scenario.expected.crossings:
            assert len(crossings) >= 1, (scenario.name, new)
            assert all(a["exercise"] for a in mine)
        if scenario.expected.lawful_crossings and not scenario.expected.crossings:
            assert mine == [], (scenario.name, mine)
        if not scenario.expected.alerts:
            assert mine == [], (scenario.name, mine)
    assert partner.bad_signatures == 0
    pipeline.raised = raised  # type: ignore[attr-defined]


def test_the_operator_sees_the_alerts_in_the_console(pipeline, partner):
    if not CHROMIUM.exists():
        service_missing(f"Chromium is not installed at {CHROMIUM} (run scripts/setup-browser.sh)")
    from playwright.sync_api import sync_playwright

    created = subprocess.run([sys.executable, "-m", "ibet_app.cli", "users", "create-admin", "operator-e2e",
                              "--password-stdin", "--config", str(pipeline.config)], input=PASSWORD + "\n",
                             env=pipeline.environment(), capture_output=True, text=True, timeout=120)
    assert created.returncode == 0, created.stderr
    crossings = [a for a in partner.alerts().values() if a["title"].startswith("Crossing")]
    assert crossings, "no crossing was alerted"
    url = f"http://127.0.0.1:{yaml.safe_load(pipeline.config.read_text())['console']['port']}"
    shots = REPO / "reports" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 850})
        console_log_in(page, url, "operator-e2e", PASSWORD)
        page.goto(url + "/operator")
        for alert in crossings:
            page.wait_for_selector(f"text={alert['title']}", timeout=30_000)
        page.screenshot(path=str(shots / "e2e-operator.png"), full_page=True)
        browser.close()


def _rule_and_dashboard_metrics() -> set[str]:
    """Every ibet_* metric the PrometheusRules and the Grafana dashboard of deploy/k8s use (family names)."""
    names: set[str] = set()
    for path in (REPO / "deploy" / "k8s").rglob("*"):
        if path.suffix in (".yaml", ".json") and path.is_file():
            names |= set(re.findall(r"\b(ibet_[a-z0-9_]+)", path.read_text()))
    return {re.sub(r"_(total|bucket|count|sum|created)$", "", n) for n in names if n != "ibet_app"}


def test_every_process_serves_the_metrics_the_rules_and_dashboard_use(pipeline):
    from prometheus_client.parser import text_string_to_metric_families

    served: dict[str, set[str]] = {}
    for child in pipeline.children:
        deadline = time.monotonic() + 180  # a stage logs its endpoint once it has started (detect loads its model)
        while not (found := re.search(r"metrics on http://([\d.]+):(\d+)/metrics",
                                      child.log_path.read_text(errors="replace"))) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert found, f"{child.name} logs no metrics endpoint: {pipeline.tail(child.name)}"
        text = httpx.get(f"http://127.0.0.1:{found.group(2)}/metrics", timeout=10).text
        served[child.name] = {family.name for family in text_string_to_metric_families(text)}
    assert {"detect", "fuse", "alerts", "console-store", "console", "ingest"} <= set(served)
    everything = set().union(*served.values())
    wanted = _rule_and_dashboard_metrics()
    assert len(wanted) >= 10 and wanted <= everything, f"no process serves {sorted(wanted - everything)}"
    assert any(n.startswith("ibet_console_") for n in served["console"])

"""Every shipped scenario through the full pipeline: the real detector (the shipped model), a real
Kafka broker of this module's own, each stage a separate process (`ibet up`), the alert service
delivering on every channel to real peers (a webhook endpoint that passes each request to the
documented example receiver, a CAP endpoint validating against the OASIS schema, an SMTP server, a
real TAK server, taky, with a pytak subscriber), and the console checked in Chromium.

For each scenario, in turn: its frames go onto Kafka (`ibet sim run --to kafka`, seeds never used
in training); once every stage has consumed everything (consumer-group lag 0), the alerts that
arrived at the partner since the scenario started are this scenario's. Each true unlawful crossing
must be alerted as a crossing in its direction; a lawful crossing at a port of entry must raise no
alert at all. At the end an operator logs in to the console and sees the crossings' alerts, then
acknowledges and resolves one, and every partner gets each new version on every channel.
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
from lxml import etree
from partner_peers import CapReceiver, ExampleWebhookReceiver, MailInbox
from pipeline_samples import REPO, WebhookPartner, own_broker, pipeline_config, service_missing

from ibet_app.up import Pipeline
from ibet_testing.browser import CHROMIUM, console_log_in, launch_chromium
from ibet_testing.tak_server import TakServer, TakSubscriber
from sim.scenario import load_scenario, shipped_scenarios

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(2400)]  # five scenarios through CPU inference

SECRET = "end-to-end-partner-secret"
PASSWORD = "end-to-end-operator-pw"
SEED = 211  # training used seeds 1-6 and 101
GROUPS = ("detect", "fuse", "alerts")
STREAM_DRONE = "drone-vista-1"  # also streamed as STANAG 4609 over UDP (the last test)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Iterator[str]:
    yield from own_broker(tmp_path_factory.mktemp("e2e-kafka"))


TAK_PARTNER = "usbp"
STALE_S, KEEPALIVE_S = 30.0, 8.0  # short, so the test sees markers renewed before they go stale


class Peers:
    """The partners' receivers on every channel (see the module doc)."""

    def __init__(self) -> None:
        self.example = ExampleWebhookReceiver(SECRET)
        self.cap, self.mail = CapReceiver(SECRET), MailInbox()
        # the Border Patrol's own TAK server (its markers carry links signed for it), and one the
        # other agencies share (no links there: one agency's links would be in every agency's hands)
        self.tak, self.shared_tak = TakServer().start(), TakServer().start()
        self.markers = TakSubscriber(self.tak.host, self.tak.port)  # connected before anything is sent

    def contacts(self, partner_id: str) -> dict:
        tak = self.tak if partner_id == TAK_PARTNER else self.shared_tak
        return {"cap_url": f"http://127.0.0.1:{self.cap.port}/cap/{partner_id}",
                "email": [f"desk@{partner_id}.example.org"], "tak_endpoint": f"127.0.0.1:{tak.port}"}

    def stop(self) -> None:
        self.markers.close()
        self.tak.stop()
        self.shared_tak.stop()
        self.cap.stop()
        self.mail.stop()
        self.example.stop()


@pytest.fixture(scope="module")
def peers() -> Iterator[Peers]:
    made = Peers()
    yield made
    made.stop()


@pytest.fixture(scope="module")
def partner(peers) -> Iterator[WebhookPartner]:
    made = WebhookPartner(SECRET, relay_to=peers.example.url)
    yield made
    made.stop()


@pytest.fixture(scope="module")
def pipeline(broker, partner, peers, tmp_path_factory) -> Iterator[Pipeline]:
    folder = tmp_path_factory.mktemp("e2e")
    config, env = pipeline_config(folder, partner, {
        "runner": {"poll_timeout_s": 0.2, "batch_max_records": 16},
        "database": {"url": f"sqlite:///{folder / 'ibet.sqlite3'}"},
        "alerts": {"channels": ["webhook", "email", "cap", "cot"], "delivery_poll_s": 0.2, "api_port": 0,
                   "exercise": True, "cap_sender": "ibet@e2e.ibet.example", "cot_stale_s": STALE_S,
                   # 60 s, not 300: the last test sends one crossing twice, a minute and a half apart
                   "dedup_window_s": 60.0,
                   "cot_keepalive_s": KEEPALIVE_S, "smtp": {"host": "127.0.0.1", "port": peers.mail.port,
                                                            "security": "none"}},
        "console": {"host": "127.0.0.1", "port": _free_port(), "cookie_secure": False,
                    "evidence_dir": str(folder / "evidence")},
        "detect": {"evidence": {"directory": str(folder / "evidence")}},
        "ingest": {"host": "127.0.0.1", "port": _free_port()},
    }, contacts=peers.contacts)
    stream_url = f"udp://127.0.0.1:{_free_port()}"
    made = Pipeline(broker, config, push_api=True, log_dir=folder / "logs", env=env,
                    streams={STREAM_DRONE: stream_url}).start()  # as `ibet up --stream drone-vista-1=udp://...`
    made.stream_url = stream_url  # type: ignore[attr-defined]
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
        # border alerts: the streamed drone, not yet flying, may raise its feed_lost in the sector meanwhile
        mine = [a for a in new if a["sector_id"] == scenario.sector_id and a["kind"] == "border"]
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


CAP = "{urn:oasis:names:tc:emergency:cap:1.2}"
CALLSIGN = re.compile(r"^EX (Person|Vehicle|Boat|Animal|Unknown)( CA→US| US→CA)? \d\d:\d\d$")


def _cot_time(text: str) -> float:
    from datetime import datetime
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _markers(peers: Peers, uid: str) -> list[etree._Element]:
    return [etree.fromstring(e) for e in peers.markers.events() if f'uid="{uid}"'.encode() in e]


def _until(condition, what: str, timeout_s: float = 90.0):
    deadline = time.monotonic() + timeout_s
    while not (found := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)
    return found


def _caps(peers: Peers, alert_id: str) -> list[tuple[str, etree._Element]]:
    return [(p, d) for p, d in peers.cap.parsed() if d.findtext(f"{CAP}incidents") == alert_id]


def test_partners_get_every_channel_and_the_consoles_actions_from_real_peers(pipeline, partner, peers):
    """What the partners' own tools received while the scenarios ran, then an operator's acknowledge
    and resolve in Chromium reaching every routed partner on every channel."""
    if not CHROMIUM.exists():
        service_missing(f"Chromium is not installed at {CHROMIUM} (run scripts/setup-browser.sh)")
    from playwright.sync_api import sync_playwright

    latest = partner.alerts()
    crossings = [a for a in latest.values() if a["title"].startswith("Crossing") and a["state"] != "resolved"]
    assert crossings, "no open crossing alert after the scenarios"
    # webhook: every request went through the documented example receiver, which accepted it and
    # holds the newest state of every alert
    assert set(partner.relay_answers) == {200} and partner.bad_signatures == 0
    assert peers.example.held() == {k: a["state"] for k, a in latest.items()}
    # CAP: every document valid against the OASIS schema and signed; both languages; the snapshot
    assert peers.cap.invalid == [] and peers.cap.documents
    for _, document in peers.cap.parsed():
        assert [i.findtext(f"{CAP}language") for i in document.findall(f"{CAP}info")] == ["en-CA", "fr-CA"]
    # e-mail: parsed by the stdlib, marked as an exercise, with links to the alert's page
    assert peers.mail.messages
    for message in peers.mail.messages:
        assert message["Subject"].startswith("[EXERCISE] ") and len(message["Subject"]) <= 120
        assert "/a/" in message.get_body(preferencelist=("plain",)).get_content()

    crossing = next(a for a in crossings if a.get("track_ids") and TAK_PARTNER in a["routed_partner_ids"])
    alert_id, routed = crossing["alert_id"], set(crossing["routed_partner_ids"])
    [track_id] = crossing["track_ids"][:1]
    uid = f"ibet-{track_id}"
    # the snapshot: a signed link in the webhook body serves detect's JPEG
    links = [d.get("links", {}) for d in partner.documents if d["alert"]["alert_id"] == alert_id][-1]
    assert "alert" in links
    if "crop" in links:
        image = httpx.get(links["crop"], timeout=10)
        assert image.status_code == 200 and image.content[:3] == b"\xff\xd8\xff"
        assert any("/e/" in (r.findtext(f"{CAP}uri") or "") for _, d in _caps(peers, alert_id)
                   for r in d.iter(f"{CAP}resource"))
    # TAK, through taky to pytak: a suspect, its error, course and speed, a callsign, links, and kept
    # alive: each resend arrives before the previous one went stale
    markers = _until(lambda: (m := _markers(peers, uid)) and len({e.get("time") for e in m}) >= 2 and m,
                     f"two sends of marker {uid}", STALE_S * 2)
    marker = markers[-1]
    assert marker.get("type").startswith("a-s-") and marker.get("how") in ("m-i", "m-f")
    point, detail = marker.find("point"), marker.find("detail")
    assert 0 < float(point.get("ce")) < 9999999
    assert detail.find("track") is not None and float(detail.find("track").get("speed")) >= 0
    assert CALLSIGN.match(detail.find("contact").get("callsign")), detail.find("contact").get("callsign")
    assert any("/a/" in link.get("url") for link in detail.findall("link"))
    assert _cot_time(marker.get("stale")) - _cot_time(marker.get("time")) == pytest.approx(STALE_S, abs=1)
    times = sorted({(_cot_time(e.get("time")), _cot_time(e.get("stale"))) for e in markers})
    assert all(later[0] <= earlier[1] for earlier, later in zip(times, times[1:], strict=False)), times

    created = subprocess.run([sys.executable, "-m", "ibet_app.cli", "users", "create-admin", "desk-e2e",
                              "--password-stdin", "--config", str(pipeline.config)], input=PASSWORD + "\n",
                             env=pipeline.environment(), capture_output=True, text=True, timeout=120)
    assert created.returncode == 0, created.stderr
    url = f"http://127.0.0.1:{yaml.safe_load(pipeline.config.read_text())['console']['port']}"
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 850})
        console_log_in(page, url, "desk-e2e", PASSWORD)
        page.goto(url + "/operator")
        item = page.locator(f"li[data-alert-id='{alert_id}']")
        item.click()
        page.fill("#alert-detail input.note", "unit 7 on the way")
        page.click("#alert-detail button[data-action=acknowledge]")
        page.locator(f"li[data-alert-id='{alert_id}'].state-acknowledged").wait_for(timeout=30_000)
        # every partner has the acknowledgement on every channel before it is resolved (a version
        # still waiting when a newer one exists is superseded, never sent after it)
        _until(lambda: {(d["partner_id"], d["alert"]["state"]) for d in partner.documents
                        if d["alert"]["alert_id"] == alert_id} >= {(p, "acknowledged") for p in routed},
               "the acknowledgement by webhook")
        _until(lambda: {m["To"] for m in peers.mail.messages if m["X-Ibet-Alert-Id"] == alert_id
                        and "ACKNOWLEDGED:" in m["Subject"]} >= {f"desk@{p}.example.org" for p in routed},
               "the acknowledgement by e-mail")
        _until(lambda: {p for p, d in _caps(peers, alert_id) if d.findtext(f"{CAP}msgType") == "Update"} >= routed,
               "the acknowledgement as a CAP Update")
        item.click()
        page.select_option("#alert-detail select[aria-label=outcome]", "confirmed_crossing")
        page.click("#alert-detail button[data-action=resolve]")
        page.locator(f"li[data-alert-id='{alert_id}'].state-resolved").wait_for(timeout=30_000)
        browser.close()

    # every routed partner, every channel: acknowledged, then resolved as a confirmed crossing
    _until(lambda: peers.example.held().get(alert_id) == "resolved", "the example receiver to hold the resolution")
    # each partner's lane delivers on its own: the example receiver holding it says one partner has it
    _until(lambda: {(p, s) for p in routed for s in ("acknowledged", "resolved")}
           <= {(d["partner_id"], d["alert"]["state"]) for d in partner.documents if d["alert"]["alert_id"] == alert_id},
           "the resolution by webhook to every routed partner")
    cancels = _until(lambda: {p for p, d in _caps(peers, alert_id) if d.findtext(f"{CAP}msgType") == "Cancel"} >= routed
                     and _caps(peers, alert_id), "a CAP Cancel for every routed partner")
    outcome = [v.findtext(f"{CAP}value") for _, d in cancels if d.findtext(f"{CAP}msgType") == "Cancel"
               for v in d.iter(f"{CAP}parameter") if v.findtext(f"{CAP}valueName") == "ibetOutcome"]
    assert outcome and set(outcome) == {"confirmed_crossing"}
    _until(lambda: {m["To"] for m in peers.mail.messages if m["X-Ibet-Alert-Id"] == alert_id
                    and "RESOLVED:" in m["Subject"]} >= {f"desk@{p}.example.org" for p in routed},
           "a resolution e-mail to every routed partner")
    # the marker turns hostile (a person confirmed the crossing) and goes stale at once
    final = _until(lambda: [e for e in _markers(peers, uid) if e.get("type").startswith("a-h-")],
                   "the resolved marker")[-1]
    assert _cot_time(final.get("stale")) - _cot_time(final.get("time")) <= 2.0


def _drone_only_scenario(folder: Path, seconds: int) -> Path:
    """The forest-vista scenario as its drone alone sees it, cut after the walker has crossed (at ~45 s)."""
    scenario = load_scenario(next(p for p in shipped_scenarios() if p.stem == "foot-crossing-forest-vista"))
    cut = scenario.model_copy(update={"duration_s": seconds,
                                      "sensors": [s for s in scenario.sensors if s.id == STREAM_DRONE]})
    path = folder / "vista-drone-only.yaml"
    path.write_text(yaml.safe_dump(cut.model_dump(mode="json", exclude_none=True), sort_keys=False))
    return path


def _alerts_of(partner: WebhookPartner, before: set[str]) -> list[tuple]:
    new = [a for k, a in partner.alerts().items() if k not in before and a["kind"] == "border"]
    return sorted((a.get("event_type"), a["direction"], a["sector_id"], tuple(a["sensor_ids"])) for a in new)


def test_a_drone_streamed_as_stanag_4609_raises_the_same_alerts_as_its_http_push(pipeline, partner):
    """One drone's view of a crossing, pushed frame by frame to the push API (`sim run --to http`), then
    sent as a STANAG 4609 stream over UDP (`sim run --to udp://`) into the `ibet ingest stream` that
    `ibet up --stream` started: both raise the same alerts, and the stream's frames carry the KLV."""
    from ingest.credentials import enroll

    path = _drone_only_scenario(pipeline.folder, seconds=60)
    token = enroll(pipeline.folder / "registry.yaml", STREAM_DRONE)
    tokens = pipeline.folder / "tokens.yaml"
    tokens.write_text(yaml.safe_dump({STREAM_DRONE: token}))
    ingest_url = f"http://127.0.0.1:{yaml.safe_load(pipeline.config.read_text())['ingest']['port']}"
    raised = {}
    for to, extra in (("http", ["--url", ingest_url, "--tokens", str(tokens), "--realtime"]),
                      (pipeline.stream_url, [])):
        time.sleep(10.0)  # the previous run's tracks are deleted (coasting 8 s) before the next begins
        before = set(partner.alerts())
        result = subprocess.run([sys.executable, "-m", "ibet_app.cli", "sim", "run", str(path), "--to", to,
                                 "--seed", str(SEED), "--out", str(pipeline.folder / "runs" / f"stream-{len(raised)}"),
                                 *extra], env=pipeline.environment(), capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "rejected: 0" in result.stdout or to != "http", result.stdout
        time.sleep(8.0)  # the last datagrams are read and the stream's frames produced
        _wait_processed(pipeline)
        time.sleep(2.0)
        raised[to] = _alerts_of(partner, before)
    http, stream = raised["http"], raised[pipeline.stream_url]
    assert ("crossing", "CA_TO_US", "pac-blaine", (STREAM_DRONE,)) in http, http
    assert stream == http, {"http": http, "stream": stream, "log": pipeline.tail(f"stream-{STREAM_DRONE}")}
    assert pipeline.child(f"stream-{STREAM_DRONE}").alive()  # it keeps listening for the next flight

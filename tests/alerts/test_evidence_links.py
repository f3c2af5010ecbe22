"""Evidence for partners, as shipped: the alert service built by ``build_service`` (the factory of
``ibet run alerts``, ``ibet up`` and ``ibet demo``) sends each partner signed, expiring links to the
alert's page and its snapshot (the crop and frame detect stored), in the webhook body and the
e-mail; the actions API serves the JPEGs to that partner only, and audits every fetch. Real peers:
an HTTP webhook receiver and an SMTP server (aiosmtpd); the images are written by detect's own
filesystem store."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import yaml
from aiosmtpd.controller import Controller
from test_service_links import SECRET, Inbox, Webhooks, _free_port, _wait

from alerts.identity import LinkSigner
from alerts.service import build_service
from detect.evidence import FilesystemEvidenceStore
from ibet import topics
from ibet.audit import audit_entries
from ibet.bus.base import OutRecord
from ibet.bus.memory import MemoryBus
from ibet.config import load_config
from ibet.ids import alert_id, event_id
from ibet.messages import BorderEvent, BorderEventType, Direction, TrackClass
from ibet.registry import load_registry
from ibet.runner import StageRunner

REPO = Path(__file__).resolve().parents[2]
LINK_SECRET = "a-link-secret-of-at-least-32-bytes-long"


def _jpeg(seed: int) -> bytes:
    image = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", image)[1].tobytes()


@pytest.fixture
def service_with_evidence(tmp_path, monkeypatch):
    hooks, inbox = Webhooks(), Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    registry = yaml.safe_load((REPO / "config" / "registry.yaml").read_text())
    for p in registry["partners"]:
        p["contacts"] = {"webhook_url": f"http://127.0.0.1:{hooks.port}/hook/{p['id']}",
                         "email": [f"desk@{p['id']}.example.org"]}
    (tmp_path / "registry.yaml").write_text(yaml.safe_dump(registry))
    (tmp_path / "rosters.yaml").write_text((REPO / "config" / "rosters.yaml").read_text())
    evidence = tmp_path / "evidence"
    (tmp_path / "ibet.yaml").write_text(yaml.safe_dump({
        "registry_path": "registry.yaml", "database": {"url": f"sqlite:///{tmp_path / 'alerts.sqlite3'}"},
        "console": {"evidence_dir": str(evidence)},
        "alerts": {"channels": ["webhook", "email"], "api_port": 0, "delivery_poll_s": 0.1,
                   "smtp": {"host": "127.0.0.1", "port": controller.port, "security": "none"}}}))
    monkeypatch.setenv("IBET_ALERTS__WEBHOOK_SECRETS", json.dumps({p["id"]: SECRET for p in registry["partners"]}))
    monkeypatch.setenv("IBET_ALERTS__LINK_SECRET", LINK_SECRET)
    service = build_service(load_config(tmp_path / "ibet.yaml"), load_registry(tmp_path / "registry.yaml"))

    store = FilesystemEvidenceStore(evidence)
    crop, frame = _jpeg(1), _jpeg(2)
    refs = (store.put("blaine-cam-1/1789-7/track-3.jpg", crop), store.put("blaine-cam-1/1789-7/frame.jpg", frame))
    now = time.time_ns()
    crossing = BorderEvent(event_id=event_id("trk-ev", "crossing", now), event_type=BorderEventType.CROSSING,
                           track_id="trk-ev", sector_id="pac-blaine", event_ts_ns=now, lat_deg=49.0002,
                           lon_deg=-122.754, direction=Direction.CA_TO_US, class_name=TrackClass.PERSON,
                           confidence=0.9, sensor_ids=("blaine-cam-1",), evidence_refs=refs)
    bus = MemoryBus()
    producer = bus.producer("test")
    producer.send(OutRecord(topics.EVENTS, b"pac-blaine", crossing.to_bytes()))
    producer.flush(5)
    runner = StageRunner(service.stage, bus)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        _wait(lambda: any(d["partner_id"] == "usbp" for d in hooks.documents)
              and any(m["To"] == "desk@usbp.example.org" for m in inbox.messages))  # partners' mails come in any order
        yield service, hooks, inbox, alert_id(crossing.event_id), (crop, frame), evidence
    finally:
        runner.stop()
        thread.join(30)
        controller.stop()
        hooks.server.shutdown()
        hooks.server.server_close()


def test_each_partner_gets_signed_links_to_the_snapshot_and_fetching_one_is_audited(service_with_evidence):
    service, hooks, inbox, the_alert, (crop, frame), _ = service_with_evidence
    [document] = [d for d in hooks.documents if d["partner_id"] == "usbp"]
    links = document["links"]
    assert set(links) == {"alert", "crop", "frame"}
    assert links["crop"].startswith(service.api_url + "/e/") and links["alert"].startswith(service.api_url + "/a/")
    assert "evidence_refs" not in document["alert"]  # paths on ibet's servers stay there: the links go instead
    assert service.lifecycle.get(the_alert).evidence_refs  # the alert carries its snapshot's references
    mail = next(m for m in inbox.messages if m["To"] == "desk@usbp.example.org")
    text = mail.get_body(preferencelist=("plain",)).get_content()
    assert service.api_url + "/e/" in text and "Snapshot (the object)" in text

    with httpx.Client(timeout=10) as http:
        got = http.get(links["crop"])
        assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg" and got.content == crop
        assert "no-store" in got.headers["cache-control"] and got.headers["x-content-type-options"] == "nosniff"
        assert http.get(links["frame"]).content == frame
        page = http.get(links["alert"])  # the alert's page shows both images, through links of its own
        assert page.status_code == 200 and page.text.count('<img src="../e/') == 2
        image = page.text.split('<img src="../e/', 1)[1].split('"', 1)[0]
        assert http.get(f"{service.api_url}/e/{image}").content == crop
        assert http.post(links["alert"], data={"action": "view"}).status_code == 400  # a read link changes nothing

    fetched = [e for e in audit_entries(service.outbox.engine, "alert", the_alert) if e.action == "evidence.fetched"]
    assert len(fetched) == 3  # crop, frame, and the crop again from the page
    assert {e.actor.partner_id for e in fetched} == {"usbp"} and {e.actor.address for e in fetched} == {"127.0.0.1"}
    assert {e.detail["image"] for e in fetched} == {"crop", "frame"}
    assert fetched[0].detail["key"].startswith("blaine-cam-1/1789-7/")


def test_tampered_expired_foreign_wrong_kind_and_purged_snapshot_links_are_refused(service_with_evidence):
    service, hooks, _inbox, the_alert, _images, evidence = service_with_evidence
    [document] = [d for d in hooks.documents if d["partner_id"] == "usbp"]
    crop = document["links"]["crop"]
    signer = LinkSigner(LINK_SECRET)
    base = service.api_url
    routed = service.lifecycle.get(the_alert).routed_partner_ids
    stranger = next(p.id for p in service.registry.partners if p.id not in routed)
    with httpx.Client(timeout=10) as http:
        assert http.get(crop[:-3] + ("AAA" if not crop.endswith("AAA") else "BBB")).status_code == 403
        expired = signer.sign(the_alert, "crop", "usbp", "usbp-desk", expires_ns=time.time_ns() - 1)
        assert http.get(f"{base}/e/{expired}").status_code == 410
        foreign = signer.sign(the_alert, "crop", stranger, f"{stranger}-desk", ttl_s=60)
        assert http.get(f"{base}/e/{foreign}").status_code == 403  # not the stranger's alert
        assert http.get(f"{base}/e/{document['actions']['acknowledge'].rsplit('/', 1)[1]}").status_code == 400
        assert http.get(crop.replace("/e/", "/a/")).status_code == 400  # an image link is no page
        assert http.get(f"{base}/e/not-a-link").status_code == 400
        unknown = signer.sign("alr-0000000000000000", "crop", "usbp", "usbp-desk", ttl_s=60)
        assert http.get(f"{base}/e/{unknown}").status_code == 404
        for path in evidence.rglob("track-*.jpg"):
            path.unlink()  # purged by retention
        gone = http.get(crop)
        assert gone.status_code == 404 and "purged" in gone.json()["detail"]
    assert not [e for e in audit_entries(service.outbox.engine, "alert", the_alert) if e.action == "evidence.fetched"]

"""Shared harness of the tests that run the pipeline as separate processes (`ibet up`'s Pipeline):
a Kafka broker of their own, a partner webhook endpoint that checks signatures, and a config folder
whose registry points every partner at that endpoint."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from alerts.formats.webhook import verify_webhook
from ibet_testing.kafka_broker import KafkaBrokerUnavailable, LocalKafkaBroker

REPO = Path(__file__).resolve().parents[1]


def service_missing(reason: str) -> None:
    """tests/conftest.py's rule (importing it by name is ambiguous across test folders): skip
    locally, fail in CI, where every service must be there."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and a required service is missing: {reason}", pytrace=False)
    pytest.skip(reason)


def own_broker(folder: Path) -> Iterator[str]:
    """A Kafka broker for one test module (its consumer groups and topics start empty)."""
    broker = LocalKafkaBroker(folder)
    try:
        broker.start()
    except KafkaBrokerUnavailable as exc:
        service_missing(f"Apache Kafka could not be started: {exc}")
    yield broker.bootstrap
    broker.stop()


class WebhookPartner:
    """Every partner's webhook endpoint (``/hook/<partner>``): keeps each signed alert document."""

    def __init__(self, secret: str, relay_to: str | None = None) -> None:
        self.secret = secret
        self.documents: list[dict] = []
        self.bad_signatures = 0
        self.relay_to = relay_to  # another receiver each request is passed on to, as received
        self.relay_answers: list[int] = []
        self.lock = threading.Lock()
        partner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                ok = verify_webhook(dict(self.headers.items()), body, partner.secret.encode(), time.time())
                status = 200 if ok else 401
                if partner.relay_to:  # the other receiver's answer is the answer
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                    status = httpx.post(partner.relay_to + self.path, content=body, headers=headers, timeout=10).status_code
                with partner.lock:
                    partner.relay_answers.append(status)
                    if ok:
                        partner.documents.append(json.loads(body))
                    else:
                        partner.bad_signatures += 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self) -> dict[str, dict]:
        """The latest version of each alert the partners received, by alert id."""
        with self.lock:
            return {d["alert"]["alert_id"]: d["alert"] for d in self.documents}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def pipeline_config(folder: Path, partner: WebhookPartner, settings: Mapping[str, Any],
                    contacts: Callable[[str], dict[str, Any]] | None = None) -> tuple[Path, dict[str, str]]:
    """``folder/ibet.yaml`` (``settings`` plus the registry path) with a copy of the shipped registry
    whose partners' webhooks all go to ``partner`` (and their other ``contacts(partner id)``), the
    rosters and ports; and the environment with the partners' webhook secrets and a link secret."""
    registry = yaml.safe_load((REPO / "config" / "registry.yaml").read_text())
    for p in registry["partners"]:
        p["contacts"] = {"webhook_url": f"http://127.0.0.1:{partner.port}/hook/{p['id']}",
                         **(contacts(p["id"]) if contacts else {})}
    (folder / "registry.yaml").write_text(yaml.safe_dump(registry))
    for name in ("rosters.yaml", "ports_of_entry.geojson"):
        (folder / name).write_text((REPO / "config" / name).read_text())
    config = folder / "ibet.yaml"
    config.write_text(yaml.safe_dump({"registry_path": "registry.yaml", **settings}))
    env = {"IBET_ALERTS__WEBHOOK_SECRETS": json.dumps({p["id"]: partner.secret for p in registry["partners"]}),
           "IBET_ALERTS__LINK_SECRET": "a-link-secret-for-the-pipeline-tests"}
    return config, env

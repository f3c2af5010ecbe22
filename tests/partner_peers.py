"""Partner agencies' receivers for the end-to-end tests, each a real peer nobody on this project wrote
or a standard-library one written from docs/partners.md alone:

- :class:`ExampleWebhookReceiver`: docs/examples/webhook_receiver.py, the documented receiver, as a
  process of its own.
- :class:`CapReceiver`: an HTTP endpoint that checks the signature (stdlib hmac, as the doc says)
  and validates every CAP document against the official OASIS CAP 1.2 schema (lxml).
- :class:`MailInbox`: an SMTP server (aiosmtpd); every message parsed by the stdlib's e-mail parser.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import subprocess
import sys
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from lxml import etree

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_RECEIVER = REPO / "docs" / "examples" / "webhook_receiver.py"
CAP_SCHEMA = REPO / "tests" / "data" / "cap" / "CAP-v1.2.xsd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ExampleWebhookReceiver:
    """The documented example receiver on a free port; ``held()`` is what it keeps: ``{alert id: state}``."""

    def __init__(self, secret: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([sys.executable, str(EXAMPLE_RECEIVER), str(self.port)],
                                        env={**os.environ, "IBET_WEBHOOK_SECRET": secret})
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(self.url, timeout=1)
                return
            except httpx.TransportError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                time.sleep(0.1)

    def held(self) -> dict[str, str]:
        return httpx.get(self.url, timeout=10).json()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


class CapReceiver:
    """Every partner's CAP endpoint (``/cap/<partner>``): signature checked, schema validated, kept."""

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.schema = etree.XMLSchema(etree.parse(str(CAP_SCHEMA)))
        self.documents: list[tuple[str, bytes]] = []  # (partner, CAP bytes), valid and signed
        self.invalid: list[str] = []  # why each refused one was refused
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                why = receiver._check(dict(self.headers.items()), body)
                with receiver.lock:
                    if why:
                        receiver.invalid.append(why)
                    else:
                        receiver.documents.append((self.path.rsplit("/", 1)[-1], body))
                self.send_response(400 if why else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _check(self, headers: dict[str, str], body: bytes) -> str:
        stamp = headers.get("X-Ibet-Timestamp", "")
        expected = "v1=" + hmac.new(self.secret, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        if not any(hmac.compare_digest(expected, s.strip()) for s in headers.get("X-Ibet-Signature", "").split(",")):
            return "bad signature"
        try:
            document = etree.fromstring(body)
        except etree.XMLSyntaxError as exc:
            return f"not XML: {exc}"
        if not self.schema.validate(document):
            return "not CAP 1.2: " + "; ".join(str(e) for e in self.schema.error_log)
        return ""

    def parsed(self) -> list[tuple[str, etree._Element]]:
        with self.lock:
            return [(partner, etree.fromstring(body)) for partner, body in self.documents]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class MailInbox:
    """An SMTP server on a free port; ``messages`` as the stdlib parses them."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        inbox = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
                inbox.messages.append(message_from_bytes(envelope.content, policy=policy.default))
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=free_port())
        self.controller.start()
        self.port = self.controller.port

    def stop(self) -> None:
        self.controller.stop()

"""Stand-in partner agencies for the embedded demo: real servers on 127.0.0.1 that receive what the
alert service sends, so a first run shows every channel delivering without any agency's systems.

- one HTTP server for every partner's webhook (``/hooks/<partner>``, signature checked) and CAP
  endpoint (``/cap/<partner>``);
- an SMTP server (aiosmtpd) that keeps the e-mails;
- a TAK stand-in (:class:`ibet_app.cot_listener.CotListener`) that parses the CoT events.

:func:`demo_registry` points every partner of a registry at them; :class:`DemoPeers` starts and
stops them and counts what each partner received.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from alerts.formats.webhook import verify_webhook
from ibet.registry import Registry
from ibet_app.cot_listener import CotListener


class _Mailbox:
    def __init__(self) -> None:
        self.received: Counter[str] = Counter()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        for rcpt in envelope.rcpt_tos:
            self.received[rcpt.split("@", 1)[1].split(".", 1)[0]] += 1  # desk@<partner>.demo.invalid
        return "250 OK"


class DemoPeers:
    """The stand-in partners; ``secret`` signs every webhook and CAP POST."""

    def __init__(self) -> None:
        self.secret = secrets.token_urlsafe(24)
        self.received: Counter[tuple[str, str]] = Counter()  # (partner, channel) -> messages
        self.bad_signatures = 0
        peers = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                kind, _, partner = self.path.strip("/").partition("/")
                ok = verify_webhook(dict(self.headers.items()), body, peers.secret.encode(), time.time())
                if ok:
                    peers.received[(partner, "webhook" if kind == "hooks" else "cap")] += 1
                else:
                    peers.bad_signatures += 1
                self.send_response(200 if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.mailbox = _Mailbox()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            smtp_port = probe.getsockname()[1]
        self.smtp = Controller(self.mailbox, hostname="127.0.0.1", port=smtp_port)
        self.tak = CotListener()

    @property
    def http_port(self) -> int:
        return self.http.server_address[1]

    @property
    def smtp_port(self) -> int:
        return self.smtp.port

    def start(self) -> DemoPeers:
        threading.Thread(target=self.http.serve_forever, name="demo-partners-http", daemon=True).start()
        self.smtp.start()
        self.tak.start()
        return self

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()
        self.smtp.stop()
        self.tak.stop()

    def deliveries(self) -> Counter[tuple[str, str]]:
        """Messages received per (partner, channel): webhooks, CAP, e-mails and CoT events."""
        counts = Counter(self.received)
        for partner, n in self.mailbox.received.items():
            counts[(partner, "email")] += n
        cot = len(self.tak.events)
        if cot:
            counts[("(one TAK server for all)", "cot")] += cot
        return counts


def demo_registry(registry: Registry, peers: DemoPeers) -> Registry:
    """``registry`` with every partner's contacts pointing at the stand-in partners."""
    data = registry.model_dump(mode="python")
    for partner in data["partners"]:
        pid = partner["id"]
        partner["contacts"] = {
            "webhook_url": f"http://127.0.0.1:{peers.http_port}/hooks/{pid}",
            "cap_url": f"http://127.0.0.1:{peers.http_port}/cap/{pid}",
            "email": (f"desk@{pid}.demo.invalid",),
            "tak_endpoint": f"127.0.0.1:{peers.tak.port}",
        }
    return Registry.model_validate(data)

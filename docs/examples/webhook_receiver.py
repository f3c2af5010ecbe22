"""A partner's webhook receiver for ibet alerts, in the standard library only (docs/partners.md).

    IBET_WEBHOOK_SECRET=... python3 webhook_receiver.py 8443

Checks the signature, refuses stale or replayed requests, drops duplicates by Idempotency-Key and
keeps, per alert, the version with the highest version_order. Run behind your TLS terminator.
"""

import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = os.environ["IBET_WEBHOOK_SECRET"].encode()
TOLERANCE_S = 300
seen_keys, alerts = set(), {}  # a real receiver keeps these in its database


def signed(headers, body):
    stamp = headers.get("X-Ibet-Timestamp", "")
    if not stamp.isdigit() or abs(time.time() - int(stamp)) > TOLERANCE_S:
        return False
    expected = "v1=" + hmac.new(SECRET, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, s.strip()) for s in headers.get("X-Ibet-Signature", "").split(","))


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if not signed(self.headers, body):
            return self.answer(401)
        key = self.headers.get("Idempotency-Key", "").strip('"')
        if key in seen_keys:
            return self.answer(200)  # a retry of what we already have
        document = json.loads(body)
        alert = document["alert"]
        held = alerts.get(alert["alert_id"])
        if held is None or document["version_order"] > held["version_order"]:
            alerts[alert["alert_id"]] = document  # show it to the duty desk here
        seen_keys.add(key)
        self.answer(200)

    def answer(self, status):
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):  # noqa: N802 - what this receiver holds, for its operators (and the test)
        data = json.dumps({a: d["alert"]["state"] for a, d in alerts.items()}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver).serve_forever()

"""Webhook deliveries: a compact JSON body, an HMAC-SHA256 signature and an idempotency key.

Request headers:

- ``Idempotency-Key``: ``"<delivery key>.<alert version>"`` as a quoted string (the IETF
  Idempotency-Key draft makes the value a Structured Field String), where the delivery key is
  ``ibet.ids.delivery_key(alert_id, partner_id, "webhook")`` and the version is
  :func:`alerts.formats.alert_version`. Retries of one state carry the same key, so the receiver
  drops duplicates; a state change (acknowledged, escalated, resolved) is a new key, so it is
  not dropped as a duplicate of the alert's first delivery. :func:`idempotency_key_of` reads it.
- ``X-Ibet-Timestamp``: the signing time, integer seconds since the Unix epoch.
- ``X-Ibet-Signature``: ``v1=<hex HMAC-SHA256(secret, b"<timestamp>." + body)>``; during a secret
  rotation a sender may list several, comma-separated, and any one that matches is enough.

Receivers call :func:`verify_webhook`, which compares in constant time and refuses timestamps
further than ``tolerance_s`` from their clock (a replayed capture goes stale).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping

from alerts.formats import alert_version
from ibet.ids import delivery_key
from ibet.messages import Alert

CHANNEL = "webhook"
SIGNATURE_HEADER = "X-Ibet-Signature"
TIMESTAMP_HEADER = "X-Ibet-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
DEFAULT_TOLERANCE_S = 300


def idempotency_key(alert: Alert, partner_id: str) -> str:
    """``dlv-<16 hex>.<state>.<escalation>.<updated_ts_ns>``: same for retries, new per state."""
    return f"{delivery_key(alert.alert_id, partner_id, CHANNEL)}.{alert_version(alert)}"


def sign(secret: bytes, timestamp_s: int, body: bytes) -> str:
    """``v1=`` + hex HMAC-SHA256 of ``b"<timestamp_s>." + body`` under ``secret``."""
    digest = hmac.new(secret, f"{timestamp_s}.".encode("ascii") + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def webhook_request(
    alert: Alert, partner_id: str, secret: bytes, timestamp_s: int, exercise: bool = False,
    actions: Mapping[str, str] | None = None, links: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], bytes]:
    """Headers and body of the POST that delivers ``alert`` to ``partner_id``.

    Body: compact UTF-8 JSON ``{"alert": {...}, "partner_id": ..., "exercise": ...,
    "idempotency_key": ..., "version": ..., "version_order": ..., "actions": {...}}``, the alert as on
    ``ibet.alerts.v1`` less its evidence references (paths on ibet's servers: ``links`` carries the
    partner's links to them); ``version_order`` (an integer, the alert's ``updated_ts_ns``) grows with
    every version of one alert, so a receiver keeps the document with the highest;
    ``actions`` (when given): signed, expiring one-click links by action (``acknowledge``,
    ``resolve``, ``escalate``); ``links`` (when given): signed, expiring read-only links, ``alert``
    (its page) and ``crop`` and ``frame`` (its snapshot, image/jpeg). Without actions and links the
    same alert always gives the same body.
    ``timestamp_s``: signing time, s since the epoch (injected clock).
    """
    if isinstance(timestamp_s, bool) or not isinstance(timestamp_s, int) or timestamp_s < 0:
        raise ValueError(f"timestamp_s must be a non-negative int, got {timestamp_s!r}")
    if not secret:
        raise ValueError("the webhook secret must not be empty")
    key = idempotency_key(alert, partner_id)
    document = {
        "alert": alert.model_dump(mode="json", exclude_none=True, exclude={"evidence_refs"}),  # ``links`` instead
        "partner_id": partner_id,
        "exercise": exercise,
        "idempotency_key": key,
        "version": alert_version(alert),
        "version_order": alert.updated_ts_ns,  # grows with every version of the alert: keep the highest
    }
    if actions:
        document["actions"] = dict(actions)
    if links:
        document["links"] = dict(links)
    body = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        IDEMPOTENCY_HEADER: f'"{key}"',
        TIMESTAMP_HEADER: str(timestamp_s),
        SIGNATURE_HEADER: sign(secret, timestamp_s, body),
    }
    return headers, body


def verify_webhook(
    headers: Mapping[str, str], body: bytes, secret: bytes, now_s: float, tolerance_s: float = DEFAULT_TOLERANCE_S
) -> bool:
    """True when a signature in the headers matches ``body`` under ``secret`` and the timestamp
    is within ``tolerance_s`` seconds of ``now_s`` (either way). Header names are matched
    case-insensitively; a missing or malformed header gives False, never an exception."""
    by_name = {name.lower(): value for name, value in headers.items()}
    stamp, signatures = by_name.get(TIMESTAMP_HEADER.lower(), ""), by_name.get(SIGNATURE_HEADER.lower(), "")
    if not stamp.isascii() or not stamp.isdigit() or not secret:
        return False
    if abs(now_s - int(stamp)) > tolerance_s:
        return False
    expected = sign(secret, int(stamp), body).encode("ascii")
    matched = False
    for candidate in signatures.split(","):
        matched |= hmac.compare_digest(expected, candidate.strip().encode("utf-8"))
    return matched


def idempotency_key_of(headers: Mapping[str, str]) -> str | None:
    """The idempotency key of a received request, quoted or bare; None when absent."""
    for name, value in headers.items():
        if name.lower() == IDEMPOTENCY_HEADER.lower():
            value = value.strip()
            return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
    return None

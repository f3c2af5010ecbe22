"""Deterministic ids, so a replayed or duplicated message derives the same id (at-least-once).

Each id is a prefix plus the first 16 hex digits (64 bits) of the SHA-256 of a canonical string:
a domain tag and every part as ``<length>:<text>``, so no choice of parts can collide with
another by shifting a separator. Changing this scheme changes every id: deliveries already in
an outbox would be sent again, so treat the output as a stored format.
"""

from __future__ import annotations

import hashlib
import operator

from ibet.messages import BorderEventType

_HEX_DIGITS = 16


def event_id(track_id: str, event_type: BorderEventType | str, window_start_ns: int) -> str:
    """Id of a border event: one per track, event type and time window.

    ``window_start_ns`` comes from :func:`time_window_start_ns` over the event (capture) time.
    ``"crossing"`` and ``BorderEventType.CROSSING`` give the same id; an unknown type raises
    ValueError. Example: ``event_id("trk-7", "crossing", 1_700_000_000_000_000_000)`` ->
    ``"evt-"`` + 16 hex digits.
    """
    kind = BorderEventType(event_type).value
    return _digest("evt-", "ibet.event.v1", _text(track_id, "track_id"), kind, str(_int(window_start_ns)))


def alert_id(event_id: str) -> str:
    """Id of the alert raised for a border event: ``"alr-"`` + 16 hex digits."""
    return _digest("alr-", "ibet.alert.v1", _text(event_id, "event_id"))


def delivery_key(alert_id: str, partner_id: str, channel: str) -> str:
    """Idempotency key of one delivery of an alert to a partner on a channel (webhook, email ...).

    Receivers deduplicate on it; e-mail Message-IDs and outbox rows derive from it. Channel
    names are compared exactly (``"email"`` and ``"Email"`` differ). Returns ``"dlv-"`` + 16 hex.
    """
    parts = (_text(alert_id, "alert_id"), _text(partner_id, "partner_id"), _text(channel, "channel"))
    return _digest("dlv-", "ibet.delivery.v1", *parts)


def time_window_start_ns(ts_ns: int, window_ns: int) -> int:
    """Start of the tumbling window of length ``window_ns`` that holds ``ts_ns`` (both ns).

    Windows are aligned on the Unix epoch: ``time_window_start_ns(25, 10) == 20``; a time on a
    boundary starts its own window (``time_window_start_ns(20, 10) == 20``). Raises ValueError
    when ``window_ns <= 0`` and TypeError for a non-integer.
    """
    ts_ns, window_ns = _int(ts_ns), _int(window_ns)
    if window_ns <= 0:
        raise ValueError(f"window_ns must be > 0, got {window_ns}")
    return ts_ns - ts_ns % window_ns


def _digest(prefix: str, *parts: str) -> str:
    canonical = "".join(f"{len(part)}:{part}" for part in parts)
    return prefix + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:_HEX_DIGITS]


def _text(value: str, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _int(value: int) -> int:
    if isinstance(value, bool):
        raise TypeError(f"expected an integer number of ns, got {value!r}")
    return operator.index(value)  # int or numpy integer; floats raise TypeError

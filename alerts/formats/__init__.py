"""An alert in each partner's own format: pure functions, no network I/O.

- :mod:`alerts.formats.cot`: Cursor-on-Target 2.0 XML for TAK (one marker per track).
- :mod:`alerts.formats.cap`: OASIS CAP 1.2 XML (Alert, Update, Cancel).
- :mod:`alerts.formats.webhook`: signed JSON request with an idempotency key.
- :mod:`alerts.formats.email`: plain text + HTML e-mail with a deterministic Message-ID.

Every builder is deterministic: the same alert gives the same CAP bytes, webhook body and e-mail
headers (Message-ID, Date), so a delivery retried from the outbox after a crash is the same
message to the partner. What makes two deliveries of one alert distinct is its *version*
(:func:`alert_version`).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from ibet.exceptions import IbetError
from ibet.messages import Alert, AlertState


class FormatError(IbetError, ValueError):
    """Bytes that claim to be a partner format (CoT, CAP) are not valid; says which field and why."""


def alert_version(alert: Alert) -> str:
    """The alert's state version: ``"<state>.<escalation_level>.<updated_ts_ns>"``.

    It changes with every state change (acknowledge, escalate, resolve, reopen) because each one
    moves ``updated_ts_ns``; state and escalation level are in it too, so two changes recorded at
    the same ns still differ. Webhook idempotency keys, e-mail Message-IDs and CAP identifiers end
    with it, so a state change is a new delivery while a retry of the same state is not.
    Example: ``"open.0.1718000000123456789"``. A stored format: changing it resends the outbox.
    """
    return f"{alert.state.value}.{alert.escalation_level}.{alert.updated_ts_ns}"


def first_version(alert: Alert) -> str:
    """The version the alert had when it was raised (open, not escalated, updated == created).

    Updates thread to the first message through it (e-mail In-Reply-To, CAP references).
    """
    return f"{AlertState.OPEN.value}.0.{alert.created_ts_ns}"


def is_update(alert: Alert) -> bool:
    """True when the alert is no longer in the version it was raised in."""
    return alert_version(alert) != first_version(alert)


_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    """``text`` with every character XML 1.0 forbids (NUL, most C0 controls, lone surrogates)
    replaced by U+FFFD, so hostile text cannot make the document unparseable.

    Markup characters (``<&"'``) are left alone: the XML writer escapes them.
    """
    return _NOT_XML_CHAR.sub("\ufffd", text)


def parse_untrusted_xml(data: bytes, what: str) -> ET.Element:
    """Parse XML received from outside; a DOCTYPE (entity expansion tricks) is refused outright.

    ``what`` names the format in the FormatError (``"CoT"``, ``"CAP"``).
    """
    if b"<!DOCTYPE" in bytes(data).upper():
        raise FormatError(f"{what}: XML with a DOCTYPE is refused")
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        raise FormatError(f"{what}: not well-formed XML: {exc}") from exc

"""Alert e-mails: plain text + HTML alternative, evidence thumbnail attached, deterministic ids.

- Message-ID ``<dlv-<16 hex>.<alert version>@<the sender's domain>>``: the delivery key
  ``ibet.ids.delivery_key(alert_id, recipients, "email")`` (recipients: the sorted, lower-cased
  To addresses joined by commas) plus :func:`alerts.formats.alert_version`. A retry of the same
  state has the same Message-ID, so mail systems and readers drop the duplicate; each state change
  is a new message; each recipient (one message per contact) gets its own id.
- Updates (any version after the first) carry In-Reply-To and References pointing at the
  Message-ID of the alert's first version, so mail readers thread them under it.
- Date is the alert's ``updated_ts_ns``; times are shown in UTC and, when a time zone is given,
  in the sector's local time. ``Auto-Submitted: auto-generated`` (RFC 3834) keeps auto-replies off.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from zoneinfo import ZoneInfo

from alerts.formats import alert_version, first_version, is_update
from ibet.ids import delivery_key
from ibet.messages import Alert, Direction

CHANNEL = "email"
MAX_SUBJECT_CHARS = 120  # what a mail list or a phone shows before cutting it off
MESSAGE_ID_DOMAIN = "ibet.invalid"  # when the sender address has no domain (RFC 6761: never resolves)
_DIRECTION = {
    Direction.CA_TO_US: "Canada to United States",
    Direction.US_TO_CA: "United States to Canada",
    Direction.NONE: "no crossing direction",
}
_JPEG_MAGIC = b"\xff\xd8\xff"
_READ_LINK_NAMES = {"alert": "Alert page", "crop": "Snapshot (the object)", "frame": "Snapshot (the whole frame)"}


def message_id(alert: Alert, to: Sequence[str], version: str | None = None, domain: str = MESSAGE_ID_DOMAIN) -> str:
    """``<dlv-<16 hex>.<version>@<domain>>`` for this alert, these recipients and a version
    (default: the alert's current version); the domain is the sender's (a fully qualified one)."""
    recipients = ",".join(sorted(address.strip().lower() for address in to))
    key = delivery_key(alert.alert_id, recipients, CHANNEL)
    return f"<{key}.{version or alert_version(alert)}@{domain}>"


def alert_email(
    alert: Alert,
    to: Sequence[str],
    sender: str,
    exercise: bool = False,
    attachment: bytes | None = None,
    attachment_name: str = "evidence.jpg",
    *,
    timezone: str | None = None,
    sector_name: str | None = None,
    actions: Mapping[str, str] | None = None,
    read_links: Mapping[str, str] | None = None,
) -> EmailMessage:
    """The e-mail for ``alert`` to ``to`` from ``sender``.

    Subject: ``[EXERCISE] [HIGH] ACKNOWLEDGED: <title> (<sector id>)`` (the exercise mark only in
    exercise mode, the state only for updates; ``- sector <sector>`` when the title does not name it),
    at most :data:`MAX_SUBJECT_CHARS` characters (the title shortened with an ellipsis). ``attachment``: JPEG bytes of the
    evidence thumbnail, attached as ``attachment_name``. ``timezone``: IANA name of the sector's
    time zone (``Sector.timezone``) for local times; ``sector_name``: shown next to the sector id.
    ``actions``: signed one-click links by action (acknowledge, resolve, escalate), listed in both parts.
    ``read_links``: signed read-only links (``alert``: its page; ``crop``, ``frame``: its snapshot).
    """
    if not to:
        raise ValueError("an alert e-mail needs at least one recipient")
    if attachment is not None and not attachment.startswith(_JPEG_MAGIC):
        raise ValueError("the evidence attachment must be JPEG bytes")
    zone = ZoneInfo(timezone) if timezone else None
    sector = f"{sector_name} ({alert.sector_id})" if sector_name else alert.sector_id
    direction = _DIRECTION[alert.direction]
    update = is_update(alert)

    # what a duty desk reads first comes first: exercise, severity, the state of an update; the title
    # already says what crossed which way (the body spells the direction out)
    state = f"{alert.state.value.upper()}: " if update else ""
    head = f"{'[EXERCISE] ' if exercise else ''}[{alert.severity.value.upper()}] {state}"
    # the title names the sector already (``title_of``): then only its id follows
    place = f" ({alert.sector_id})" if sector_name and sector_name in alert.title else f" - sector {sector}"
    title = _one_line(alert.title)
    room = MAX_SUBJECT_CHARS - len(head) - len(place)
    if len(title) > room:
        title = title[:max(room - 1, 0)].rstrip() + "\u2026"
    subject = f"{head}{title}{place}"
    if len(subject) > MAX_SUBJECT_CHARS:  # a long sector name as well: cut the end
        subject = subject[:MAX_SUBJECT_CHARS - 1].rstrip() + "\u2026"
    msg = EmailMessage()
    msg["Subject"] = _one_line(subject)
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = format_datetime(_utc(alert.updated_ts_ns))
    domain = sender.rsplit("@", 1)[1].strip(" >") if "@" in sender else MESSAGE_ID_DOMAIN
    msg["Message-ID"] = message_id(alert, to, domain=domain)
    if update:
        msg["In-Reply-To"] = msg["References"] = message_id(alert, to, first_version(alert), domain=domain)
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Ibet-Alert-Id"] = alert.alert_id
    msg["X-Ibet-Exercise"] = "yes" if exercise else "no"

    rows = [
        ("Severity", alert.severity.value.upper()),
        ("Sector", sector),
        ("Direction", direction),
        ("State", f"{alert.state.value} (escalation level {alert.escalation_level})"),
        ("Position", f"{alert.lat_deg:.6f}, {alert.lon_deg:.6f} (WGS-84)"),
        ("Raised", _times(alert.created_ts_ns, zone)),
        ("Updated", _times(alert.updated_ts_ns, zone)),
        ("Alert id", alert.alert_id),
    ]
    if attachment is not None:
        rows.append(("Evidence", f"attached ({_safe_name(attachment_name)})"))
    banner = "EXERCISE - an IBET scenario run, not a real event." if exercise else ""
    lines = [banner] if banner else []
    links = [(name.capitalize(), url) for name, url in (actions or {}).items()]
    link_lines = ["Act on this alert (links expire):", *(f"{name}: {url}" for name, url in links), ""] if links else []
    views = [(_READ_LINK_NAMES.get(name, name), url) for name, url in (read_links or {}).items()]
    view_lines = ["See it (links expire):", *(f"{name}: {url}" for name, url in views), ""] if views else []
    links += views
    text = "\n".join([*lines, alert.title, "", *(f"{k}: {v}" for k, v in rows), "", alert.summary, "", *link_lines,
                      *view_lines])
    msg.set_content(text)
    cells = "".join(f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    marked = f"<p><strong>{html.escape(banner)}</strong></p>" if banner else ""
    msg.add_alternative(
        f"<!DOCTYPE html><html><body>{marked}<h2>{html.escape(alert.title)}</h2>"
        f"<table>{cells}</table><p>{html.escape(alert.summary)}</p>"
        + "".join(f"<p><a href='{html.escape(url, quote=True)}'>{html.escape(name)}</a></p>" for name, url in links)
        + "</body></html>",
        subtype="html",
    )
    if attachment is not None:
        msg.add_attachment(attachment, maintype="image", subtype="jpeg", filename=_safe_name(attachment_name))
    return msg


def _utc(ts_ns: int) -> datetime:
    return datetime.fromtimestamp(ts_ns // 1_000_000_000, UTC)


def _times(ts_ns: int, zone: ZoneInfo | None) -> str:
    """``2024-06-10 06:13:20 UTC (2024-06-09 23:13:20 PDT)``; the local part only with a zone."""
    moment = _utc(ts_ns)
    shown = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{shown} ({moment.astimezone(zone):%Y-%m-%d %H:%M:%S %Z})" if zone else shown


def _one_line(text: str) -> str:
    """Whitespace (CR/LF included) collapsed: no header injection through an alert's title."""
    return " ".join(text.split())


def _safe_name(name: str) -> str:
    return re.sub(r"[^\w.-]", "_", name.rsplit("/", 1)[-1]) or "evidence.jpg"

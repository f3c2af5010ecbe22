"""E-mail deliveries over SMTP: one message per alert version to each partner's duty addresses.

The message is :func:`alerts.formats.email.alert_email` (plain text + HTML, evidence attached,
exercise marked in subject and body). Its Message-ID is deterministic (alert, recipients, version),
so a resend after a crash or a retry is recognisably the same message. One SMTP transaction
carries it to all of a partner's addresses.

Outcomes (:class:`alerts.delivery.SendResult`):

- delivered: the server accepted the message for at least one address and refused none
  temporarily (addresses refused for good are named in the detail and logged);
- retry: a 4xx reply (to the connection, the sender, a recipient or the data), a connection or
  TLS error, a timeout, a server that drops the line or does not offer STARTTLS/AUTH;
- dead: a 5xx reply (the server refuses the sender, every recipient, the data or the login),
  and a partner without an e-mail address.

    >>> channel = EmailChannel("smtp.agency.example", 587, {"usbp": ("duty@usbp.example",)},  # doctest: +SKIP
    ...                        sender="alerts@ibet.example", username="ibet", password=secret)
    >>> deliver_due(outbox, {"email": channel})  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from collections.abc import Callable, Mapping, Sequence
from email.message import EmailMessage
from typing import Literal

from alerts.delivery import Outcome, SendResult
from alerts.formats.email import CHANNEL, alert_email
from alerts.outbox import DeliveryJob
from ibet.messages import Alert
from ibet.registry import Registry, Sector

log = logging.getLogger(__name__)

SmtpSecurity = Literal["starttls", "tls", "none"]
"""``starttls``: plain connection upgraded with STARTTLS (port 587/25), refusing to go on in the
clear; ``tls``: TLS from the first byte (SMTPS, port 465); ``none``: no encryption (a local relay)."""
Attachment = tuple[bytes, str, str]
"""(content, MIME type such as ``image/jpeg`` or ``image/png``, file name)."""
AttachmentSource = Callable[[Alert], Attachment | None]
"""Gives the evidence thumbnail or map snapshot of an alert, or None when it has none."""

_MIME = re.compile(r"^([a-z0-9][a-z0-9!#$&^_.+-]*)/([a-z0-9][a-z0-9!#$&^_.+-]*)$")
_MAX_DETAIL_CHARS = 300


class EmailChannel:
    """Alert e-mails through one SMTP server (the agency's relay or IBET's own).

    ``recipients``: ``{partner_id: addresses}``. ``sender``: the From address (also the envelope
    sender). ``security``: see :data:`SmtpSecurity`; ``ssl_context`` verifies the server (default:
    the system's trusted CAs, host name checked). ``username``/``password``: SMTP AUTH after TLS,
    when given. ``attachment_for``: the evidence of an alert (see :data:`AttachmentSource`); when
    it fails, the alert goes out without it (a missing thumbnail must not hold back an alert) and
    the failure is logged. ``sectors``: ``{sector_id: Sector}`` for local times and sector names.
    ``exercise``: marks subject and body of every alert as an exercise (an alert with
    ``exercise`` set is marked anyway). ``timeout_s``: per SMTP operation.
    """

    name = CHANNEL

    def __init__(
        self,
        host: str,
        port: int,
        recipients: Mapping[str, Sequence[str]],
        sender: str,
        *,
        security: SmtpSecurity = "starttls",
        ssl_context: ssl.SSLContext | None = None,
        username: str | None = None,
        password: str | None = None,
        attachment_for: AttachmentSource | None = None,
        sectors: Mapping[str, Sector] | None = None,
        exercise: bool = False,
        timeout_s: float = 30.0,
        links_for: Callable[[Alert, str], Mapping[str, str]] | None = None,
        read_links_for: Callable[[Alert, str], Mapping[str, str]] | None = None,
    ):
        if not host:
            raise ValueError("the SMTP host must not be empty")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"the SMTP port must be an int in 1..65535, got {port!r}")
        if security not in ("starttls", "tls", "none"):
            raise ValueError(f"security must be 'starttls', 'tls' or 'none', got {security!r}")
        if "@" not in sender:
            raise ValueError(f"the sender {sender!r} is not an e-mail address")
        if (username is None) != (password is None):
            raise ValueError("give both username and password for SMTP AUTH, or neither")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        self.host, self.port, self.sender, self.security = host, port, sender, security
        self.recipients = {partner: tuple(addresses) for partner, addresses in recipients.items()}
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.username, self.password = username, password
        self.attachment_for = attachment_for
        self.sectors = dict(sectors or {})
        self.exercise = exercise
        self.timeout_s = timeout_s
        self.links_for, self.read_links_for = links_for, read_links_for

    @classmethod
    def from_registry(cls, registry: Registry, host: str, port: int, sender: str, **options) -> EmailChannel:
        """A channel to every partner with e-mail addresses in the registry, with its sectors'
        time zones and names; ``options`` as for the constructor."""
        recipients = {p.id: p.contacts.email for p in registry.partners if p.contacts.email}
        sectors = options.pop("sectors", {s.id: s for s in registry.sectors})
        return cls(host, port, recipients, sender, sectors=sectors, **options)

    def message(self, alert: Alert, to: Sequence[str], partner_id: str | None = None) -> EmailMessage:
        """The e-mail for ``alert`` to ``to``, with the alert's evidence attached when it has any and
        (with ``links_for`` / ``read_links_for`` and a partner) that partner's signed action links and
        links to the alert's page and snapshot."""
        sector = self.sectors.get(alert.sector_id)
        zone, sector_name = (sector.timezone, sector.name) if sector is not None else (None, None)
        attachment = self._attachment(alert)
        jpeg = attachment is not None and attachment[1] == "image/jpeg"
        msg = alert_email(alert, to, self.sender, self.exercise or alert.exercise,
                          attachment=attachment[0] if jpeg else None,
                          attachment_name=attachment[2] if jpeg else "evidence.jpg",
                          timezone=zone, sector_name=sector_name,
                          actions=self.links_for(alert, partner_id) if self.links_for and partner_id else None,
                          read_links=self.read_links_for(alert, partner_id) if self.read_links_for and partner_id else None)
        if attachment is not None and not jpeg:
            content, mime, filename = attachment
            maintype, subtype = mime.split("/")
            msg.add_attachment(content, maintype=maintype, subtype=subtype, filename=_safe_name(filename))
        return msg

    def send(self, job: DeliveryJob, now_ns: int) -> SendResult:
        """Mail ``job``'s alert to its partner's addresses and classify the server's answer."""
        to = self.recipients.get(job.partner_id)
        if not to:
            return SendResult(Outcome.DEAD, f"no e-mail address configured for partner {job.partner_id!r}")
        msg = self.message(job.alert, to, job.partner_id)
        try:
            refused = self._transmit(msg, to)
        except smtplib.SMTPException as exc:
            return classify_smtp_error(exc, self._where())
        except OSError as exc:  # refused, unreachable, timed out, TLS failure (ssl.SSLError is an OSError)
            return SendResult(Outcome.RETRY, f"cannot reach SMTP server {self._where()}: {type(exc).__name__}: {exc}")
        if any(code < 500 for code, _ in refused.values()):
            return SendResult(Outcome.RETRY, f"{self._where()} refused some recipients for now: {_refusals(refused)}")
        accepted = len(to) - len(refused)
        detail = f"{self._where()} accepted {msg['Message-ID']} for {accepted} of {len(to)} address(es)"
        if refused:
            detail += f"; refused for good: {_refusals(refused)}"
            log.warning("alert %s to partner %s: %s", job.alert.alert_id, job.partner_id, detail)
        return SendResult(Outcome.DELIVERED, detail)

    def _transmit(self, msg: EmailMessage, to: Sequence[str]) -> dict[str, tuple[int, bytes]]:
        """One SMTP session: connect, secure, log in, send; returns the recipients refused."""
        context = self.ssl_context
        if self.security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_s, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
        try:
            smtp.ehlo()
            if self.security == "starttls":
                smtp.starttls(context=context)  # SMTPNotSupportedError when not offered: never fall back to clear text
                smtp.ehlo()
            if self.username is not None:
                smtp.login(self.username, self.password or "")
            refused = smtp.send_message(msg, from_addr=self.sender, to_addrs=list(to))
        except BaseException:
            smtp.close()
            raise
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()  # the message is already accepted; a QUIT that fails changes nothing
        return refused

    def _attachment(self, alert: Alert) -> Attachment | None:
        if self.attachment_for is None:
            return None
        try:
            attachment = self.attachment_for(alert)
            if attachment is None:
                return None
            content, mime, filename = attachment
            mime = mime.strip().lower()
            if not isinstance(content, bytes | bytearray) or not content:
                raise ValueError("the attachment content must be non-empty bytes")
            if not _MIME.match(mime):
                raise ValueError(f"{mime!r} is not a MIME type such as image/jpeg")
            if mime == "image/jpeg" and not bytes(content).startswith(b"\xff\xd8\xff"):
                raise ValueError("the attachment claims image/jpeg but is not JPEG data")
            return bytes(content), mime, str(filename)
        except Exception as exc:  # noqa: BLE001 - the alert goes out without its evidence rather than not at all
            log.warning("alert %s: no attachment, attachment_for failed: %s: %s", alert.alert_id, type(exc).__name__, exc)
            return None

    def _where(self) -> str:
        return f"{self.host}:{self.port}"


def classify_smtp_error(exc: smtplib.SMTPException, where: str = "the SMTP server") -> SendResult:
    """Retry or dead for an SMTP failure: a 5xx reply is a permanent refusal (dead), a 4xx reply
    or anything without a reply code (a dropped line, STARTTLS/AUTH not offered) is retried.
    When every recipient is refused, any temporary refusal among them makes it a retry."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = exc.recipients
        permanent = bool(refused) and all(code >= 500 for code, _ in refused.values())
        return SendResult(Outcome.DEAD if permanent else Outcome.RETRY,
                          f"{where} refused every recipient: {_refusals(refused)}")
    if isinstance(exc, smtplib.SMTPResponseException):
        code, reply = exc.smtp_code, _text(exc.smtp_error)
        outcome = Outcome.DEAD if 500 <= code < 600 else Outcome.RETRY
        return SendResult(outcome, f"{where} answered {code} ({type(exc).__name__}): {reply}"[:_MAX_DETAIL_CHARS])
    return SendResult(Outcome.RETRY, f"{where}: {type(exc).__name__}: {exc}"[:_MAX_DETAIL_CHARS])


def _refusals(refused: Mapping[str, tuple[int, bytes | str]]) -> str:
    text = "; ".join(f"{address}: {code} {_text(reply)}" for address, (code, reply) in refused.items())
    return text[:_MAX_DETAIL_CHARS]


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _safe_name(name: str) -> str:
    """The file name without folders or characters a mail client could misread."""
    return re.sub(r"[^\w.-]", "_", name.replace("\\", "/").rsplit("/", 1)[-1]) or "evidence"

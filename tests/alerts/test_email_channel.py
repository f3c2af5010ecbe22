"""E-mail channel against real SMTP servers (aiosmtpd on 127.0.0.1): plain, STARTTLS with a login,
implicit TLS; what arrives (headers, both parts, the attachment, a stable Message-ID on a resend)
and how each kind of failure is classified."""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Iterator
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from wire_samples import T0, alert

from alerts.delivery import Outcome
from alerts.email_channel import EmailChannel, classify_smtp_error
from alerts.formats.email import message_id
from alerts.outbox import DeliveryJob
from ibet.messages import Alert, AlertState
from ibet.registry import load_registry

REPO = Path(__file__).resolve().parents[2]
SENDER = "alerts@ibet.example"
USBP = ("duty@usbp.example", "Desk@USBP.example")
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(64)) + b"\xff\xd9"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(32))
NOW = T0 + 5_000_000_000


class Inbox:
    """An aiosmtpd handler that keeps what it accepts; replies can be scripted per recipient or for DATA."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.rcpt_replies: dict[str, str] = {}
        self.data_reply: str | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply is not None:
            return self.data_reply
        self.received.append({
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "message": message_from_bytes(envelope.original_content, policy=email_policy.default),
            "tls": session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None,
            "login": session.auth_data.login if session.authenticated else None,
        })
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _check_login(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"ibet", b"s3cret")
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


def _server_context(pki) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    return context


def _serve(inbox: Inbox, **options) -> Iterator[int]:
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port(), **options)
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
def plain_port(inbox: Inbox) -> Iterator[int]:
    """A plain SMTP server (a local relay)."""
    yield from _serve(inbox)


@pytest.fixture
def starttls_port(inbox: Inbox, pki) -> Iterator[int]:
    """A submission server: STARTTLS required before MAIL, AUTH required (only over TLS)."""
    yield from _serve(inbox, tls_context=_server_context(pki), require_starttls=True, auth_required=True,
                      authenticator=_check_login)


@pytest.fixture
def client_context(pki) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki.ca))


def job(an_alert: Alert | None = None, partner: str = "usbp", attempt: int = 1) -> DeliveryJob:
    an_alert = an_alert or alert()
    return DeliveryJob(f"dlv-test.{partner}", an_alert, partner, "email", "v", attempt, NOW + 60_000_000_000)


def plain_channel(port: int, **options) -> EmailChannel:
    return EmailChannel("127.0.0.1", port, {"usbp": USBP, "nobody": ()}, SENDER, security="none", **options)


def test_plain_delivery_has_headers_both_parts_the_attachment_and_a_stable_message_id(inbox, plain_port):
    channel = plain_channel(plain_port, attachment_for=lambda a: (JPEG, "image/jpeg", "evidence/drone-07/42.jpg"))

    first = channel.send(job(), NOW)
    resent = channel.send(job(attempt=2), NOW + 30_000_000_000)  # a retry, or a resend after a crash

    assert first.outcome is resent.outcome is Outcome.DELIVERED, (first, resent)
    assert len(inbox.received) == 2
    got, again = (r["message"] for r in inbox.received)
    assert inbox.received[0]["mail_from"] == SENDER and inbox.received[0]["rcpt_tos"] == list(USBP)
    assert got["Message-ID"] == again["Message-ID"] == message_id(alert(), USBP, domain="ibet.example")
    assert got["Message-ID"] in first.detail and "2 of 2" in first.detail
    assert got["From"] == SENDER and got["To"] == ", ".join(USBP) and got["X-Ibet-Alert-Id"] == alert().alert_id
    assert got["Subject"].startswith("[HIGH] ") and "EXERCISE" not in got["Subject"]
    text, page = got.get_body(("plain",)).get_content(), got.get_body(("html",)).get_content()
    assert alert().summary in text and alert().title in text and "Evidence: attached (42.jpg)" in text
    assert page.startswith("<!DOCTYPE html>") and alert().title in page
    (attached,) = list(got.iter_attachments())
    assert (attached.get_content_type(), attached.get_filename(), attached.get_content()) == ("image/jpeg", "42.jpg", JPEG)


def test_an_update_is_a_new_message_threaded_under_the_first(inbox, plain_port):
    acked = alert(state=AlertState.ACKNOWLEDGED, updated_ts_ns=T0 + 1_000_000_000)
    channel = plain_channel(plain_port)
    assert channel.send(job(), NOW).outcome is Outcome.DELIVERED
    assert channel.send(job(acked), NOW).outcome is Outcome.DELIVERED
    first, update = (r["message"] for r in inbox.received)
    assert update["Message-ID"] != first["Message-ID"]
    assert update["In-Reply-To"] == update["References"] == first["Message-ID"]
    assert update["Subject"].strip().startswith("[HIGH] ACKNOWLEDGED: ")  # (a folded header unfolds with a space)


def test_exercise_marks_subject_and_body_and_a_map_snapshot_png_is_attached(inbox, plain_port):
    channel = plain_channel(plain_port, exercise=True, attachment_for=lambda a: (PNG, "image/png", "map.png"))
    assert channel.send(job(), NOW).outcome is Outcome.DELIVERED
    got = inbox.received[0]["message"]
    assert got["Subject"].startswith("[EXERCISE] [HIGH] ") and got["X-Ibet-Exercise"] == "yes"
    assert "EXERCISE" in got.get_body(("plain",)).get_content() and "EXERCISE" in got.get_body(("html",)).get_content()
    (attached,) = list(got.iter_attachments())
    assert (attached.get_content_type(), attached.get_filename(), attached.get_content()) == ("image/png", "map.png", PNG)


def test_an_exercise_alert_is_marked_whatever_the_channel_says(inbox, plain_port):
    assert plain_channel(plain_port).send(job(alert(exercise=True)), NOW).outcome is Outcome.DELIVERED
    assert plain_channel(plain_port).send(job(alert()), NOW).outcome is Outcome.DELIVERED
    drill, real = (r["message"] for r in inbox.received)
    assert drill["Subject"].startswith("[EXERCISE] ") and drill["X-Ibet-Exercise"] == "yes"
    assert not real["Subject"].startswith("[EXERCISE] ") and real["X-Ibet-Exercise"] == "no"


@pytest.mark.parametrize(("evidence", "warned"), [
    (lambda a: None, False),  # the alert has no evidence
    (lambda a: (b"GIF89a", "image/jpeg", "x.jpg"), True),  # says JPEG, is not
    (lambda a: (PNG, "not a mime type", "x.png"), True),
    (lambda a: (b"", "image/png", "x.png"), True),
    (lambda a: 1 / 0, True),  # the evidence store is broken
])
def test_an_alert_goes_out_without_evidence_it_cannot_get(inbox, plain_port, evidence, warned, caplog):
    with caplog.at_level(logging.WARNING, logger="alerts.email_channel"):
        assert plain_channel(plain_port, attachment_for=evidence).send(job(), NOW).outcome is Outcome.DELIVERED
    got = inbox.received[0]["message"]
    assert list(got.iter_attachments()) == [] and "Evidence" not in got.get_body(("plain",)).get_content()
    assert ("attachment_for failed" in caplog.text) is warned


def test_starttls_with_login(inbox, starttls_port, client_context):
    channel = EmailChannel("127.0.0.1", starttls_port, {"usbp": USBP}, SENDER, security="starttls",
                           ssl_context=client_context, username="ibet", password="s3cret")
    result = channel.send(job(), NOW)
    assert result.outcome is Outcome.DELIVERED, result
    (received,) = inbox.received
    assert received["tls"] and received["login"] == b"ibet"
    assert received["message"]["Message-ID"] == message_id(alert(), USBP, domain="ibet.example")


def test_implicit_tls(inbox, pki, client_context):
    for port in _serve(inbox, ssl_context=_server_context(pki)):
        channel = EmailChannel("localhost", port, {"usbp": USBP}, SENDER, security="tls", ssl_context=client_context)
        result = channel.send(job(), NOW)
        assert result.outcome is Outcome.DELIVERED, result
    assert len(inbox.received) == 1 and inbox.received[0]["tls"]


@pytest.mark.parametrize(("options", "outcome", "words"), [
    ({"username": "ibet", "password": "wrong"}, Outcome.DEAD, "535"),  # the server refuses the login for good
    ({"username": "ibet", "password": "s3cret", "ssl_context": None}, Outcome.RETRY, "CERTIFICATE_VERIFY_FAILED"),
    ({}, Outcome.DEAD, "530"),  # no login where the server requires one: a permanent refusal
])
def test_starttls_failures(inbox, starttls_port, client_context, options, outcome, words):
    options = {"ssl_context": client_context} | options
    channel = EmailChannel("127.0.0.1", starttls_port, {"usbp": USBP}, SENDER, **options)
    result = channel.send(job(), NOW)
    assert result.outcome is outcome and words in result.detail, result
    assert inbox.received == []


def test_starttls_not_offered_is_retried_not_sent_in_the_clear(inbox, plain_port, client_context):
    channel = EmailChannel("127.0.0.1", plain_port, {"usbp": USBP}, SENDER, ssl_context=client_context)
    result = channel.send(job(), NOW)
    assert result.outcome is Outcome.RETRY and "STARTTLS" in result.detail, result
    assert inbox.received == []


@pytest.mark.parametrize(("rcpt", "data", "outcome", "words"), [
    ({"duty@usbp.example": "550 5.1.1 no such user", "Desk@USBP.example": "550 5.1.1 no such user"}, None,
     Outcome.DEAD, "550 5.1.1 no such user"),
    ({"duty@usbp.example": "450 4.2.1 mailbox busy", "Desk@USBP.example": "550 5.1.1 no such user"}, None,
     Outcome.RETRY, "450 4.2.1"),
    ({"duty@usbp.example": "450 4.2.1 mailbox busy"}, None, Outcome.RETRY, "refused some recipients for now"),
    ({}, "421 4.3.2 shutting down, come back later", Outcome.RETRY, "421"),
    ({}, "554 5.6.0 message refused", Outcome.DEAD, "554"),
])
def test_server_replies_are_classified(inbox, plain_port, rcpt, data, outcome, words):
    inbox.rcpt_replies, inbox.data_reply = rcpt, data
    result = plain_channel(plain_port).send(job(), NOW)
    assert result.outcome is outcome and words in result.detail, result


def test_a_recipient_refused_for_good_does_not_hold_back_the_others(inbox, plain_port, caplog):
    inbox.rcpt_replies = {"Desk@USBP.example": "550 5.1.1 no such user"}
    with caplog.at_level(logging.WARNING, logger="alerts.email_channel"):
        result = plain_channel(plain_port).send(job(), NOW)
    assert result.outcome is Outcome.DELIVERED and "1 of 2" in result.detail and "Desk@USBP.example: 550" in result.detail
    assert inbox.received[0]["rcpt_tos"] == ["duty@usbp.example"]
    assert "Desk@USBP.example" in caplog.text


def test_server_down_is_retried():
    result = plain_channel(_free_port()).send(job(), NOW)
    assert result.outcome is Outcome.RETRY and "ConnectionRefusedError" in result.detail, result


@pytest.mark.parametrize("partner", ["nobody", "unknown-agency"])
def test_a_partner_without_addresses_is_dead(partner):
    result = plain_channel(_free_port()).send(job(partner=partner), NOW)
    assert result.outcome is Outcome.DEAD and f"no e-mail address configured for partner '{partner}'" == result.detail


@pytest.mark.parametrize(("args", "options", "words"), [
    (("", 25), {}, "host"),
    (("mail.example", 0), {}, "port"),
    (("mail.example", "25"), {}, "port"),
    (("mail.example", 25), {"security": "ssl"}, "security"),
    (("mail.example", 25), {"username": "ibet"}, "username and password"),
    (("mail.example", 25), {"timeout_s": 0}, "timeout_s"),
])
def test_constructor_refuses_bad_settings(args, options, words):
    with pytest.raises(ValueError, match=words):
        EmailChannel(*args, {"usbp": USBP}, SENDER, **options)
    with pytest.raises(ValueError, match="sender"):
        EmailChannel("mail.example", 25, {"usbp": USBP}, "not-an-address")


def test_classify_smtp_error_without_a_code_is_a_retry():
    import smtplib

    assert classify_smtp_error(smtplib.SMTPServerDisconnected("gone")).outcome is Outcome.RETRY
    assert classify_smtp_error(smtplib.SMTPSenderRefused(553, b"bad sender", SENDER)).outcome is Outcome.DEAD
    assert classify_smtp_error(smtplib.SMTPRecipientsRefused({})).outcome is Outcome.RETRY


def test_from_registry_takes_every_partner_with_addresses_and_the_sector_time_zones(inbox, plain_port):
    registry = load_registry(REPO / "config" / "registry.yaml")
    channel = EmailChannel.from_registry(registry, "127.0.0.1", plain_port, SENDER, security="none")
    expected = {p.id: p.contacts.email for p in registry.partners if p.contacts.email}
    assert channel.recipients == expected and "usbp" in expected
    sector = registry.sectors[0]
    assert channel.send(job(alert(sector_id=sector.id), partner="usbp"), NOW).outcome is Outcome.DELIVERED
    got = inbox.received[0]["message"]
    assert sector.name in got["Subject"] and got["To"] == ", ".join(expected["usbp"])

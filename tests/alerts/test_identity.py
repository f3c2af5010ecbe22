"""Contact API tokens on SQLite and PostgreSQL (only digests stored; every refusal distinct), signed action
links (expiry on a ManualClock, tampering, wrong action), and the ``tokens`` CLI on a real database."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from sqlalchemy import MetaData, select
from typer.testing import CliRunner
from wire_samples import T0

from alerts.cli_tokens import tokens_app
from alerts.identity import (
    LINK_ACTIONS,
    ActionLink,
    ContactTokens,
    InvalidToken,
    LinkExpired,
    LinkMalformed,
    LinkSigner,
    LinkTampered,
    LinkWrongAction,
    TokenNotFound,
    roster_level,
    token_sha256,
)
from alerts.rosters import load_rosters
from ibet.audit import Actor, audit_entries
from ibet.clock import ManualClock
from ibet.config import DatabaseSettings
from ibet.db import make_engine, migrate
from ibet.registry import load_registry

REPO = Path(__file__).resolve().parents[2]
NOW = T0
SECRET = b"0123456789abcdef0123456789abcdef"
ADMIN = Actor("user", "root", None, "admin", "10.0.0.1")


class Tokens(NamedTuple):
    tokens: ContactTokens
    clock: ManualClock


@pytest.fixture
def tokens(database_url: str) -> Iterator[Tokens]:
    engine = make_engine(DatabaseSettings(url=database_url))
    migrate(engine)
    clock = ManualClock(NOW)
    yield Tokens(ContactTokens(engine, clock), clock)
    engine.dispose()


def every_stored_text(engine) -> str:
    """Every value of every table of the database, as one text."""
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        return "\n".join(repr(tuple(row)) for table in meta.sorted_tables for row in conn.execute(select(table)))


# API tokens
def test_issue_returns_the_token_once_and_stores_only_its_digest(tokens: Tokens):
    issued = tokens.tokens.issue("usbp", "blaine-station-day-desk", note="desk phone", actor=ADMIN)
    assert issued.token.startswith(f"ibetc_{issued.info.token_id}_") and len(issued.token) == 6 + 12 + 1 + 43
    stored = every_stored_text(tokens.tokens.engine)
    assert token_sha256(issued.token) in stored and issued.info.token_id in stored
    assert issued.token not in stored and issued.token.rsplit("_", 1)[1] not in stored  # neither whole nor the secret
    assert tokens.tokens.verify(issued.token, "198.51.100.7") == Actor(
        "contact", "blaine-station-day-desk", "usbp", "duty", "198.51.100.7")
    [entry] = audit_entries(tokens.tokens.engine, "contact_token")
    assert (entry.action, entry.subject_id, entry.actor, entry.ts_ns) == ("token.issued", issued.info.token_id, ADMIN, NOW)
    assert entry.detail == {"partner_id": "usbp", "contact_id": "blaine-station-day-desk", "level": 0,
                            "expires_ns": None, "note": "desk phone"}


def test_a_contact_at_roster_level_one_is_a_supervisor(tokens: Tokens):
    issued = tokens.tokens.issue("usbp", "blaine-watch-commander", level=1)
    assert tokens.tokens.verify(issued.token).role == "supervisor"


def test_every_refusal_says_why(tokens: Tokens):
    t, clock = tokens.tokens, tokens.clock
    good = t.issue("usbp", "desk").token
    revoked = t.issue("usbp", "desk").token
    expiring = t.issue("usbp", "desk", ttl_s=60).token
    t.revoke(revoked.split("_")[1])
    forged_secret = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    cases = [
        (None, "no API token given"), ("", "no API token given"),
        ("Bearer x", "malformed API token"), (good + "x", "malformed API token"),
        ("ibetc_000000000000_" + "A" * 43, "unknown API token"),
        (forged_secret, "unknown API token"),  # a known id with the wrong secret
        (revoked, "was revoked"),
    ]
    for token, message in cases:
        with pytest.raises(InvalidToken, match=message):
            t.verify(token)
    assert t.verify(expiring).id == "desk"
    clock.advance(60)
    with pytest.raises(InvalidToken, match="has expired"):
        t.verify(expiring)
    assert t.verify(good).id == "desk"


def test_revoke_is_audited_once_and_unknown_ids_are_named(tokens: Tokens):
    t = tokens.tokens
    issued = t.issue("rcmp", "pacific-ibet-day-desk")
    tokens.clock.advance(5)
    info = t.revoke(issued.info.token_id, actor=ADMIN)
    assert info.revoked_ns == NOW + 5_000_000_000
    assert t.revoke(issued.info.token_id).revoked_ns == info.revoked_ns  # again: unchanged
    assert [e.action for e in audit_entries(t.engine, "contact_token")] == ["token.revoked", "token.issued"]
    with pytest.raises(TokenNotFound, match="no contact token with id 'nope'"):
        t.revoke("nope")


def test_list_filters_and_hides_revoked_unless_asked(tokens: Tokens):
    t = tokens.tokens
    a = t.issue("usbp", "desk-a").info
    tokens.clock.advance(1)
    b = t.issue("usbp", "desk-b", ttl_s=3600).info
    tokens.clock.advance(1)
    c = t.issue("rcmp", "desk-c").info
    t.revoke(a.token_id)
    assert [i.token_id for i in t.list()] == [b.token_id, c.token_id]
    assert [i.token_id for i in t.list(include_revoked=True)] == [a.token_id, b.token_id, c.token_id]
    assert t.list("usbp") == [b] and t.list(contact_id="desk-c") == [c]
    assert b.expires_ns == NOW + 1_000_000_000 + 3600 * 10**9


@pytest.mark.parametrize(("args", "message"), [
    (("", "desk"), "partner_id must be a non-empty string"),
    (("usbp", "d" * 129), "contact_id must be a non-empty string of at most 128"),
])
def test_issue_refuses_bad_input(tokens: Tokens, args, message):
    with pytest.raises(ValueError, match=message):
        tokens.tokens.issue(*args)
    with pytest.raises(ValueError, match="level must be an int >= 0"):
        tokens.tokens.issue("usbp", "desk", level=-1)
    with pytest.raises(ValueError, match="ttl_s must be > 0"):
        tokens.tokens.issue("usbp", "desk", ttl_s=0)
    assert tokens.tokens.list(include_revoked=True) == []


def test_roster_level_reads_the_shipped_rosters():
    roster = load_rosters(REPO / "config/rosters.yaml", load_registry(REPO / "config/registry.yaml"))
    assert roster_level(roster, "usbp", "blaine-watch-commander") == 1
    assert roster_level(roster, "usbp", "blaine-station-day-desk") == 0
    assert roster_level(roster, "rcmp", "blaine-watch-commander") is None  # another partner's contact
    assert roster_level(roster, "usbp", "nobody-of-that-name") is None


# Signed action links
def signer(clock: ManualClock | None = None) -> LinkSigner:
    return LinkSigner(SECRET, clock or ManualClock(NOW))


def test_a_link_carries_what_it_allows_and_is_url_safe():
    link = signer().sign("alr-0123456789abcdef", "acknowledge", "usbp", "blaine desk/é", ttl_s=3600)
    assert set(link) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    assert signer().verify(link, "acknowledge") == ActionLink("alr-0123456789abcdef", "acknowledge", "usbp",
                                                              "blaine desk/é", NOW + 3600 * 10**9)
    assert signer().verify(link).actor("127.0.0.1") == Actor("contact", "blaine desk/é", "usbp", "duty", "127.0.0.1")


def test_a_link_expires_at_its_expiry_on_the_clock():
    clock = ManualClock(NOW)
    link = signer(clock).sign("alr-1", "resolve", "usbp", "desk", ttl_s=60)
    clock.advance(59.999)
    assert signer(clock).verify(link, "resolve").alert_id == "alr-1"
    clock.advance(0.001)
    with pytest.raises(LinkExpired, match="this link to resolve alert alr-1 has expired"):
        signer(clock).verify(link, "resolve")


def test_tampered_links_are_told_apart_from_malformed_ones_and_checked_before_expiry():
    clock = ManualClock(NOW)
    link = signer(clock).sign("alr-1", "acknowledge", "usbp", "desk", ttl_s=60)
    payload, mac = link.split(".")
    content = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    content[1] = "alr-2"  # point the link at another alert
    other_alert = base64.urlsafe_b64encode(json.dumps(content, separators=(",", ":")).encode()).rstrip(b"=").decode()
    for tampered in (f"{other_alert}.{mac}", f"{payload}.{mac[:-2]}AA", LinkSigner(b"another-secret-of-32-bytes-....!")
                     .sign("alr-1", "acknowledge", "usbp", "desk", expires_ns=NOW + 10**9)):
        with pytest.raises(LinkTampered, match="signature does not match"):
            signer(clock).verify(tampered)
    for malformed in ("", "no-dot", f"{payload}.", f"{payload}.not*base64", "." + mac):
        with pytest.raises(LinkMalformed, match="not an action link"):
            signer(clock).verify(malformed)
    clock.advance(120)
    with pytest.raises(LinkTampered):  # an expired forgery is still a forgery
        signer(clock).verify(f"{other_alert}.{mac}")


def test_a_link_for_one_action_does_not_do_another():
    link = signer().sign("alr-1", "acknowledge", "usbp", "desk", ttl_s=60)
    with pytest.raises(LinkWrongAction, match="this link is for 'acknowledge', not 'resolve'"):
        signer().verify(link, "resolve")


def test_signing_refuses_what_links_cannot_do():
    with pytest.raises(ValueError, match="at least 32 bytes"):
        LinkSigner("short")
    with pytest.raises(ValueError, match="action must be one of acknowledge, resolve, escalate"):
        signer().sign("alr-1", "reopen", "usbp", "desk", ttl_s=60)
    with pytest.raises(ValueError, match="exactly one of ttl_s and expires_ns"):
        signer().sign("alr-1", "resolve", "usbp", "desk")
    assert LINK_ACTIONS == ("acknowledge", "resolve", "escalate")


# The tokens CLI
def test_tokens_cli_issues_lists_and_revokes(tmp_path: Path):
    db = tmp_path / "ibet.sqlite3"
    config = tmp_path / "ibet.yaml"
    config.write_text(f"registry_path: {REPO / 'config/registry.yaml'}\ndatabase:\n  url: sqlite:///{db}\n"
                      f"alerts:\n  rosters_path: {REPO / 'config/rosters.yaml'}\n")
    runner = CliRunner()

    issued = runner.invoke(tokens_app, ["issue", "usbp", "blaine-watch-commander", "--note", "cmdr", "-c", str(config)])
    assert issued.exit_code == 0, issued.output
    assert "(level 1)" in issued.output
    token = issued.output.strip().splitlines()[-1]
    engine = make_engine(DatabaseSettings(url=f"sqlite:///{db}"))
    assert ContactTokens(engine).verify(token).role == "supervisor"

    listed = runner.invoke(tokens_app, ["list", "-c", str(config)])
    token_id = token.split("_")[1]
    assert listed.exit_code == 0 and token_id in listed.output and token not in listed.output

    typo = runner.invoke(tokens_app, ["issue", "usbp", "blaine-watch-comander", "-c", str(config)])
    assert typo.exit_code == 2 and "is in no entry of" in typo.output
    forced = runner.invoke(tokens_app, ["issue", "usbp", "new-desk", "--level", "0", "-c", str(config)])
    assert forced.exit_code == 0, forced.output
    unknown = runner.invoke(tokens_app, ["issue", "nope", "desk", "--level", "0", "-c", str(config)])
    assert unknown.exit_code == 2 and "unknown partner 'nope'" in unknown.output

    revoked = runner.invoke(tokens_app, ["revoke", token_id, "-c", str(config)])
    assert revoked.exit_code == 0 and f"revoked token {token_id} of usbp/blaine-watch-commander" in revoked.output
    with pytest.raises(InvalidToken, match="was revoked"):
        ContactTokens(engine).verify(token)
    assert token_id not in runner.invoke(tokens_app, ["list", "-c", str(config)]).output
    assert token_id in runner.invoke(tokens_app, ["list", "--all", "-c", str(config)]).output
    missing = runner.invoke(tokens_app, ["revoke", "000000000000", "-c", str(config)])
    assert missing.exit_code == 2 and "no contact token with id '000000000000'" in missing.output
    assert audit_entries(engine, "contact_token")[0].actor.id.startswith("cli:")
    engine.dispose()

"""The log-in throttle over real HTTP, behind a trusted proxy (the Ingress: X-Forwarded-For from
127.0.0.1) and without one: per client address and per account, never site-wide."""

from __future__ import annotations

import httpx
import pytest
from console_samples import PASSWORD, log_in

from ibet.audit import audit_entries
from ibet.clock import ManualClock, SystemClock

WRONG = "not the password at all"
ATTACKER, OPERATOR_DESK, ADMIN_DESK = "198.51.100.7", "203.0.113.9", "192.0.2.44"


def via_proxy(console, client_address: str, chain: str | None = None) -> httpx.Client:
    """A client whose requests reach the console through the Ingress, which names ``client_address``."""
    return httpx.Client(base_url=console.url, headers={"X-Forwarded-For": chain or client_address})


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start_ns=SystemClock().now_ns())


def actions(console, subject_id: str) -> list[str]:
    return [e.action for e in reversed(audit_entries(console.engine, "user", subject_id))]


def test_wrong_passwords_for_admin_lock_only_admin_and_only_for_a_while(start_console, clock):
    console = start_console(trusted_proxies=["127.0.0.1"], login_max_failures=5, login_lockout_s=60.0, clock=clock)
    attacker = via_proxy(console, ATTACKER)
    for _ in range(5):
        assert log_in(attacker, "admin1", WRONG).status_code == 401
    locked = log_in(attacker, "admin1", WRONG)
    assert locked.status_code == 429 and "for this account" in locked.text
    assert 0 < int(locked.headers["retry-after"]) <= 60

    # someone else, from elsewhere behind the same Ingress, logs in as if nothing happened
    assert log_in(via_proxy(console, OPERATOR_DESK), "oper1", PASSWORD).status_code == 303
    # admin's own correct password waits out the short lock, from any address ...
    admin = via_proxy(console, ADMIN_DESK)
    assert log_in(admin, "admin1", PASSWORD).status_code == 429
    clock.advance(61.0)
    # ... and then logs in
    assert log_in(admin, "admin1", PASSWORD).status_code == 303
    assert actions(console, "admin1") == ["login.failed"] * 5 + ["login.locked"]
    login, unlocked = audit_entries(console.engine, "user")[:2]
    assert (unlocked.action, login.action) == ("login.unlocked", "login")
    assert unlocked.detail == {"failures": 5, "username": "admin1"} and unlocked.actor.address == ADMIN_DESK


def test_each_further_failure_doubles_the_lock(start_console, clock):
    console = start_console(trusted_proxies=["127.0.0.1"], login_max_failures=3, login_lockout_s=60.0, clock=clock)
    attacker = via_proxy(console, ATTACKER)
    for _ in range(3):
        assert log_in(attacker, "oper1", WRONG).status_code == 401
    clock.advance(61.0)
    assert log_in(attacker, "oper1", WRONG).status_code == 401  # the 4th failure: locked for 120 s
    clock.advance(61.0)
    refused = log_in(via_proxy(console, OPERATOR_DESK), "oper1", PASSWORD)
    assert refused.status_code == 429 and 0 < int(refused.headers["retry-after"]) <= 60
    clock.advance(60.0)
    assert log_in(via_proxy(console, OPERATOR_DESK), "oper1", PASSWORD).status_code == 303
    locks = [e for e in audit_entries(console.engine, "user", "oper1") if e.action == "login.locked"]
    assert [e.detail["lockout_s"] for e in reversed(locks)] == [60.0, 120.0]


def test_an_address_with_too_many_failures_is_refused_for_every_account(start_console, clock):
    console = start_console(trusted_proxies=["127.0.0.1", "10.0.0.0/8"], login_address_max_failures=4, clock=clock)
    # one failure on each of four accounts: no account is locked, the address is; what the client
    # writes left of the proxies' part of X-Forwarded-For (a second proxy, 10.1.2.3) changes nothing
    for i, username in enumerate(["admin1", "analyst1", "usbp1", "rcmp1"]):
        spoofed = via_proxy(console, ATTACKER, chain=f"6.6.6.{i}, {ATTACKER}, 10.1.2.3")
        assert log_in(spoofed, username, WRONG).status_code == 401
    refused = log_in(via_proxy(console, ATTACKER), "oper1", PASSWORD)
    assert refused.status_code == 429 and "from this address" in refused.text
    assert 0 < int(refused.headers["retry-after"]) <= 900
    assert log_in(via_proxy(console, OPERATOR_DESK), "oper1", PASSWORD).status_code == 303
    assert {e.actor.address for e in audit_entries(console.engine, "user") if e.action == "login.failed"} == {ATTACKER}
    clock.advance(901.0)  # the failures age out of login_window_s
    assert log_in(via_proxy(console, ATTACKER), "analyst1", PASSWORD).status_code == 303


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(start_console, clock):
    console = start_console(trusted_proxies=["10.0.0.0/8"], login_address_max_failures=4, clock=clock)
    for i, username in enumerate(["admin1", "analyst1", "usbp1", "rcmp1"]):  # a new "address" each time
        assert log_in(via_proxy(console, f"203.0.113.{i}"), username, WRONG).status_code == 401
    refused = log_in(via_proxy(console, "203.0.113.99"), "oper1", PASSWORD)
    assert refused.status_code == 429 and "from this address" in refused.text
    assert {e.actor.address for e in audit_entries(console.engine, "user")} == {"127.0.0.1"}

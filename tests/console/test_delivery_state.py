"""The operator sees where an alert stands with each partner (from the alert service's outbox) and
that it is an exercise: in the API, and in Chromium on the list and the detail. A partner sees only
its own deliveries."""

from __future__ import annotations

from console_samples import PASSWORD, csrf_of, login, make_alert

from alerts.compose import deliveries_for
from alerts.outbox import Outbox
from ibet.clock import SystemClock
from ibet.registry import load_registry

REGISTRY = load_registry("config/registry.yaml")


def _recorded(console, alert, fail_partner: str | None = None):
    """``alert`` in the outbox with a delivery per partner and channel; all delivered but ``fail_partner``'s (dead)."""
    outbox = Outbox(console.engine, SystemClock())
    outbox.record(alert, deliveries_for(alert, REGISTRY))
    for job in outbox.due(SystemClock().now_ns(), limit=100):
        if job.partner_id == fail_partner:
            outbox.failed(job.key, "HTTP 401 from https://hooks.rcmp.example: bad signature", permanent=True)
        else:
            outbox.delivered(job.key)
    return outbox


def test_the_alert_detail_says_where_each_partner_stands_and_a_partner_sees_only_its_own(console):
    alert = console.lifecycle.open(make_alert(("usbp", "rcmp")))
    _recorded(console, alert, fail_partner="rcmp")
    operator = login(console.url, "oper1")
    rows = operator.get(f"/api/alerts/{alert.alert_id}").json()["deliveries"]
    assert {(r["partner_id"], r["status"]) for r in rows} == {("usbp", "delivered"), ("rcmp", "dead")}
    dead = [r for r in rows if r["status"] == "dead"]
    assert dead and all("HTTP 401" in r["last_error"] for r in dead)
    assert all(r["delivered"]["utc"].endswith("UTC") for r in rows if r["status"] == "delivered")
    usbp = login(console.url, "usbp1")
    assert {r["partner_id"] for r in usbp.get(f"/api/alerts/{alert.alert_id}").json()["deliveries"]} == {"usbp"}
    assert csrf_of(operator)  # still a session


def _log_in(page, username: str) -> None:
    page.goto("/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def test_an_exercise_is_marked_on_the_list_and_the_detail_with_each_partners_delivery(page, console):
    alert = console.lifecycle.open(make_alert(("usbp", "rcmp"), title="Drill crossing").model_copy(
        update={"exercise": True}))
    _recorded(console, alert, fail_partner="rcmp")
    _log_in(page, "oper1")
    item = page.locator(f"li[data-alert-id='{alert.alert_id}']")
    item.wait_for()
    assert item.locator(".badge.exercise").inner_text() == "EXERCISE"
    item.click()
    page.locator("#alert-detail ul.deliveries li").first.wait_for()
    assert page.locator("#alert-detail h2 .badge.exercise").inner_text() == "EXERCISE"
    texts = page.locator("#alert-detail ul.deliveries li").all_inner_texts()
    assert any("dead" in t and "HTTP 401" in t for t in texts) and any("delivered" in t for t in texts)

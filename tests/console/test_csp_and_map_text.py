"""In Chromium: every page works under the console's Content-Security-Policy with no violation (the map
included), and the map shows every dynamic string (alert titles, track ids, sector and port names) as
text, never as HTML."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from console_samples import PASSWORD, REPO, make_alert

from console.cases import create_case
from console.store import ConsoleStore
from ibet.audit import Actor
from ibet.clock import SystemClock
from ibet.messages import TrackClass, TrackStatus, TrackUpdate
from ibet.registry import load_registry

PAYLOAD = '<img src=x onerror="window.__pwned=1">'
# collects the page's CSP violations, and catches the map Leaflet makes (Leaflet sets window.L last)
WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));
let leaflet;
Object.defineProperty(window, "L", { configurable: true, get() { return leaflet; }, set(value) {
  leaflet = value;
  value.Map.addInitHook(function () { window.__map = this; });
} });
"""


def open_page(browser, console, username: str):
    """A logged-in page that records CSP violations, the console messages about them and the Leaflet map."""
    context = browser.new_context(viewport={"width": 1400, "height": 850}, base_url=console.url)
    context.add_init_script(WATCH)
    page = context.new_page()
    page.csp_messages = []
    page.on("console", lambda m: page.csp_messages.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto("/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)
    return page


def test_every_page_runs_under_the_policy_without_a_violation(browser, console):
    alert = console.lifecycle.open(make_alert(("usbp",), title="Crossing at the vista"))
    case_id = create_case(console.engine, console.lifecycle, "Vista", [alert.alert_id], Actor("user", "a"),
                          SystemClock().now_ns())
    page = open_page(browser, console, "admin1")
    for path in ("/operator", "/review", "/review?kind=tracks", "/cases", f"/cases/{case_id}",
                 f"/cases/{case_id}/export.html", "/reports", "/admin/users", "/login"):
        response = page.goto(path)
        assert "script-src 'self'" in response.headers["content-security-policy"], path
        if path == "/operator":  # the map renders: Leaflet's own styles and canvas, the layers, the alert
            page.wait_for_selector("#live-status.live")
            page.locator(f"li[data-alert-id='{alert.alert_id}']").wait_for()
            assert page.locator(".leaflet-overlay-pane canvas").count() == 1
            assert page.locator(".leaflet-control-layers input[type=checkbox]").count() == 7  # sectors, border, ports, lanes, cameras, tracks, alerts
            assert page.evaluate("getComputedStyle(document.querySelector('.leaflet-container')).overflow") == "hidden"
            assert "translate3d" in page.evaluate("document.querySelector('.leaflet-map-pane').style.transform")
            assert page.evaluate("Object.keys(window.__map._layers).length") > 10
        if path.endswith("export.html"):  # the report's inline stylesheet is allowed by its hash
            assert page.evaluate("getComputedStyle(document.body).marginTop") == "28px"
        assert page.evaluate("window.__csp") == [], path
    assert page.csp_messages == []  # nothing in the browser's console log either
    # the policy is enforced: an injected inline script does not run, and is reported
    page.goto("/operator")
    page.evaluate("document.body.appendChild(Object.assign(document.createElement('script'), "
                  "{textContent: 'window.__inline = 1'}))")
    assert page.evaluate("window.__inline") is None
    assert page.evaluate("window.__csp") == ["script-src-elem inline"]
    assert len(page.csp_messages) == 1 and "inline script" in page.csp_messages[0]
    page.context.close()


@pytest.fixture
def hostile_registry(tmp_path: Path):
    """The shipped registry with the Blaine sector's name replaced by an HTML payload."""
    data = yaml.safe_load((REPO / "config/registry.yaml").read_text())
    for sector in data["sectors"]:
        if sector["id"] == "pac-blaine":
            sector["name"] = PAYLOAD
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_registry(path)


def test_the_map_shows_names_titles_and_ids_as_text(browser, start_console, hostile_registry, border_and_ports):
    _border, ports = border_and_ports
    ports = tuple(p.model_copy(update={"name": PAYLOAD}) if p.sector_id == "pac-blaine" else p for p in ports)
    console = start_console(registry=hostile_registry, ports=ports)
    now = SystemClock().now_ns()
    ConsoleStore(console.engine).write([TrackUpdate(
        track_id=PAYLOAD, sector_id="pac-blaine", time_ts_ns=now, lat_deg=49.0021, lon_deg=-122.7500,
        position_cov_m2=((4.0, 0.0), (0.0, 4.0)), velocity_east_mps=0.0, velocity_north_mps=-1.2,
        class_name=TrackClass.PERSON, sensor_ids=("drone-vista-1",), status=TrackStatus.CONFIRMED, version=1)])
    alert = console.lifecycle.open(make_alert(("usbp",), title=PAYLOAD, lat=49.0021, lon=-122.7540))

    page = open_page(browser, console, "oper1")
    page.locator(f"li[data-alert-id='{alert.alert_id}']").wait_for()
    page.wait_for_selector("#live-status.live")  # the layers, alerts and tracks are loaded, then the stream opens
    opened = page.evaluate("""() => {
        const texts = [];
        for (const layer of Object.values(window.__map._layers)) {
          if (!(layer.getTooltip && layer.getTooltip())) continue;
          layer.openTooltip();
          texts.push(layer.getTooltip().getElement().textContent);
        }
        return texts;
    }""")
    page.wait_for_timeout(300)  # an image's onerror would have fired by now
    assert page.evaluate("window.__pwned") is None
    assert page.locator(".leaflet-tooltip img").count() == 0
    assert f"{PAYLOAD} (open)" in opened  # the alert
    assert f"{PAYLOAD} · person · confirmed" in opened  # the track
    blaine_ports = sum(p.sector_id == "pac-blaine" for p in ports)
    assert blaine_ports > 0 and opened.count(PAYLOAD) == 1 + blaine_ports  # the sector's and its ports' names
    visible = page.locator(".leaflet-tooltip", has_text=f"{PAYLOAD} (open)")
    assert visible.count() == 1 and visible.is_visible()
    assert page.evaluate("window.__csp") == []
    page.context.close()

"""The console serves everything itself (no CDN) and draws the project's own map data."""

from __future__ import annotations

import json
import re

from console_samples import REPO, login

CONSOLE = REPO / "console"


def test_vendored_leaflet_is_the_version_locked_by_npm():
    lock = json.loads((CONSOLE / "frontend/package-lock.json").read_text())
    locked = lock["packages"]["node_modules/leaflet"]["version"]
    assert (CONSOLE / "static/vendor/leaflet/VERSION").read_text().strip() == locked
    assert f"Leaflet {locked}" in (CONSOLE / "static/vendor/leaflet/leaflet.js").read_text()[:400]


def test_pages_and_scripts_load_nothing_from_other_hosts():
    for path in [*CONSOLE.glob("templates/*.html"), *CONSOLE.glob("static/*.js"), *CONSOLE.glob("static/*.css")]:
        for url in re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", path.read_text()) + \
                re.findall(r"""fetch\(\s*["']([^"']+)""", path.read_text()):
            assert url.startswith(("/", "#", "{{")), f"{path.name} loads {url}"


def test_the_map_layers_are_the_projects_border_ports_and_sectors(console):
    client = login(console.url, "oper1")
    layers = client.get("/api/map/layers").json()
    assert len(layers["border"]["features"]) >= 1
    assert layers["border"]["features"][0]["geometry"]["type"] == "LineString"
    assert "poe-peace-arch" in {f["properties"]["id"] for f in layers["ports"]["features"]}
    lanes = {(f["properties"]["port_id"], f["properties"]["mode"]) for f in layers["lanes"]["features"]}
    assert ("poe-peace-arch", "road") in lanes and ("poe-peace-bridge", "pedestrian") in lanes
    sectors = {f["properties"]["id"] for f in layers["sectors"]["features"]}
    assert {"pac-blaine", "gl-detroit", "prairie-emerson"} <= sectors
    assert client.get("/static/vendor/leaflet/leaflet.js").status_code == 200

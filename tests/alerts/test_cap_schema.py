"""Every CAP document the shipped CAP channel composes validates against the official OASIS CAP 1.2
schema (tests/data/cap/CAP-v1.2.xsd, see its NOTE.md), checked by lxml (libxml2), not by ibet's own
parser: the first Alert, an Update, a Cancel with its outcome, an exercise, with the partner's signed
links (web, resources), both language blocks, and hostile text in the title and summary."""

from __future__ import annotations

from pathlib import Path

import pytest
from fuse_samples import crossing_event
from lxml import etree

from alerts.compose import new_alert
from alerts.formats.cap import parse_cap
from alerts.routing import Routing
from alerts.service import make_channels
from ibet.config import AlertSettings
from ibet.messages import AlertOutcome, AlertState
from ibet.registry import load_registry

SCHEMA = etree.XMLSchema(etree.parse(str(Path(__file__).parents[1] / "data" / "cap" / "CAP-v1.2.xsd")))
REGISTRY = load_registry("config/registry.yaml")
LINKS = {"alert": "https://ibet.example/a/eyJ4Ijox.sig", "crop": "https://ibet.example/e/eyJ4Ijoy.sig",
         "frame": "https://ibet.example/e/eyJ4Ijoz.sig"}


def _channel(**settings):
    base = AlertSettings(channels=["cap"], webhook_secrets={p.id: "s" * 16 for p in REGISTRY.partners},
                         cap_sender="ibet@prairie.ibet.example", **settings)
    return make_channels(base, REGISTRY, read_links_for=lambda alert, partner: LINKS)["cap"]


def _valid(body: bytes) -> bytes:
    document = etree.fromstring(body)
    if not SCHEMA.validate(document):
        pytest.fail("not valid CAP 1.2:\n" + "\n".join(str(e) for e in SCHEMA.error_log))
    return body


@pytest.fixture(scope="module")
def versions():
    event = crossing_event("vehicle-rural-road-tower")
    partners = tuple(p.id for p in REGISTRY.partners if event.sector_id in p.sectors)
    alert = new_alert(event, Routing(event.sector_id, 0, partners[0], partners, {}), REGISTRY)
    later = alert.updated_ts_ns + 60 * 10**9
    acknowledged = alert.model_copy(update={"state": AlertState.ACKNOWLEDGED, "updated_ts_ns": later})
    resolved = alert.model_copy(update={"state": AlertState.RESOLVED, "outcome": AlertOutcome.CONFIRMED_CROSSING,
                                        "updated_ts_ns": later + 10**9})
    return {"alert": alert, "update": acknowledged, "cancel": resolved}


@pytest.mark.parametrize("version", ["alert", "update", "cancel"])
@pytest.mark.parametrize("exercise", [False, True])
def test_every_version_is_valid_cap_1_2(versions, version, exercise):
    channel = _channel(exercise=exercise)
    partner = next(iter(channel.endpoints))
    body = _valid(channel.request(versions[version], partner, b"secret", 1_800_000_000)[1])
    cap = parse_cap(body)
    assert cap["msg_type"] == {"alert": "Alert", "update": "Update", "cancel": "Cancel"}[version]
    assert cap["status"] == ("Exercise" if exercise else "Actual")
    english, french = cap["info"]
    for info in (english, french):
        assert info["web"] == LINKS["alert"]
        assert [(r["mime_type"], r["uri"]) for r in info["resources"]] == [("image/jpeg", LINKS["crop"]),
                                                                           ("image/jpeg", LINKS["frame"])]
    if version == "cancel":
        assert english["parameters"]["ibetOutcome"] == french["parameters"]["ibetOutcome"] == "confirmed_crossing"


def test_hostile_text_still_gives_valid_cap(versions):
    hostile = versions["alert"].model_copy(update={
        "title": "Crossing <script>alert(1)</script> & \x00\x1b[31m" + "x" * 300,
        "summary": "]]><!-- ' \" \ud800 \U0001F6A8"})
    body = _valid(_channel().request(hostile, next(iter(_channel().endpoints)), b"secret", 1_800_000_000)[1])
    assert b"<script>" not in body and len(parse_cap(body)["info"][0]["headline"]) <= 160


def test_the_schema_check_can_fail(versions):
    """A document with its elements out of the schema's order is refused: the check is real."""
    body = _channel().request(versions["alert"], next(iter(_channel().endpoints)), b"secret", 1_800_000_000)[1]
    document = etree.fromstring(body)
    info = document.find("{urn:oasis:names:tc:emergency:cap:1.2}info")
    info.insert(0, info[-1])  # the area first
    assert not SCHEMA.validate(document)

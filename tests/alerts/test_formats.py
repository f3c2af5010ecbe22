"""Partner formats: CoT, CAP 1.2, signed webhooks and e-mails built from sample alerts."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email import policy as email_policy

import pytest
from wire_samples import T0, alert, event, track

from alerts.formats import FormatError, alert_version, first_version
from alerts.formats.cap import CAP_NS, cap_alert, cap_identifier, first_reference, parse_cap
from alerts.formats.cot import UNKNOWN, circular_error_m, cot_event, parse_cot
from alerts.formats.email import alert_email, message_id
from alerts.formats.webhook import idempotency_key, idempotency_key_of, verify_webhook, webhook_request
from ibet.ids import delivery_key
from ibet.messages import Alert, AlertState, BorderEventType, Severity, TrackClass, TrackStatus

NOW = datetime(2024, 6, 10, 6, 13, 20, 123456, tzinfo=UTC)
HOSTILE = "<script>alert(1)</script> & \"quoted\" 'single' \x00\x1b end"
SECRET = b"partner-shared-secret"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(64)) + b"\xff\xd9"


def acknowledged(**changes) -> Alert:
    """The sample alert one second later, acknowledged."""
    return alert(**({"state": AlertState.ACKNOWLEDGED, "updated_ts_ns": T0 + 1_000_000_000} | changes))


# CoT
def test_cot_round_trip_of_a_track_with_its_alert():
    data = cot_event(NOW, 90.0, track=track(), alert=alert(), ground_hae_m=18.5)
    cot = parse_cot(data)

    assert data.startswith(b"<?xml") and cot["version"] == 2.0
    assert (cot["uid"], cot["type"], cot["how"], cot["opex"]) == ("ibet-trk-pacific-blaine-17", "a-s-G", "m-f", "o")
    assert cot["time"] == cot["start"] == NOW.replace(microsecond=123000)
    assert cot["stale"] - cot["time"] == timedelta(seconds=90)
    assert (cot["lat"], cot["lon"], cot["hae"], cot["le"]) == (49.0001, -122.756, 18.5, UNKNOWN)
    assert cot["remarks"] == "HIGH (open) Possible crossing CA to US: 1 person crossed near Peace Arch, heading south."
    assert cot["course_deg"] == pytest.approx(170.5, abs=0.05)  # east 0.25, north -1.5 m/s
    assert cot["speed_mps"] == pytest.approx(math.hypot(0.25, 1.5), abs=0.005)


@pytest.mark.parametrize(
    ("cov_m2", "ce_m"),
    [
        (((0.0, 0.0), (0.0, 0.0)), 0.0),
        (((4.0, 0.0), (0.0, 9.0)), 3.0),  # major axis north, sigma 3 m
        (((5.0, 2.0), (2.0, 8.0)), 3.0),  # eigenvalues 9 and 4: the same ellipse, rotated
        (((100.0, 0.0), (0.0, 1.0)), 10.0),
    ],
)
def test_cot_ce_is_one_sigma_of_the_major_axis(cov_m2, ce_m):
    cot = parse_cot(cot_event(NOW, track=track(position_cov_m2=cov_m2)))
    assert cot["ce"] == pytest.approx(ce_m, abs=0.05)
    assert circular_error_m(cov_m2) == pytest.approx(ce_m)


def test_circular_error_with_a_probability_holds_that_much_of_an_isotropic_error():
    sigma_m = 4.0
    radius_m = circular_error_m(((sigma_m**2, 0.0), (0.0, sigma_m**2)), probability=0.95)
    assert 1 - math.exp(-(radius_m**2) / (2 * sigma_m**2)) == pytest.approx(0.95)  # Rayleigh CDF
    assert circular_error_m(((4.0, 0.0), (0.0, 9.0)), 0.95) == pytest.approx(2.4477 * 3.0, rel=1e-4)
    with pytest.raises(ValueError):
        circular_error_m(((1.0, 0.0), (0.0, 1.0)), probability=1.0)


def test_cot_uid_is_stable_per_track_so_a_repeat_replaces_the_marker():
    first = parse_cot(cot_event(NOW, track=track(version=5)))
    moved = parse_cot(cot_event(NOW + timedelta(seconds=2), track=track(version=6, lat_deg=48.9999)))
    from_event = parse_cot(cot_event(NOW, event=event(), alert=alert()))
    other = parse_cot(cot_event(NOW, track=track(track_id="trk-pacific-blaine-18")))
    assert first["uid"] == moved["uid"] == from_event["uid"] == "ibet-trk-pacific-blaine-17"
    assert other["uid"] != first["uid"]
    assert parse_cot(cot_event(NOW, alert=alert()))["uid"] == "ibet-alr-0123456789abcdef"


@pytest.mark.parametrize(
    ("track_changes", "the_alert", "cot_type", "how"),
    [
        ({}, None, "a-u-G", "m-f"),
        ({}, alert(), "a-s-G", "m-f"),
        ({}, alert(state=AlertState.RESOLVED), "a-u-G", "m-f"),
        ({"class_name": TrackClass.VEHICLE, "class_probabilities": {}}, alert(), "a-s-G-E-V", "m-f"),
        ({"class_name": TrackClass.BOAT, "class_probabilities": {}}, None, "a-u-S", "m-f"),
        ({"sensor_ids": ("drone-07",)}, None, "a-u-G", "m-i"),
        ({"status": TrackStatus.COASTING}, None, "a-u-G", "m-p"),
    ],
)
def test_cot_type_and_how(track_changes, the_alert, cot_type, how):
    cot = parse_cot(cot_event(NOW, track=track(**track_changes), alert=the_alert))
    assert (cot["type"], cot["how"]) == (cot_type, how)


def test_cot_without_a_track_has_unknown_ce_and_the_alert_position():
    cot = parse_cot(cot_event(NOW, alert=alert()))
    assert (cot["lat"], cot["lon"], cot["ce"], cot["hae"]) == (49.0002, -122.7561, UNKNOWN, UNKNOWN)
    assert cot["course_deg"] is None


def test_cot_marks_exercise():
    cot = parse_cot(cot_event(NOW, track=track(), alert=alert(), exercise=True))
    assert cot["opex"] == "e" and cot["remarks"].startswith("[EXERCISE] ")


def test_cot_escapes_hostile_summary():
    data = cot_event(NOW, track=track(), alert=alert(summary=HOSTILE, title="<b>&"))
    assert b"<script>" not in data and b"<b>" not in data
    assert parse_cot(data)["remarks"].endswith(HOSTILE.replace("\x00", "\ufffd").replace("\x1b", "\ufffd"))


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"track": track(), "stale_s": 0.0},
        {"track": track(), "stale_s": math.nan},
        {"track": track(), "event": event(track_id="x")},
    ],
)
def test_cot_event_refuses_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        cot_event(kwargs.pop("now", NOW), **kwargs)
    with pytest.raises(ValueError, match="timezone-aware"):
        cot_event(NOW.replace(tzinfo=None), track=track())


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("<event ", "<evnt ", "not well-formed"),
        ('version="2.0"', 'version="1.1"', "before 2.0"),
        ('how="m-f"', 'how=""', "how"),
        ('type="a-s-G"', 'type="a s G"', "type"),
        ('stale="2024-06-10T06:15:20.123Z"', 'stale="2024-06-10T06:10:00Z"', "stale is before start"),
        ('time="2024-06-10T06:13:20.123Z"', 'time="2024-06-10T06:13:20+00:00"', "time"),
        ('lat="49.0001000"', 'lat="91"', "out of range"),
        ('ce="3.0"', 'ce="-1"', "ce and le"),
        ('le="9999999.0"', 'le="nan"', "le"),
        ("<?xml version='1.0' encoding='UTF-8'?>", "<?xml version='1.0'?><!DOCTYPE event [<!ENTITY x 'y'>]>", "DOCTYPE"),
    ],
)
def test_parse_cot_rejects_invalid_events(old, new, problem):
    good = cot_event(NOW, 120.0, track=track(), alert=alert()).decode()
    assert old in good
    with pytest.raises(FormatError, match=problem):
        parse_cot(good.replace(old, new, 1).encode())
    no_point = good.split("<point")[0] + "<detail /></event>"
    with pytest.raises(FormatError, match="point"):
        parse_cot(no_point.encode())


# CAP
ALERT_ORDER = [
    "identifier",
    "sender",
    "sent",
    "status",
    "msgType",
    "source",
    "scope",
    "restriction",
    "addresses",
    "code",
    "note",
    "references",
    "incidents",
    "info",
]
INFO_ORDER = [
    "language",
    "category",
    "event",
    "responseType",
    "urgency",
    "severity",
    "certainty",
    "audience",
    "eventCode",
    "effective",
    "onset",
    "expires",
    "senderName",
    "headline",
    "description",
    "instruction",
    "web",
    "contact",
    "parameter",
    "resource",
    "area",
]


def _children(data: bytes, path: str = "") -> list[str]:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(data)
    parent = root.find(path, {"cap": CAP_NS}) if path else root
    return [child.tag.split("}")[1] for child in parent]


def test_cap_alert_has_the_required_elements_in_schema_order_and_namespace():
    data = cap_alert(alert(), "ibet.pacific", event=event())
    cap = parse_cap(data)
    assert b'xmlns="urn:oasis:names:tc:emergency:cap:1.2"' in data
    assert (cap["status"], cap["msg_type"], cap["scope"]) == ("Actual", "Alert", "Restricted")
    assert cap["identifier"] == f"alr-0123456789abcdef.alert.{alert_version(alert())}"
    assert cap["sent"] == "2024-06-10T06:13:20-00:00" and cap["references"] == []
    info = cap["info"][0]
    assert (info["category"], info["event"], info["urgency"], info["severity"], info["certainty"]) == (
        ["Security"],
        "Possible border crossing",
        "Immediate",
        "Moderate",
        "Likely",
    )
    assert info["areas"][0]["circles"] == [(49.0002, -122.7561, 0.25)]
    assert info["parameters"]["ibetAlertId"] == "alr-0123456789abcdef"
    for tags, order in ((_children(data), ALERT_ORDER), (_children(data, "cap:info"), INFO_ORDER)):
        positions = [order.index(tag) for tag in tags]
        assert positions == sorted(positions), tags


def test_cap_is_byte_identical_when_retried_and_new_per_state_and_msg_type():
    assert cap_alert(alert(), "ibet.pacific") == cap_alert(alert(), "ibet.pacific")
    ids = {cap_identifier(alert(), "Alert"), cap_identifier(alert(), "Update"), cap_identifier(acknowledged(), "Update")}
    assert len(ids) == 3


def test_cap_update_and_cancel_reference_the_first_alert():
    original = parse_cap(cap_alert(alert(), "ibet.pacific"))
    update = parse_cap(cap_alert(acknowledged(), "ibet.pacific", msg_type="Update"))
    cancel = parse_cap(cap_alert(acknowledged(state=AlertState.RESOLVED), "ibet.pacific", msg_type="Cancel"))
    assert update["references"] == cancel["references"] == [original["reference"]]
    assert first_reference(acknowledged(), "ibet.pacific") == original["reference"]
    assert update["sent"] == "2024-06-10T06:13:21-00:00" and update["incidents"] == original["incidents"]
    assert (cancel["info"][0]["urgency"], cancel["info"][0]["response_types"]) == ("Past", ["AllClear"])

    given = [("other.sender", "id-1", "2024-06-10T06:00:00-00:00"), original["reference"]]
    assert parse_cap(cap_alert(acknowledged(), "ibet.pacific", msg_type="Update", references=given))["references"] == given


def test_cap_exercise_status():
    cap = parse_cap(cap_alert(alert(), "ibet.pacific", exercise=True))
    assert cap["status"] == "Exercise" and "Exercise" in cap["note"]


@pytest.mark.parametrize(
    ("severity", "event_type", "confidence", "urgency", "cap_severity", "certainty"),
    [
        (Severity.CRITICAL, BorderEventType.CROSSING, 0.9, "Immediate", "Severe", "Likely"),
        (Severity.HIGH, BorderEventType.APPROACH, 0.5, "Immediate", "Moderate", "Likely"),
        (Severity.MEDIUM, BorderEventType.LOITERING, 0.3, "Expected", "Minor", "Possible"),
        (Severity.LOW, BorderEventType.CROSSING, 0.2, "Immediate", "Minor", "Possible"),
        (Severity.LOW, None, None, "Future", "Minor", "Unknown"),
    ],
)
def test_cap_mappings(severity, event_type, confidence, urgency, cap_severity, certainty):
    the_event = event(event_type=event_type, confidence=confidence) if event_type else None
    info = parse_cap(cap_alert(alert(severity=severity), "ibet.pacific", event=the_event))["info"][0]
    assert (info["urgency"], info["severity"], info["certainty"]) == (urgency, cap_severity, certainty)


def test_cap_area_radius_from_uncertainty():
    radius_m = circular_error_m(((400.0, 50.0), (50.0, 900.0)), 0.95)  # about 74 m
    circle = parse_cap(cap_alert(alert(), "s", radius_m=radius_m))["info"][0]["areas"][0]["circles"][0]
    assert circle[2] == pytest.approx(radius_m / 1000, abs=0.0005)
    assert parse_cap(cap_alert(alert(), "s", radius_m=0.0))["info"][0]["areas"][0]["circles"][0][2] == 0.01


def test_cap_escapes_hostile_text():
    data = cap_alert(alert(summary=HOSTILE, title="<b>&\"'"), "ibet.pacific")
    assert b"<script>" not in data and b"<b>" not in data
    info = parse_cap(data)["info"][0]
    assert (
        info["headline"] == "<b>&\"'"
        and "<script>alert(1)</script> & \"quoted\" 'single' \ufffd\ufffd end" in info["description"]
    )


@pytest.mark.parametrize("sender", ["", "ibet pacific", "ibet,pacific", "a<b", "a&b"])
def test_cap_refuses_a_sender_cap_forbids(sender):
    with pytest.raises(ValueError, match="sender"):
        cap_alert(alert(), sender)


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (f' xmlns="{CAP_NS}"', ' xmlns="urn:oasis:names:tc:emergency:cap:1.1"', "namespace"),
        ("<sender>ibet.pacific</sender>", "", "sender"),
        ("<sent>2024-06-10T06:13:20-00:00</sent>", "<sent>2024-06-10T06:13:20Z</sent>", "sent"),
        ("<status>Actual</status>", "<status>Real</status>", "status"),
        ("<restriction>IBET partner agencies only; law enforcement sensitive</restriction>", "", "restriction"),
        ("<category>Security</category>", "", "category"),
        ("<certainty>Unknown</certainty>", "<certainty>Sure</certainty>", "certainty"),
        ("<circle>49.000200,-122.756100 0.250</circle>", "<circle>49.0002 -122.7561 0.25</circle>", "circle"),
    ],
)
def test_parse_cap_rejects_invalid_messages(old, new, problem):
    good = cap_alert(alert(), "ibet.pacific").decode()
    assert old in good
    with pytest.raises(FormatError, match=problem):
        parse_cap(good.replace(old, new, 1).encode())


# Webhook
def test_webhook_signature_verifies_and_matches_hmac_sha256_over_timestamp_and_body():
    headers, body = webhook_request(alert(), "usbp-blaine", SECRET, 1_718_000_000)
    expected = hmac.new(SECRET, b"1718000000." + body, hashlib.sha256).hexdigest()
    assert headers["X-Ibet-Signature"] == f"v1={expected}" and headers["X-Ibet-Timestamp"] == "1718000000"
    assert verify_webhook(headers, body, SECRET, now_s=1_718_000_100)
    lowered = {name.lower(): value for name, value in headers.items()}  # as some servers hand them over
    assert verify_webhook(lowered, body, SECRET, now_s=1_718_000_000)
    rotated = dict(headers, **{"X-Ibet-Signature": "v1=" + "0" * 64 + ", " + headers["X-Ibet-Signature"]})
    assert verify_webhook(rotated, body, SECRET, now_s=1_718_000_000)


@pytest.mark.parametrize(
    ("change", "now_s"),
    [
        ({"body": b'{"alert":{}}'}, 1_718_000_000),
        ({"secret": b"another secret"}, 1_718_000_000),
        ({}, 1_718_000_301),  # captured and replayed five minutes later
        ({}, 1_717_999_699),  # timestamp too far in the future
        ({"drop": "X-Ibet-Signature"}, 1_718_000_000),
        ({"drop": "X-Ibet-Timestamp"}, 1_718_000_000),
        ({"header": ("X-Ibet-Timestamp", "1718000000.5")}, 1_718_000_000),
        ({"header": ("X-Ibet-Signature", "sha256=abc")}, 1_718_000_000),
    ],
)
def test_webhook_verification_fails(change, now_s):
    headers, body = webhook_request(alert(), "usbp-blaine", SECRET, 1_718_000_000)
    headers.pop(change.get("drop", ""), None)
    if "header" in change:
        headers[change["header"][0]] = change["header"][1]
    assert not verify_webhook(headers, change.get("body", body), change.get("secret", SECRET), now_s=now_s)


def test_webhook_idempotency_key_is_stable_and_distinct_per_partner_and_state():
    first, _ = webhook_request(alert(), "usbp-blaine", SECRET, 1_718_000_000)
    retry, _ = webhook_request(alert(), "usbp-blaine", SECRET, 1_718_000_060)
    key = idempotency_key_of(first)
    assert key == idempotency_key_of(retry) == idempotency_key(alert(), "usbp-blaine")
    assert first["Idempotency-Key"] == f'"{key}"'
    assert key == f"{delivery_key('alr-0123456789abcdef', 'usbp-blaine', 'webhook')}.open.0.{T0}"
    assert key != idempotency_key(alert(), "rcmp-e-div")
    assert key != idempotency_key(acknowledged(), "usbp-blaine")
    assert idempotency_key_of({"idempotency-key": key}) == key and idempotency_key_of({}) is None


def test_webhook_body_is_compact_json_of_the_alert_partner_and_exercise():
    _, body = webhook_request(alert(summary=HOSTILE), "usbp-blaine", SECRET, 1_718_000_000, exercise=True)
    document = json.loads(body)
    assert Alert.model_validate(document["alert"]) == alert(summary=HOSTILE)
    assert (document["partner_id"], document["exercise"], document["version"]) == ("usbp-blaine", True, first_version(alert()))
    assert body == json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    with pytest.raises(ValueError):
        webhook_request(alert(), "usbp-blaine", SECRET, 1.5)  # type: ignore[arg-type]


# E-mail
def _reparsed(msg):
    return message_from_bytes(msg.as_bytes(), policy=email_policy.default)


def test_email_message_id_is_deterministic_and_distinct_per_recipient_and_version():
    one = alert_email(alert(), ["duty@usbp.example"], "ibet@ibet.example")
    again = alert_email(alert(), ["Duty@USBP.example"], "ibet@ibet.example")
    other = alert_email(alert(), ["desk@rcmp.example"], "ibet@ibet.example")
    update = alert_email(acknowledged(), ["duty@usbp.example"], "ibet@ibet.example")
    assert one["Message-ID"] == again["Message-ID"] == message_id(alert(), ["duty@usbp.example"], domain="ibet.example")
    assert one["Message-ID"].startswith("<dlv-") and one["Message-ID"].endswith(f".open.0.{T0}@ibet.example>")
    assert len({one["Message-ID"], other["Message-ID"], update["Message-ID"]}) == 3
    assert one["In-Reply-To"] is None
    assert update["In-Reply-To"] == update["References"] == one["Message-ID"]
    assert one["Date"] == "Mon, 10 Jun 2024 06:13:20 +0000"


def test_email_subject_marks_exercise_severity_sector_and_direction():
    drill = alert_email(alert(), ["duty@usbp.example"], "ibet@ibet.example", exercise=True)
    real = alert_email(alert(), ["duty@usbp.example"], "ibet@ibet.example")
    assert drill["Subject"].startswith("[EXERCISE] [HIGH] ")
    assert "pacific-blaine" in drill["Subject"] and len(drill["Subject"]) < 120
    update = alert_email(alert(state=AlertState.ACKNOWLEDGED, updated_ts_ns=T0 + 1), ["duty@usbp.example"],
                         "ibet@ibet.example", exercise=True)
    assert update["Subject"].startswith("[EXERCISE] [HIGH] ACKNOWLEDGED: ")
    assert "EXERCISE" not in real["Subject"] and real["X-Ibet-Exercise"] == "no"
    assert "EXERCISE" in drill.get_body(("plain",)).get_content()


def test_email_subject_stays_under_120_characters_and_names_the_sector_once():
    long = alert(state=AlertState.ESCALATED, updated_ts_ns=T0 + 1,
                 title="Lost near border US→CA: person, Derby Line / Stanstead " + "x" * 200)
    subject = alert_email(long, ["duty@usbp.example"], "ibet@ibet.example", exercise=True,
                          sector_name="Derby Line / Stanstead")["Subject"]
    assert len(subject) <= 120 and subject.startswith("[EXERCISE] [HIGH] ESCALATED: Lost near border US→CA")
    assert subject.endswith("\u2026 (pacific-blaine)") and subject.count("Derby Line / Stanstead") == 1


def test_email_has_text_html_local_time_and_the_jpeg_attached():
    msg = _reparsed(
        alert_email(
            alert(),
            ["a@usbp.example", "b@usbp.example"],
            "ibet@ibet.example",
            attachment=JPEG,
            attachment_name="drone-07/42.jpg",
            timezone="America/Vancouver",
        )
    )
    text, page = msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content()
    assert "2024-06-10 06:13:20 UTC (2024-06-09 23:13:20 PDT)" in text and "23:13:20 PDT" in page
    (attached,) = list(msg.iter_attachments())
    assert attached.get_content_type() == "image/jpeg" and attached.get_filename() == "42.jpg"
    assert attached.get_content() == JPEG
    assert msg["To"] == "a@usbp.example, b@usbp.example" and msg["Auto-Submitted"] == "auto-generated"
    with pytest.raises(ValueError, match="JPEG"):
        alert_email(alert(), ["a@usbp.example"], "ibet@ibet.example", attachment=b"GIF89a")


def test_email_neutralises_hostile_title_and_summary():
    msg = _reparsed(
        alert_email(alert(title="Crossing\r\nBcc: all@example.com", summary=HOSTILE), ["a@usbp.example"], "ibet@ibet.example")
    )
    assert msg["Bcc"] is None and "Bcc: all@example.com" in msg["Subject"]
    page = msg.get_body(("html",)).get_content()
    assert "<script>" not in page and "&lt;script&gt;" in page

"""Drone push API: frames land once with the right metadata; every bad input gets its status, reason and
metric and leaves the bus empty; retries are accepted once; credentials keep the registry as it was."""

from __future__ import annotations

import json
import os
import shutil
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from argon2 import PasswordHasher
from prometheus_client import REGISTRY

from ibet import topics
from ibet.bus import MemoryBus
from ibet.bus.exceptions import DeliveryError
from ibet.clock import ManualClock
from ibet.config import DatabaseSettings, IngestSettings
from ibet.db import make_engine, migrate
from ibet.klv import decode_st0601, encode_st0601
from ibet.messages import FrameMeta, SensorHealthEvent, SensorHealthState, Telemetry
from ibet.registry import load_registry
from ibet_testing.http_server import serve_in_thread
from ingest import credentials
from ingest.exceptions import BadTelemetryError, CredentialError, FrameIdReusedError
from ingest.frame_checks import check_jpeg
from ingest.frame_store import FrameLedger, metadata
from ingest.health import FeedHealth
from ingest.push_api import create_push_app
from ingest.rate_limit import RateLimiter
from ingest.telemetry_input import parse_telemetry

with warnings.catch_warnings():  # starlette suggests httpx2 for its test client; httpx is what is installed
    warnings.filterwarnings("ignore", message=".*httpx2", category=UserWarning)
    from fastapi.testclient import TestClient

T0_NS = 1_784_149_200_000_000_000  # 2026-07-15T21:00Z
VISTA, DERBY = "drone-vista-1", "drone-derby-1"


def jpeg_bytes(width: int = 64, height: int = 48, seed: int = 0, ext: str = ".jpg") -> bytes:
    image = (np.random.default_rng(seed).random((height, width, 3)) * 255).astype(np.uint8)
    return cv2.imencode(ext, image)[1].tobytes()


def telemetry(**changes) -> Telemetry:
    fields = dict(precision_ts_us=T0_NS // 1000, platform_heading_deg=90.0, platform_pitch_deg=-2.0,
                  platform_roll_deg=1.0, sensor_lat_deg=48.9921, sensor_lon_deg=-122.4501, sensor_alt_m=90.0,
                  sensor_rel_azimuth_deg=0.0, sensor_rel_elevation_deg=-40.0, hfov_deg=25.0, vfov_deg=14.1)
    return Telemetry(**{**fields, **changes})


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A copy of the shipped registry with the two scenario drones enrolled, and their tokens."""
    path = tmp_path_factory.mktemp("registry") / "registry.yaml"
    shutil.copy("config/registry.yaml", path)
    return path, {VISTA: credentials.enroll(path, VISTA), DERBY: credentials.enroll(path, DERBY)}


@dataclass
class Api:
    client: TestClient
    bus: MemoryBus
    clock: ManualClock
    ledger: FrameLedger
    tokens: dict[str, str]
    registry_path: Path
    app: object

    def push(self, sensor: str = VISTA, token: str | None = "own", jpeg: bytes | None = None, *,
             telemetry_json: str | None = None, klv: bytes | None = None, **data: str):
        token = self.tokens.get(sensor, "") if token == "own" else token
        files = {"frame": ("frame.jpg", jpeg_bytes() if jpeg is None else jpeg, "image/jpeg")}
        if klv is not None:
            files["klv"] = ("t.klv", klv, "application/octet-stream")
        elif telemetry_json is None:
            telemetry_json = telemetry().model_dump_json(exclude_none=True)
        if telemetry_json is not None:
            data["telemetry"] = telemetry_json
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return self.client.post(f"/v1/sensors/{sensor}/frames", files=files, data=data, headers=headers)

    def frames(self):
        return self.bus.records(topics.FRAMES)


@pytest.fixture
def make_api(tmp_path: Path, enrolled) -> Iterator[Callable[..., Api]]:
    clients = []

    def _make(producer=None, **settings) -> Api:
        registry_path = tmp_path / "registry.yaml"
        shutil.copy(enrolled[0], registry_path)
        bus, clock = MemoryBus(), ManualClock(T0_NS + 5 * 10**9)
        engine = make_engine(DatabaseSettings(url=f"sqlite:///{tmp_path}/db/ibet.sqlite3"))
        migrate(engine)
        ledger = FrameLedger(engine, clock)
        health = FeedHealth({VISTA: ("pac-blaine", 0.5), DERBY: ("qc-derby", 0.5)}, 5.0, 10.0)
        app = create_push_app(IngestSettings(**settings), load_registry(registry_path), producer or bus.producer(),
                              ledger, clock, health, registry_path=registry_path)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return Api(client, bus, clock, ledger, dict(enrolled[1]), registry_path, app)

    yield _make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def api(make_api) -> Api:
    return make_api()


def rejected(sensor: str, reason: str) -> float:
    labels = {"sensor": sensor, "path": "push", "reason": reason}
    return REGISTRY.get_sample_value("ibet_ingest_frames_rejected_total", labels) or 0.0


# Happy paths
def test_json_telemetry_frame_lands_with_its_metadata(api: Api):
    jpeg = jpeg_bytes(80, 60)
    answer = api.push(VISTA, jpeg=jpeg, device_frame_id="vista-000001", capture_ts_ns=str(T0_NS + 7))
    assert answer.status_code == 202, answer.text
    [record] = api.frames()
    assert answer.json() == {"sensor_id": VISTA, "sequence": 0, "partition": record.partition,
                             "offset": record.offset, "duplicate": False}
    assert record.key == VISTA.encode() and record.value == jpeg
    assert FrameMeta.from_headers(record.headers) == FrameMeta(
        sensor_id=VISTA, sequence=0, capture_ts_ns=T0_NS + 7, ingest_ts_ns=api.clock.now_ns(), width_px=80,
        height_px=60, device_frame_id="vista-000001", telemetry=telemetry())


def test_klv_frame_takes_capture_time_from_the_precision_time_stamp(api: Api):
    klv = encode_st0601(telemetry(precision_ts_us=T0_NS // 1000 + 250))
    answer = api.push(DERBY, klv=klv)
    assert answer.status_code == 202, answer.text
    meta = FrameMeta.from_headers(api.frames()[0].headers)
    assert meta.sensor_id == DERBY and meta.device_frame_id is None
    assert meta.capture_ts_ns == (T0_NS // 1000 + 250) * 1000
    assert meta.telemetry == decode_st0601(klv)


def test_retried_upload_is_accepted_once(api: Api):
    before = REGISTRY.get_sample_value("ibet_ingest_frames_duplicate_total", {"sensor": VISTA}) or 0.0
    first = api.push(VISTA, device_frame_id="vista-000007")
    again = api.push(VISTA, device_frame_id="vista-000007")
    assert first.status_code == again.status_code == 202
    assert again.json() == {**first.json(), "duplicate": True}
    assert len(api.frames()) == 1
    assert REGISTRY.get_sample_value("ibet_ingest_frames_duplicate_total", {"sensor": VISTA}) == before + 1
    assert api.push(VISTA, device_frame_id="vista-000008").json()["sequence"] == 1


def test_retry_after_a_failed_produce_is_produced_with_the_reserved_sequence(make_api):
    class FailOnce:
        def __init__(self):
            self.inner, self.failed = None, False

        def send_and_wait(self, record, timeout_s):
            if not self.failed:
                self.failed = True
                raise DeliveryError("broker down")
            return self.inner.send_and_wait(record, timeout_s)

    producer = FailOnce()
    api = make_api(producer=producer)
    producer.inner = api.bus.producer()
    failed = api.push(VISTA, device_frame_id="vista-000001")
    assert (failed.status_code, failed.json()["error"]) == (503, "bus_unavailable") and api.frames() == []
    retried = api.push(VISTA, device_frame_id="vista-000001")
    assert retried.status_code == 202 and retried.json()["sequence"] == 0 and not retried.json()["duplicate"]
    assert [FrameMeta.from_headers(r.headers).sequence for r in api.frames()] == [0]


def test_a_reused_frame_id_with_other_bytes_is_refused_not_dropped(api: Api):
    assert api.push(VISTA, jpeg=jpeg_bytes(seed=1), device_frame_id="f-1").status_code == 202
    answer = api.push(VISTA, jpeg=jpeg_bytes(seed=2), device_frame_id="f-1")
    assert (answer.status_code, answer.json()["error"]) == (409, "frame_id_reused")
    assert len(api.frames()) == 1


def test_sequences_increase_per_sensor(api: Api):
    sequences = {VISTA: [], DERBY: []}
    for k in range(4):
        for sensor in (VISTA, DERBY) if k < 3 else (VISTA,):
            answer = api.push(sensor, device_frame_id=f"{sensor}-{k}" if k % 2 else "")
            sequences[sensor].append(answer.json()["sequence"])
    assert sequences == {VISTA: [0, 1, 2, 3], DERBY: [0, 1, 2]}
    by_sensor = {}
    for record in api.frames():
        by_sensor.setdefault(record.key.decode(), []).append(FrameMeta.from_headers(record.headers).sequence)
    assert by_sensor == {VISTA: [0, 1, 2, 3], DERBY: [0, 1, 2]}


def test_healthz_needs_no_token(api: Api):
    assert api.client.get("/healthz").json() == {"status": "ok"}


# Bad input: status, reason, a metric, and nothing on the bus
PNG = jpeg_bytes(ext=".png")
GOOD_KLV = encode_st0601(telemetry())
BAD_CHECKSUM_KLV = GOOD_KLV[:-1] + bytes([GOOD_KLV[-1] ^ 0xFF])
NAN_JSON = telemetry().model_dump_json(exclude_none=True).replace('"platform_heading_deg":90.0',
                                                                   '"platform_heading_deg":NaN')
def _scrambled(jpeg: bytes) -> bytes:
    """``jpeg`` with the bytes of its image data shuffled: libjpeg still decodes it (to garbage)."""
    data = bytearray(jpeg)
    start = data.find(b"\xff\xda") + 2 + int.from_bytes(data[data.find(b"\xff\xda") + 2:][:2], "big")
    body = np.frombuffer(bytes(data[start:-2]), np.uint8).copy()
    np.random.default_rng(1).shuffle(body)
    data[start:-2] = body.tobytes()
    return bytes(data)


def _restarts_swapped(jpeg: bytes) -> bytes:
    """``jpeg`` (with restart markers) with its RST1 and RST2 markers exchanged."""
    data = bytearray(jpeg)
    one, two = data.find(b"\xff\xd1"), data.find(b"\xff\xd2")
    data[one + 1], data[two + 1] = 0xD2, 0xD1
    return bytes(data)


SCRAMBLED = _scrambled(jpeg_bytes(320, 240))
RST_SWAPPED = _restarts_swapped(cv2.imencode(".jpg", (np.random.default_rng(2).random((240, 320, 3)) * 255)
                                             .astype(np.uint8), [cv2.IMWRITE_JPEG_RST_INTERVAL, 2])[1].tobytes())
assert cv2.imdecode(np.frombuffer(SCRAMBLED, np.uint8), cv2.IMREAD_GRAYSCALE) is not None  # OpenCV alone accepts it

BAD_INPUTS = {
    # name: (push arguments, status, reason, words of the detail)
    "corrupt jpeg": (dict(jpeg=b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4 + b"\xff\xd9"), 400, "corrupt_jpeg",
                     "the file is corrupt"),
    "truncated jpeg": (dict(jpeg=jpeg_bytes()[:900]), 400, "truncated_jpeg", "FF D9"),
    "png sent as jpeg": (dict(jpeg=PNG), 415, "not_jpeg", "PNG"),
    "empty frame": (dict(jpeg=b""), 400, "empty_body", "empty"),
    "unknown device": (dict(sensor="drone-nowhere-9", token="ibet_x"), 404, "unknown_device", "drone-nowhere-9"),
    "fixed camera pushing": (dict(sensor="blaine-cam-1", token="ibet_x"), 404, "unknown_device", "only drones"),
    "missing token": (dict(token=None), 401, "unauthorized", "Authorization: Bearer"),
    "wrong token": (dict(token=credentials.new_token()), 401, "unauthorized", "not drone-vista-1's"),
    "not enrolled": (dict(sensor="blaine-drone-1", token=credentials.new_token()), 401, "unauthorized",
                     "not enrolled"),
    "nan telemetry": (dict(telemetry_json=NAN_JSON), 422, "bad_telemetry", "platform_heading_deg"),
    "latitude out of range": (dict(telemetry_json='{"precision_ts_us": 1784149200000000, "sensor_lat_deg": 91.5}'),
                              422, "bad_telemetry", "sensor_lat_deg"),
    "angle out of range": (dict(telemetry_json='{"precision_ts_us": 1784149200000000, "platform_heading_deg": 400}'),
                           422, "bad_telemetry", "platform_heading_deg"),
    "altitude 1e308 m": (dict(telemetry_json='{"precision_ts_us": 1784149200000000, "sensor_alt_m": 1e308}'), 422,
                         "bad_telemetry", "sensor_alt_m"),
    "altitude -1e9 m": (dict(telemetry_json='{"precision_ts_us": 1784149200000000, "sensor_alt_m": -1e9}'), 422,
                        "bad_telemetry", "sensor_alt_m"),
    "slant range to the moon": (dict(telemetry_json='{"precision_ts_us": 1784149200000000, "slant_range_m": 3.8e8}'),
                                422, "bad_telemetry", "slant_range_m"),
    "scrambled image data": (dict(jpeg=SCRAMBLED), 400, "corrupt_jpeg", "image data is corrupt"),
    "restart markers out of order": (dict(jpeg=RST_SWAPPED), 400, "corrupt_jpeg", "restart marker"),
    "malformed telemetry json": (dict(telemetry_json='{"sensor_lat_deg": 49.0'), 422, "bad_telemetry", "JSON"),
    "unknown telemetry field": (dict(telemetry_json='{"precision_ts_us": 1784149200000000, "lat": 49.0}'), 422,
                                "bad_telemetry", "lat: unknown field"),
    "no capture time": (dict(telemetry_json='{"sensor_lat_deg": 49.0}'), 422, "bad_telemetry", "capture time missing"),
    "capture time in seconds": (dict(capture_ts_ns="1784149200"), 422, "bad_telemetry", "capture_ts_ns"),
    # the poisoning runs: each one frame, dated far from the ingest clock (T0 + 5 s)
    "dated 2001": (dict(capture_ts_ns=str(991_353_600 * 10**9)), 422, "capture_time_skew", "behind"),
    "dated 2099": (dict(capture_ts_ns=str(4_083_955_200 * 10**9)), 422, "capture_time_skew", "ahead"),
    "dated +3 years": (dict(capture_ts_ns=str(T0_NS + 3 * 365 * 86400 * 10**9)), 422, "capture_time_skew", "ahead"),
    "dated -5 years": (dict(capture_ts_ns=str(T0_NS - 5 * 365 * 86400 * 10**9)), 422, "capture_time_skew", "behind"),
    "klv dated +1 hour": (dict(klv=encode_st0601(telemetry(precision_ts_us=T0_NS // 1000 + 3600 * 10**6))), 422,
                          "capture_time_skew", "capture_ts_ns"),
    "truncated klv": (dict(klv=GOOD_KLV[:-7]), 422, "bad_klv", "truncated"),
    "klv bad checksum": (dict(klv=BAD_CHECKSUM_KLV), 422, "bad_klv", "checksum"),
    "empty klv": (dict(klv=b""), 422, "bad_klv", "empty"),
    "unknown form part": (dict(frame_no="1"), 400, "malformed_upload", "frame_no"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_refused_with_reason_metric_and_nothing_produced(api: Api, case: str):
    arguments, status, reason, words = BAD_INPUTS[case]
    sensor = arguments.get("sensor", VISTA)
    label = sensor if sensor in (VISTA, DERBY, "blaine-drone-1") else "unknown"
    before = rejected(label, reason)
    answer = api.push(**arguments)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == reason and words in answer.json()["detail"]
    assert rejected(label, reason) == before + 1
    assert api.frames() == []


def test_a_drone_pushing_as_another_is_forbidden(api: Api):
    before = rejected(VISTA, "wrong_device")
    answer = api.push(VISTA, token=api.tokens[DERBY])
    assert answer.status_code == 403
    assert answer.json() == {"error": "wrong_device", "detail": f"device {DERBY} may only push as itself, not as {VISTA}"}
    assert rejected(VISTA, "wrong_device") == before + 1 and api.frames() == []


@pytest.mark.parametrize("how", ["request body", "frame"])
def test_oversized_frame_is_refused_with_413_naming_the_limit(make_api, how: str):
    api = make_api(max_frame_bytes=16 * 1024)
    # A frame over the limit but within the form allowance is caught after reading; one far over it by
    # Content-Length, before the body is read.
    jpeg = jpeg_bytes(160, 120, ext=".jpg") if how == "frame" else jpeg_bytes(400, 300)
    assert (len(jpeg) > 16 * 1024) and ((len(jpeg) > 80 * 1024) == (how == "request body"))
    before = rejected(VISTA, "frame_too_large")
    answer = api.push(VISTA, jpeg=jpeg)
    assert (answer.status_code, answer.json()["error"]) == (413, "frame_too_large")
    assert "16384 bytes" in answer.json()["detail"] and "ingest.max_frame_bytes" in answer.json()["detail"]
    assert rejected(VISTA, "frame_too_large") == before + 1 and api.frames() == []


def test_a_device_over_its_rate_gets_429_with_retry_after(make_api):
    api = make_api(rate_limit_fps=2.0, rate_limit_burst=2)
    assert [api.push(VISTA).status_code for _ in range(2)] == [202, 202]
    before = rejected(VISTA, "rate_limited")
    answer = api.push(VISTA)
    assert (answer.status_code, answer.json()["error"]) == (429, "rate_limited")
    assert answer.headers["Retry-After"] == "1" and "2 frames/s" in answer.json()["detail"]
    assert rejected(VISTA, "rate_limited") == before + 1 and len(api.frames()) == 2
    assert api.push(DERBY).status_code == 202  # buckets are per device
    api.clock.advance(0.5)
    assert api.push(VISTA).status_code == 202


def test_empty_or_non_multipart_body_is_refused(api: Api):
    headers = {"Authorization": f"Bearer {api.tokens[VISTA]}"}
    empty = api.client.post(f"/v1/sensors/{VISTA}/frames", content=b"", headers=headers)
    assert (empty.status_code, empty.json()["error"]) == (400, "empty_body")
    raw = api.client.post(f"/v1/sensors/{VISTA}/frames", content=jpeg_bytes(),
                          headers={**headers, "Content-Type": "image/jpeg"})
    assert (raw.status_code, raw.json()["error"]) == (400, "malformed_upload")
    assert api.frames() == []


# Feed health
def test_a_silent_drone_raises_feed_lost_and_its_next_frame_feed_restored(api: Api):
    assert api.push(VISTA).status_code == 202
    publisher = api.app.state.publisher
    api.clock.advance(11.0)
    publisher.check()
    publisher.flush()
    assert api.push(VISTA).status_code == 202
    publisher.flush()
    events = [SensorHealthEvent.from_bytes(r.value) for r in api.bus.records(topics.SENSOR_HEALTH)]
    assert [(e.sensor_id, e.state) for e in events] == [(VISTA, SensorHealthState.FEED_LOST),
                                                        (VISTA, SensorHealthState.FEED_RESTORED)]
    assert api.bus.records(topics.SENSOR_HEALTH)[0].key == VISTA.encode()


def test_the_background_task_produces_feed_lost(make_api):
    api = make_api()
    assert api.push(DERBY).status_code == 202
    api.clock.advance(60.0)
    deadline = threading.Event()
    for _ in range(50):  # the task runs every second of real time; wait up to 5 s for it
        if api.bus.records(topics.SENSOR_HEALTH):
            break
        deadline.wait(0.1)
    [record] = api.bus.records(topics.SENSOR_HEALTH)
    assert SensorHealthEvent.from_bytes(record.value).state == SensorHealthState.FEED_LOST


# Credentials
def test_enroll_rotate_revoke_keep_the_registry_file_and_its_comments(tmp_path: Path):
    path = tmp_path / "registry.yaml"
    shutil.copy("config/registry.yaml", path)
    original = path.read_text()
    token = credentials.enroll(path, VISTA)
    assert token.startswith("ibet_") and len(token) >= 5 + 43
    changed = [(a, b) for a, b in zip(original.splitlines(), path.read_text().splitlines(), strict=True) if a != b]
    [(old_line, new_line)] = changed
    assert new_line.endswith("# set at enrolment") and "sha256$" in new_line and token not in path.read_text()
    stored = load_registry(path).sensor(VISTA).credential_hash
    assert credentials.verify_token(stored, token)

    new_token = credentials.rotate(path, VISTA)
    rotated = load_registry(path).sensor(VISTA).credential_hash
    assert credentials.verify_token(rotated, new_token) and not credentials.verify_token(rotated, token)
    credentials.revoke(path, VISTA)
    assert load_registry(path).sensor(VISTA).credential_hash is None
    assert path.read_text() == original  # comments, order, alignment: all as they were


@pytest.mark.parametrize("action, sensor, words", [
    ("enroll", "blaine-cam-1", "only drones can be enrolled"),
    ("enroll", "drone-nowhere-9", "unknown sensor 'drone-nowhere-9'"),
    ("rotate", VISTA, "not enrolled"),
    ("revoke", VISTA, "not enrolled"),
])
def test_credential_errors_leave_the_registry_alone(tmp_path: Path, action: str, sensor: str, words: str):
    path = tmp_path / "registry.yaml"
    shutil.copy("config/registry.yaml", path)
    with pytest.raises(CredentialError, match=words):
        getattr(credentials, action)(path, sensor)
    assert path.read_text() == Path("config/registry.yaml").read_text()


def test_enrolling_twice_is_refused(enrolled):
    with pytest.raises(CredentialError, match="already enrolled; rotate"):
        credentials.enroll(enrolled[0], VISTA)


def test_the_old_token_stops_working_after_rotate_and_revoke(api: Api):
    old = api.tokens[VISTA]
    assert api.push(VISTA).status_code == 202  # verified and cached
    new = credentials.rotate(api.registry_path, VISTA)
    assert api.push(VISTA, token=old).json()["error"] == "unauthorized"
    assert api.push(VISTA, token=new).status_code == 202
    credentials.revoke(api.registry_path, VISTA)
    answer = api.push(VISTA, token=new)
    assert (answer.status_code, answer.json()["error"]) == (401, "unauthorized") and "not enrolled" in answer.text


def test_token_verifier_caches_outcomes_of_legacy_hashes_for_its_ttl(monkeypatch):
    calls = []
    real = credentials.verify_token
    monkeypatch.setattr(credentials, "verify_token", lambda h, t: calls.append(t) or real(h, t))
    clock = ManualClock(T0_NS)
    verifier = credentials.TokenVerifier(ttl_s=60, clock=clock)
    token = credentials.new_token()
    legacy = PasswordHasher().hash(token)  # as enrolment stored them before sha256
    assert all(verifier.verify("d", legacy, token) for _ in range(5)) and len(calls) == 1
    assert not verifier.verify("d", legacy, token + "x") and len(calls) == 2
    clock.advance(61)
    assert verifier.verify("d", legacy, token) and len(calls) == 3
    assert not verifier.verify("d", PasswordHasher().hash("other"), token)  # a new stored hash: checked anew
    assert verifier.verify("d", credentials.hash_token(token), token) and len(calls) == 5  # sha256: no cache needed


def test_whose_token_it_is_is_a_digest_lookup_that_never_tries_a_slow_hash(monkeypatch):
    slow = []
    monkeypatch.setattr(credentials, "_LEGACY_HASHER", CountingHasher(slow, result=True))
    token = credentials.new_token()
    enrolled = [("a", PasswordHasher().hash(token)), ("b", credentials.hash_token("other")),
                ("c", credentials.hash_token(token))]
    assert credentials.TokenVerifier.owner(token, enrolled) == "c"
    assert credentials.TokenVerifier.owner(credentials.new_token(), enrolled) is None
    assert slow == []


# The pure parts and the ledger
def test_check_jpeg_gives_the_size_and_allows_zero_padding():
    assert check_jpeg(jpeg_bytes(64, 48), 10**6) == (64, 48)
    assert check_jpeg(jpeg_bytes(64, 48) + b"\x00" * 16, 10**6) == (64, 48)


def test_capture_time_prefers_the_explicit_one_and_refuses_conflicts():
    text = telemetry().model_dump_json()
    assert parse_telemetry(text, None, None).capture_ts_ns == T0_NS
    assert parse_telemetry(text, None, str(T0_NS + 1)).capture_ts_ns == T0_NS + 1
    with_key = json.dumps({**json.loads(text), "capture_ts_ns": T0_NS + 2})
    assert parse_telemetry(with_key, None, None).capture_ts_ns == T0_NS + 2
    with pytest.raises(BadTelemetryError, match="given twice"):
        parse_telemetry(with_key, None, str(T0_NS + 3))


def test_rate_limiter_refills_at_its_rate():
    clock = ManualClock(T0_NS)
    limiter = RateLimiter(rate_per_s=4.0, burst=2, clock=clock)
    assert [limiter.acquire("d") for _ in range(3)] == [0.0, 0.0, 0.25]
    clock.advance(0.25)
    assert limiter.acquire("d") == 0.0 and limiter.acquire("other") == 0.0


def test_migrations_create_exactly_the_tables_the_stores_define(tmp_path: Path):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import MetaData

    from alerts.identity import metadata as identity_metadata
    from alerts.lifecycle import metadata as lifecycle_metadata
    from alerts.outbox import metadata as outbox_metadata
    from console.tables import metadata as console_metadata
    from ibet.audit import metadata as audit_metadata

    every_store = MetaData()
    for store in (metadata, outbox_metadata, lifecycle_metadata, identity_metadata, audit_metadata, console_metadata):
        for table in store.tables.values():
            if table.name not in every_store.tables:
                table.to_metadata(every_store)
    engine = make_engine(DatabaseSettings(url=f"sqlite:///{tmp_path}/new/folder/ibet.sqlite3"))
    migrate(engine)
    migrate(engine)  # idempotent
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), every_store)
    assert [d for d in diff if not (d[0] == "remove_table" and d[1].name == "alembic_version")] == []


def test_ledger_hands_out_each_sequence_once_under_concurrency(tmp_path: Path):
    engine = make_engine(DatabaseSettings(url=f"sqlite:///{tmp_path}/ibet.sqlite3"))
    migrate(engine)
    ledger = FrameLedger(engine, ManualClock(T0_NS))
    results: list = []

    def worker(k: int) -> None:
        for i in range(10):
            results.append(("same", ledger.reserve("d", "shared-frame", "abc")))
            results.append(("own", ledger.reserve("d", f"w{k}-{i}", "abc")))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    shared = {r.sequence for kind, r in results if kind == "same"}
    own = sorted(r.sequence for kind, r in results if kind == "own")
    assert len(shared) == 1 and sorted(own + list(shared)) == list(range(61))
    with pytest.raises(FrameIdReusedError):
        ledger.reserve("d", "shared-frame", "other-digest")
    ledger.mark_produced("d", "shared-frame", 2, 40)
    assert ledger.reserve("d", "shared-frame", "abc") == (shared.pop(), True, 2, 40)
    assert ledger.reserve("d", None).sequence == 61 and ledger.reserve("e", None).sequence == 0


def test_a_sensor_whose_clock_leaps_is_refused_against_its_own_timeline(api: Api):
    assert api.push(VISTA, capture_ts_ns=str(T0_NS)).status_code == 202
    api.clock.advance(0.5)
    before = rejected(VISTA, "capture_time_jump")
    leap = api.push(VISTA, capture_ts_ns=str(T0_NS + 33 * 10**9))  # within the skew allowance, not the timeline's
    assert leap.status_code == 422 and leap.json()["error"] == "capture_time_jump", leap.text
    assert "capture_ts_ns" in leap.json()["detail"] and rejected(VISTA, "capture_time_jump") == before + 1
    assert api.push(VISTA, capture_ts_ns=str(T0_NS + 5 * 10**8)).status_code == 202  # its timeline goes on
    api.clock.advance(3600.0)  # an hour without frames: its timeline moved with the clock
    assert api.push(VISTA, capture_ts_ns=str(T0_NS + 3600 * 10**9)).status_code == 202
    assert len(api.frames()) == 3


def test_the_skew_allowance_is_configured(make_api):
    api = make_api(max_capture_age_s=10 * 365 * 86400.0)  # a site replaying a recorded day
    assert api.push(VISTA, capture_ts_ns=str(T0_NS - 5 * 365 * 86400 * 10**9)).status_code == 202


# Device tokens: cheap to check, legacy hashes upgraded, guessing clients throttled
class CountingHasher:
    """argon2's verify, noting each call; ``result`` fixes the answer (None: the real one)."""

    def __init__(self, calls: list, result: bool | None = None):
        self.calls, self.result, self.real = calls, result, PasswordHasher()

    def verify(self, stored: str, token: str) -> bool:
        self.calls.append(stored)
        return self.real.verify(stored, token) if self.result is None else self.result


def _with_legacy_hash(api: Api, sensor: str) -> None:
    """Store ``sensor``'s current token as an argon2 hash, as enrolment did before sha256."""
    credentials._set_credential(api.registry_path, sensor, PasswordHasher().hash(api.tokens[sensor]),
                                expect_enrolled=True)


def test_a_wrong_token_checks_only_the_claimed_drones_slow_hash(make_api, monkeypatch):
    api = make_api()
    for drone in (VISTA, DERBY):
        _with_legacy_hash(api, drone)
    slow = []
    monkeypatch.setattr(credentials, "_LEGACY_HASHER", CountingHasher(slow))
    answer = api.push(VISTA, token=credentials.new_token())
    assert answer.status_code == 401 and len(slow) == 1  # before: one argon2 per enrolled drone


def test_a_legacy_hash_is_upgraded_on_the_drones_next_good_push(make_api, monkeypatch):
    api = make_api()
    _with_legacy_hash(api, VISTA)
    assert api.push(VISTA).status_code == 202
    stored = load_registry(api.registry_path).sensor(VISTA).credential_hash
    assert stored == credentials.hash_token(api.tokens[VISTA])
    slow = []
    monkeypatch.setattr(credentials, "_LEGACY_HASHER", CountingHasher(slow, result=False))
    assert api.push(VISTA).status_code == 202 and slow == []
    assert api.push(DERBY, token=api.tokens[VISTA]).status_code == 403  # its token is known by digest now


def test_a_read_only_registry_keeps_the_legacy_hash_and_says_how_to_replace_it(make_api, caplog):
    api = make_api()
    _with_legacy_hash(api, VISTA)
    api.registry_path.parent.chmod(0o555)
    api.registry_path.chmod(0o444)
    try:
        with caplog.at_level("WARNING", logger="ingest.push_api"):
            assert api.push(VISTA).status_code == 202
            assert api.push(VISTA).status_code == 202
    finally:
        api.registry_path.parent.chmod(0o755)
        api.registry_path.chmod(0o644)
    warnings_ = [m for m in caplog.messages if "legacy" in m]
    if os.geteuid() != 0:  # root writes through read-only modes
        assert len(warnings_) == 1 and "ibet sensors rotate" in warnings_[0]


def test_a_client_guessing_tokens_is_throttled_and_others_behind_the_same_proxy_are_not(make_api):
    api = make_api(auth_max_failures=3, auth_failure_window_s=60.0, trusted_proxies=["127.0.0.1"])
    with serve_in_thread(api.app) as url, httpx.Client(base_url=url) as client:
        def push(token: str, forwarded_for: str | None = None, seq: int = 0):
            headers = {"Authorization": f"Bearer {token}"}
            if forwarded_for:
                headers["X-Forwarded-For"] = forwarded_for
            data = {"telemetry": telemetry().model_dump_json(exclude_none=True), "capture_ts_ns": str(T0_NS + seq)}
            return client.post(f"/v1/sensors/{VISTA}/frames", files={"frame": ("f.jpg", jpeg_bytes(), "image/jpeg")},
                               data=data, headers=headers)

        guesser, drone = "203.0.113.9", "198.51.100.7"
        assert [push(credentials.new_token(), guesser).status_code for _ in range(3)] == [401] * 3
        throttled = push(credentials.new_token(), guesser)
        assert throttled.status_code == 429 and throttled.json()["error"] == "auth_throttled"
        assert int(throttled.headers["Retry-After"]) >= 1
        assert push(api.tokens[VISTA], f"{guesser}, {drone}", seq=1).status_code == 202  # the right-most hop counts
        assert push(api.tokens[VISTA], drone, seq=2).status_code == 202
        api.clock.advance(61.0)
        assert push(api.tokens[VISTA], guesser, seq=61 * 10**9).status_code == 202  # the window passed


def test_a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(make_api):
    api = make_api(auth_max_failures=2)  # no trusted proxies: the peer is the client
    for i in range(2):
        api.client.post(f"/v1/sensors/{VISTA}/frames", headers={"Authorization": f"Bearer {credentials.new_token()}",
                                                               "X-Forwarded-For": f"192.0.2.{i}"},
                        files={"frame": ("f.jpg", jpeg_bytes(), "image/jpeg")})
    answer = api.push(VISTA, token=credentials.new_token())
    assert answer.status_code == 429 and answer.json()["error"] == "auth_throttled"

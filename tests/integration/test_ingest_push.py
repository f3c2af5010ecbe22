"""The push API over real HTTP into the real broker: two simulated drones pushing at the same time land
every frame once, in order per sensor, with correct headers; bad uploads never reach Kafka."""

from __future__ import annotations

import shutil
import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from ibet import topics
from ibet.clock import SystemClock
from ibet.config import DatabaseSettings, IngestSettings
from ibet.db import make_engine, migrate
from ibet.klv import decode_st0601, encode_st0601
from ibet.messages import FrameMeta, Telemetry
from ibet.registry import load_registry
from ibet_testing.http_server import serve_in_thread
from ingest import credentials
from ingest.frame_store import FrameLedger
from ingest.health import FeedHealth
from ingest.push_api import create_push_app
from sim.run import SimFrame, simulate
from sim.scenario import load_scenario, resolve_scenario

pytestmark = pytest.mark.kafka

VISTA, DERBY = "drone-vista-1", "drone-derby-1"
SECONDS = 4.0  # of each scenario: 8 frames per drone at 2 Hz (minus the simulated drops)


def drone_frames(scenario_name: str, drone: str) -> list[SimFrame]:
    """The first SECONDS of a shipped scenario, its drone only (no fixed camera rendered)."""
    scenario = load_scenario(resolve_scenario(scenario_name))
    scenario = scenario.model_copy(update={"duration_s": SECONDS, "sensors": [s for s in scenario.sensors if s.id == drone]})
    return list(simulate(scenario).frames())


@dataclass
class Server:
    url: str
    tokens: dict[str, str]


@pytest.fixture
def push_server(tmp_path: Path, kafka_bus, kafka_settings) -> Iterator[Server]:
    """The push API on 127.0.0.1 (a free port, in a thread), producing to the test broker."""
    registry_path = tmp_path / "registry.yaml"
    shutil.copy("config/registry.yaml", registry_path)
    tokens = {drone: credentials.enroll(registry_path, drone) for drone in (VISTA, DERBY)}
    registry = load_registry(registry_path)
    kafka_bus.create_topics([topics.FRAMES, topics.SENSOR_HEALTH], partitions=3)
    engine = make_engine(DatabaseSettings(url=f"sqlite:///{tmp_path}/ibet.sqlite3"))
    migrate(engine)
    clock = SystemClock()
    producer = kafka_bus.producer("ibet-ingest-push-test")
    health = FeedHealth({s.id: (s.sector_id, 1 / s.detection_rate_hz) for s in registry.sensors if s.kind == "drone"})
    # the simulator's frames are dated on the scenario's day: let the skew check accept a recorded day
    settings = IngestSettings(max_frame_bytes=1024 * 1024, rate_limit_fps=100.0, rate_limit_burst=100,
                              max_capture_age_s=10 * 365 * 86400.0)
    app = create_push_app(settings, registry, producer, FrameLedger(engine, clock), clock, health,
                          registry_path=registry_path)
    try:
        with serve_in_thread(app) as url:
            yield Server(url, tokens)
    finally:
        producer.close()
        engine.dispose()


def push(client: httpx.Client, sensor: str, token: str, jpeg: bytes, data: dict[str, str],
         klv: bytes | None = None) -> httpx.Response:
    files = {"frame": ("frame.jpg", jpeg, "image/jpeg")}
    if klv is not None:
        files["klv"] = ("frame.klv", klv, "application/octet-stream")
    return client.post(f"/v1/sensors/{sensor}/frames", files=files, data=data,
                       headers={"Authorization": f"Bearer {token}"})


def test_two_drones_pushing_at_once_land_every_frame_once_in_order(push_server: Server, drain, unique: str):
    feeds = {VISTA: drone_frames("foot-crossing-forest-vista", VISTA),
             DERBY: drone_frames("approach-turn-back-derby", DERBY)}
    assert all(len(frames) >= 5 for frames in feeds.values())
    before = len(drain(topics.FRAMES, at_least=0, timeout_s=5, settle_s=1))
    answers: dict[str, list] = {}

    def fly(sensor: str) -> None:  # vista sends KLV, derby JSON telemetry; each retries its third frame
        with httpx.Client(base_url=push_server.url, timeout=60) as client:
            got = []
            for k, frame in enumerate(feeds[sensor]):
                data = {"device_frame_id": f"{unique}-{frame.meta.device_frame_id}",
                        "capture_ts_ns": str(frame.meta.capture_ts_ns)}
                if sensor == DERBY:
                    data["telemetry"] = frame.meta.telemetry.model_dump_json(exclude_none=True)
                for _ in range(2 if k == 2 else 1):
                    answer = push(client, sensor, push_server.tokens[sensor], frame.jpeg, data,
                                  frame.klv if sensor == VISTA else None)
                    got.append((frame, answer.status_code, answer.json()))
            answers[sensor] = got

    threads = [threading.Thread(target=fly, args=(sensor,)) for sensor in feeds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert all(status == 202 for got in answers.values() for _, status, _ in got), answers
    assert sum(body["duplicate"] for got in answers.values() for _, _, body in got) == 2

    sent = sum(len(frames) for frames in feeds.values())
    records = [r for r in drain(topics.FRAMES, at_least=before + sent)
               if (r.header("ibet.device_frame_id") or b"").decode().startswith(unique)]
    assert len(records) == sent  # every frame once, the retries not again
    by_sensor: dict[str, list] = defaultdict(list)
    for record in records:
        by_sensor[record.key.decode()].append(record)
    for sensor, frames in feeds.items():
        mine = by_sensor[sensor]
        assert len({r.partition for r in mine}) == 1  # keyed by sensor: one partition
        mine.sort(key=lambda r: r.offset)
        metas = [FrameMeta.from_headers(r.headers) for r in mine]
        assert [m.sequence for m in metas] == list(range(len(frames)))  # sequence increases with offset
        for frame, record, meta in zip(frames, mine, metas, strict=True):
            assert record.value == frame.jpeg
            assert meta.device_frame_id == f"{unique}-{frame.meta.device_frame_id}"
            assert (meta.sensor_id, meta.capture_ts_ns, meta.width_px, meta.height_px) == (
                sensor, frame.meta.capture_ts_ns, 1280, 720)
            expected = decode_st0601(frame.klv) if sensor == VISTA else frame.meta.telemetry
            assert meta.telemetry == expected
        accepted = [(body["partition"], body["offset"]) for _, _, body in answers[sensor]]
        assert sorted(set(accepted)) == [(r.partition, r.offset) for r in mine]


def test_bad_uploads_over_http_never_reach_kafka(push_server: Server, drain, unique: str):
    jpeg = cv2.imencode(".jpg", (np.random.default_rng(3).random((72, 128, 3)) * 255).astype(np.uint8))[1].tobytes()
    png = cv2.imencode(".png", np.zeros((72, 128, 3), np.uint8))[1].tobytes()
    klv = encode_st0601(Telemetry(precision_ts_us=1_784_149_200_000_000, sensor_lat_deg=48.99, hfov_deg=25.0))
    nan = '{"precision_ts_us": 1784149200000000, "sensor_lat_deg": NaN}'
    vista, derby = push_server.tokens[VISTA], push_server.tokens[DERBY]
    cases = [  # (sensor, token, jpeg, form, klv, status, reason)
        (VISTA, vista, jpeg[:len(jpeg) // 2], {}, klv, 400, "truncated_jpeg"),
        (VISTA, vista, b"\xff\xd8\xff\xe0" + bytes(600) + b"\xff\xd9", {}, klv, 400, "corrupt_jpeg"),
        (VISTA, vista, png, {}, klv, 415, "not_jpeg"),
        (VISTA, vista, b"", {}, klv, 400, "empty_body"),
        (VISTA, vista, jpeg, {}, klv[:-6], 422, "bad_klv"),
        (VISTA, vista, jpeg, {}, klv[:-1] + bytes([klv[-1] ^ 1]), 422, "bad_klv"),
        (VISTA, vista, jpeg, {"telemetry": nan}, None, 422, "bad_telemetry"),
        (VISTA, vista, jpeg, {"telemetry": '{"sensor_lat_deg": 95}'}, None, 422, "bad_telemetry"),
        (VISTA, None, jpeg, {}, klv, 401, "unauthorized"),
        (VISTA, credentials.new_token(), jpeg, {}, klv, 401, "unauthorized"),
        (VISTA, derby, jpeg, {}, klv, 403, "wrong_device"),
        ("drone-nowhere-9", vista, jpeg, {}, klv, 404, "unknown_device"),
        (VISTA, vista, bytes(2 * 1024 * 1024), {}, klv, 413, "frame_too_large"),
    ]
    before = len(drain(topics.FRAMES, at_least=0, timeout_s=5, settle_s=1))
    with httpx.Client(base_url=push_server.url, timeout=60) as client:
        for k, (sensor, token, frame, form, klv_part, status, reason) in enumerate(cases):
            data = {"device_frame_id": f"{unique}-bad-{k}", **form}
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            files = {"frame": ("f.jpg", frame, "image/jpeg")}
            if klv_part is not None:
                files["klv"] = ("f.klv", klv_part, "application/octet-stream")
            answer = client.post(f"/v1/sensors/{sensor}/frames", files=files, data=data, headers=headers)
            assert (answer.status_code, answer.json()["error"]) == (status, reason), (k, answer.text)
        good = push(client, VISTA, vista, jpeg, {"device_frame_id": f"{unique}-good"}, klv)
        assert good.status_code == 202 and good.json()["sequence"] == 0  # nothing before it took a sequence
    records = drain(topics.FRAMES, at_least=before + 1)
    mine = [r.header("ibet.device_frame_id") for r in records
            if (r.header("ibet.device_frame_id") or b"").decode().startswith(unique)]
    assert mine == [f"{unique}-good".encode()]


def test_sim_run_to_http_pushes_the_drone_frames_like_a_drone(push_server: Server, drain, tmp_path):
    from typer.testing import CliRunner

    from ibet_app.cli import app

    scenario = tmp_path / "short.yaml"
    text = open("sim/scenarios/approach-turn-back-derby.yaml").read().replace("duration_s: 150", "duration_s: 4")
    scenario.write_text(text.replace("name: approach-turn-back-derby", "name: short-derby-http"))
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(f"{DERBY}: {push_server.tokens[DERBY]}\n")
    before = [r for r in drain(topics.FRAMES, at_least=0, timeout_s=5, settle_s=1) if r.key == DERBY.encode()]
    result = CliRunner().invoke(app, ["sim", "run", str(scenario), "--to", "http", "--url", push_server.url,
                                      "--tokens", str(tokens), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "rejected: 0" in result.output
    sent = int(result.output.split(" frames sent")[0].split()[-1])
    assert sent >= 5
    landed = [r for r in drain(topics.FRAMES, at_least=len(before) + sent) if r.key == DERBY.encode()]
    assert len(landed) == len(before) + sent
    assert (tmp_path / "run" / "truth" / "events.json").exists()

"""JSON telemetry over MQTT (a real Mosquitto broker on loopback, paho-mqtt publishing) paired with a
video stream that has no KLV, the way a DJI dock's bridge reports aircraft state beside its video."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from media_servers import mosquitto as mosquitto_broker
from test_stream_bad_input import drone, free_port, send_udp, telemetry, write_ts

from ibet import topics
from ibet.bus import MemoryBus
from ibet.clock import SystemClock
from ibet.config import IngestSettings
from ibet.messages import FrameMeta
from ingest.stream import StreamError, StreamIngest


@pytest.fixture
def mosquitto(tmp_path: Path):
    with mosquitto_broker(tmp_path) as port:
        yield port


def test_mqtt_telemetry_gives_klv_less_video_its_pose_and_bad_messages_are_counted(mosquitto, tmp_path):
    video_port = free_port()
    stream = tmp_path / "video-only.ts"
    write_ts(str(stream), frames=20, klv=None)
    bus = MemoryBus()
    run = StreamIngest(drone("uas-dji"), f"udp://127.0.0.1:{video_port}", bus.producer(),
                       IngestSettings(stream_read_timeout_s=1.0), SystemClock(), max_frames=20, max_reconnects=2,
                       telemetry_source=f"mqtt://127.0.0.1:{mosquitto}/thing/product/uas-dji/osd")
    worker = threading.Thread(target=run.run, daemon=True)
    worker.start()
    assert run_until(lambda: run._mqtt is not None and run._mqtt.connected.is_set())
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="dock-bridge")
    publisher.connect("127.0.0.1", mosquitto)
    publisher.loop_start()
    start_us = time.time_ns() // 1000
    for bad in (b"\xff\xfe not text", b"{not json", json.dumps({"sensor_lat_deg": 95.0, "precision_ts_us": start_us}),
                json.dumps({"sensor_lat_deg": 49.0})):
        publisher.publish("thing/product/uas-dji/osd", bad, qos=1).wait_for_publish(5)
    for k in range(20):
        message = telemetry(k, 10.0).model_copy(update={"precision_ts_us": start_us + k * 100_000})
        publisher.publish("thing/product/uas-dji/osd", message.model_dump_json(exclude_none=True), qos=1).wait_for_publish(5)
    time.sleep(0.5)
    send_udp(video_port, stream.read_bytes())
    worker.join(20)
    publisher.loop_stop()
    publisher.disconnect()
    assert not worker.is_alive(), str(run.stats)
    metas = [FrameMeta.from_headers(r.headers) for r in bus.records(topics.FRAMES)]
    assert run.stats.klv_packets == {"json": 20, "bad_json": 4}, str(run.stats)
    assert run.stats.frames_produced == 20 and run.stats.paired == {"exact": 20}, str(run.stats)
    assert [m.capture_ts_ns for m in metas] == [(start_us + k * 100_000) * 1000 for k in range(20)]


def run_until(condition, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_telemetry_url_that_is_not_mqtt_is_a_clear_error():
    run = StreamIngest(drone(), "nowhere.ts", MemoryBus().producer(), IngestSettings(), SystemClock(),
                       telemetry_source="http://dock.example/osd")
    with pytest.raises(StreamError, match="mqtt"):
        run.run()

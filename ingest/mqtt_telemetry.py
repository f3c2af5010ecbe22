"""Telemetry that travels apart from the video, over MQTT (paho-mqtt), as a DJI dock or a ground
station's bridge reports aircraft and gimbal state: one JSON object per message, in MISB ST 0601
names (the push API's telemetry JSON), with ``precision_ts_us`` (or ``capture_ts_ns``) giving its time.

``mqtt://[user:password@]host:port/topic`` (``mqtts://`` for TLS; MQTT wildcards allowed in the
topic). The client connects in its own thread, reconnects by itself, and keeps what arrives in a
bounded buffer that the stream's loop drains; a message that is not valid telemetry is counted by
reason and logged, never raised.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt

from ibet.exceptions import IbetError
from ibet.messages import Telemetry
from ibet.urls import redact
from ingest.exceptions import BadTelemetryError
from ingest.telemetry_input import telemetry_from_json

log = logging.getLogger(__name__)

BUFFER_MESSAGES = 10_000


class TelemetrySourceError(IbetError):
    """The telemetry URL is not an MQTT URL with a host, a port and a topic."""


class MqttTelemetry:
    """Subscribes to ``url``'s topic; :meth:`drain` returns (telemetry or None, outcome, detail) tuples."""

    def __init__(self, url: str, client_id: str):
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname or not parts.path.strip("/"):
            raise TelemetrySourceError(f"telemetry source must be mqtt[s]://host:port/topic, not {redact(url)}")
        self.url, self.topic = url, unquote(parts.path.lstrip("/"))
        self._buffer: deque[tuple[Telemetry | None, str, str]] = deque(maxlen=BUFFER_MESSAGES)
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        if parts.username:
            self.client.username_pw_set(unquote(parts.username), unquote(parts.password or ""))
        if parts.scheme == "mqtts":
            self.client.tls_set()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.5, 30)
        self.client.connect_async(parts.hostname, parts.port or (8883 if parts.scheme == "mqtts" else 1883))
        self.client.loop_start()

    def _on_connect(self, client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            log.warning("telemetry %s: connection refused: %s", redact(self.url), reason_code)
            return
        client.subscribe(self.topic, qos=0)
        self.connected.set()
        log.info("telemetry %s: subscribed to %s", redact(self.url), self.topic)

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        self.connected.clear()
        log.warning("telemetry %s: disconnected (%s); reconnecting", redact(self.url), reason_code)

    def _on_message(self, _client, _userdata, message) -> None:
        try:
            text = message.payload.decode("utf-8")
            telemetry, capture_ns = telemetry_from_json(text)
            if telemetry.precision_ts_us is None and capture_ns is not None:
                telemetry = telemetry.model_copy(update={"precision_ts_us": capture_ns // 1000})
            if telemetry.precision_ts_us is None:
                raise BadTelemetryError("precision_ts_us", "no time: send precision_ts_us or capture_ts_ns")
            entry = (telemetry, "json", "")
        except UnicodeDecodeError:
            entry = (None, "bad_json", "the message is not UTF-8 text")
        except BadTelemetryError as exc:
            entry = (None, "bad_json", str(exc))
        with self._lock:
            self._buffer.append(entry)

    def drain(self) -> list[tuple[Telemetry | None, str, str]]:
        with self._lock:
            taken = list(self._buffer)
            self._buffer.clear()
        return taken

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

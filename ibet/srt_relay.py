"""SRT through Haivision's ``srt-live-transmit`` (Debian's srt-tools): PyAV's FFmpeg has no SRT.

:func:`srt_relay` bridges an ``srt://`` URL and a UDP port on loopback, either way:
``ibet ingest stream`` receives SRT (``mode=listener`` waits for the ground station, ``mode=caller``
dials it; ``passphrase=`` and the other SRT socket options pass through the URL) and reads the
transport stream from the UDP port; the simulator writes its stream to the UDP port and the relay
sends it out as SRT. The relay reconnects by itself (``-a yes``); if it exits it is started again
while the context is open. Its log lines go to ibet's log, with the passphrase redacted.
"""

from __future__ import annotations

import logging
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ibet.exceptions import IbetError
from ibet.urls import redact

log = logging.getLogger(__name__)

RELAY = "srt-live-transmit"


class SrtRelayError(IbetError):
    """The SRT relay cannot run: srt-live-transmit is not installed."""


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def srt_relay(url: str, sensor_id: str, *, outbound: bool = False) -> Iterator[str]:
    """While open, ``url`` (srt://) is relayed to the yielded ``udp://127.0.0.1:PORT``; with
    ``outbound``, what is sent to that port goes out to ``url``."""
    binary = shutil.which(RELAY)
    if binary is None:
        raise SrtRelayError(f"{RELAY} is not installed (Debian: apt-get install srt-tools); it relays srt:// "
                            "because PyAV's FFmpeg has no SRT protocol")
    port = free_udp_port()
    target = f"udp://127.0.0.1:{port}"
    stop = threading.Event()
    state: dict[str, subprocess.Popen | None] = {"process": None}

    def supervise() -> None:
        while not stop.is_set():
            # the UDP end as a source must bind its port (mode=listener), as a target it sends to it
            ends = [f"{target}?mode=listener", url] if outbound else [url, target]
            process = subprocess.Popen([binary, "-a", "yes", "-q", "-ll", "warn", *ends],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            state["process"] = process
            assert process.stderr is not None
            quiet = _Throttle(10.0)
            for line in process.stderr:
                shown = quiet.admit(line.rstrip())
                if shown is not None:
                    log.warning("%s: srt relay: %s", sensor_id, redact_line(shown, url))
            process.wait()
            if not stop.is_set():
                log.warning("%s: srt relay for %s exited (%s); restarting", sensor_id, redact(url), process.returncode)
                stop.wait(1.0)

    thread = threading.Thread(target=supervise, name=f"srt-relay-{sensor_id}", daemon=True)
    thread.start()
    log.info("%s: relaying %s to %s through %s", sensor_id, redact(url), target, RELAY)
    try:
        yield target
    finally:
        stop.set()
        process = state["process"]
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
        thread.join(5)


class _Throttle:
    """At most one log line per kind every ``every_s`` (a caller with a wrong passphrase retries every
    10 ms); the next one shown says how many like it were held back."""

    def __init__(self, every_s: float):
        self.every_s = every_s
        self._seen: dict[str, tuple[float, int]] = {}

    def admit(self, line: str) -> str | None:
        kind = re.sub(r"@\d+", "@", re.sub(r"^[\d:.]+/", "", line))  # without its time and socket id
        now = time.monotonic()
        shown_at, held = self._seen.get(kind, (-self.every_s, 0))
        if now - shown_at < self.every_s:
            self._seen[kind] = (shown_at, held + 1)
            return None
        self._seen[kind] = (now, 0)
        return f"{line} ({held} more like it)" if held else line


def redact_line(line: str, url: str) -> str:
    """A relay log line without the URL's secrets."""
    return line.replace(url, redact(url))

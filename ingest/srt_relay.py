"""SRT in through Haivision's ``srt-live-transmit`` (Debian's srt-tools): PyAV's FFmpeg has no SRT.

The relay receives the SRT stream (``mode=listener`` waits for the drone's ground station,
``mode=caller`` dials it; ``passphrase=`` and the other SRT socket options pass through the URL)
and forwards the transport stream to a UDP port on loopback, which ``ibet ingest stream`` reads
like any UDP source. The relay reconnects by itself (``-a yes``); if it exits it is started again
while the context is open. Its log lines go to ibet's log, with the passphrase redacted.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ibet.exceptions import IbetError
from ingest.stream_demux import redact

log = logging.getLogger(__name__)

RELAY = "srt-live-transmit"


class SrtRelayError(IbetError):
    """The SRT relay cannot run: srt-live-transmit is not installed."""


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def srt_relay(url: str, sensor_id: str) -> Iterator[str]:
    """While open, ``url`` (srt://) is relayed to the yielded ``udp://127.0.0.1:PORT``."""
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
            process = subprocess.Popen([binary, "-a", "yes", "-q", "-ll", "warn", url, target],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            state["process"] = process
            assert process.stderr is not None
            for line in process.stderr:
                log.warning("%s: srt relay: %s", sensor_id, redact_line(line.rstrip(), url))
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


def redact_line(line: str, url: str) -> str:
    """A relay log line without the URL's secrets."""
    return line.replace(url, redact(url))

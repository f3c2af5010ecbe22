"""A UDP transport stream received by ibet's own socket, read by PyAV as a file.

FFmpeg's ``udp://`` input closes its socket whenever the demuxer is reopened, and every datagram
sent meanwhile is lost (with it the next keyframe, and the pictures that depend on it). Here one
socket stays bound for the whole run: a thread receives datagrams into a bounded buffer (the oldest
dropped and counted when a reader falls behind), and each connection of the demuxer reads the
buffer through :meth:`UdpReceiver.reader`, which ends (EOF) after ``idle_s`` without data. A
multicast group (224.0.0.0/4) is joined on ``INADDR_ANY`` or on the ``localaddr`` of the URL.
"""

from __future__ import annotations

import io
import ipaddress
import logging
import socket
import struct
import threading
from collections import deque
from urllib.parse import parse_qsl, urlsplit

from ibet.exceptions import IbetError

log = logging.getLogger(__name__)

DATAGRAM_MAX = 65_536
#: About 20 s of an 8 Mbit/s stream in 1316-byte datagrams.
BUFFER_DATAGRAMS = 16_000


class UdpBindError(IbetError):
    """The UDP address cannot be bound (in use, not local, malformed)."""


class UdpReceiver:
    """Binds ``udp://host:port`` at once and keeps receiving until :meth:`close`."""

    def __init__(self, url: str, buffer_datagrams: int = BUFFER_DATAGRAMS):
        parts = urlsplit(url)
        if parts.port is None:
            raise UdpBindError(f"{url}: a UDP source needs a port (udp://host:port)")
        host = parts.hostname or "0.0.0.0"
        query = dict(parse_qsl(parts.query))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        try:
            multicast = ipaddress.ip_address(host).is_multicast
        except ValueError:
            multicast = False
        try:
            self.sock.bind((host, parts.port))
            if multicast:
                local = query.get("localaddr", "0.0.0.0")
                self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                                     struct.pack("4s4s", socket.inet_aton(host), socket.inet_aton(local)))
        except OSError as exc:
            self.sock.close()
            raise UdpBindError(f"cannot receive on {url}: {exc}") from None
        self.sock.settimeout(0.2)
        self.datagrams = 0
        self.bytes = 0
        self.overruns = 0
        self._buffer: deque[bytes] = deque()
        self._limit = buffer_datagrams
        self._ready = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._receive, name=f"udp-{parts.port}", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._closed:
            try:
                data = self.sock.recv(DATAGRAM_MAX)
            except TimeoutError:
                continue
            except OSError:
                if self._closed:
                    return
                raise
            with self._ready:
                if len(self._buffer) >= self._limit:
                    self._buffer.popleft()
                    self.overruns += 1
                self._buffer.append(data)
                self.datagrams += 1
                self.bytes += len(data)
                self._ready.notify()

    def reader(self, idle_s: float, on_wait=lambda: False) -> _BufferReader:
        """A file for PyAV over what is buffered and arrives; EOF after ``idle_s`` without data, or when
        ``on_wait`` (called every 0.1 s while waiting: health checks, signals) returns True."""
        return _BufferReader(self, idle_s, on_wait)

    def _take(self, idle_s: float, on_wait) -> bytes:
        waited = 0.0
        while True:
            with self._ready:
                if self._buffer:
                    return self._buffer.popleft()
                if self._closed or waited >= idle_s:
                    return b""
                self._ready.wait(0.1)
                if self._buffer:
                    return self._buffer.popleft()
            waited += 0.1
            if on_wait():
                return b""

    def drain(self) -> list[bytes]:
        """Every datagram buffered so far, without waiting (a KLV side stream: one or more packets each)."""
        with self._ready:
            taken = list(self._buffer)
            self._buffer.clear()
        return taken

    def close(self) -> None:
        self._closed = True
        with self._ready:
            self._ready.notify_all()
        self._thread.join(2)
        self.sock.close()


class _BufferReader(io.RawIOBase):
    """The receiver's datagrams as a byte stream; ``idle`` is set when it ended for want of data."""

    def __init__(self, receiver: UdpReceiver, idle_s: float, on_wait):
        self.receiver, self.idle_s, self.on_wait = receiver, idle_s, on_wait
        self._pending = b""
        self.idle = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self._pending:
            self._pending = self.receiver._take(self.idle_s, self.on_wait)
            if not self._pending:
                self.idle = True
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

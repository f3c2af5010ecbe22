"""A TAK-server stand-in for tests and demos: accepts CoT streams over TCP or TLS and parses them.

TAK clients stream Cursor-on-Target events over one long-lived connection, one XML document after
another (each may start with its own XML declaration). :class:`CotListener` accepts such
connections on a loopback port, splits each stream into ``<event>...</event>`` documents
(:func:`split_events`) and checks each with :func:`alerts.formats.cot.parse_cot`. With an
``ssl_context`` it speaks TLS; make it require client certificates as a TAK server does
(:func:`server_tls_context` with a CA) and each event records the client's CN.

    >>> with CotListener() as tak:                              # doctest: +SKIP
    ...     channel = CotChannel({"rcmp": tak.endpoint})
    ...     tak.wait_for(1)[0].cot["uid"]
    'ibet-trk-pacific-blaine-17'

Run ``python -m ibet_app.cot_listener --port 8087`` to watch what the alert service sends.
"""

from __future__ import annotations

import argparse
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

from alerts.formats import FormatError
from alerts.formats.cot import parse_cot

_END = b"</event>"
_MAX_EVENT_BYTES = 1 << 20


class ReceivedCot(NamedTuple):
    """One event as received: parsed (``parse_cot``'s dict), raw bytes, who sent it."""

    cot: dict[str, Any]
    raw: bytes
    peer: tuple[str, int]
    client_cn: str | None  # common name of the client certificate, over TLS


def split_events(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Complete ``...</event>`` documents at the start of a stream buffer, and the rest.

    A literal ``</event>`` can only be the closing tag: in text and attributes ``<`` is escaped.
    >>> split_events(b'<event a="1"/></event>\\n<?xml version="1.0"?><event')
    ([b'<event a="1"/></event>'], b'<?xml version="1.0"?><event')
    """
    documents = []
    while (end := buffer.find(_END)) >= 0:
        document, buffer = buffer[: end + len(_END)].strip(), buffer[end + len(_END):]
        documents.append(document)
    return documents, buffer.lstrip()


class CotListener:
    """Accepts CoT streams on ``host:port`` (port 0: a free one) until :meth:`stop`.

    ``events``: what parsed; ``errors``: ``(raw or b"", message)`` for documents that did not parse,
    refused TLS handshakes and streams that sent more than ``max_event_bytes`` without an
    ``</event>`` (the connection is then closed).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None,
                 max_event_bytes: int = _MAX_EVENT_BYTES):
        self.host, self.ssl_context, self.max_event_bytes = host, ssl_context, max_event_bytes
        self._server = socket.create_server((host, port))
        self._server.settimeout(0.1)
        self.port = self._server.getsockname()[1]
        self._changed = threading.Condition()
        self._events: list[ReceivedCot] = []
        self._errors: list[tuple[bytes, str]] = []
        self._clients: set[socket.socket] = set()
        self.connections_accepted = 0
        self._stopping = threading.Event()
        self._acceptor = threading.Thread(target=self._accept_loop, name=f"cot-listener-{self.port}", daemon=True)

    @property
    def endpoint(self) -> str:
        """``host:port`` as a registry's ``tak_endpoint`` holds it."""
        return f"{self.host}:{self.port}"

    @property
    def events(self) -> list[ReceivedCot]:
        """The events received so far, in arrival order (per connection)."""
        with self._changed:
            return list(self._events)

    @property
    def errors(self) -> list[tuple[bytes, str]]:
        """What could not be read so far: ``(raw bytes or b"", message)``."""
        with self._changed:
            return list(self._errors)

    def start(self) -> CotListener:
        """Start accepting connections (in a daemon thread)."""
        self._acceptor.start()
        return self

    def stop(self) -> None:
        """Stop accepting and close every connection."""
        self._stopping.set()
        if self._acceptor.is_alive():
            self._acceptor.join(5.0)
        self._server.close()
        self.drop_connections()

    def __enter__(self) -> CotListener:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def drop_connections(self) -> None:
        """Close the connections open now, as a TAK server that restarts would."""
        with self._changed:
            clients, self._clients = self._clients, set()
        for client in clients:
            try:
                client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already gone: closing is all that is left to do
            client.close()

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[ReceivedCot]:
        """All events once at least ``count`` have arrived; TimeoutError naming what did arrive."""
        self._wait(lambda: len(self._events) >= count, f"{count} CoT events", timeout_s)
        return self.events

    def wait_for_errors(self, count: int, timeout_s: float = 10.0) -> list[tuple[bytes, str]]:
        """All errors once at least ``count`` have happened (a refused handshake is recorded by the
        connection's thread, possibly after the client has already seen the refusal)."""
        self._wait(lambda: len(self._errors) >= count, f"{count} errors", timeout_s)
        return self.errors

    def _wait(self, done, what: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"not {what} within {timeout_s} s: {len(self._events)} events, "
                                       f"errors {self._errors}")
                self._changed.wait(left)

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, peer = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listening socket was closed
            with self._changed:
                self.connections_accepted += 1
            threading.Thread(target=self._serve, args=(client, peer), daemon=True).start()

    def _serve(self, client: socket.socket, peer: tuple[str, int]) -> None:
        client.settimeout(None)
        client_cn = None
        if self.ssl_context is not None:
            try:
                client = self.ssl_context.wrap_socket(client, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                self._error(b"", f"TLS handshake with {peer} refused: {exc}")
                client.close()
                return
            client_cn = _common_name(client.getpeercert())
        with self._changed:
            self._clients.add(client)
        buffer = b""
        try:
            while chunk := client.recv(65536):
                documents, buffer = split_events(buffer + chunk)
                for document in documents:
                    self._received(document, peer, client_cn)
                if len(buffer) > self.max_event_bytes:
                    self._error(buffer[:200], f"{peer} sent {len(buffer)} bytes without </event>; connection closed")
                    break
        except OSError:
            pass  # dropped by drop_connections() or by the peer: the stream simply ends
        finally:
            with self._changed:
                self._clients.discard(client)
            client.close()

    def _received(self, document: bytes, peer: tuple[str, int], client_cn: str | None) -> None:
        try:
            received = ReceivedCot(parse_cot(document), document, peer, client_cn)
        except FormatError as exc:
            self._error(document, str(exc))
            return
        with self._changed:
            self._events.append(received)
            self._changed.notify_all()

    def _error(self, raw: bytes, message: str) -> None:
        with self._changed:
            self._errors.append((raw, message))
            self._changed.notify_all()


def _common_name(cert: dict[str, Any] | None) -> str | None:
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None


def server_tls_context(cert: str, key: str, ca: str | None = None) -> ssl.SSLContext:
    """Server TLS context from PEM files; with ``ca``, clients must present a certificate it signed."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    if ca:
        context.load_verify_locations(ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _lines(listener: CotListener) -> Iterator[str]:
    seen = 0
    while True:
        events = listener.wait_for(seen + 1, timeout_s=3600.0)
        for event in events[seen:]:
            cot = event.cot
            yield (f"{cot['time']:%H:%M:%S} {cot['uid']} {cot['type']} {cot['lat']:.6f},{cot['lon']:.6f} "
                   f"ce={cot['ce']:.1f} opex={cot['opex']} from={event.client_cn or event.peer[0]}: {cot['remarks']}")
        seen = len(events)


def main(argv: list[str] | None = None) -> None:
    """Listen and print one line per CoT event received."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8087)
    parser.add_argument("--cert", help="server certificate (PEM): speak TLS")
    parser.add_argument("--key", help="server private key (PEM)")
    parser.add_argument("--ca", help="CA (PEM) that client certificates must chain to")
    args = parser.parse_args(argv)
    context = server_tls_context(args.cert, args.key, args.ca) if args.cert else None
    with CotListener(args.host, args.port, context) as listener:
        print(f"listening for CoT on {listener.endpoint} ({'TLS' if context else 'TCP'})", flush=True)
        try:
            for line in _lines(listener):
                print(line, flush=True)
        except KeyboardInterrupt:
            pass  # Ctrl-C ends the demo


if __name__ == "__main__":
    main()

"""An ASGI app served by uvicorn on a free loopback port in a thread (tests and benchmarks)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from ibet.config import HttpSettings
from ibet.http_limits import uvicorn_config


@contextmanager
def serve_in_thread(app, timeout_s: float = 30.0, http: HttpSettings | None = None) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 while the block runs, with the slow-client bounds every ibet server
    has (:func:`ibet.http_limits.uvicorn_config`, ``http`` or the defaults); yields its base URL."""
    with serve_config_in_thread(uvicorn_config(app, http), timeout_s) as url:
        yield url


@contextmanager
def serve_config_in_thread(config: uvicorn.Config, timeout_s: float = 30.0) -> Iterator[str]:
    """Serve uvicorn's ``config`` (its app, its settings; not its host and port) on a free loopback
    port while the block runs; yields its base URL.

    The socket is made with proto=IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted
    connections (with proto 0 it does not, and every response waits ~40 ms for a delayed ACK).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        raise RuntimeError(f"uvicorn did not start within {timeout_s} s")
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout_s)
        sock.close()

"""Slow clients are bounded on every ibet HTTP server (ibet.http_limits, used by the push API, the
alert actions API, the console, the demo and ibet_testing's servers): the slow-loris probe."""

from __future__ import annotations

import socket
import time
from contextlib import ExitStack

import httpx
from fastapi import FastAPI, Request

from ibet.config import HttpSettings
from ibet_testing.http_server import serve_in_thread

FAST = HttpSettings(header_timeout_s=1.0, body_timeout_s=1.5, keep_alive_s=5.0)


def app() -> FastAPI:
    api = FastAPI()

    @api.get("/ping")
    def ping() -> dict:
        return {"ok": True}

    @api.post("/echo")
    async def echo(request: Request) -> dict:
        return {"bytes": len(await request.body())}

    return api


def _open(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=5)


def _closed(sock: socket.socket) -> bool:
    """Whether the server has given up on ``sock``: EOF, a reset, or an answer before it closes."""
    sock.settimeout(0.05)
    try:
        sock.recv(4096)
    except TimeoutError:
        return False
    except OSError:
        pass
    return True


def test_slow_loris_connections_are_closed_and_others_are_served():
    with serve_in_thread(app(), http=FAST) as url, ExitStack() as stack:
        loris = [stack.enter_context(_open(url)) for _ in range(50)]
        for s in loris:
            s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        started = time.monotonic()
        while time.monotonic() - started < 3.0 and not all(_closed(s) for s in loris):
            for s in loris:
                try:
                    s.sendall(b"X")  # one byte at a time
                except OSError:
                    pass
            assert httpx.get(f"{url}/ping", timeout=5).json() == {"ok": True}  # the server keeps working
            time.sleep(0.2)
        open_after = sum(not _closed(s) for s in loris)
        assert open_after == 0, f"{open_after} of 50 slow-loris connections still open after 3 s"


def test_a_silent_connection_is_closed_after_the_header_timeout():
    with serve_in_thread(app(), http=FAST) as url, _open(url) as sock:
        time.sleep(1.6)
        sock.settimeout(2)
        assert sock.recv(10) == b""


def test_a_body_that_trickles_gets_408_in_the_projects_error_shape():
    with serve_in_thread(app(), http=FAST) as url, _open(url) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                     b"Content-Length: 1000\r\n\r\n")
        started = time.monotonic()
        answer = b""
        sock.settimeout(0.3)
        while time.monotonic() - started < 5 and b"\r\n\r\n" not in answer:
            try:
                sock.sendall(b"x")
                answer += sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
        while time.monotonic() - started < 15 and b"request_timeout" not in answer.replace(b" ", b""):
            try:  # the body may follow the headers in another segment (a loaded machine)
                more = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            if not more:
                break
            answer += more
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b'"error":"request_timeout"' in answer.replace(b" ", b"")


def test_ordinary_requests_and_keep_alive_are_untouched():
    with serve_in_thread(app(), http=FAST) as url, httpx.Client(base_url=url) as client:
        for _ in range(3):
            assert client.post("/echo", content=b"y" * 200_000).json() == {"bytes": 200_000}
            time.sleep(1.2)  # longer than the header timeout, shorter than keep-alive: the same connection
            assert client.get("/ping").status_code == 200

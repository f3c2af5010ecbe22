"""Every HTTP server of ibet under uvicorn with bounds on slow clients.

uvicorn closes a connection that stays idle between requests (keep-alive), but it waits for ever
for the headers of a request and for its body: a slow-loris client (one byte every few seconds)
holds a connection as long as it likes. Here:

- :func:`header_timeout_protocol`: uvicorn's h11 protocol that closes a connection whose request
  headers are not complete ``header_timeout_s`` after the connection opened or the request began;
- :class:`BodyTimeout`: ASGI middleware that answers 408 (``{error, detail}``, connection closed)
  when the request body has not arrived ``body_timeout_s`` after the request began;
- :func:`uvicorn_config`: the uvicorn configuration every server uses (push API, alert actions API,
  console, the demo, the test servers), from :class:`ibet.config.HttpSettings`.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from ibet.config import HttpSettings


def header_timeout_protocol(header_timeout_s: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a deadline for the request headers (connection closed past it)."""

    class HeaderTimeoutProtocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._header_deadline: asyncio.TimerHandle | None = None
            self._arm()

        def _arm(self) -> None:
            if self._header_deadline is None:
                self._header_deadline = self.loop.call_later(header_timeout_s, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_deadline is not None:
                self._header_deadline.cancel()
                self._header_deadline = None

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.cycle is None or self.cycle.response_complete:  # still waiting for a request's headers
                self._arm()
            else:
                self._disarm()

        def on_response_complete(self) -> None:
            self._disarm()  # idle between requests: uvicorn's keep-alive timeout applies
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _headers_too_slow(self) -> None:
            self._header_deadline = None
            if not self.transport.is_closing():
                self.transport.close()

    return HeaderTimeoutProtocol


class BodyTimeout:
    """ASGI middleware: a request whose body is not complete ``seconds`` after it began gets 408."""

    def __init__(self, app: Any, seconds: float):
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = time.monotonic() + self.seconds
        state = {"body_done": False, "timed_out": False, "started": False}

        async def timed_receive() -> dict:
            if state["body_done"]:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                state["timed_out"] = True
                return {"type": "http.disconnect"}
            if message["type"] != "http.request" or not message.get("more_body", False):
                state["body_done"] = True
            return message

        async def tracked_send(message: dict) -> None:
            if state["timed_out"] and not state["started"]:
                return  # the app's answer to a "disconnect" (often a 500): the client gets the 408 instead
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, timed_receive, tracked_send)
        except Exception:
            if not state["timed_out"]:
                raise
        if state["timed_out"] and not state["started"]:
            body = json.dumps({"error": "request_timeout", "detail": f"the request body did not arrive within "
                                                                     f"{self.seconds:g} s"}).encode()
            await send({"type": "http.response.start", "status": 408,
                        "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})


def uvicorn_config(app: Any, settings: HttpSettings | None = None, **kwargs: Any) -> uvicorn.Config:
    """uvicorn's configuration of ``app`` with the slow-client bounds of ``settings``; ``kwargs`` go
    to :class:`uvicorn.Config` (host, port, log_level, ssl_*, proxy_headers...)."""
    settings = settings or HttpSettings()
    kwargs.setdefault("log_level", "warning")
    return uvicorn.Config(BodyTimeout(app, settings.body_timeout_s), http=header_timeout_protocol(settings.header_timeout_s),
                          timeout_keep_alive=settings.keep_alive_s, **kwargs)

"""The console's Prometheus metrics: requests by route template and status, their latency, and
log-ins by outcome. ``ibet console`` serves them on ``metrics.host:metrics.port`` (/metrics, 9400 in
the cluster), as every stage does (:func:`ibet.metrics.serve_metrics`)."""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter("ibet_console_requests", "HTTP requests answered by the console", ["method", "route", "status"])
REQUEST_SECONDS = Histogram(
    "ibet_console_request_seconds",
    "Time from a request to its response's headers (a live stream's or a file's body is not included)",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LOGINS = Counter("ibet_console_logins", "Log-in attempts: ok, failed, refused_address, refused_account", ["outcome"])
ACCOUNT_LOCKOUTS = Counter("ibet_console_account_lockouts", "Accounts locked after too many failed log-ins")

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"  # the route label of a request no route matched (404), so paths never become labels


def route_of(scope: Scope) -> str:
    """The template of the route that answered (``/api/alerts/{alert_id}``, ``/static``), else ``unmatched``."""
    route = scope.get("route")
    if route is not None:
        return route.path
    for mount in scope["app"].routes:  # FastAPI names no route in the scope for a mount (the static files)
        if isinstance(mount, Mount) and scope["path"].startswith(mount.path + "/"):
            return mount.path
    return UNMATCHED


class RequestMetrics:
    """ASGI middleware: counts and times every HTTP request, labelled by method, route template and status."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        method = scope["method"] if scope["method"] in METHODS else "other"
        answered = False

        def observe(status: int) -> None:
            labels = (method, route_of(scope), str(status))
            REQUESTS.labels(*labels).inc()
            REQUEST_SECONDS.labels(*labels).observe(time.perf_counter() - start)

        async def send_and_observe(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start" and not answered:
                answered = True
                observe(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_observe)
        except Exception:
            if not answered:  # the server answers 500
                observe(500)
            raise

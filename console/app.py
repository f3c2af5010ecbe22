"""The console's FastAPI application: :func:`create_app` builds it, :func:`serve` runs it with uvicorn.

Pages are rendered on the server (Jinja2 templates in ``console/templates``) with a little
JavaScript (``console/static``); the map library (Leaflet) is served from ``console/static/vendor``,
copied there from npm by ``console/frontend`` (no CDN). Every route needs a permission
(:mod:`console.auth`) except the log-in page, the static files and ``/healthz``. Every response
carries the security headers of :mod:`console.security_headers`, and every request is counted in
:mod:`console.metrics`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from alerts.lifecycle import AlertLifecycle
from console.accounts import Accounts
from console.auth import NotLoggedIn
from console.context import ConsoleContext
from console.errors import AccountError, InvalidRequest, NotFound
from console.map_layers import map_layers
from console.metrics import RequestMetrics
from console.security_headers import SecurityHeaders
from console.sessions import LoginThrottle, Sessions
from console.settings import ConsoleSettings
from ibet.border import BorderGeometry, PortOfEntry
from ibet.clock import Clock, SystemClock
from ibet.config import HttpSettings
from ibet.messages import Alert
from ibet.registry import Registry

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger(__name__)
HERE = Path(__file__).parent


def create_app(settings: ConsoleSettings, engine: Engine, *, registry: Registry | None = None,
               border: BorderGeometry | None = None, ports: tuple[PortOfEntry, ...] = (),
               clock: Clock | None = None, publish: Callable[[Alert], None] | None = None) -> FastAPI:
    """The console app on ``engine`` (migrated to revision 0004 or later).

    ``registry``: sectors (time zones, map areas) and partners (names, partner accounts must name one);
    ``border`` and ``ports``: drawn on the operator map; ``publish``: called with each alert version
    an operator's action produces (put it on ``ibet.alerts.v1``).
    """
    clock = clock or SystemClock()
    partner_ids = [p.id for p in registry.partners] if registry is not None else None
    ctx = ConsoleContext(
        engine=engine, settings=settings, clock=clock, registry=registry,
        accounts=Accounts(engine, clock, partner_ids), sessions=Sessions(engine, clock, settings),
        throttle=LoginThrottle(engine, clock, settings), lifecycle=AlertLifecycle(engine, clock, publish),
        layers=map_layers(border, ports, registry), publish=publish)
    stopping = asyncio.Event()

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        stopping.set()  # ends the live streams, so the server can stop

    app = FastAPI(title="ibet console", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = ctx
    app.state.stopping = stopping
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestMetrics)  # added last: outermost, so it times the whole answer

    from console.routes import admin, alerts_api, analyst, cases, pages

    for module in (pages, alerts_api, analyst, cases, admin):
        app.include_router(module.router)

    @app.exception_handler(NotLoggedIn)
    async def _not_logged_in(request: Request, _exc: NotLoggedIn):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": "log in first (session cookie or Authorization: Bearer token)"}, 401)
        return RedirectResponse("/login", 303)

    @app.exception_handler(NotFound)
    async def _not_found(_request: Request, exc: NotFound):
        return JSONResponse({"detail": str(exc)}, 404)

    @app.exception_handler(InvalidRequest)
    @app.exception_handler(AccountError)
    async def _invalid(_request: Request, exc: Exception):
        return JSONResponse({"detail": str(exc)}, 422)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, Any]:
        """Liveness for Kubernetes; needs no log-in and says nothing about the data."""
        return {"status": "ok"}

    return app


def server_config(app: FastAPI, settings: ConsoleSettings, http: HttpSettings | None = None,
                  log_level: str = "info") -> uvicorn.Config:
    """uvicorn's configuration of the console on ``settings.host:settings.port``, with the slow-client
    bounds of ``http`` (:func:`ibet.http_limits.uvicorn_config`).

    uvicorn's own proxy headers are off: :func:`console.auth.client_address` reads X-Forwarded-For
    itself, and only from the peers of ``console.trusted_proxies``.
    """
    from ibet.http_limits import uvicorn_config

    return uvicorn_config(app, http, host=settings.host, port=settings.port, log_level=log_level, proxy_headers=False)


def serve(settings: ConsoleSettings, engine: Engine, http: HttpSettings | None = None, **kwargs: Any) -> None:
    """Run the console with uvicorn on ``settings.host:settings.port`` until SIGTERM/SIGINT."""
    import uvicorn

    uvicorn.Server(server_config(create_app(settings, engine, **kwargs), settings, http)).run()

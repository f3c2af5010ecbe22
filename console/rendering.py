"""Server-side pages: the Jinja2 templates of ``console/templates`` and :func:`render`, which every
router uses to answer with a page. The app and the routers import this; it imports neither.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fastapi import Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates

from console.auth import Principal
from console.roles import Permission

TEMPLATES_DIR = Path(__file__).with_name("templates")
templates = Jinja2Templates(directory=TEMPLATES_DIR)
templates.env.filters["utc"] = lambda ns: datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render(request: Request, name: str, principal: Principal | None = None, status_code: int = 200, **values) -> Response:
    """The page ``name`` from ``console/templates`` with the caller and its permissions available."""
    return templates.TemplateResponse(request, name, {"me": principal, "Permission": Permission, **values},
                                      status_code=status_code)

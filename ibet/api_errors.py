"""One error shape for every JSON API of ibet: ``{"error": code, "detail": text}``.

The push API's refusals always had it; FastAPI's own answers (404 for an unknown path, 405, 422 for
a request that fails validation) had ``{"detail": ...}`` instead. :func:`install_error_handlers`
gives those the same shape, and :func:`error_responses` documents each status in the OpenAPI with
the :class:`ErrorBody` schema, so a client (or schemathesis) can hold the API to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException


class ErrorBody(BaseModel):
    """What every refusal of an ibet API says."""

    error: str = Field(description="a short code, e.g. unauthorized, capture_time_skew, not_found")
    detail: str = Field(description="what is wrong and what to do, for a person")


def status_code_name(status: int) -> str:
    """``not_found`` for 404: the error code of a status without a more precise one."""
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_").replace("'", "")
    except ValueError:
        return f"http_{status}"


def error_json(status: int, detail: str, error: str | None = None, headers: Mapping[str, str] | None = None,
               **extra: Any) -> JSONResponse:
    """The JSON answer ``{"error", "detail", **extra}`` with ``status``."""
    return JSONResponse({"error": error or status_code_name(status), "detail": detail, **extra}, status,
                        dict(headers or {}))


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "request"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request is not valid"


def install_error_handlers(app: FastAPI) -> None:
    """FastAPI's and Starlette's own errors answered in the :class:`ErrorBody` shape."""

    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_json(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_json(422, _validation_detail(exc), "invalid_request")

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)


def error_responses(descriptions: Mapping[int, str], model: type[BaseModel] = ErrorBody) -> dict[int | str, dict]:
    """OpenAPI ``responses`` of the given statuses, each with its description and the error schema."""
    return {status: {"model": model, "description": text} for status, text in descriptions.items()}

"""Maps the error taxonomy in `core.errors` to HTTP responses: the only place that knows status codes."""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from threadline.api.auth import authorize_route
from threadline.core.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    OperationalError,
    PermissionDeniedError,
    RateLimitedError,
    StoreUnavailableError,
    ThreadlineError,
    UsageError,
    VerificationRequiredError,
)
from threadline.memory.db import is_transient

log = logging.getLogger("threadline.api")

_STATUS: list[tuple[type[ThreadlineError], int]] = [
    (NotFoundError, 404),
    (VerificationRequiredError, 403),
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
    (ConflictError, 409),
    (RateLimitedError, 429),
    (InvalidInputError, 422),
    (UsageError, 400),
    (OperationalError, 503),
]


STORE_RETRY_AFTER_S = 2
"""What a client is told to wait after a transient failure (database unavailable, the service busy)."""


def status_for(exc: ThreadlineError) -> int:
    """The HTTP status for an error of the taxonomy."""
    return next((status for kind, status in _STATUS if isinstance(exc, kind)), 500)


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    """The one JSON shape every error response has."""
    return {"error": {"code": code, "message": message}}


async def _handle(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ThreadlineError)
    headers = None
    if isinstance(exc, RateLimitedError):
        headers = {"Retry-After": str(exc.retry_after_s)}
    elif isinstance(exc, OperationalError):  # busy or unavailable: a retry soon may pass
        headers = {"Retry-After": str(STORE_RETRY_AFTER_S)}
    return JSONResponse(error_body(exc.code, exc.message), status_code=status_for(exc), headers=headers)


_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    """Framework-level errors (unknown route, body too large, …) in the same shape as ours."""
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 413:
        message = "the request body is larger than THREADLINE_MAX_BODY_BYTES allows"
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """422 in the shared shape, after the route's key check (FastAPI validates before dependencies run)."""
    assert isinstance(exc, RequestValidationError)
    try:
        await authorize_route(request)
    except ThreadlineError as refused:
        return await _handle(request, refused)
    problems = [_problem(err) for err in exc.errors()]
    message = "; ".join(f"{p['field'] or 'body'}: {p['message']}" for p in problems)
    body = error_body("invalid_input", message)
    body["error"]["details"] = problems  # type: ignore[assignment]
    return JSONResponse(body, status_code=422)


async def _database_error(_request: Request, exc: Exception) -> JSONResponse:
    """A database that is down, failing over, out of connections or read-only is a 503 with Retry-After (the
    message, once accepted, is answered on retry); any other database error is a bug: a 500 in the same shape."""
    if not is_transient(exc):
        log.error("database error", exc_info=exc)
        return JSONResponse(error_body("internal_error", "an internal error occurred"), status_code=500)
    log.warning("database unavailable: %s", exc.__class__.__name__)
    message = "the database is unavailable right now; retry shortly"
    headers = {"Retry-After": str(STORE_RETRY_AFTER_S)}
    return JSONResponse(error_body(StoreUnavailableError.code, message), status_code=503, headers=headers)


def _problem(err: Any) -> dict[str, str]:
    if err.get("type") == "json_invalid":  # loc is ("body", character offset)
        reason = err.get("ctx", {}).get("error", "invalid JSON")
        at = err["loc"][-1] if len(err["loc"]) > 1 else "?"
        return {"field": "", "message": f"not valid JSON ({reason} at character {at})"}
    return {"field": ".".join(str(p) for p in err["loc"] if p != "body"), "message": err["msg"]}


def install_error_handlers(app: FastAPI) -> None:
    """Register the taxonomy's handler, and give request-validation failures the same error shape."""
    app.add_exception_handler(ThreadlineError, _handle)
    for database_error in (SQLAlchemyError, sqlite3.Error, psycopg.Error):
        app.add_exception_handler(database_error, _database_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)


class ErrorDetail(BaseModel):
    """What went wrong: a stable code and a readable message."""

    code: str = Field(description="Stable machine-readable code, e.g. not_found, invalid_input, rate_limited.")
    message: str
    details: list[dict[str, str]] | None = Field(None, description="Request validation: field and message each.")


class ErrorOut(BaseModel):
    """Every error response has this shape."""

    error: ErrorDetail


COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorOut, "description": "The body is larger than THREADLINE_MAX_BODY_BYTES (payload_too_large)."},
    422: {"model": ErrorOut, "description": "The request is malformed (invalid_input), with `details`."},
    429: {"model": ErrorOut, "description": "Rate limited per key or per sender; see Retry-After (rate_limited)."},
    503: {"model": ErrorOut, "description": "The store is unavailable or the customer's turn is busy; retry."},
}
"""Errors any operation may answer; FastAPI lists them on every operation of the OpenAPI description."""

"""Maps the error taxonomy in `core.errors` to HTTP responses: the only place that knows status codes."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from core.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    OperationalError,
    PermissionDeniedError,
    ThreadlineError,
    UsageError,
    VerificationRequiredError,
)

_STATUS: list[tuple[type[ThreadlineError], int]] = [
    (NotFoundError, 404),
    (VerificationRequiredError, 403),
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
    (ConflictError, 409),
    (InvalidInputError, 422),
    (UsageError, 400),
    (OperationalError, 503),
]


def status_for(exc: ThreadlineError) -> int:
    """The HTTP status for an error of the taxonomy."""
    return next((status for kind, status in _STATUS if isinstance(exc, kind)), 500)


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    """The one JSON shape every error response has."""
    return {"error": {"code": code, "message": message}}


async def _handle(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ThreadlineError)
    return JSONResponse(error_body(exc.code, exc.message), status_code=status_for(exc))


async def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"field": ".".join(str(p) for p in err["loc"] if p != "body"), "message": err["msg"]} for err in exc.errors()
    ]
    message = "; ".join(f"{p['field'] or 'body'}: {p['message']}" for p in problems)
    body = error_body("invalid_input", message)
    body["error"]["details"] = problems  # type: ignore[assignment]
    return JSONResponse(body, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    """Register the taxonomy's handler, and give request-validation failures the same error shape."""
    app.add_exception_handler(ThreadlineError, _handle)
    app.add_exception_handler(RequestValidationError, _invalid_request)

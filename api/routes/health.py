"""Liveness and readiness probes."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from threadline.core.errors import ThreadlineError
from threadline.memory import migrate

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is alive."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def readyz(request: Request) -> JSONResponse:
    """Ready to serve: database reachable and writable, migrations at head, knowledge index loaded."""
    services = getattr(request.app.state, "services", None)
    checks: dict[str, str] = {}
    if services is None:
        checks["startup"] = "services not started"
    else:
        checks["database"] = _check(services.db.ping)
        checks["database_writable"] = _check(services.db.check_writable)
        checks["migrations"] = _check(lambda: migrate.is_at_head(services.db), "schema is not at the shipped revision")
        checks["knowledge_index"] = "ok" if services.index.ready else "not loaded"
    ok = all(v == "ok" for v in checks.values())
    body = Readiness(status="ready" if ok else "not ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


def _check(probe: Callable[[], object], when_false: str = "failed") -> str:
    """`ok`, or why not: the probe's error, or `when_false` when it answers False. Never raises."""
    try:
        result = probe()
    except ThreadlineError as exc:
        return exc.message
    except Exception as exc:  # a probe must report, never crash the endpoint
        return f"{exc.__class__.__name__}: {exc}"
    return when_false if result is False else "ok"

"""What the server-rendered pages (`/demo`, `/console`, `/dashboard`) share: the templates, the static folder,
the content security policy, and the response that carries it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

HERE = Path(__file__).resolve().parent
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""Scripts, styles and calls from this origin only: each page is one template plus its own static script."""

templates = Jinja2Templates(directory=HERE / "templates")


def render_page(request: Request, template: str, context: dict[str, Any], *, no_store: bool = True) -> HTMLResponse:
    """`template` rendered with `context`, under the pages' CSP and with no referrer; `no_store` keeps signed-in
    pages out of caches."""
    response = templates.TemplateResponse(request, template, context)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Referrer-Policy"] = "no-referrer"
    if no_store:
        response.headers["Cache-Control"] = "no-store"
    return response


def mount_static(app: FastAPI, prefix: str, name: str) -> None:
    """The shared static folder under a page's own prefix (`url_for(name, path=…)` in its template)."""
    app.mount(f"{prefix}/static", StaticFiles(directory=HERE / "static"), name=name)

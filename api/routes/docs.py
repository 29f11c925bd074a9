"""`/docs`: the interactive OpenAPI page (Swagger UI), served with its scripts and styles from this app, so it
works with no network beyond the server. Swagger UI 5.35.0 (Apache-2.0, `swagger-ui-dist`) is vendored under
`static/vendor/swagger-ui` with its licence and notices."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from threadline.api.pages import mount_static

router = APIRouter(include_in_schema=False)
STATIC = "docs-static"
VENDOR = "vendor/swagger-ui"


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui(request: Request) -> HTMLResponse:
    """FastAPI's Swagger UI page, pointed at the vendored assets; the online spec validator is off (it would send
    the description to a third party)."""

    def asset(name: str) -> str:
        return request.url_for(STATIC, path=f"{VENDOR}/{name}").path

    app = request.app
    return get_swagger_ui_html(
        openapi_url=app.openapi_url,
        title=f"{app.title} API",
        swagger_js_url=asset("swagger-ui-bundle.js"),
        swagger_css_url=asset("swagger-ui.css"),
        swagger_favicon_url=asset("favicon-32x32.png"),
        oauth2_redirect_url=None,
        swagger_ui_parameters={"validatorUrl": None},
    )


def install(app: FastAPI) -> None:
    """Serve `/docs` and its static files (the app is built with `docs_url=None`, `redoc_url=None`)."""
    app.include_router(router)
    mount_static(app, "/docs", STATIC)

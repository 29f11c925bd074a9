"""`/dashboard`: the analytics dashboard, for CX, e-commerce, store and marketing leads.

Like the console, the page holds no data: the browser signs in with an admin or qa key (kept in the tab's
`sessionStorage`) and draws every chart from `/v1/analytics…`, so each figure on screen is the API's number. Charts
use Chart.js (MIT), vendored under `static/vendor/chartjs`; no build step, no third-party origin.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse

from threadline.api.pages import mount_static, render_page
from threadline.api.routes.console import CHANNEL_LABELS

router = APIRouter(prefix="/dashboard", include_in_schema=False)
HOURS_LABELS = {"all": "All hours", "business": "Business hours", "after_hours": "After hours"}


@router.get("", response_class=HTMLResponse)
def dashboard_page(request: Request) -> HTMLResponse:
    """The dashboard page; its script reads everything from the keyed analytics API."""
    settings = request.app.state.settings
    config = {
        "storeName": settings.store_name,
        "channels": {**CHANNEL_LABELS, "store": "In store"},
        "hours": HOURS_LABELS,
        "timezone": settings.business_timezone,
        "businessHours": settings.business_hours,
        "api": "/v1/analytics",
    }
    context = {"store_name": settings.store_name, "config": config, "channels": config["channels"]}
    return render_page(request, "dashboard.html", context | {"hours": HOURS_LABELS})


def install(app: FastAPI) -> None:
    """Serve the dashboard page and its static files (the shared assets and the vendored chart library)."""
    app.include_router(router)
    mount_static(app, "/dashboard", "dashboard-static")

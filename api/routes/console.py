"""`/console`: the agent console, a page for the human side of the handoff loop.

Always mounted: the page holds no data of its own. The browser signs in with an agent key (kept in the tab's
`sessionStorage`) and every read and action goes to the keyed API (`/v1/handoffs…`, `/v1/customers…`), so the
console can do exactly what the key may do and nothing more. Live updates poll `GET /v1/handoffs/events?since=`.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse

from threadline.api.pages import mount_static, render_page

POLL_MS = 1500
"""How often the console asks for new handoff events."""
PACKET_FIELDS = (
    "customer",
    "channel",
    "channels_in_episode",
    "intent",
    "goal",
    "tools_called",
    "stall",
    "facts",
    "open_questions",
    "next_steps",
    "priority",
    "sla_due_at",
    "sentiment",
    "articles_cited",
    "pending_action",
    "language",
)
"""The packet fields an agent can mark as missing or wrong when rating a packet."""
CHANNEL_LABELS = {
    "web": "Web chat",
    "sms": "SMS",
    "email": "Email",
    "voice": "Voice",
    "social": "Social",
    "whatsapp": "WhatsApp",
}
router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("", response_class=HTMLResponse)
def console_page(request: Request) -> HTMLResponse:
    """The console page; its script does everything else through the keyed API."""
    settings = request.app.state.settings
    config = {
        "storeName": settings.store_name,
        "channels": CHANNEL_LABELS,
        "packetFields": list(PACKET_FIELDS),
        "pollMs": POLL_MS,
        "api": "/v1",
    }
    context = {"store_name": settings.store_name, "config": config, "packet_fields": PACKET_FIELDS}
    return render_page(request, "console.html", context)


def install(app: FastAPI) -> None:
    """Serve the console page and its static files on `app`."""
    app.include_router(router)
    mount_static(app, "/console", "console-static")

"""`/demo`: a customer chat page for trying cross-channel continuity and escalation in a browser.

Served only when switched on (`THREADLINE_DEMO_PAGE`, which `make run` sets) and, unless
`THREADLINE_DEMO_PAGE_PUBLIC` allows more, only on a loopback address. The page never calls the keyed public API: it
posts to `POST /demo/messages`, which turns a preset identity into an `InboundMessage` server-side. The "signed in"
presets vouch for demo customers without a signature, so the page speaks only as what is fiction: the demo
personas, fictional phone numbers (+1 555 010 0100 to 0199) and visitor ids in its own `demo-page-` namespace, so it
never merges a visitor it did not create. Each browser and each handle is rate-limited like any sender.

What reaches the customer outside a turn — an agent's reply from the console, the desk's notice that the queue is
slow — is read back by `POST /demo/updates`, which the page polls: it names the same presets (and the browser's
own visitor id) as the messages it sent, so it reads only the conversations the page could speak as, never by a
customer id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from threadline.api.deps import ServicesDep
from threadline.api.pages import mount_static, render_page
from threadline.api.routes import MAX_ID
from threadline.core.errors import InvalidInputError
from threadline.core.rate_limits import RateLimiter
from threadline.core.types import Channel, Customer, CustomerId, Direction, InboundMessage
from threadline.demo.loader import read_json
from threadline.memory.identity import classify_handle, normalize_phone
from threadline.product.services import Services

MAX_DEMO_TEXT_CHARS = 1000
DEMO_PHONE = "+1 555 010 0199"  # 555-0100…0199 numbers are reserved for fiction
FICTIONAL_PHONE = re.compile(r"^\+155501001\d\d$")
"""The only numbers the phone preset may text or call from (E.164)."""
VISITOR_NAMESPACE = "demo-page-"
"""Prefix of every visitor id the page speaks as: it can neither become nor merge a real site's visitor."""
DEMO_USERS = ("james_li_5688", "noah_brown_6181", "ivan_santos_6635")
CHANNEL_LABELS = {"web": "Web chat", "sms": "SMS", "email": "Email", "voice": "Voice transcript"}
SUGGESTIONS = {
    "web": ["Where is my order #W2611340?", "What is your return policy?", "I texted you about my order"],
    "sms": ["I'm James Li, my email is james.li4495@example.com", "What did we talk about on the web chat?"],
    "email": ["Can I return an item after 30 days?", "Any update on what I asked?"],
    "voice": ["Any update on what I asked?", "I'd like to speak to a person, please"],
}
_SUBJECT_WORDS = 8
MAX_SPEAKERS = 8
"""The most identities one poll may ask about (the page sends those it spoke as, the current one first)."""
POLL_MS = 2000
"""How often the page asks for what reached the customer between turns."""
_RECENT_MESSAGES = 50
_MERGE_HOPS = 5

DemoChannel = Literal["web", "sms", "email", "voice"]

router = APIRouter(prefix="/demo", include_in_schema=False)


@dataclass(frozen=True)
class Preset:
    """One choice of the identity selector: who the browser speaks as, and on which channels."""

    id: str
    label: str
    channels: tuple[DemoChannel, ...]
    kind: Literal["visitor", "signed_in", "phone", "email"]
    email: str | None = None
    hint: str = ""

    def public(self) -> dict[str, Any]:
        """What the page needs to know about the preset."""
        return {
            "id": self.id,
            "label": self.label,
            "channels": list(self.channels),
            "kind": self.kind,
            "email": self.email,
            "hint": self.hint,
        }


@lru_cache(maxsize=1)
def presets() -> dict[str, Preset]:
    """The identity presets, in selector order."""
    users = read_json("tau_retail", "users.json")
    found: list[Preset] = [
        Preset("visitor", "Anonymous visitor", ("web",), "visitor", hint="A new browser: nobody knows who you are.")
    ]
    for user_id in DEMO_USERS:
        user = users[user_id]
        name = f"{user['name']['first_name']} {user['name']['last_name']}"
        orders = ", ".join(user["orders"][:2])
        hint = f"Orders {orders} · zip {user['address']['zip']} · {user['email']}"
        found.append(Preset(f"signed-in:{user_id}", f"Signed in as {name}", ("web",), "signed_in", user["email"], hint))
    found.append(
        Preset(
            "phone",
            "Texting/calling from a phone",
            ("sms", "voice"),
            "phone",
            hint="An unknown number until you verify with the account's email, or name and zip.",
        )
    )
    for user_id in DEMO_USERS:
        user = users[user_id]
        hint = f"{user['name']['first_name']} {user['name']['last_name']}'s address on file: known, not yet verified."
        label = f"Emailing as {user['email']}"
        found.append(Preset(f"email:{user_id}", label, ("email",), "email", user["email"], hint))
    return {preset.id: preset for preset in found}


class DemoMessageIn(BaseModel):
    """One message typed on the demo page."""

    model_config = ConfigDict(extra="forbid")

    channel: DemoChannel
    identity: str = Field(min_length=1, max_length=64, description="An identity preset id.")
    text: str = Field(min_length=1, max_length=MAX_DEMO_TEXT_CHARS)
    visitor_id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$", description="The id this browser generated.")
    phone: str | None = Field(None, max_length=32)


class ToolChip(BaseModel):
    """A tool the assistant called in the turn."""

    name: str
    args: dict[str, Any]


class DemoReplyOut(BaseModel):
    """The turn's outcome, with what the page shows around it."""

    customer_id: str
    reply: str | None = Field(description="Already rendered for the channel; null when a person owns the case.")
    tools: list[ToolChip]
    owner: str
    handoff_id: str | None
    duplicate: bool = False
    channel: str
    sender: str = Field(description="The handle the message came from.")
    customer_name: str | None = Field(description="Whom the conversation is filed under, when a known customer.")
    subject: str | None = Field(description="Email only: the subject line of the exchange.")
    cursor: int = Field(description="The latest message id of the conversation: poll `/demo/updates` after it.")


class DemoSpeaker(BaseModel):
    """An identity the page spoke as: a preset on a channel (and the number, for the phone preset)."""

    model_config = ConfigDict(extra="forbid")

    channel: DemoChannel
    identity: str = Field(min_length=1, max_length=64, description="An identity preset id.")
    phone: str | None = Field(None, max_length=32)


class DemoUpdatesIn(BaseModel):
    """What the page asks for while it waits: messages to the identities it spoke as, after the last it showed."""

    model_config = ConfigDict(extra="forbid")

    visitor_id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$", description="The id this browser generated.")
    after: int = Field(ge=0, le=MAX_ID, description="The last message id the page has shown or skipped.")
    speakers: list[DemoSpeaker] = Field(min_length=1, max_length=MAX_SPEAKERS, description="The current one first.")


class DemoUpdate(BaseModel):
    """A message the customer received outside a turn of theirs."""

    id: int
    channel: str
    text: str
    author: Literal["agent", "notice"] = Field(description="A person on the support team, or the desk's notice.")
    at: datetime


class DemoUpdatesOut(BaseModel):
    """New messages for the page, and who answers the current identity now."""

    messages: list[DemoUpdate]
    owner: str = Field(description="ai, queue or human: who answers the first speaker's next message.")
    cursor: int = Field(description="Pass as `after` next time.")


def _preset(identity: str) -> Preset:
    preset = presets().get(identity)
    if preset is None:
        raise InvalidInputError(f"unknown identity preset {identity!r}")
    return preset


def _sender(channel: DemoChannel, preset: Preset, visitor_id: str, phone: str | None) -> tuple[str, bool, str | None]:
    """(sender, vouched, previous sender) for the preset on `channel`."""
    if channel not in preset.channels:
        raise InvalidInputError(f"the identity {preset.label!r} cannot send on {CHANNEL_LABELS[channel]}")
    visitor = VISITOR_NAMESPACE + visitor_id
    if preset.kind == "visitor":
        return visitor, False, None
    if preset.kind == "signed_in":
        assert preset.email is not None
        return preset.email, True, visitor
    if preset.kind == "phone":
        phone = normalize_phone(phone or DEMO_PHONE)
        if not FICTIONAL_PHONE.match(phone):
            raise InvalidInputError("the demo page speaks only from fictional numbers, +1 555 010 0100 to 0199")
        return phone, False, None
    assert preset.email is not None
    return preset.email, False, None


def _subject(text: str) -> str:
    words = text.split()
    head = " ".join(words[:_SUBJECT_WORDS])
    return "Re: " + (head if len(words) <= _SUBJECT_WORDS else f"{head}…")


@router.get("", response_class=HTMLResponse)
def page(request: Request) -> HTMLResponse:
    """The chat page."""
    settings = request.app.state.settings
    config = {
        "storeName": settings.store_name,
        "channels": [{"id": key, "label": label} for key, label in CHANNEL_LABELS.items()],
        "presets": [preset.public() for preset in presets().values()],
        "defaultPhone": DEMO_PHONE,
        "maxChars": MAX_DEMO_TEXT_CHARS,
        "suggestions": SUGGESTIONS,
        "endpoint": request.url_for("demo_message").path,
        "updates": request.url_for("demo_updates").path,
        "pollMs": POLL_MS,
        "maxSpeakers": MAX_SPEAKERS,
    }
    context = {"store_name": settings.store_name, "config": config, "channels": CHANNEL_LABELS}
    return render_page(request, "demo.html", context, no_store=False)


@router.post("/messages", response_model=DemoReplyOut, name="demo_message")
def demo_message(body: DemoMessageIn, request: Request, services: ServicesDep) -> DemoReplyOut:
    """Run one turn as the chosen identity, server-side, and return the outcome for the timeline."""
    preset = _preset(body.identity)
    sender, vouched, previous = _sender(body.channel, preset, body.visitor_id, body.phone)
    browsers: RateLimiter = request.app.state.demo_browsers
    browsers.check(request.client.host if request.client else "unknown", "browser")
    message = InboundMessage(
        channel=Channel(body.channel),
        sender=sender,
        text=body.text,
        vouched=vouched,
        previous_sender=previous,
        metadata={"source": "demo-page"},
    )
    outcome = services.turns.handle(services.admit(message))
    customer = services.stores.customers.get(CustomerId(outcome.customer_id))
    return DemoReplyOut(
        customer_id=outcome.customer_id,
        reply=outcome.reply,
        tools=[ToolChip(name=str(t.get("name", "")), args=dict(t.get("args") or {})) for t in outcome.tools],
        owner=outcome.owner,
        handoff_id=outcome.handoff_id,
        duplicate=outcome.duplicate,
        channel=body.channel,
        sender=sender,
        customer_name=customer.display_name if customer and not customer.provisional else None,
        subject=_subject(body.text) if body.channel == "email" else None,
        cursor=_latest_message_id(services, CustomerId(outcome.customer_id)),
    )


def _latest_message_id(services: Services, customer_id: CustomerId) -> int:
    return max((m.id for m in services.stores.messages.for_customer(customer_id, 1)), default=0)


def _spoken_as(services: Services, channel: DemoChannel, sender: str) -> Customer | None:
    """The customer whose conversation a handle is in now (following merges), without creating one."""
    handle_type, handle = classify_handle(Channel(channel), sender)
    identity = services.stores.customers.find_by_handle(handle_type, handle)
    customer = services.stores.customers.get(identity.customer_id) if identity else None
    for _ in range(_MERGE_HOPS):
        if customer is None or customer.merged_into is None:
            break
        customer = services.stores.customers.get(customer.merged_into)
    return customer


@router.post("/updates", response_model=DemoUpdatesOut, name="demo_updates")
def demo_updates(body: DemoUpdatesIn, services: ServicesDep) -> DemoUpdatesOut:
    """Messages the customers the page spoke as received outside their own turns (agent replies, the desk's
    notices) after `after`, and who answers the current speaker now. The speakers are presets, as when sending, so
    a browser reads only conversations it could write in; nothing is created. A turn's own replies are not here:
    the page has them from `POST /demo/messages`."""
    spoken: list[Customer | None] = []
    for speaker in body.speakers:
        sender, _vouched, _previous = _sender(
            speaker.channel, _preset(speaker.identity), body.visitor_id, speaker.phone
        )
        spoken.append(_spoken_as(services, speaker.channel, sender))
    customers = {c.id: c for c in spoken if c is not None}
    found = sorted(
        (
            m
            for customer_id in customers
            for m in services.stores.messages.for_customer(customer_id, _RECENT_MESSAGES)
            if m.id > body.after and m.direction is Direction.OUTBOUND and m.reply_to_id is None
        ),
        key=lambda m: m.id,
    )
    current = spoken[0]
    handoff = services.stores.handoffs.open_for_customer(current.id) if current else None
    return DemoUpdatesOut(
        messages=[
            DemoUpdate(
                id=m.id,
                channel=m.channel.value,
                text=m.text,
                author="agent" if m.metadata.get("agent") else "notice",
                at=m.created_at,
            )
            for m in found
        ],
        owner=handoff.owner if handoff else "ai",
        cursor=max([body.after, *(m.id for m in found)]),
    )


def install(app: FastAPI, messages_per_minute: int) -> None:
    """Serve the demo page, its endpoint and its static files on `app`; each browser (client address) may send
    `messages_per_minute`, like any one sender."""
    app.state.demo_browsers = RateLimiter(messages_per_minute)
    app.include_router(router)
    mount_static(app, "/demo", "demo-static")

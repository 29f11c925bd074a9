"""What agents see of the outbox (`core.delivery`): each delivery as the API shows it, the sentence that tells an agent
what became of their reply, a WhatsApp case's 24-hour window, and how many deliveries of each case failed.

WhatsApp (Cloud API) takes free-form text only within 24 hours of the customer's last message; after that only an
approved template, one per purpose (`THREADLINE_WHATSAPP_TEMPLATES`), and nothing at all without one. A delivery
carries the customer's last message time and the template chosen when it was queued; the sender decides when it
sends, so a reply queued inside the window can still go out as the template.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import or_, select

from threadline.channels.senders.meta import CUSTOMER_SERVICE_WINDOW, whatsapp_window_open
from threadline.conversations.delivery import PROVIDER_FOR_CHANNEL
from threadline.core.delivery import PROBLEM_STATES, Delivery, DeliveryState, Purpose
from threadline.core.types import Channel, Handoff, HandoffEventKind
from threadline.memory.db import Database
from threadline.memory.schema import HandoffEventRow, OutboxRow

SEVERITY = ("dead", "failed", "queued", "sending", "sent", "delivered", "read")
"""What a message's parts add up to, worst first: one part that failed makes the message failed."""
PROVIDER_NAMES = {"twilio": "Twilio", "smtp": "SMTP", "messenger": "Messenger", "whatsapp": "WhatsApp"}
CHANNEL_WORDS = {
    Channel.WEB: "web chat",
    Channel.SMS: "SMS",
    Channel.VOICE: "SMS",  # a caller's follow-up is a text message
    Channel.EMAIL: "email",
    Channel.SOCIAL: "Messenger",
    Channel.STORE: "in store",
    Channel.WHATSAPP: "WhatsApp",
}
NOTHING_APPLIES = "nothing can be sent: the window closed and no template is configured"


class DeliveryOut(BaseModel):
    """One outbound provider message (a part of a logged message) and where it stands."""

    id: int
    message_id: int | None = Field(description="The logged outbound message (the timeline's `message:<id>`).")
    part: int = Field(description="Which part of the message (a long SMS or WhatsApp reply takes several).")
    channel: Channel
    provider: str
    purpose: Purpose
    state: DeliveryState = Field(description="queued, sending, sent, delivered, failed or dead (`read_at` says read).")
    attempts: int
    last_error: str | None = Field(description="The provider's or the network's last refusal, as recorded.")
    next_attempt_at: datetime
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    history: list[dict[str, Any]] = Field(description="Every state change: `{state, at, source, detail}`.")


class WhatsAppWindow(BaseModel):
    """What an agent's reply on WhatsApp can be now."""

    open: bool = Field(description="Free-form text may still go to the customer.")
    closes_at: datetime | None = Field(description="24 hours after the customer's last WhatsApp message.")
    last_inbound_at: datetime | None
    template: str | None = Field(description="The approved template for agent replies outside the window, if any.")
    applies: str = Field(
        description="`free-form text`, `template <name>`, or `nothing can be sent: the window closed and no template "
        "is configured`."
    )


def delivery_out(delivery: Delivery) -> DeliveryOut:
    """A delivery as the API shows it (no recipient, body or payload: the timeline has the text)."""
    return DeliveryOut.model_validate(delivery.model_dump(include=set(DeliveryOut.model_fields)))


def shown_state(delivery: Delivery) -> str:
    """The state an agent sees: `read` is a delivered message the provider reported read."""
    if delivery.state is DeliveryState.DELIVERED and delivery.read_at is not None:
        return "read"
    return delivery.state.value


def overall_state(deliveries: Iterable[Delivery]) -> str | None:
    """The worst state across a message's parts (dead, failed, queued, sending, sent, delivered, read); None when
    nothing was queued for it."""
    states = [shown_state(d) for d in deliveries]
    return min(states, key=SEVERITY.index) if states else None


def _last_inbound_at(delivery: Delivery) -> datetime | None:
    value = delivery.payload.get("last_inbound_at")
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _template_name(delivery: Delivery) -> str | None:
    template = delivery.payload.get("template")
    name = template.get("name") if isinstance(template, dict) else None
    return str(name) if name else None


def reply_delivery(channel: Channel, provider: str | None, deliveries: Sequence[Delivery], *, now: datetime) -> str:
    """A sentence for the agent on what became of a reply on `channel`: `provider` is the configured sender of the
    channel (None when there is none) and `deliveries` what was queued for the reply."""
    words = CHANNEL_WORDS.get(channel, channel.value)
    if channel not in PROVIDER_FOR_CHANNEL:
        return "Shown in the customer's web chat" if channel is Channel.WEB else f"Shown {words}: nothing is sent"
    if provider is None:
        return f"Not sent: no {words} provider is configured; the customer sees it only on web chat"
    if not deliveries:
        return f"Not sent: the customer never wrote on {words}, so there is no address to send it to"
    name = PROVIDER_NAMES.get(provider, provider)
    through = name if name == words else f"{name} ({words})"
    state = overall_state(deliveries)
    worst = next(d for d in deliveries if shown_state(d) == state)
    if state == DeliveryState.DEAD:
        return f"Not sent through {through} after {worst.attempts} attempts: {worst.last_error or 'no answer'}"
    if state == DeliveryState.FAILED:
        return f"Not delivered: {through} refused it: {worst.last_error or 'no reason given'}"
    waiting = state in (DeliveryState.QUEUED, DeliveryState.SENDING)
    if channel is Channel.WHATSAPP and waiting and not whatsapp_window_open(_last_inbound_at(worst), now):
        template = _template_name(worst)
        if template is None:
            return "Not sent: the customer's 24-hour WhatsApp window closed and no template is configured"
        return f"Queued for WhatsApp as the template {template}: the customer's 24-hour window closed"
    parts = f" in {len(deliveries)} parts" if len(deliveries) > 1 else ""
    if state == DeliveryState.QUEUED:
        return f"Queued for {through}{parts}"
    if state == DeliveryState.SENDING:
        return f"Sending through {through}{parts}"
    if state == "read":
        return f"Read by the customer: delivered through {through}"
    return f"{str(state).capitalize()} through {through}{parts}"


def whatsapp_window(last_inbound_at: datetime | None, template: str | None, *, now: datetime) -> WhatsAppWindow:
    """The 24-hour window after the customer's last WhatsApp message at `last_inbound_at`, and what a reply can be."""
    is_open = whatsapp_window_open(last_inbound_at, now)
    applies = "free-form text" if is_open else f"template {template}" if template else NOTHING_APPLIES
    return WhatsAppWindow(
        open=is_open,
        closes_at=last_inbound_at + CUSTOMER_SERVICE_WINDOW if last_inbound_at else None,
        last_inbound_at=last_inbound_at,
        template=template,
        applies=applies,
    )


def delivery_problems(db: Database, handoffs: Sequence[Handoff]) -> dict[str, int]:
    """Per case, the customer's failed or dead deliveries created since the case opened, and those that raised it
    or were recorded on it (a delivery queued before the case that failed after): two queries for any number of
    cases."""
    if not handoffs:
        return {}
    recorded: dict[str, set[int]] = {}
    events = select(HandoffEventRow.handoff_id, HandoffEventRow.payload).where(
        HandoffEventRow.handoff_id.in_([h.id for h in handoffs]),
        HandoffEventRow.kind == HandoffEventKind.DELIVERY_FAILED.value,
    )
    for event in db.all(events):
        delivery_id = (event.payload or {}).get("delivery_id")
        if isinstance(delivery_id, int):
            recorded.setdefault(event.handoff_id, set()).add(delivery_id)
    # A case raised by a delivery opens just after that delivery failed: it is counted through its event.
    opened = OutboxRow.created_at >= min(h.created_at for h in handoffs)
    known = set().union(*recorded.values())
    problems = select(OutboxRow.id, OutboxRow.customer_id, OutboxRow.created_at).where(
        OutboxRow.customer_id.in_({h.customer_id for h in handoffs}),
        OutboxRow.state.in_([s.value for s in PROBLEM_STATES]),
        or_(opened, OutboxRow.id.in_(known)) if known else opened,
    )
    by_customer: dict[str, list[Any]] = {}
    for row in db.all(problems):
        by_customer.setdefault(row.customer_id, []).append(row)
    return {
        h.id: sum(
            1
            for row in by_customer.get(h.customer_id, [])
            if row.created_at >= h.created_at or row.id in recorded.get(h.id, ())
        )
        for h in handoffs
    }

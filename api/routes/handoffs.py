"""`/v1/handoffs…`: the human-agent loop. Agents list and open handed-off cases, claim them, reply to the customer
(on the customer's current channel), release them back to the AI with a note or resolve them, and rate the packet;
a console follows everything live through `/v1/handoffs/events` (server-sent events, or polling with `since`).

Ownership: `ai` → `queue` (queued, or timed out: the customer was told) → `human` (claimed) → `ai` (released) or
closed (resolved). While the queue or a human owns the case the AI answers nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from threadline.api.auth import roles_dependency
from threadline.api.deliveries import (
    DeliveryOut,
    WhatsAppWindow,
    delivery_out,
    delivery_problems,
    reply_delivery,
    whatsapp_window,
)
from threadline.api.deps import ServicesDep
from threadline.api.errors import ErrorOut
from threadline.api.routes import MAX_ID
from threadline.conversations.delivery import RECENT_MESSAGES, current_channel, latest_inbound
from threadline.conversations.desk import MAX_TEXT_CHARS
from threadline.core.auth import Principal, Role
from threadline.core.delivery import Purpose
from threadline.core.errors import NotFoundError
from threadline.core.handoff import HandoffPacket
from threadline.core.order_actions import ActionRecord, OrderAction
from threadline.core.types import Channel, Handoff, HandoffEvent, HandoffId, HandoffStatus
from threadline.product.services import Services

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut, "description": "No such handoff (not_found)."}}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ErrorOut,
        "description": "The case is claimed by another agent, or its status does not allow this (conflict).",
    }
}
POLL_S = 0.5
"""How often an open event stream looks for new events."""

schema_router = APIRouter(
    prefix="/v1/handoffs", tags=["handoffs"], dependencies=[roles_dependency(Role.AGENT, Role.ADMIN, Role.QA)]
)
agent_router = APIRouter(
    prefix="/v1/handoffs", tags=["handoffs"], dependencies=[roles_dependency(Role.AGENT, Role.ADMIN)]
)
router = APIRouter()
"""Both routers, the published schema first so `/schema` and `/events` never read as a handoff id."""


def _agent(request: Request) -> str:
    """The acting agent: the name of the API key the request was authenticated with."""
    principal = getattr(request.state, "principal", None)
    assert isinstance(principal, Principal)
    return principal.name


AgentDep = Annotated[str, Depends(_agent)]


class HandoffOut(BaseModel):
    """A handed-off case, as the agent console shows it."""

    id: str
    customer_id: str
    status: HandoffStatus
    owner: str = Field(description="Who answers the customer now: queue, human, or ai (released or resolved).")
    priority: str
    channel: str | None = Field(description="The customer's channel when the case was escalated (the packet's).")
    waiting_s: float = Field(description="Seconds the case waited for an agent (until claimed, closed, or now).")
    sla_due_at: datetime | None
    assigned_agent: str | None
    rating: int | None = Field(description="The packet's usefulness (1 to 5) as rated by the agent.")
    created_at: datetime
    claimed_at: datetime | None
    resolved_at: datetime | None
    packet_version: str
    packet: dict[str, Any] = Field(description="The handoff packet; see `GET /v1/handoffs/schema`.")
    delivery_problems: int = Field(
        0,
        description="The customer's messages that failed or died in the outbox since the case opened (and the one "
        "that raised it): a person must reach the customer another way.",
    )


class HandoffDetail(HandoffOut):
    """A case with everything that happened to it since it was handed off."""

    events: list[HandoffEvent]


class ReplyIn(BaseModel):
    """The agent's message to the customer."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)


class ReplyOut(BaseModel):
    """The agent's message as logged for delivery on the customer's current channel."""

    message_id: int
    customer_id: str
    channel: Channel
    text: str = Field(description="The text as the channel carries it (an SMS is fitted to two segments).")
    created_at: datetime
    deliveries: list[DeliveryOut] = Field(
        default_factory=list, description="What was queued for the channel's provider (none for web chat)."
    )
    delivery: str = Field(
        "",
        description="What became of the reply, for the agent: 'Queued for Twilio (SMS)', 'Queued for WhatsApp as the "
        "template support_followup: the customer's 24-hour window closed', 'Not sent: no SMS provider is "
        "configured; …'.",
    )


class CaseDeliveries(BaseModel):
    """The outbox rows of a case's customer, and the WhatsApp window when the reply goes on WhatsApp."""

    deliveries: list[DeliveryOut] = Field(description="The customer's latest deliveries, oldest first.")
    window: WhatsAppWindow | None = Field(
        description="When the customer's current channel is WhatsApp: whether free text may still go, or which "
        "template a reply becomes; null otherwise."
    )


class ReleaseIn(BaseModel):
    """Hand the case back to the AI; the note joins the conversation for the AI's next turn (never shown to the
    customer)."""

    model_config = ConfigDict(extra="forbid")

    note: str = Field("", max_length=2000)


class RateIn(BaseModel):
    """How useful the handoff packet was, and which of its fields were missing or wrong."""

    model_config = ConfigDict(extra="forbid")

    usefulness: int = Field(ge=1, le=5)
    missing: list[str] = Field(default_factory=list, max_length=50)
    wrong: list[str] = Field(default_factory=list, max_length=50)


def _out(handoff: Handoff, problems: int = 0) -> HandoffOut:
    until = handoff.claimed_at or handoff.resolved_at or datetime.now(UTC)
    return HandoffOut(
        id=handoff.id,
        customer_id=handoff.customer_id,
        status=handoff.status,
        owner=handoff.owner,
        priority=handoff.priority,
        channel=handoff.packet.get("channel"),
        waiting_s=max(0.0, (until - handoff.created_at).total_seconds()),
        sla_due_at=handoff.sla_due_at,
        assigned_agent=handoff.assigned_agent,
        rating=handoff.rating,
        created_at=handoff.created_at,
        claimed_at=handoff.claimed_at,
        resolved_at=handoff.resolved_at,
        packet_version=handoff.packet_version,
        packet=handoff.packet,
        delivery_problems=problems,
    )


def _with_problems(services: Services, handoff: Handoff) -> HandoffOut:
    return _out(handoff, delivery_problems(services.db, [handoff]).get(handoff.id, 0))


@schema_router.get("/schema", response_model=dict[str, Any])
def packet_schema() -> dict[str, Any]:
    """The handoff packet's published JSON schema (what `packet` holds on every case)."""
    return HandoffPacket.model_json_schema()


EVENTS_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "With `Accept: text/event-stream`: server-sent events, one per handoff event (`id` is the "
        "event id, `event` its kind: created, claimed, customer_message, agent_reply, released, resolved, rated, "
        "timed_out, order_action, delivery_failed; `data` the HandoffEvent), for `stream_s` seconds, after which the "
        "client reconnects with `Last-Event-ID`. Otherwise (polling) the JSON list of events after `since`.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


def _sse(event: HandoffEvent) -> str:
    return f"id: {event.id}\nevent: {event.kind.value}\ndata: {json.dumps(event.model_dump(mode='json'))}\n\n"


@agent_router.get("/events", response_model=list[HandoffEvent], responses=EVENTS_DOC)
async def handoff_events(
    request: Request,
    services: ServicesDep,
    since: Annotated[
        int | None, Query(ge=0, le=MAX_ID, description="Events after this event id (default: from now).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    stream_s: Annotated[float, Query(ge=0, le=3600, description="Seconds an event stream stays open.")] = 300,
    accept: Annotated[str | None, Header()] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> Any:
    """Live updates for the agent console: new handoffs, status changes, customer messages on handed-off cases and
    agent replies. Streams server-sent events when asked for `text/event-stream`; otherwise answers the events
    after `since` at once (the polling fallback: pass the last id seen as `since` next time)."""
    store = services.stores.handoffs
    if last_event_id and last_event_id.strip().isdigit() and int(last_event_id.strip()) <= MAX_ID:
        since = int(last_event_id.strip())
    if "text/event-stream" not in (accept or ""):
        return await run_in_threadpool(store.events_since, since or 0, limit)
    start = since if since is not None else await run_in_threadpool(store.last_event_id)

    async def stream() -> AsyncIterator[str]:
        after, deadline = start, time.monotonic() + stream_s
        yield ": handoff events\n\n"
        while True:
            for event in await run_in_threadpool(store.events_since, after, limit):
                after = event.id
                yield _sse(event)
            if time.monotonic() >= deadline or await request.is_disconnected():
                return
            await asyncio.sleep(POLL_S)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@agent_router.get("", response_model=list[HandoffOut])
def list_handoffs(
    services: ServicesDep,
    status: Annotated[list[HandoffStatus] | None, Query(description="One or more statuses (default: all).")] = None,
    priority: str | None = None,
    channel: Annotated[Channel | None, Query(description="The packet's channel.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[HandoffOut]:
    """Handed-off cases: those with a delivery problem first (a message to the customer failed), then oldest first.
    Cases queued past the queue timeout become `timed_out` first (and their customers are told), so the list never
    shows a silent overdue case."""
    services.desk.time_out_overdue()
    found = services.stores.handoffs.list(
        status or None, limit, priority=priority, channel=channel.value if channel else None
    )
    problems = delivery_problems(services.db, found)
    listed = [_out(h, problems.get(h.id, 0)) for h in found]
    return sorted(listed, key=lambda h: h.delivery_problems == 0)


@agent_router.get("/{handoff_id}", response_model=HandoffDetail, responses=NOT_FOUND)
def get_handoff(handoff_id: str, services: ServicesDep) -> HandoffDetail:
    """One case: its packet, status and owner, and every event since it was handed off."""
    handoff = services.stores.handoffs.get(HandoffId(handoff_id))
    if handoff is None:
        raise NotFoundError(f"handoff {handoff_id} not found")
    events = services.stores.handoffs.events(handoff.id)
    return HandoffDetail(**_with_problems(services, handoff).model_dump(), events=events)


@agent_router.get("/{handoff_id}/deliveries", response_model=CaseDeliveries, responses=NOT_FOUND)
def case_deliveries(handoff_id: str, services: ServicesDep) -> CaseDeliveries:
    """The customer's outbound provider messages (newest last) with their delivery state, attempts, last error and
    history; and, when the customer's current channel is WhatsApp, its 24-hour window: free-form text while it is
    open, the agent-reply template after it closes, nothing when no template is configured."""
    handoff = services.stores.handoffs.get(HandoffId(handoff_id))
    if handoff is None:
        raise NotFoundError(f"handoff {handoff_id} not found")
    deliveries = services.stores.outbox.for_customer(handoff.customer_id)
    window = None
    recent = services.stores.messages.for_customer(handoff.customer_id, limit=RECENT_MESSAGES)
    if current_channel(handoff, recent) is Channel.WHATSAPP:
        latest = latest_inbound(recent, Channel.WHATSAPP)
        template = services.deliveries.template(Purpose.AGENT_REPLY)
        window = whatsapp_window(
            latest.created_at if latest else None,
            str(template["name"]) if template else None,
            now=datetime.now(UTC),
        )
    return CaseDeliveries(deliveries=[delivery_out(d) for d in deliveries], window=window)


@agent_router.post("/{handoff_id}/claim", response_model=HandoffOut, responses={**NOT_FOUND, **CONFLICT})
def claim(handoff_id: str, services: ServicesDep, agent: AgentDep) -> HandoffOut:
    """Take a queued (or timed-out) case: the customer now talks to you. Claiming your own case again is a no-op;
    a case another agent holds is a 409."""
    return _with_problems(services, services.desk.claim(HandoffId(handoff_id), agent))


@agent_router.post("/{handoff_id}/reply", response_model=ReplyOut, responses={**NOT_FOUND, **CONFLICT})
def reply(
    handoff_id: str,
    body: ReplyIn,
    services: ServicesDep,
    agent: AgentDep,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=64)] = None,
) -> ReplyOut:
    """Send the customer a message on the channel they wrote on last, rendered for it. Only the agent who
    claimed the case may reply. The message is logged and queued in the outbox for the channel's provider:
    `deliveries` are the queued rows and `delivery` says in a sentence what becomes of the message. Send an
    `Idempotency-Key` so a retried request (a double click) returns the first message and sends nothing more."""
    logged = services.desk.agent_reply(HandoffId(handoff_id), agent, body.text, idempotency_key)
    queued = services.deliveries.queued_for(logged.id)
    provider = services.deliveries.provider_for(logged.channel)
    return ReplyOut(
        message_id=logged.id,
        customer_id=logged.customer_id,
        channel=logged.channel,
        text=logged.text,
        created_at=logged.created_at,
        deliveries=[delivery_out(d) for d in queued],
        delivery=reply_delivery(logged.channel, provider, queued, now=datetime.now(UTC)),
    )


@agent_router.post("/{handoff_id}/actions", response_model=ActionRecord, responses={**NOT_FOUND, **CONFLICT})
def order_action(
    handoff_id: str,
    body: Annotated[OrderAction, Body()],
    services: ServicesDep,
    agent: AgentDep,
    idempotency_key: Annotated[str | None, Header(max_length=64)] = None,
) -> ActionRecord:
    """Run an order action for the case's customer (cancel, modify, return, exchange, change the default
    address): the same store policy and audit as the AI's, without the customer's yes (you are the person in the
    loop). Only the agent who claimed the case may act. The answer is the audit record: `outcome` is `done`, or
    `refused` with the reason in `detail.message`. Send an `Idempotency-Key` so a retried request runs it once."""
    key = idempotency_key or uuid.uuid4().hex
    return services.desk.agent_action(HandoffId(handoff_id), agent, body, key)


@agent_router.post("/{handoff_id}/release", response_model=HandoffOut, responses={**NOT_FOUND, **CONFLICT})
def release(handoff_id: str, body: ReleaseIn, services: ServicesDep, agent: AgentDep) -> HandoffOut:
    """Give the case back to the AI; your note is in its context from its next turn."""
    return _with_problems(services, services.desk.release(HandoffId(handoff_id), agent, body.note))


@agent_router.post("/{handoff_id}/resolve", response_model=HandoffOut, responses={**NOT_FOUND, **CONFLICT})
def resolve(handoff_id: str, services: ServicesDep, agent: AgentDep) -> HandoffOut:
    """Close the case and the customer's current episode."""
    return _with_problems(services, services.desk.resolve(HandoffId(handoff_id), agent))


@agent_router.post("/{handoff_id}/rate", response_model=HandoffOut, responses=NOT_FOUND)
def rate(handoff_id: str, body: RateIn, services: ServicesDep, agent: AgentDep) -> HandoffOut:
    """Rate the handoff packet (usefulness 1 to 5; which fields were missing or wrong), for escalation-quality
    analytics."""
    rated = services.desk.rate(HandoffId(handoff_id), agent, body.usefulness, body.missing, body.wrong)
    return _with_problems(services, rated)


router.include_router(schema_router)
router.include_router(agent_router)

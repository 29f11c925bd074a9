"""`POST /v1/events`: commerce events in (page views with UTM and referrer, add-to-cart, online and in-store
purchases, store visits), each keyed by any identity handle and resolved to a customer (a new provisional customer
for a handle never seen, who joins the real one when the handle is later verified or merged). They go to the
append-only analytics event log, where journeys and attribution read them."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from threadline.api.auth import roles_dependency
from threadline.api.deps import ServicesDep
from threadline.api.routes import plausible_time
from threadline.core.auth import Role
from threadline.core.errors import InvalidInputError
from threadline.core.types import Channel, CustomerId, EventType, HandleType, NewEvent, VerificationLevel
from threadline.memory.identity import normalize_phone
from threadline.memory.stores import Stores

router = APIRouter(prefix="/v1", tags=["analytics"], dependencies=[roles_dependency(Role.CHANNEL, Role.ADMIN)])
MAX_EVENTS = 500
"""Events one request may carry."""
ACTOR = "events"
CommerceType = Literal["page_view", "add_to_cart", "purchase_online", "purchase_in_store", "store_visit"]
IN_STORE = frozenset({EventType.PURCHASE_IN_STORE, EventType.STORE_VISIT})
"""Commerce events that happen in a store (channel `store`); the others happen on the website (`web`)."""
AMOUNT_TYPES = frozenset({EventType.PURCHASE_ONLINE, EventType.PURCHASE_IN_STORE, EventType.ADD_TO_CART})


class HandleIn(BaseModel):
    """Any handle the customer is known by: a visitor id, phone, email, social id, loyalty id or external id."""

    model_config = ConfigDict(extra="forbid")

    type: HandleType
    value: str = Field(min_length=1, max_length=320)


class EventIn(BaseModel):
    """One commerce event."""

    model_config = ConfigDict(extra="forbid")

    type: CommerceType
    handle: HandleIn
    occurred_at: AwareDatetime | None = Field(None, description="When it happened (default: when received).")
    properties: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict,
        description="page_view: url, referrer, utm_source, utm_medium, utm_campaign; add_to_cart: sku, quantity, "
        "amount; purchase_online: order_id, amount, currency; purchase_in_store: order_id, store_id, amount, "
        "currency; store_visit: store_id.",
    )

    @field_validator("properties")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > 20 or any(len(k) > 64 or (isinstance(v, str) and len(v) > 2000) for k, v in value.items()):
            raise ValueError("at most 20 properties, names up to 64 and text up to 2000 characters")
        if any(isinstance(v, float) and not math.isfinite(v) for v in value.values()):
            raise ValueError("numbers must be finite (no NaN or Infinity)")
        return value

    _plausible = field_validator("occurred_at")(plausible_time)


class EventsIn(BaseModel):
    """A batch of commerce events."""

    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(min_length=1, max_length=MAX_EVENTS)


class EventOut(BaseModel):
    """An event as logged."""

    id: int
    type: str
    customer_id: str | None
    channel: str | None
    occurred_at: datetime


class EventsOut(BaseModel):
    accepted: int
    events: list[EventOut]


def _normal(handle: HandleIn) -> str:
    value = handle.value.strip()
    if handle.type is HandleType.PHONE:
        return normalize_phone(value)
    return value.lower() if handle.type is HandleType.EMAIL else value


def _customer(stores: Stores, handle_type: HandleType, value: str) -> CustomerId:
    """The customer behind a normalised handle; a provisional one for a handle never seen."""
    identity = stores.customers.find_by_handle(handle_type, value)
    if identity is not None:
        return identity.customer_id
    _customer, identity, _created = stores.customers.create_for_handle(
        handle_type, value, VerificationLevel.ANONYMOUS, actor=ACTOR
    )
    return identity.customer_id


def _check(event: EventIn) -> None:
    amount = event.properties.get("amount")
    if EventType(event.type) not in AMOUNT_TYPES or amount is None:
        return
    if isinstance(amount, bool) or not isinstance(amount, int | float) or not math.isfinite(amount) or amount < 0:
        raise InvalidInputError(f"{event.type}: amount must be a number of at least 0")


def record(stores: Stores, batch: EventsIn) -> list[EventOut]:
    """Check the whole batch, resolve each event's handle, then append every event in one transaction: a batch
    with one bad event logs nothing."""
    for event in batch.events:
        _check(event)
    # A handle that is not one (a phone with letters) fails here, before any write.
    handles = [(event.handle.type, _normal(event.handle)) for event in batch.events]
    customers = {handle: _customer(stores, *handle) for handle in dict.fromkeys(handles)}
    now = datetime.now(UTC)
    events = [
        NewEvent(
            type=EventType(event.type),
            customer_id=customers[handle],
            channel=(Channel.STORE if EventType(event.type) in IN_STORE else Channel.WEB).value,
            payload=dict(event.properties),
            occurred_at=event.occurred_at or now,
        )
        for event, handle in zip(batch.events, handles, strict=True)
    ]
    return [EventOut.model_validate(e.model_dump()) for e in stores.events.append_many(events)]


@router.post("/events", response_model=EventsOut)
async def post_events(body: EventsIn, services: ServicesDep) -> EventsOut:
    """Log commerce events for journeys and attribution. Website events (page_view, add_to_cart, purchase_online)
    are on channel `web`, store events (purchase_in_store, store_visit) on `store`. A purchase's `amount` is what
    attribution credits. Keys: channel, admin."""
    logged = await run_in_threadpool(record, services.stores, body)
    return EventsOut(accepted=len(logged), events=logged)

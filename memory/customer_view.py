"""Customer 360: one customer's profile, identities, orders, episodes and cross-channel timeline, for agents
and admins (never for the customer's own conversation, which goes through the disclosure matrix)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select

from threadline.core.errors import NotFoundError
from threadline.core.ports import OrderSystem
from threadline.core.standing import LIFETIME_ORDERS, lifetime_value
from threadline.core.types import ChannelIdentity, Customer, CustomerId, Episode, HandleType
from threadline.memory.db import Database
from threadline.memory.schema import (
    AnalyticsEventRow,
    ChannelIdentityRow,
    CustomerRow,
    EpisodeRow,
    HandoffRow,
    IdentityEventRow,
    MessageRow,
)

# "email beats phone": when handles point at different customers, the first kind here decides.
HANDLE_PRECEDENCE = (
    HandleType.EXTERNAL,
    HandleType.LOYALTY,
    HandleType.EMAIL,
    HandleType.PHONE,
    HandleType.SOCIAL,
    HandleType.VISITOR,
)


class OrderLineGlance(BaseModel):
    """One item of an order, as an agent picks it for a return or an exchange."""

    item_id: str
    name: str
    options: dict[str, str]
    price: str


class OrderGlance(BaseModel):
    """One order in a line, with its items and the payment method it was paid with."""

    id: str
    status: str
    total: str
    items: int
    placed_at: datetime | None = None
    lines: list[OrderLineGlance] = Field(default_factory=list)
    paid_with: str | None = None


class HandoffGlance(BaseModel):
    """One handoff in a line."""

    id: str
    status: str
    priority: str
    created_at: datetime


class CustomerProfile(BaseModel):
    """Everything an agent needs at a glance."""

    customer: Customer
    identities: list[ChannelIdentity]
    orders: list[OrderGlance]
    lifetime_value: str
    episodes: list[Episode]
    handoffs: list[HandoffGlance]
    payment_methods: dict[str, str] = Field(default_factory=dict)
    """The customer's payment methods by id: kind, and a gift card's balance (for refunds and differences)."""
    merged_into: CustomerId | None = None
    merged_from: list[CustomerId] = Field(default_factory=list)


class TimelineEntry(BaseModel):
    """One thing that happened to a customer: a message, an identity change, a handoff or an event."""

    at: datetime
    kind: str = Field(description="message, identity, handoff or event")
    channel: str | None = None
    direction: str | None = None
    text: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
    ref: str = Field(description="The row this entry comes from, e.g. message:42.")
    delivery: str | None = Field(
        None,
        description="An outbound message's delivery through its provider, the worst across its parts: dead, failed, "
        "queued, sending, sent, delivered or read (null when nothing was queued for it, as on web chat).",
    )


def find_customer(db: Database, handles: dict[HandleType, str]) -> Customer | None:
    """The customer the given (normalized) handles identify: an exact handle match wins, by the precedence
    above (email beats phone); an email also matches the address on a customer's profile."""
    with db.session() as s:
        for handle_type in HANDLE_PRECEDENCE:
            value = handles.get(handle_type)
            if not value:
                continue
            row = s.scalar(
                select(CustomerRow)
                .join(ChannelIdentityRow, ChannelIdentityRow.customer_id == CustomerRow.id)
                .where(
                    ChannelIdentityRow.handle_type == handle_type.value,
                    ChannelIdentityRow.handle_value == value,
                    ChannelIdentityRow.active.is_(True),
                )
            )
            if row is None and handle_type is HandleType.EMAIL:
                row = s.scalar(
                    select(CustomerRow).where(CustomerRow.email == value, CustomerRow.provisional.is_(False))
                )
            if row is None and handle_type is HandleType.EXTERNAL:
                row = s.scalar(select(CustomerRow).where(CustomerRow.external_id == value))
            if row is not None:
                return Customer.model_validate(row)
    return None


def profile(db: Database, orders: OrderSystem, customer_id: CustomerId, *, episodes: int = 20) -> CustomerProfile:
    """The customer 360 view (orders come from the order system, wherever it lives)."""
    with db.session() as s:
        row = s.get(CustomerRow, customer_id)
        if row is None:
            raise NotFoundError(f"no customer {customer_id}")
        orders_on_file = orders.orders_for_customer(customer_id, limit=LIFETIME_ORDERS)
        identities = s.scalars(
            select(ChannelIdentityRow)
            .where(ChannelIdentityRow.customer_id == customer_id, ChannelIdentityRow.active.is_(True))
            .order_by(ChannelIdentityRow.id)
        )
        episode_rows = s.scalars(
            select(EpisodeRow)
            .where(EpisodeRow.customer_id == customer_id)
            .order_by(EpisodeRow.updated_at.desc())
            .limit(episodes)
        )
        handoffs = s.scalars(
            select(HandoffRow).where(HandoffRow.customer_id == customer_id).order_by(HandoffRow.created_at.desc())
        )
        merged_from = s.scalars(select(CustomerRow.id).where(CustomerRow.merged_into == customer_id))
        return CustomerProfile(
            customer=Customer.model_validate(row),
            identities=[ChannelIdentity.model_validate(i) for i in identities],
            orders=[
                OrderGlance(
                    id=o.id,
                    status=o.status.value,
                    total=str(o.total),
                    items=len(o.items),
                    placed_at=o.placed_at,
                    lines=[
                        OrderLineGlance(item_id=i.item_id, name=i.name, options=i.options, price=str(i.price))
                        for i in o.items
                    ],
                    paid_with=o.payments[0].payment_method_id if o.payments else None,
                )
                for o in orders_on_file
            ],
            payment_methods={key: _method_words(m) for key, m in orders.payment_methods(customer_id).items()},
            lifetime_value=str(lifetime_value(orders_on_file)),
            episodes=[Episode.model_validate(e) for e in episode_rows],
            handoffs=[
                HandoffGlance(id=h.id, status=h.status, priority=h.priority, created_at=h.created_at) for h in handoffs
            ],
            merged_into=CustomerId(row.merged_into) if row.merged_into else None,
            merged_from=[CustomerId(c) for c in merged_from],
        )


def timeline(
    db: Database, customer_id: CustomerId, *, limit: int = 200, before: datetime | None = None
) -> list[TimelineEntry]:
    """Every message and event of the customer across channels, oldest first (the `limit` most recent
    before `before`)."""
    entries: list[TimelineEntry] = []
    with db.session() as s:
        if s.get(CustomerRow, customer_id) is None:
            raise NotFoundError(f"no customer {customer_id}")

        def recent(table: Any, at: Any, *where: Any) -> Any:
            query = select(table).where(*where)
            if before is not None:
                query = query.where(at < before)
            return s.scalars(query.order_by(at.desc()).limit(limit))

        for m in recent(MessageRow, MessageRow.created_at, MessageRow.customer_id == customer_id):
            entries.append(
                TimelineEntry(
                    at=m.created_at,
                    kind="message",
                    channel=m.channel,
                    direction=m.direction,
                    text=m.text,
                    detail={"sender": m.sender, "reply_to": m.reply_to_id},
                    ref=f"message:{m.id}",
                )
            )
        involved = (IdentityEventRow.customer_id == customer_id) | (IdentityEventRow.other_customer_id == customer_id)
        for e in recent(IdentityEventRow, IdentityEventRow.created_at, involved):
            detail = {"kind": e.kind, "actor": e.actor, "customer": e.customer_id, "other": e.other_customer_id}
            detail |= {k: v for k, v in e.detail.items() if k in ("handle_type", "level", "reason")}
            entries.append(TimelineEntry(at=e.created_at, kind="identity", detail=detail, ref=f"identity_event:{e.id}"))
        for h in recent(HandoffRow, HandoffRow.created_at, HandoffRow.customer_id == customer_id):
            detail = {"status": h.status, "priority": h.priority}
            entries.append(TimelineEntry(at=h.created_at, kind="handoff", detail=detail, ref=f"handoff:{h.id}"))
        for a in recent(AnalyticsEventRow, AnalyticsEventRow.occurred_at, AnalyticsEventRow.customer_id == customer_id):
            entries.append(
                TimelineEntry(
                    at=a.occurred_at,
                    kind="event",
                    channel=a.channel,
                    detail={"type": a.type, **(a.payload or {})},
                    ref=f"event:{a.id}",
                )
            )
    entries.sort(key=lambda e: (e.at, e.ref))
    return entries[-limit:]


def _method_words(method: dict[str, Any]) -> str:
    """A payment method in a few words for staff: "gift card ($36.00 left)", "visa …1234", "paypal"."""
    source = str(method.get("source", "payment method")).replace("_", " ")
    if method.get("source") == "gift_card":
        return f"{source} (${float(method.get('balance', 0)):,.2f} left)"
    if method.get("last_four"):
        return f"{method.get('brand', source)} …{method['last_four']}"
    return source

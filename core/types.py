"""Domain types shared by every layer: ids, enumerations and read models of the domain store."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, NewType

from pydantic import BaseModel, ConfigDict, Field, model_validator

CustomerId = NewType("CustomerId", str)
OrderId = NewType("OrderId", str)
ProductId = NewType("ProductId", str)
ItemId = NewType("ItemId", str)
EpisodeId = NewType("EpisodeId", str)
HandoffId = NewType("HandoffId", str)
ArticleId = NewType("ArticleId", str)


class Channel(StrEnum):
    """Where a message came from or goes to."""

    WEB = "web"
    SMS = "sms"
    VOICE = "voice"
    EMAIL = "email"
    SOCIAL = "social"
    STORE = "store"
    WHATSAPP = "whatsapp"


class Direction(StrEnum):
    """Whether a logged message came from the customer or went to them."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


class HandleType(StrEnum):
    """Kinds of channel identity a customer can be known by."""

    VISITOR = "visitor"
    PHONE = "phone"
    EMAIL = "email"
    SOCIAL = "social"
    WHATSAPP = "whatsapp"
    """A WhatsApp business-scoped user id (`US.13491208655302741918`): a user who hides their phone number."""
    LOYALTY = "loyalty"
    EXTERNAL = "external"


BSUID_PATTERN = re.compile(r"^[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}$")
"""A WhatsApp business-scoped user id: a country code, a period (`ENT.` for a parent id), up to 128 letters and
digits (`US.13491208655302741918`)."""


class VerificationLevel(StrEnum):
    """How sure we are who the customer is, weakest first."""

    ANONYMOUS = "anonymous"
    CLAIMED = "claimed"
    VERIFIED = "verified"
    STRONG = "strong"

    @property
    def rank(self) -> int:
        """Position in the order anonymous < claimed < verified < strong."""
        return _LEVEL_ORDER.index(self)

    def at_least(self, other: VerificationLevel) -> bool:
        """Whether this level is `other` or stronger."""
        return self.rank >= other.rank


_LEVEL_ORDER = list(VerificationLevel)


class IdentityEventKind(StrEnum):
    """Audit row kinds for the identity graph; nothing is ever deleted."""

    LINK = "link"
    UNLINK = "unlink"
    VERIFY = "verify"
    MERGE = "merge"
    UNMERGE = "unmerge"
    SPEAKER = "speaker"
    """Another person said they are writing on the customer's handle (a shared phone), or verified as themselves."""


class OrderStatus(StrEnum):
    """Order lifecycle in the store's order system."""

    PENDING = "pending"
    PROCESSED = "processed"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    PENDING_ITEMS_MODIFIED = "pending (item modified)"
    """Pending, with its items changed once: it can no longer be cancelled or modified."""
    RETURN_REQUESTED = "return requested"
    EXCHANGE_REQUESTED = "exchange requested"


class EpisodeStatus(StrEnum):
    """Where a customer's conversation on a topic stands."""

    OPEN = "open"
    RESOLVED = "resolved"
    ESCALATED = "escalated"


class HandoffStatus(StrEnum):
    """A handoff's place in the human-agent loop."""

    QUEUED = "queued"
    CLAIMED = "claimed"
    RESOLVED = "resolved"
    RELEASED = "released"
    TIMED_OUT = "timed_out"
    """Queued past the queue timeout: the customer was told so; still open for any agent to claim."""


class ArticleKind(StrEnum):
    """What a knowledge article is."""

    POLICY = "policy"
    FAQ = "faq"
    PROCEDURE = "procedure"
    PROMOTION = "promotion"
    PRODUCT_NOTICE = "product_notice"
    PRODUCT = "product"


EDITOR_NOTES = ("> Demo content:", "> Editor note:")
"""Lines of an article body written for its editors (why an answer is what it is): kept with the article, never
indexed, quoted or read to a customer."""


class Audience(StrEnum):
    """Who an article is written for. Customers only ever read or hear `customer` articles; `agent` articles (the
    team's procedures and internal policy, written as instructions to staff) are for agents and admins."""

    CUSTOMER = "customer"
    AGENT = "agent"


def default_audience(kind: ArticleKind) -> Audience:
    """The audience of an article that names none: procedures are the team's own playbooks, the rest is
    written for customers."""
    return Audience.AGENT if kind is ArticleKind.PROCEDURE else Audience.CUSTOMER


NOTICE_KINDS = (ArticleKind.PROMOTION, ArticleKind.PRODUCT_NOTICE)


class ArticleStatus(StrEnum):
    """Whether an article is visible to search."""

    DRAFT = "draft"
    PUBLISHED = "published"
    RETIRED = "retired"


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)


class Customer(_Record):
    """A person the store serves; provisional until they verify."""

    id: CustomerId
    external_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    zip: str | None = None
    address: dict[str, Any] | None = None
    provisional: bool = False
    merged_into: CustomerId | None = None
    """Set while this customer's identities, messages and episodes live on another customer after a merge."""
    created_at: datetime

    @property
    def display_name(self) -> str:
        """First and last name, or a neutral placeholder."""
        name = " ".join(part for part in (self.first_name, self.last_name) if part)
        return name or "customer"


class ChannelIdentity(_Record):
    """One handle (phone, email, visitor id, …) linked to a customer."""

    id: int
    customer_id: CustomerId
    handle_type: HandleType
    handle_value: str
    verification_level: VerificationLevel
    verified_at: datetime | None = None
    last_seen_at: datetime | None = None
    """When a message last came from this handle while it was verified."""
    speaker_customer_id: CustomerId | None = None
    """On a shared handle, the customer who verified as themselves in its current conversation."""
    speaker_changed_at: datetime | None = None
    """When the person writing said they are not the handle's verified customer."""
    active: bool = True
    created_at: datetime


class IdentityEvent(_Record):
    """An audit row of the identity graph."""

    id: int
    kind: IdentityEventKind
    customer_id: CustomerId
    identity_id: int | None = None
    other_customer_id: CustomerId | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
    actor: str
    created_at: datetime


class Variant(_Record):
    """A purchasable item: one combination of a product's options."""

    item_id: ItemId
    product_id: ProductId
    options: dict[str, str]
    available: bool
    price: Decimal


class Product(_Record):
    """A catalog product with its variants."""

    id: ProductId
    name: str
    variants: list[Variant] = Field(default_factory=list)


class OrderItem(_Record):
    """A line of an order."""

    item_id: ItemId
    product_id: ProductId
    name: str
    price: Decimal
    options: dict[str, str]


class Fulfillment(_Record):
    """A shipment: tracking ids and the items it carries."""

    tracking_ids: list[str]
    item_ids: list[str]


class Payment(_Record):
    """A payment or refund on an order."""

    transaction_type: str
    amount: Decimal
    payment_method_id: str


class Order(_Record):
    """An order in the store's order system, with everything needed to answer about it."""

    id: OrderId
    customer_id: CustomerId
    status: OrderStatus
    address: dict[str, Any]
    placed_at: datetime | None = None
    notes: str | None = None
    items: list[OrderItem] = Field(default_factory=list)
    fulfillments: list[Fulfillment] = Field(default_factory=list)
    payments: list[Payment] = Field(default_factory=list)
    cancel_reason: str | None = None
    request: dict[str, Any] | None = None
    """What a return or exchange asked for: the items, the new items, the payment method, the price difference."""

    @property
    def total(self) -> Decimal:
        """Sum of the item prices."""
        return sum((item.price for item in self.items), Decimal("0"))


class Episode(_Record):
    """A customer's conversation on one topic, possibly across channels."""

    id: EpisodeId
    customer_id: CustomerId
    status: EpisodeStatus
    topic: str | None = None
    summary: str | None = None
    outcome: str | None = None
    channels: list[str] = Field(default_factory=list)
    open_items: list[str] = Field(default_factory=list)
    citations: list[str] = Field(default_factory=list)
    notices: list[str] = Field(default_factory=list)
    started_at: datetime
    updated_at: datetime


class LoggedMessage(_Record):
    """One row of the append-only message log."""

    id: int
    customer_id: CustomerId
    episode_id: EpisodeId | None = None
    channel: Channel
    direction: Direction
    sender: str | None = None
    text: str
    provider_message_id: str | None = None
    reply_to_id: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict, alias="meta")
    created_at: datetime
    accepted_at: datetime | None = None
    """Inbound: when this server accepted it (`created_at` is the message's own time)."""
    thread_key: str | None = None
    handled: str | None = None
    answer_id: int | None = None

    model_config = ConfigDict(frozen=True, from_attributes=True, populate_by_name=True)


class Handoff(_Record):
    """A case handed to humans, with its packet."""

    id: HandoffId
    customer_id: CustomerId
    episode_id: EpisodeId | None = None
    status: HandoffStatus
    priority: str
    packet: dict[str, Any]
    packet_version: str
    assigned_agent: str | None = None
    rating: int | None = None
    created_at: datetime
    sla_due_at: datetime | None = None
    claimed_at: datetime | None = None
    resolved_at: datetime | None = None

    @property
    def owner(self) -> str:
        """Who owns the case: `human` once an agent claimed it, `queue` while it waits (or timed out waiting),
        and the AI again once it was released or resolved."""
        if self.status is HandoffStatus.CLAIMED:
            return "human"
        return "ai" if self.status in (HandoffStatus.RELEASED, HandoffStatus.RESOLVED) else "queue"


class HandoffEventKind(StrEnum):
    """What happened to a handoff."""

    CREATED = "created"
    CLAIMED = "claimed"
    CUSTOMER_MESSAGE = "customer_message"
    AGENT_REPLY = "agent_reply"
    RELEASED = "released"
    RESOLVED = "resolved"
    RATED = "rated"
    TIMED_OUT = "timed_out"
    ORDER_ACTION = "order_action"
    """The agent who owns the case ran an order action (done or refused)."""
    DELIVERY_FAILED = "delivery_failed"
    """A message to the customer failed or died in the outbox: `{delivery_id, message_id, channel, state, error}`."""


class HandoffEvent(BaseModel):
    """One step of a handoff's life, in the order they happened (`id` increases)."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: int
    handoff_id: HandoffId
    kind: HandoffEventKind
    actor: str
    payload: dict[str, Any]
    created_at: datetime


class Article(_Record):
    """A knowledge article at one version."""

    id: ArticleId
    version: int
    kind: ArticleKind
    audience: Audience = Audience.CUSTOMER
    status: ArticleStatus
    title: str
    body: str
    tags: list[str] = Field(default_factory=list)
    channels: list[str] = Field(default_factory=list)
    product_ids: list[str] = Field(default_factory=list)
    effective_from: datetime | None = None
    effective_to: datetime | None = None
    updated_at: datetime


class ArticleDraft(BaseModel):
    """What a caller supplies to create or update an article."""

    id: ArticleId
    kind: ArticleKind
    title: str = Field(min_length=1, max_length=300)
    body: str = Field(min_length=1)
    audience: Audience | None = None
    """Who it is written for; unset keeps the article's current audience, or for a new article goes by kind
    (`default_audience`)."""
    status: ArticleStatus = ArticleStatus.PUBLISHED
    tags: list[str] = Field(default_factory=list)
    channels: list[str] = Field(default_factory=list)
    product_ids: list[str] = Field(default_factory=list)
    effective_from: datetime | None = None
    effective_to: datetime | None = None

    @model_validator(mode="after")
    def _window_in_order(self) -> ArticleDraft:
        if self.effective_from and self.effective_to and self.effective_to <= self.effective_from:
            raise ValueError("effective_to must be after effective_from")
        return self


class AnalyticsEvent(_Record):
    """One row of the append-only analytics event log."""

    id: int
    type: str
    customer_id: CustomerId | None = None
    channel: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    occurred_at: datetime


class NewEvent(BaseModel):
    """An analytics event to append (`EventLog.append_many`)."""

    model_config = ConfigDict(frozen=True)

    type: str
    customer_id: CustomerId | None = None
    channel: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    occurred_at: datetime | None = None


class EventType(StrEnum):
    """Every type of the analytics event log, and what its payload holds. The log is append-only and every
    analytics figure is computed from it; `occurred_at` is the turn clock (an inbound message's `received_at`)."""

    MESSAGE_RECEIVED = "message_received"
    """A customer message was accepted (once per message, redeliveries excluded): `{message_id}`."""
    TURN = "turn"
    """The AI ran a turn: `{owner, intent, answered, knowledge_missed, handoff_id, tools, tool_results, citations}`;
    `tool_results` is each tool call's `{name, status}` (ok, no_match, not_found, error, …), `citations` each
    knowledge answer's `{article_id, version}`, and `answered` a usable AI answer (no fallback, no empty knowledge
    search, not the same question again)."""
    KNOWLEDGE_GAP = "knowledge_gap"
    """A knowledge search found no usable article: `{query, intent}`."""
    HANDOFF_CREATED = "handoff_created"
    """The AI handed the case to people: `{handoff_id, stall, intent}`."""
    HANDOFF_CLAIMED = "handoff_claimed"
    """An agent took the case: `{handoff_id, agent, waited_s}` (waited_s: queue time on the handoff store's clock)."""
    HANDOFF_RELEASED = "handoff_released"
    """The agent gave the case back to the AI: `{handoff_id, agent}`."""
    HANDOFF_RESOLVED = "handoff_resolved"
    """The agent closed the case (a resolution by a person): `{handoff_id, agent}`."""
    HANDOFF_RATED = "handoff_rated"
    """The agent rated the packet: `{handoff_id, agent, usefulness (1-5), missing [fields], wrong [fields]}`."""
    HANDOFF_TIMED_OUT = "handoff_timed_out"
    """The case waited past the queue timeout: `{handoff_id, after_minutes}`."""
    PAGE_VIEW = "page_view"
    """Commerce (POST /v1/events): `{url, referrer, utm_source, utm_medium, utm_campaign}`."""
    ADD_TO_CART = "add_to_cart"
    """Commerce: `{sku, quantity, amount}`."""
    PURCHASE_ONLINE = "purchase_online"
    """Commerce: `{order_id, amount, currency}`."""
    PURCHASE_IN_STORE = "purchase_in_store"
    """Commerce: `{order_id, store_id, amount, currency}`."""
    STORE_VISIT = "store_visit"
    """Commerce: `{store_id}`."""


COMMERCE_EVENTS = frozenset(
    {
        EventType.PAGE_VIEW,
        EventType.ADD_TO_CART,
        EventType.PURCHASE_ONLINE,
        EventType.PURCHASE_IN_STORE,
        EventType.STORE_VISIT,
    }
)
"""The event types `POST /v1/events` accepts; the others are appended by the turn service and the handoff desk."""


class Passage(_Record):
    """A knowledge-base chunk returned by search, with the article and version it came from."""

    article_id: ArticleId
    version: int
    title: str
    kind: ArticleKind
    text: str
    score: float
    chunk: int = 0
    audience: Audience = Audience.CUSTOMER


class InboundMessage(BaseModel):
    """A customer message as a channel adapter hands it over: verified and translated, not yet accepted."""

    channel: Channel
    sender: str = Field(min_length=1, max_length=320)
    text: str
    provider_message_id: str | None = Field(None, max_length=256)
    vouched: bool = False
    previous_sender: str | None = Field(None, max_length=320)
    """The handle the same person used on this channel before signing in (a web visitor id); with a vouched
    sender, that handle's provisional conversation joins the signed-in customer's."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    received_at: datetime | None = None
    alias: str | None = Field(None, max_length=320)
    """Another handle of the same sender on this channel, linked to the sender's customer when new: a WhatsApp
    business-scoped user id beside the phone number, so the customer is known when the number is later withheld."""


class TurnOutcome(BaseModel):
    """What one inbound message led to."""

    customer_id: CustomerId
    reply: str | None
    tools: list[dict[str, Any]] = Field(default_factory=list)
    owner: str
    handoff_id: str | None = None
    duplicate: bool = False
    folded: bool = False
    """Answered together with other messages by the reply of another request's turn (so no reply here)."""
    message_id: int | None = None
    """The customer's message in the log."""
    reply_id: int | None = None
    """The reply in the log (None without a reply): what the outbox delivers when no response carries it."""

"""Ports: the small interfaces the domain store and the order system implement.

Tools, graphs and analytics reach data only through these, so the embedded SQL stores, Postgres and an
HTTP order system are interchangeable by configuration.
"""

from __future__ import annotations

import builtins
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from threadline.core.auth import ApiKey, Role
from threadline.core.delivery import Delivery, DeliveryFailureRate, DeliveryState, NewDelivery, SendReceipt
from threadline.core.order_actions import ActionRecord, OrderAction
from threadline.core.types import (
    AnalyticsEvent,
    Article,
    ArticleDraft,
    ArticleId,
    ArticleStatus,
    Channel,
    ChannelIdentity,
    Customer,
    CustomerId,
    Direction,
    Episode,
    EpisodeId,
    EpisodeStatus,
    HandleType,
    Handoff,
    HandoffEvent,
    HandoffEventKind,
    HandoffId,
    HandoffStatus,
    IdentityEvent,
    LoggedMessage,
    NewEvent,
    Order,
    OrderId,
    Product,
    ProductId,
    VerificationLevel,
)


class CustomerRepository(Protocol):
    """Customers and their channel identities; every link is audited."""

    def get(self, customer_id: CustomerId) -> Customer | None: ...

    def get_by_external_id(self, external_id: str) -> Customer | None: ...

    def create(
        self,
        *,
        provisional: bool,
        external_id: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        email: str | None = None,
        zip: str | None = None,
        address: dict[str, Any] | None = None,
        customer_id: CustomerId | None = None,
    ) -> Customer: ...

    def create_for_handle(
        self, handle_type: HandleType, value: str, level: VerificationLevel, *, actor: str
    ) -> tuple[Customer, ChannelIdentity, bool]:
        """A provisional customer owning a new handle, or the handle's existing owner (created = False)."""
        ...

    def find_by_handle(self, handle_type: HandleType, value: str) -> ChannelIdentity | None: ...

    def link_identity(
        self,
        customer_id: CustomerId,
        handle_type: HandleType,
        value: str,
        level: VerificationLevel,
        *,
        actor: str,
    ) -> ChannelIdentity: ...

    def seen(self, identity_id: int, at: datetime) -> None:
        """A message came from this verified handle at `at` (its conversation goes on)."""
        ...

    def set_speaker(self, identity_id: int, speaker: CustomerId | None, at: datetime, *, actor: str) -> None:
        """Someone other than the handle's customer is writing on it (a shared phone or inbox): `speaker` when they
        verified as that customer, None when they have not yet; holds while the conversation goes on."""
        ...

    def identities(self, customer_id: CustomerId) -> list[ChannelIdentity]: ...

    def identity_events(self, customer_id: CustomerId) -> list[IdentityEvent]: ...

    def find_by_email(self, email: str) -> list[Customer]: ...

    def find_by_name_zip(self, first_name: str, last_name: str, zip: str) -> list[Customer]: ...

    def count(self) -> int: ...


class OrderSystem(Protocol):
    """The store's order system (embedded SQL, or a retailer's HTTP service)."""

    def get_order(self, order_id: OrderId) -> Order | None: ...

    def orders_for_customer(self, customer_id: CustomerId, limit: int = 20) -> list[Order]: ...

    def get_product(self, product_id: ProductId) -> Product | None: ...

    def list_products(self) -> list[Product]: ...

    def count_orders(self) -> int: ...

    def payment_methods(self, customer_id: CustomerId) -> dict[str, dict[str, Any]]:
        """The customer's payment methods by id (source, brand or email, last four, gift-card balance)."""
        ...

    def apply(
        self,
        action: OrderAction,
        *,
        customer_id: CustomerId,
        idempotency_key: str,
        actor: str,
        channel: str | None = None,
        confirming_message_id: int | None = None,
    ) -> ActionRecord:
        """Run an order action for the customer exactly once per `idempotency_key`, the policy checked in the same
        transaction as the write, and audit it; a key seen before returns its record without running again. A
        refusal is recorded and returned too (`outcome == "refused"`)."""
        ...

    def actions(self, customer_id: CustomerId, limit: int = 50) -> list[ActionRecord]:
        """The customer's order actions, newest first."""
        ...


class MessageLog(Protocol):
    """The append-only transcript of every inbound and outbound message."""

    def append(
        self,
        customer_id: CustomerId,
        channel: Channel,
        direction: Direction,
        text: str,
        *,
        provider_message_id: str | None = None,
        sender: str | None = None,
        episode_id: EpisodeId | None = None,
        metadata: dict[str, Any] | None = None,
        created_at: datetime | None = None,
        reply_to_id: int | None = None,
        thread_key: str | None = None,
    ) -> LoggedMessage:
        """Append a message (inbound ones on the conversation thread `thread_key`); raises `ConflictError` when the
        provider message id was seen on this channel."""
        ...

    def get(self, message_id: int) -> LoggedMessage | None: ...

    def pending(self, thread_key: str, limit: int = 50, *, through: int | None = None) -> list[LoggedMessage]:
        """Inbound messages of a thread that no turn has taken yet, in arrival order (with `through`, only those
        logged up to that message)."""
        ...

    def stale(self, before: datetime, limit: int = 20) -> list[LoggedMessage]:
        """Inbound messages accepted before `before` that no turn has answered, oldest first."""
        ...

    def close_turn(
        self,
        inbound_ids: list[int],
        *,
        customer_id: CustomerId,
        channel: Channel,
        reply: str | None,
        metadata: dict[str, Any] | None = None,
    ) -> LoggedMessage | None:
        """Record a turn's reply and mark every message it took handled, in one transaction; `ConflictError`, with
        nothing written, when another turn already answered one of them."""
        ...

    def reply_to(self, message_id: int) -> LoggedMessage | None: ...

    def find_by_provider_id(self, channel: Channel, provider_message_id: str) -> LoggedMessage | None: ...

    def for_customer(self, customer_id: CustomerId, limit: int = 50) -> list[LoggedMessage]: ...

    def count(self, customer_id: CustomerId | None = None) -> int: ...


class EpisodeRepository(Protocol):
    """A customer's conversations on a topic."""

    def open(self, customer_id: CustomerId, channel: Channel, topic: str | None = None) -> Episode: ...

    def get(self, episode_id: EpisodeId) -> Episode | None: ...

    def current(self, customer_id: CustomerId) -> Episode | None: ...

    def update(
        self,
        episode_id: EpisodeId,
        *,
        status: EpisodeStatus | None = None,
        topic: str | None = None,
        summary: str | None = None,
        outcome: str | None = None,
        channel: Channel | None = None,
        open_items: Sequence[str] | None = None,
        citations: Sequence[str] = (),
        notices: Sequence[str] = (),
    ) -> Episode: ...

    def recent(self, customer_id: CustomerId, limit: int = 10) -> list[Episode]: ...


class HandoffRepository(Protocol):
    """Cases handed to human agents."""

    def create(
        self,
        customer_id: CustomerId,
        *,
        packet: dict[str, Any],
        packet_version: str,
        priority: str,
        episode_id: EpisodeId | None = None,
        sla_due_at: datetime | None = None,
    ) -> Handoff: ...

    def get(self, handoff_id: HandoffId) -> Handoff | None: ...

    def list(
        self,
        status: HandoffStatus | Sequence[HandoffStatus] | None = None,
        limit: int = 100,
        *,
        priority: str | None = None,
        channel: str | None = None,
    ) -> builtins.list[Handoff]:
        """Handoffs, oldest first; `channel` filters on the packet's channel."""
        ...

    def open_for_customer(self, customer_id: CustomerId) -> Handoff | None: ...

    def claim(self, handoff_id: HandoffId, agent: str) -> Handoff:
        """`agent` takes the case; a case another agent holds is a `ConflictError`."""
        ...

    def release(self, handoff_id: HandoffId, agent: str, note: str) -> Handoff: ...

    def resolve(self, handoff_id: HandoffId, agent: str) -> Handoff: ...

    def rate(
        self,
        handoff_id: HandoffId,
        agent: str,
        usefulness: int,
        missing: Sequence[str] = (),
        wrong: Sequence[str] = (),
    ) -> Handoff: ...

    def record(
        self, handoff_id: HandoffId, kind: HandoffEventKind, actor: str, payload: dict[str, Any] | None = None
    ) -> HandoffEvent:
        """Log a step that changes no status (a customer message, an agent reply)."""
        ...

    def time_out(self, handoff_id: HandoffId, now: datetime, minutes: float) -> Handoff | None:
        """The case, now `timed_out`, if it was still queued `minutes` after it was created; else None."""
        ...

    def time_out_overdue(self, now: datetime, minutes: float) -> builtins.list[Handoff]:
        """Every case queued longer than `minutes`, moved to `timed_out` (each exactly once)."""
        ...

    def events(self, handoff_id: HandoffId) -> builtins.list[HandoffEvent]: ...

    def events_since(self, event_id: int, limit: int = 100) -> builtins.list[HandoffEvent]: ...

    def last_event_id(self) -> int: ...


class KnowledgeRepository(Protocol):
    """Knowledge articles with their version history: the single source of truth."""

    def upsert(self, draft: ArticleDraft, *, author: str) -> Article:
        """Create the article or add a version; an unchanged draft returns the current version untouched."""
        ...

    def get(self, article_id: ArticleId, version: int | None = None) -> Article | None: ...

    def history(self, article_id: ArticleId) -> list[Article]: ...

    def notices(self) -> list[Article]:
        """Published promotions and product notices (current versions), for proactive mentions."""
        ...

    def list(self, status: ArticleStatus | None = ArticleStatus.PUBLISHED) -> list[Article]: ...

    def revision(self) -> int:
        """A number that grows with every change to any article; workers compare it to stay in sync."""
        ...


class EventLog(Protocol):
    """The append-only analytics event log."""

    def append(
        self,
        type: str,
        *,
        customer_id: CustomerId | None = None,
        channel: str | None = None,
        payload: dict[str, Any] | None = None,
        occurred_at: datetime | None = None,
    ) -> AnalyticsEvent: ...

    def append_many(self, events: Sequence[NewEvent]) -> builtins.list[AnalyticsEvent]:
        """Append a batch in one transaction: every event or none."""
        ...

    def between(
        self, since: datetime | None = None, until: datetime | None = None, types: Collection[str] | None = None
    ) -> builtins.list[AnalyticsEvent]: ...

    def list(self, type: str | None = None, customer_id: CustomerId | None = None) -> list[AnalyticsEvent]: ...


class NonceLog(Protocol):
    """One-time tokens of signed webhook posts."""

    def first_use(self, channel: str, token: str, digest: str, *, now: datetime, keep: timedelta) -> bool:
        """True for a token's first use, and for the same post again; False for the token on other content."""
        ...


class ApiKeyRepository(Protocol):
    """API keys with roles; only each key's hash is stored."""

    def create(self, role: Role, name: str, *, created_by: str, key: str | None = None) -> tuple[ApiKey, str]:
        """Store a new key (generated unless `key` is given); returns the record and the raw key, shown once."""
        ...

    def ensure(self, role: Role, key: str, *, name: str, created_by: str) -> ApiKey: ...

    def authenticate(self, key: str) -> ApiKey | None: ...

    def get(self, key_id: str) -> ApiKey | None: ...

    def revoke(self, key_id: str) -> ApiKey: ...

    def list(self, include_revoked: bool = False) -> builtins.list[ApiKey]: ...


class Outbox(Protocol):
    """Every outbound provider message, with its delivery state (see `core.delivery`)."""

    def enqueue(self, delivery: NewDelivery, *, now: datetime | None = None) -> tuple[Delivery, bool]:
        """Queue a message; returns it and whether it is new. A key queued before returns the first row unchanged,
        so a redelivered webhook or a retried request never sends twice."""
        ...

    def claim(self, worker: str, *, now: datetime, lease: timedelta, limit: int = 20) -> builtins.list[Delivery]:
        """Take up to `limit` deliveries due now (queued and due, or `sending` under a lapsed claim) for `worker`:
        each becomes `sending` with `claimed_until = now + lease` and one more attempt. Concurrent dispatchers
        never take the same row (`FOR UPDATE SKIP LOCKED` on Postgres; one writer at a time on SQLite)."""
        ...

    def mark_sent(self, delivery_id: int, worker: str, receipt: SendReceipt, *, now: datetime) -> Delivery | None:
        """The provider accepted it. None when `worker` no longer holds the claim (another dispatcher re-sent it)."""
        ...

    def mark_retry(self, delivery_id: int, worker: str, error: str, *, at: datetime, now: datetime) -> Delivery | None:
        """A transient failure: queued again for `at`."""
        ...

    def mark_failed(
        self, delivery_id: int, worker: str, error: str, *, state: DeliveryState, now: datetime
    ) -> Delivery | None:
        """A final failure: `failed` (the provider refused it) or `dead` (attempts exhausted)."""
        ...

    def apply_status(
        self,
        provider: str,
        provider_message_id: str,
        reported: DeliveryState,
        *,
        at: datetime,
        detail: str | None = None,
        read: bool = False,
    ) -> tuple[DeliveryState, Delivery] | None:
        """A provider's status report (unordered): the state moves only forward (`core.delivery.advances`); the
        report is kept in the history either way. The state before the report and the delivery after it, read and
        written in one locked transaction; None for an id this outbox never sent."""
        ...

    def get(self, delivery_id: int) -> Delivery | None: ...

    def for_messages(self, message_ids: Collection[int]) -> dict[int, builtins.list[Delivery]]:
        """The deliveries carrying each logged message, by message id, parts in order."""
        ...

    def for_customer(self, customer_id: CustomerId, limit: int = 100) -> builtins.list[Delivery]:
        """The customer's latest deliveries, oldest first."""
        ...

    def problems(self, limit: int = 100) -> builtins.list[Delivery]:
        """Deliveries that failed or died, newest first."""
        ...

    def failure_rates(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> builtins.list[DeliveryFailureRate]:
        """Per channel: deliveries created in the period, and how many failed or died."""
        ...

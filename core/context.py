"""The per-turn runtime context: who the customer is, how sure we are, the channel, and the services.

It reaches the graph through LangGraph's `context_schema`, never through the model, so a manipulated model
cannot change whose data a tool reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from threadline.core.ports import (
    CustomerRepository,
    EpisodeRepository,
    EventLog,
    HandoffRepository,
    KnowledgeRepository,
    MessageLog,
    OrderSystem,
)
from threadline.core.types import Audience, Channel, Customer, CustomerId, HandleType, Passage, VerificationLevel


class KnowledgeSearch(Protocol):
    """Semantic search over the published knowledge base."""

    def search(
        self,
        query: str,
        k: int = 5,
        *,
        channel: str | None = None,
        min_score: float = 0.0,
        audience: Audience | None = None,
    ) -> list[Passage]:
        """The best passages for `query`, best first (only articles written for `audience`, when given)."""
        ...


class IdentityVerifier(Protocol):
    """Checks what a customer tells us against the records and links their handle when it matches."""

    def verify(
        self,
        *,
        email: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        zip: str | None = None,
        order_id: str | None = None,
    ) -> Customer | None:
        """The one customer the facts identify, or None (never saying which fact was wrong)."""
        ...

    def link_verified(
        self, customer_id: CustomerId, handle_type: HandleType, handle: str, level: VerificationLevel, actor: str
    ) -> None:
        """Link the handle to the customer at `level`, with an audit row."""
        ...

    def another_person(self, handle_type: HandleType, handle: str, actor: str) -> None:
        """The person writing on the handle is not the customer its conversation was verified as."""
        ...


@dataclass(frozen=True)
class TurnServices:
    """The ports a turn may use."""

    customers: CustomerRepository
    orders: OrderSystem
    messages: MessageLog
    episodes: EpisodeRepository
    handoffs: HandoffRepository
    events: EventLog
    knowledge: KnowledgeSearch
    identity: IdentityVerifier
    articles: KnowledgeRepository


@dataclass(frozen=True)
class TurnContext:
    """Identity and services for one turn, set by the entry point before the graph runs."""

    customer_id: CustomerId
    verification: VerificationLevel
    channel: Channel
    handle_type: HandleType
    handle: str
    services: TurnServices
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    known: dict[CustomerId, Customer] = field(default_factory=dict, compare=False, repr=False)
    """Customer records already read this turn (the entry point seeds the sender's): a turn reads each once."""

    def customer(self, customer_id: CustomerId) -> Customer | None:
        """The customer's record as of this turn; read from the repository on first use."""
        found = self.known.get(customer_id)
        if found is None:
            found = self.services.customers.get(customer_id)
            if found is not None:
                self.known[customer_id] = found
        return found

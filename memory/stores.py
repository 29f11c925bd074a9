"""The bundle of SQL stores a process uses, built from one `Database`."""

from __future__ import annotations

from dataclasses import dataclass

from threadline.core.ports import (
    ApiKeyRepository,
    CustomerRepository,
    EpisodeRepository,
    EventLog,
    HandoffRepository,
    KnowledgeRepository,
    MessageLog,
    NonceLog,
    OrderSystem,
    Outbox,
)
from threadline.memory.db import Database
from threadline.memory.repositories.api_keys import SqlApiKeyRepository
from threadline.memory.repositories.customers import SqlCustomerRepository
from threadline.memory.repositories.episodes import SqlEpisodeRepository
from threadline.memory.repositories.events import SqlEventLog
from threadline.memory.repositories.handoffs import SqlHandoffRepository
from threadline.memory.repositories.knowledge import SqlKnowledgeRepository
from threadline.memory.repositories.messages import SqlMessageLog
from threadline.memory.repositories.nonces import SqlNonceLog
from threadline.memory.repositories.orders import SqlOrderSystem
from threadline.memory.repositories.outbox import SqlOutbox


@dataclass(frozen=True)
class Stores:
    """Every repository over one database, each typed by its port in `core.ports` (the SQL classes implement them)."""

    db: Database
    customers: CustomerRepository
    orders: OrderSystem
    messages: MessageLog
    episodes: EpisodeRepository
    handoffs: HandoffRepository
    knowledge: KnowledgeRepository
    events: EventLog
    api_keys: ApiKeyRepository
    nonces: NonceLog
    outbox: Outbox

    @classmethod
    def over(cls, db: Database) -> Stores:
        """Build every repository on `db`."""
        return cls(
            db=db,
            customers=SqlCustomerRepository(db),
            orders=SqlOrderSystem(db),
            messages=SqlMessageLog(db),
            episodes=SqlEpisodeRepository(db),
            handoffs=SqlHandoffRepository(db),
            knowledge=SqlKnowledgeRepository(db),
            events=SqlEventLog(db),
            api_keys=SqlApiKeyRepository(db),
            nonces=SqlNonceLog(db),
            outbox=SqlOutbox(db),
        )

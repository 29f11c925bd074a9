"""The composition root without HTTP: the product's services opened from settings — database, migrations, demo data,
knowledge index, model, graph, and the conversation objects. The API, the command line, the benchmarks and the
evaluation driver all build on `open_services`."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from langchain_core.embeddings import Embeddings
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore

from threadline.agents.concerns import ConcernDetector
from threadline.agents.models import make_chat_model
from threadline.conversations.delivery import CaseRaiser, Deliveries, Dispatcher
from threadline.conversations.desk import HandoffDesk
from threadline.conversations.merging import CustomerMerging
from threadline.conversations.sweep import PendingSweep
from threadline.conversations.threads import Threads
from threadline.conversations.turns import TurnService
from threadline.core.context import TurnServices
from threadline.core.handoff import redact_packet
from threadline.core.hours import BusinessHours
from threadline.core.rate_limits import RateLimiter
from threadline.core.settings import Settings
from threadline.core.types import CustomerId, Handoff, InboundMessage
from threadline.demo.loader import LoadReport, load_demo
from threadline.graphs.policy import Thresholds
from threadline.graphs.support import build_support_graph
from threadline.memory import migrate
from threadline.memory.catalog_knowledge import sync_product_articles
from threadline.memory.checkpoints import open_checkpointer
from threadline.memory.db import Database
from threadline.memory.embeddings import make_embeddings
from threadline.memory.erasure import CustomerErasure
from threadline.memory.identity import IdentityResolver, classify_handle
from threadline.memory.kb_sync import KnowledgeSync
from threadline.memory.knowledge_index import KnowledgeIndex
from threadline.memory.longterm import SqlStore
from threadline.memory.merges import CustomerMerges
from threadline.memory.repositories.handoffs import SqlHandoffRepository
from threadline.memory.stores import Stores
from threadline.memory.turn_locks import TurnLocks
from threadline.product.database import open_database
from threadline.product.senders import build_senders, whatsapp_templates
from threadline.product.tuning import tune_threads

log = logging.getLogger("threadline")
Progress = Callable[[str, int, int], None]


@dataclass
class Services:
    """Everything a process needs to serve customers, built once at start-up."""

    settings: Settings
    db: Database
    stores: Stores
    index: KnowledgeIndex
    turns: TurnService
    """Customer turns: `turns.handle(message)`."""
    desk: HandoffDesk
    """What agents do to a handed-off case."""
    merging: CustomerMerging
    """Customer merges and their undo."""
    threads: Threads
    """The checkpointed conversation threads."""
    memories: BaseStore
    """Long-term memory (LangGraph's Store over the database)."""
    deliveries: Deliveries
    """Queues outbound messages in the outbox for their channel's provider."""
    demo_report: LoadReport | None = None
    resources: ExitStack = field(default_factory=ExitStack)
    senders: RateLimiter = field(default_factory=lambda: RateLimiter(30))
    """Messages per minute per sender handle, across channels' webhooks and the messages API."""
    checkpointer: BaseCheckpointSaver[str] | None = None
    dispatcher: Dispatcher | None = None
    """This process's outbox dispatcher (None when off, or when no provider is configured)."""

    def erasure(self) -> CustomerErasure:
        """Erases customers from the database, the conversation threads, the embedding cache and this
        process's sender buckets."""
        return CustomerErasure(
            self.db,
            self.checkpointer,
            embedding_cache=self.settings.cache_path / "embeddings.sqlite",
            lease_s=self.settings.turn_lease_s,
            forget_handles=self._forget_senders,
        )

    def admit(self, message: InboundMessage) -> InboundMessage:
        """The message, if its sender is within the rate limit (else `RateLimitedError`, a 429). The bucket is the
        normalised handle, so spellings of one phone number or email share it, across channels."""
        handle_type, handle = classify_handle(message.channel, message.sender)
        self.senders.check(f"{handle_type.value}:{handle}", "sender")
        return message

    def _forget_senders(self, handles: Sequence[str]) -> int:
        """Drop the rate-limit buckets keyed by these handles (`type:handle`); phones compare by digits."""
        wanted = {h.lower() for h in handles} | {re.sub(r"\D", "", h) for h in handles if h.startswith("+")}
        return self.senders.forget(lambda key: bool({key.split(":", 1)[-1], re.sub(r"\D", "", key)} & wanted))

    def with_graph(self, graph: CompiledStateGraph[Any, Any, Any, Any]) -> Services:
        """The same services with the conversation objects over another support graph (another model, say), on
        the same stores, checkpointer and memories."""
        turns, desk, merging, threads = wire_conversations(
            self.settings, self.db, self.stores, self.index, graph, deliveries=self.deliveries
        )
        return replace(self, turns=turns, desk=desk, merging=merging, threads=threads)

    def close(self) -> None:
        """Release the checkpointer and pooled connections."""
        self.resources.close()
        self.db.dispose()


class RedactingHandoffs(SqlHandoffRepository):
    """Handoffs whose packets quote the customer with card numbers, emails and phone numbers redacted
    (`THREADLINE_REDACT_HANDOFF_TRANSCRIPTS`)."""

    def create(self, customer_id: CustomerId, *, packet: dict[str, Any], **rest: Any) -> Handoff:
        return super().create(customer_id, packet=redact_packet(packet), **rest)


@contextmanager
def _step(doing: str) -> Iterator[None]:
    """Log a start-up step as it begins and when it ends, with its duration: a first start takes minutes."""
    log.info("%s…", doing)
    started = time.monotonic()
    yield
    log.info("%s: done in %.0f s", doing, time.monotonic() - started)


def open_index(settings: Settings, stores: Stores, embeddings: Embeddings | None = None) -> KnowledgeIndex:
    """The knowledge index under the data dir, brought up to the database's revision."""
    import faiss

    # Each search is one query from one request thread; OpenMP fan-out only adds contention (measured: exact
    # search at 10k chunks 0.25 ms p50 single-threaded, up to 24 ms with default threads under load).
    faiss.omp_set_num_threads(1)
    index = KnowledgeIndex(
        embeddings or make_embeddings(settings), settings.index_dir, hnsw_threshold=settings.hnsw_threshold
    )
    index.sync(stores.knowledge)
    return index


def open_services(settings: Settings, *, progress: Progress | None = None, dispatch: bool = False) -> Services:
    """Open the database, load the demo into an empty one when configured, and build the services. With `dispatch`
    (the API server) the outbox dispatcher runs too: a command, an evaluation or a benchmark queues messages but
    never sends them."""
    db = open_database(settings)
    stores = Stores.over(db)
    report = None
    with migrate.startup_lock(db):  # several workers start at once: one loads, the others find it loaded
        if settings.load_demo and stores.customers.count() == 0:
            with _step("empty database: loading the demo store"):
                report = load_demo(stores, progress) if progress else load_demo(stores)  # with the product articles
                log.info("demo store: %s", ", ".join(f"{n} {kind}" for kind, n in report.created.items() if n))
        else:
            sync_product_articles(stores.orders, stores.knowledge)
    with _step("loading the embedding model"):
        embeddings = make_embeddings(settings)
    with _step("building the knowledge index"):
        index = open_index(settings, stores, embeddings)
    resources = ExitStack()
    resources.callback(KnowledgeSync(index, stores.knowledge, settings.kb_refresh_s).start().stop)
    key = settings.checkpoint_key.get_secret_value().encode() if settings.checkpoint_key else None
    checkpointer = resources.enter_context(
        open_checkpointer(settings.sqlalchemy_url, pool_size=settings.db_pool_size, key=key)
    )
    with _step(f"loading the {settings.model} model"):
        model = make_chat_model(
            settings.model,
            embeddings=embeddings,
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key,
            cache_dir=settings.cache_path,
            timeout_s=settings.model_timeout_s,
        )
    memories = SqlStore(db, embeddings)
    graph = build_support_graph(
        model,
        checkpointer=checkpointer,
        store=memories,
        thresholds=Thresholds.from_settings(settings),
        signature=settings.store_name,
        hours=BusinessHours.from_settings(settings),
        queue_ack_interval=timedelta(minutes=settings.queue_ack_minutes),
        concerns=ConcernDetector(embeddings, cache_dir=settings.cache_path),
    )
    tune_threads()  # start-up's batch embedding is done: turns embed one text each
    deliveries, dispatcher = open_outbox(settings, stores, resources, dispatch=dispatch)
    turns, desk, merging, threads = wire_conversations(settings, db, stores, index, graph, deliveries=deliveries)
    if settings.pending_sweep_s:
        stale = timedelta(seconds=settings.pending_sweep_s)
        sweep = PendingSweep(
            turns, stores.messages, stale_after=stale, interval_s=settings.pending_sweep_s / 2, deliveries=deliveries
        )
        resources.callback(sweep.start().stop)
    return Services(
        settings=settings,
        db=db,
        stores=stores,
        index=index,
        turns=turns,
        desk=desk,
        merging=merging,
        threads=threads,
        memories=memories,
        demo_report=report,
        resources=resources,
        senders=RateLimiter(settings.rate_per_sender_per_minute),
        checkpointer=checkpointer,
        deliveries=deliveries,
        dispatcher=dispatcher,
    )


def open_outbox(
    settings: Settings, stores: Stores, resources: ExitStack, *, dispatch: bool
) -> tuple[Deliveries, Dispatcher | None]:
    """The outbox's queue side, and this process's dispatcher when `dispatch` asks for it, the settings allow it and
    a provider is configured (stopped with `resources`)."""
    senders = build_senders(settings)
    handoffs = RedactingHandoffs(stores.db) if settings.redact_handoff_transcripts else stores.handoffs
    raiser = CaseRaiser(handoffs, stores.customers)
    dispatcher = None
    if dispatch and settings.outbox_dispatch and senders:
        dispatcher = Dispatcher(
            stores.outbox,
            senders,
            on_problem=raiser,
            poll_s=settings.outbox_poll_s,
            lease_s=settings.outbox_lease_s,
            max_attempts=settings.outbox_max_attempts,
            backoff_s=settings.outbox_backoff_s,
            backoff_max_s=settings.outbox_backoff_max_s,
        )
        resources.callback(dispatcher.start().stop)
    deliveries = Deliveries(
        stores.outbox,
        stores.messages,
        providers=senders,
        templates=whatsapp_templates(settings),
        wake=dispatcher.wake if dispatcher else None,
        on_problem=raiser,
    )
    return deliveries, dispatcher


def wire_conversations(
    settings: Settings,
    db: Database,
    stores: Stores,
    index: KnowledgeIndex,
    graph: CompiledStateGraph[Any, Any, Any, Any],
    *,
    deliveries: Deliveries | None = None,
) -> tuple[TurnService, HandoffDesk, CustomerMerging, Threads]:
    """The conversation objects over the stores and one support graph, wired by composition."""
    handoffs = RedactingHandoffs(db) if settings.redact_handoff_transcripts else stores.handoffs
    threads = Threads(graph, db.engine, history=settings.checkpoint_history)
    locks = TurnLocks(db, lease_s=settings.turn_lease_s, max_turns=settings.db_pool_size)
    identity = IdentityResolver(
        stores.customers,
        stores.orders,
        timedelta(hours=settings.verification_ttl_hours),
        conversation_idle=timedelta(minutes=settings.verified_idle_minutes),
    )
    desk = HandoffDesk(
        handoffs=handoffs,
        messages=stores.messages,
        episodes=stores.episodes,
        events=stores.events,
        threads=threads,
        locks=locks,
        queue_timeout_minutes=settings.queue_timeout_minutes,
        signature=settings.store_name,
        orders=stores.orders,
        deliveries=deliveries,
    )
    merging = CustomerMerging(CustomerMerges(db), stores.customers, threads, locks)
    turn_services = TurnServices(
        customers=stores.customers,
        orders=stores.orders,
        messages=stores.messages,
        episodes=stores.episodes,
        handoffs=handoffs,
        events=stores.events,
        knowledge=index,
        identity=identity,
        articles=stores.knowledge,
    )
    turns = TurnService(
        graph=graph,
        services=turn_services,
        identity=identity,
        threads=threads,
        desk=desk,
        merging=merging,
        locks=locks,
        burst_window_ms=settings.burst_window_ms,
    )
    return turns, desk, merging, threads

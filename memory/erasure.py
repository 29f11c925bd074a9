"""Erasing a customer: every row, checkpoint, memory and cache entry that holds their data, then the file space.

What goes: the customer and every customer merged into them, their channel identities and identity events (merge
audit rows keep copies of moved rows, so every event naming them goes), messages, episodes, handoffs and their
events, analytics events (and any event whose payload names one of their handles), long-term memories, turn
leases, every conversation thread of theirs (their own and the per-handle threads of senders who claimed to be
them) and the embedding-cache entries of their words.

Orders stay, anonymised: the order history is the store's financial record (returns, chargebacks, tax), so
each order moves to the shared `ERASED_CUSTOMER` and its shipping address and notes are cleared; items,
payments and fulfilments hold no personal data. On SQLite the erase runs with `secure_delete`, then the WAL is
checkpointed and truncated and the file vacuumed, so the freed pages hold no copy; on Postgres the touched
tables are vacuumed. An audit event records a hash of the id and the counts, nothing personal.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from sqlalchemy import Connection, cast, delete, func, insert, inspect, or_, select, text, update
from sqlalchemy import String as SqlString
from sqlalchemy.exc import IntegrityError

from threadline.core.errors import ConflictError, NotFoundError
from threadline.core.threads import handle_thread_prefix
from threadline.core.types import CustomerId
from threadline.memory.db import Database
from threadline.memory.embedding_cache import EMBEDDING_MODEL, EmbeddingCache
from threadline.memory.schema import (
    NAMESPACE_SEP,
    AnalyticsEventRow,
    ChannelIdentityRow,
    CustomerRow,
    EpisodeRow,
    HandoffEventRow,
    HandoffRow,
    IdentityEventRow,
    MemoryItemRow,
    MessageRow,
    OrderActionRow,
    OrderRow,
    OutboxRow,
    TurnLeaseRow,
    utcnow,
)
from threadline.memory.turn_locks import TurnLocks

log = logging.getLogger("threadline.erasure")

ERASED_CUSTOMER = "cus_erased"
"""The one placeholder customer that anonymised orders belong to; it holds no personal data."""
AUDIT_EVENT = "customer_erased"
ATTEMPTS = 3
"""A message accepted for the customer while the erase runs makes the transaction fail; it is retried."""
VACUUMED_TABLES = (
    "customers",
    "channel_identities",
    "identity_events",
    "orders",
    "order_actions",
    "episodes",
    "messages",
    "handoffs",
    "handoff_events",
    "analytics_events",
    "memory_items",
    "checkpoints",
    "checkpoint_blobs",
    "checkpoint_writes",
)


def subject_hash(customer_id: str) -> str:
    """The audit trail's name for an erased customer: a SHA-256 of the id, never the id."""
    return hashlib.sha256(f"erased-customer:{customer_id}".encode()).hexdigest()


@dataclass(frozen=True)
class ErasureReport:
    """What an erase removed: counts per table (and per store outside the database), no personal data."""

    subject: str
    removed: dict[str, int] = field(default_factory=dict)


def _family(conn: Connection, customer_id: str) -> list[str]:
    """The customer and everyone merged into them, transitively."""
    found, frontier = [customer_id], [customer_id]
    while frontier:
        merged = list(conn.scalars(select(CustomerRow.id).where(CustomerRow.merged_into.in_(frontier))))
        frontier = [m for m in merged if m not in found]
        found += frontier
    return found


def _handles(conn: Connection, ids: Sequence[str]) -> list[str]:
    values = set(conn.scalars(select(ChannelIdentityRow.handle_value).where(ChannelIdentityRow.customer_id.in_(ids))))
    values |= {e for e in conn.scalars(select(CustomerRow.email).where(CustomerRow.id.in_(ids))) if e}
    return sorted(v for v in values if len(v) >= 6)  # a short handle would match unrelated payloads


def _names(ids: Sequence[str]) -> Any:
    """Memory namespaces `customers.<id>` and below."""
    conditions = []
    for customer_id in ids:
        prefix = NAMESPACE_SEP.join(("customers", customer_id))
        conditions += [MemoryItemRow.namespace == prefix, MemoryItemRow.namespace.startswith(prefix + NAMESPACE_SEP)]
    return or_(*conditions)


def thread_ids(conn: Connection, ids: Sequence[str]) -> list[str]:
    """Every checkpointed thread of these customers: their own and their per-handle threads (`core.threads`)."""
    wanted: set[str] = set()
    checkpointed = inspect(conn).has_table("checkpoints")  # the saver's table, created at its setup
    for customer_id in ids if checkpointed else []:
        prefix = handle_thread_prefix(CustomerId(customer_id))
        rows = conn.execute(
            text("SELECT DISTINCT thread_id FROM checkpoints WHERE thread_id = :id OR substr(thread_id, 1, :n) = :p"),
            {"id": customer_id, "p": prefix, "n": len(prefix)},
        )
        wanted |= {str(r[0]) for r in rows}
    keys = conn.scalars(select(MessageRow.thread_key).where(MessageRow.customer_id.in_(ids)).distinct())
    wanted |= {k for k in keys if k}
    return sorted(wanted)


def _texts(conn: Connection, ids: Sequence[str]) -> list[str]:
    said = list(conn.scalars(select(MessageRow.text).where(MessageRow.customer_id.in_(ids))))
    memories = [str((v or {}).get("text") or "") for v in conn.scalars(select(MemoryItemRow.value).where(_names(ids)))]
    return [t for t in dict.fromkeys([*said, *(s.strip() for s in said), *memories]) if t]


def _count(result: Any) -> int:
    return int(result.rowcount or 0)


def _ensure_placeholder(conn: Connection) -> None:
    if conn.scalar(select(CustomerRow.id).where(CustomerRow.id == ERASED_CUSTOMER)) is None:
        conn.execute(insert(CustomerRow).values(id=ERASED_CUSTOMER, provisional=True, created_at=utcnow()))


def _delete_rows(conn: Connection, ids: list[str], handles: list[str]) -> dict[str, int]:
    """Every row of theirs, in foreign-key order, in the caller's transaction."""
    removed: dict[str, int] = {}
    handoffs = select(HandoffRow.id).where(HandoffRow.customer_id.in_(ids))
    removed["handoff_events"] = _count(
        conn.execute(delete(HandoffEventRow).where(HandoffEventRow.handoff_id.in_(handoffs)))
    )
    removed["handoffs"] = _count(conn.execute(delete(HandoffRow).where(HandoffRow.customer_id.in_(ids))))
    removed["outbox"] = _count(conn.execute(delete(OutboxRow).where(OutboxRow.customer_id.in_(ids))))
    mine = select(MessageRow.id).where(MessageRow.customer_id.in_(ids))
    conn.execute(update(MessageRow).where(MessageRow.reply_to_id.in_(mine)).values(reply_to_id=None))
    removed["messages"] = _count(conn.execute(delete(MessageRow).where(MessageRow.customer_id.in_(ids))))
    _ensure_placeholder(conn)
    removed["orders_anonymised"] = _count(
        conn.execute(
            update(OrderRow)
            .where(OrderRow.customer_id.in_(ids))
            .values(customer_id=ERASED_CUSTOMER, address={"erased": True}, notes=None, updated_at=utcnow())
        )
    )
    removed["order_actions_anonymised"] = _count(  # kept for the books, like the orders: who and what is gone
        conn.execute(
            update(OrderActionRow)
            .where(OrderActionRow.customer_id.in_(ids))
            .values(customer_id=ERASED_CUSTOMER, action={"erased": True}, before=None, after=None, detail={})
        )
    )
    removed["episodes"] = _count(conn.execute(delete(EpisodeRow).where(EpisodeRow.customer_id.in_(ids))))
    named = [cast(AnalyticsEventRow.payload, SqlString).contains(h, autoescape=True) for h in handles]
    removed["analytics_events"] = _count(
        conn.execute(delete(AnalyticsEventRow).where(or_(AnalyticsEventRow.customer_id.in_(ids), *named)))
    )
    removed["memory_items"] = _count(conn.execute(delete(MemoryItemRow).where(_names(ids))))
    removed["identity_events"] = _count(
        conn.execute(
            delete(IdentityEventRow).where(
                or_(IdentityEventRow.customer_id.in_(ids), IdentityEventRow.other_customer_id.in_(ids))
            )
        )
    )
    removed["channel_identities"] = _count(
        conn.execute(delete(ChannelIdentityRow).where(ChannelIdentityRow.customer_id.in_(ids)))
    )
    conn.execute(  # an erased customer no longer speaks on anyone's shared phone
        update(ChannelIdentityRow)
        .where(ChannelIdentityRow.speaker_customer_id.in_(ids))
        .values(speaker_customer_id=None, speaker_changed_at=None)
    )
    conn.execute(delete(TurnLeaseRow).where(TurnLeaseRow.customer_id.in_(ids)))
    conn.execute(update(CustomerRow).where(CustomerRow.id.in_(ids)).values(merged_into=None))
    removed["customers"] = _count(conn.execute(delete(CustomerRow).where(CustomerRow.id.in_(ids))))
    return removed


class CustomerErasure:
    """Erases customers from the database, the checkpointer and the embedding cache."""

    def __init__(
        self,
        db: Database,
        checkpointer: BaseCheckpointSaver[str] | None,
        *,
        embedding_cache: Path | None = None,
        lease_s: float = 120.0,
        forget_handles: Callable[[Sequence[str]], int] | None = None,
    ) -> None:
        """`forget_handles` drops the customer's handles from in-process caches (rate-limit buckets…) and says
        how many entries it dropped."""
        self._db, self._saver, self._cache_path = db, checkpointer, embedding_cache
        self._forget_handles = forget_handles
        self._locks = TurnLocks(db, lease_s=lease_s)

    def erase(self, customer_id: str, *, actor: str) -> ErasureReport:
        """Erase the customer (and everyone merged into them) under their turn locks; `NotFoundError` when there
        is no such customer (a second erase), `ConflictError` when they were merged into someone else."""
        with self._db.engine.connect() as conn:
            row = conn.execute(select(CustomerRow.id, CustomerRow.merged_into).where(CustomerRow.id == customer_id))
            found = row.first()
            if found is None or customer_id == ERASED_CUSTOMER:
                raise NotFoundError(f"no customer {customer_id}")
            if found.merged_into:
                raise ConflictError(f"customer {customer_id} was merged into {found.merged_into}; erase that customer")
            family = _family(conn, customer_id)
        with ExitStack() as held:
            for member in sorted(family):  # one order everywhere: no deadlock
                held.enter_context(self._locks.hold(member))
            report = self._erase_locked(customer_id, actor)
        self._reclaim()
        return report

    def _erase_locked(self, customer_id: str, actor: str) -> ErasureReport:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with self._db.engine.connect() as conn:
                    if self._db.backend == "sqlite":
                        conn.exec_driver_sql("PRAGMA secure_delete=ON")
                        conn.commit()
                    with conn.begin():
                        family = _family(conn, customer_id)
                        handles, threads = _handles(conn, family), thread_ids(conn, family)
                        texts = _texts(conn, family)
                        removed = _delete_rows(conn, family, handles)
                        removed["threads"] = len(threads)
                        audit = {"subject": subject_hash(customer_id), "removed": removed, "actor": actor}
                        conn.execute(
                            insert(AnalyticsEventRow).values(type=AUDIT_EVENT, payload=audit, occurred_at=utcnow())
                        )
                break
            except IntegrityError:
                if attempt == ATTEMPTS:
                    raise
                log.warning("erase retried: a row of the customer was written meanwhile (attempt %d)", attempt)
        self._delete_threads(threads)
        removed["cache_entries"] = self._forget_handles(handles) if self._forget_handles else 0
        removed["embedding_cache"] = self._forget_embeddings(texts)
        log.info("customer erased: %s", {"subject": subject_hash(customer_id)[:12], **removed})
        return ErasureReport(subject_hash(customer_id), removed)

    def _delete_threads(self, threads: Iterable[str]) -> None:
        if self._saver is None:
            return
        conn = getattr(self._saver, "conn", None)
        if conn is not None and hasattr(conn, "execute") and self._db.backend == "sqlite":
            conn.execute("PRAGMA secure_delete=ON")  # the saver's own SQLite connection
        for thread in threads:
            self._saver.delete_thread(thread)

    def _forget_embeddings(self, texts: list[str]) -> int:
        if self._cache_path is None or not self._cache_path.exists() or not texts:
            return 0
        cache = EmbeddingCache(self._cache_path, EMBEDDING_MODEL)
        try:
            return cache.forget(texts)
        finally:
            cache.close()

    def _reclaim(self) -> None:
        """Make the freed space hold no copy: SQLite checkpoints and truncates the WAL and vacuums the file;
        Postgres vacuums the tables."""
        if self._db.backend == "sqlite":
            with self._db.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                conn.exec_driver_sql("VACUUM")
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            return
        with self._db.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            present = set(conn.scalars(text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")))
            for table in VACUUMED_TABLES:
                if table in present:
                    conn.exec_driver_sql(f'VACUUM "{table}"')


def erased_count(db: Database) -> int:
    """How many erasures the audit trail records."""
    with db.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).where(AnalyticsEventRow.type == AUDIT_EVENT)) or 0)

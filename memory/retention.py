"""Retention: prune old conversation checkpoints and old messages, on the savers' own tables.

LangGraph's savers never prune. Each checkpoint of a thread is a full snapshot (its parents are only needed for
time travel), so keeping the latest N per thread loses nothing a turn needs. A thread idle for longer than the
configured age goes entirely; a customer who comes back starts a fresh thread, with their episodes and
long-term memories still on file. Checkpoint ids are UUIDv6, whose bits carry their creation time, so idleness
is read from the ids themselves (the checkpoint bodies may be encrypted). Messages older than the configured age
are deleted from the log. Every limit is off at 0.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, inspect, select, text, update

from threadline.core.delivery import DeliveryState
from threadline.core.settings import Settings
from threadline.memory.checkpoint_trim import ORPHANED_BLOB, WRITES_TABLE
from threadline.memory.db import Database
from threadline.memory.schema import MessageRow, OutboxRow, utcnow

log = logging.getLogger("threadline.retention")

_UUID_EPOCH_OFFSET = 0x01B21DD213814000
"""100-ns intervals between the UUID epoch (1582-10-15) and the Unix epoch."""


@dataclass(frozen=True)
class RetentionPolicy:
    """What to keep; 0 turns a limit off."""

    checkpoints_keep: int = 0
    threads_idle_days: float = 0
    messages_days: float = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        """The policy configured by the `THREADLINE_RETENTION_*` settings."""
        return cls(
            checkpoints_keep=settings.retention_checkpoints_keep,
            threads_idle_days=settings.retention_threads_idle_days,
            messages_days=settings.retention_messages_days,
        )

    @property
    def active(self) -> bool:
        """Whether any limit is on."""
        return bool(self.checkpoints_keep or self.threads_idle_days or self.messages_days)


@dataclass
class RetentionReport:
    """Rows removed (or, in a dry run, that would be) per table."""

    dry_run: bool = False
    removed: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def checkpoint_time(checkpoint_id: str) -> datetime | None:
    """When a checkpoint was written, from its UUIDv6 id (None for another kind of id)."""
    try:
        value = uuid.UUID(checkpoint_id)
    except ValueError:
        return None
    if value.version != 6:
        return None
    ticks = ((value.int >> 80) << 12) | ((value.int >> 64) & 0x0FFF)
    return datetime.fromtimestamp((ticks - _UUID_EPOCH_OFFSET) / 10_000_000, UTC)


def _checkpointed(conn: Connection) -> bool:
    return inspect(conn).has_table("checkpoints")


def _delete_checkpoints(
    conn: Connection, backend: str, pairs: list[tuple[str, str, str]], report: RetentionReport
) -> None:
    """Delete (thread, namespace, checkpoint id) triples and their pending writes."""
    writes = WRITES_TABLE[backend]
    report.removed["checkpoints"] += len(pairs)
    for thread_id, ns, checkpoint_id in pairs:
        key = {"t": thread_id, "ns": ns, "c": checkpoint_id}
        where = "thread_id = :t AND checkpoint_ns = :ns AND checkpoint_id = :c"
        if report.dry_run:
            found = conn.execute(text(f"SELECT count(*) FROM {writes} WHERE {where}"), key).scalar()
            report.removed["checkpoint_writes"] += int(found or 0)
            continue
        gone = conn.execute(text(f"DELETE FROM {writes} WHERE {where}"), key)
        report.removed["checkpoint_writes"] += int(gone.rowcount or 0)
        conn.execute(text(f"DELETE FROM checkpoints WHERE {where}"), key)


def _orphan_blobs(conn: Connection, report: RetentionReport) -> None:
    """Postgres keeps channel values as versioned blobs; drop those no remaining checkpoint points at."""
    if report.dry_run:
        return  # blobs follow the checkpoints; a dry run cannot tell which survive without deleting them
    gone = conn.execute(text(f"DELETE FROM checkpoint_blobs AS b WHERE {ORPHANED_BLOB}"))
    report.removed["checkpoint_blobs"] += int(gone.rowcount or 0)


def prune_checkpoints(db: Database, policy: RetentionPolicy, report: RetentionReport, now: datetime) -> None:
    """Drop idle threads, then all but the latest `checkpoints_keep` checkpoints of each remaining thread."""
    if not policy.checkpoints_keep and not policy.threads_idle_days:
        return
    with db.engine.connect() as conn, conn.begin():
        if not _checkpointed(conn):
            return
        rows = conn.execute(text("SELECT thread_id, checkpoint_ns, checkpoint_id FROM checkpoints")).all()
        by_thread: dict[tuple[str, str], list[str]] = defaultdict(list)
        for thread_id, ns, checkpoint_id in rows:
            by_thread[(str(thread_id), str(ns))].append(str(checkpoint_id))
        doomed: list[tuple[str, str, str]] = []
        idle_before = now - timedelta(days=policy.threads_idle_days)
        idle_threads = set()
        for (thread_id, ns), ids in by_thread.items():
            ids.sort(reverse=True)  # UUIDv6 ids sort by time: the latest first
            latest = checkpoint_time(ids[0])
            if policy.threads_idle_days and latest is not None and latest < idle_before:
                idle_threads.add(thread_id)
                doomed += [(thread_id, ns, c) for c in ids]
            elif policy.checkpoints_keep:
                doomed += [(thread_id, ns, c) for c in ids[policy.checkpoints_keep :]]
        report.removed["idle_threads"] += len(idle_threads)
        _delete_checkpoints(conn, db.backend, doomed, report)
        if db.backend == "postgresql":
            _orphan_blobs(conn, report)


def _sent_before(cutoff: datetime) -> tuple[Any, ...]:
    """Outbox rows queued before `cutoff` and no longer waiting to be sent."""
    waiting = [DeliveryState.QUEUED.value, DeliveryState.SENDING.value]
    return OutboxRow.created_at < cutoff, OutboxRow.state.not_in(waiting)


def prune_messages(db: Database, policy: RetentionPolicy, report: RetentionReport, now: datetime) -> None:
    """Delete messages older than `messages_days` (replies to them lose only the link)."""
    if not policy.messages_days:
        return
    cutoff = now - timedelta(days=policy.messages_days)
    old = select(MessageRow.id).where(MessageRow.created_at < cutoff)
    with db.session() as s:
        if report.dry_run:
            report.removed["messages"] += int(s.scalar(select(func.count()).select_from(old.subquery())) or 0)
            report.removed["outbox"] += int(s.scalar(select(func.count()).where(*_sent_before(cutoff))) or 0)
            return
        s.execute(update(MessageRow).where(MessageRow.reply_to_id.in_(old)).values(reply_to_id=None))
        gone = s.execute(delete(MessageRow).where(MessageRow.created_at < cutoff))
        report.removed["messages"] += int(gone.rowcount or 0)  # type: ignore[attr-defined]
        # The outbox holds the same words and the customer's address: what was sent that long ago goes too (rows
        # still waiting to be sent stay, whatever their age).
        sent = s.execute(delete(OutboxRow).where(*_sent_before(cutoff)))
        report.removed["outbox"] += int(sent.rowcount or 0)  # type: ignore[attr-defined]


def run_retention(
    db: Database, policy: RetentionPolicy, *, dry_run: bool = False, now: datetime | None = None
) -> RetentionReport:
    """Apply the policy once; returns what was (or would be) removed."""
    report = RetentionReport(dry_run=dry_run)
    at = now or utcnow()
    prune_checkpoints(db, policy, report, at)
    prune_messages(db, policy, report, at)
    report.removed = {table: n for table, n in report.removed.items() if n}
    log.info("retention%s: %s", " (dry run)" if dry_run else "", report.removed or "nothing to remove")
    return report


def run_in_background(db: Database, policy: RetentionPolicy) -> threading.Thread:
    """Run the policy once on a daemon thread (start-up must not wait for it); failures are logged."""

    def job() -> None:
        try:
            run_retention(db, policy)
        except Exception:
            log.exception("the retention job failed; it runs again at the next start or `threadline maintenance`")

    worker = threading.Thread(target=job, name="threadline-retention", daemon=True)
    worker.start()
    return worker

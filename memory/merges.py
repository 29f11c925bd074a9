"""Merging two customers and undoing it exactly: every moved row is listed in the merge's audit row.

A merge moves the source customer's identities, messages, episodes, handoffs, orders, analytics events and
long-term memories onto the target in one transaction and marks the source `merged_into` the target. The
audit row records each moved row's id and the fields the merge changed, so `unmerge` moves exactly those rows
back and restores those fields; rows written after the merge stay with the target. Nothing is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from threadline.core.errors import ConflictError, InvalidInputError, NotFoundError
from threadline.core.types import CustomerId, HandleType, IdentityEventKind, VerificationLevel
from threadline.memory.db import Database
from threadline.memory.schema import (
    NAMESPACE_SEP,
    AnalyticsEventRow,
    ChannelIdentityRow,
    CustomerRow,
    EpisodeRow,
    HandoffRow,
    IdentityEventRow,
    MemoryItemRow,
    MessageRow,
    OrderRow,
    OutboxRow,
    utcnow,
)

# Rows that belong to a customer through a `customer_id` column, moved as a whole by a merge.
_OWNED: dict[str, Any] = {
    "messages": MessageRow,
    "episodes": EpisodeRow,
    "handoffs": HandoffRow,
    "orders": OrderRow,
    "analytics_events": AnalyticsEventRow,
    "outbox": OutboxRow,
}


@dataclass(frozen=True)
class MergeRecord:
    """A merge as its audit row tells it."""

    event_id: int
    source: CustomerId
    target: CustomerId
    detail: dict[str, Any]
    created_at: datetime

    @property
    def moved(self) -> dict[str, list[Any]]:
        """Ids (or rows) moved per table."""
        moved: dict[str, list[Any]] = self.detail.get("moved", {})
        return moved


def _memory_prefix(customer_id: str) -> str:
    return NAMESPACE_SEP.join(("customers", customer_id)) + NAMESPACE_SEP


class CustomerMerges:
    """Audited merges and their exact undo."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def merge(
        self,
        source: CustomerId,
        target: CustomerId,
        *,
        actor: str,
        reason: str,
        verified_handle: tuple[HandleType, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> MergeRecord:
        """Move everything of `source` onto `target`. `verified_handle` is the handle whose holder just proved
        to be the target: it comes across verified. Refused when the two customers have different external
        ids (two known people are never merged), when either was merged away, or when a known customer would
        be merged into a provisional one."""
        if source == target:
            raise InvalidInputError("a customer cannot be merged into itself")
        now = utcnow()
        with self._db.session() as s:
            src, dst = self._lock_pair(s, source, target)
            if src.merged_into or dst.merged_into:
                merged = src if src.merged_into else dst
                raise ConflictError(f"customer {merged.id} was already merged into {merged.merged_into}")
            if src.external_id and dst.external_id and src.external_id != dst.external_id:
                raise ConflictError("customers with different external ids are never merged")
            if dst.provisional and not src.provisional:
                raise ConflictError("a known customer is never merged into a provisional one; swap source and target")
            moved: dict[str, list[Any]] = {}
            for name, table in _OWNED.items():
                ids = list(s.scalars(select(table.id).where(table.customer_id == source).order_by(table.id)))
                if ids:
                    s.execute(update(table).where(table.id.in_(ids)).values(customer_id=target))
                moved[name] = ids
            moved["channel_identities"] = self._move_identities(s, source, target, verified_handle, now)
            moved["memory_items"] = self._move_memories(s, source, target)
            src.merged_into = target
            detail = {"reason": reason, "moved": moved, **(extra or {})}
            event = IdentityEventRow(
                kind=IdentityEventKind.MERGE.value,
                customer_id=target,
                other_customer_id=source,
                detail=detail,
                actor=actor,
                created_at=now,
            )
            s.add(event)
            s.flush()
            return MergeRecord(event.id, source, target, detail, now)

    def unmerge(self, event_id: int, *, actor: str) -> MergeRecord:
        """Undo one merge: the rows it moved go back and the fields it changed are restored."""
        with self._db.session() as s:
            record = self._merge_event(s, event_id)
            src, _ = self._lock_pair(s, record.source, record.target)
            if src.merged_into != record.target or self._undone(s, event_id):
                raise ConflictError(f"merge {event_id} was already undone")
            later = s.scalar(
                select(IdentityEventRow.id).where(
                    IdentityEventRow.kind == IdentityEventKind.MERGE.value,
                    IdentityEventRow.other_customer_id == record.target,
                    IdentityEventRow.id > event_id,
                )
            )
            if later is not None and not self._undone(s, later):
                raise ConflictError(f"{record.target} was merged again later (merge {later}); undo that merge first")
            moved = record.moved
            for name, table in _OWNED.items():
                ids = moved.get(name, [])
                if ids:
                    s.execute(
                        update(table)
                        .where(table.id.in_(ids), table.customer_id == record.target)
                        .values(customer_id=record.source)
                    )
            for saved in moved.get("channel_identities", []):
                row = s.get(ChannelIdentityRow, saved["id"])
                if row is not None and row.customer_id == record.target:
                    row.customer_id = CustomerId(record.source)
                    row.verification_level = saved["verification_level"]
                    row.verified_at = datetime.fromisoformat(saved["verified_at"]) if saved["verified_at"] else None
                    row.active = saved["active"]
            for saved in moved.get("memory_items", []):
                item = s.get(MemoryItemRow, saved["id"])
                if item is not None and item.namespace.startswith(_memory_prefix(record.target)):
                    item.namespace = saved["namespace"]
            src.merged_into = None
            s.add(
                IdentityEventRow(
                    kind=IdentityEventKind.UNMERGE.value,
                    customer_id=record.source,
                    other_customer_id=record.target,
                    detail={"merge_event_id": event_id},
                    actor=actor,
                    created_at=utcnow(),
                )
            )
            return record

    def get(self, event_id: int) -> MergeRecord:
        """One merge by its audit row id."""
        with self._db.session() as s:
            return self._merge_event(s, event_id)

    def merges_of(self, customer_id: CustomerId) -> list[MergeRecord]:
        """Merges into or out of a customer that are still in effect, oldest first."""
        with self._db.session() as s:
            rows = s.scalars(
                select(IdentityEventRow)
                .where(
                    IdentityEventRow.kind == IdentityEventKind.MERGE.value,
                    (IdentityEventRow.customer_id == customer_id) | (IdentityEventRow.other_customer_id == customer_id),
                )
                .order_by(IdentityEventRow.id)
            )
            return [self._record(r) for r in rows if not self._undone(s, r.id)]

    # -- internals ----------------------------------------------------------------------------------------

    @staticmethod
    def _lock_pair(s: Session, source: str, target: str) -> tuple[CustomerRow, CustomerRow]:
        """Both customers' rows, locked in id order so two opposite merges cannot deadlock."""
        rows = {
            r.id: r
            for r in s.scalars(
                select(CustomerRow)
                .where(CustomerRow.id.in_(sorted({source, target})))
                .order_by(CustomerRow.id)
                .with_for_update()
            )
        }
        for customer_id in (source, target):
            if customer_id not in rows:
                raise NotFoundError(f"no customer {customer_id}")
        return rows[source], rows[target]

    @staticmethod
    def _move_identities(
        s: Session, source: str, target: str, verified: tuple[HandleType, str] | None, now: datetime
    ) -> list[dict[str, Any]]:
        saved: list[dict[str, Any]] = []
        rows = s.scalars(select(ChannelIdentityRow).where(ChannelIdentityRow.customer_id == source))
        for row in rows:
            saved.append(
                {
                    "id": row.id,
                    "verification_level": row.verification_level,
                    "verified_at": row.verified_at.isoformat() if row.verified_at else None,
                    "active": row.active,
                }
            )
            row.customer_id = target
            if verified == (HandleType(row.handle_type), row.handle_value):
                row.verification_level, row.verified_at = VerificationLevel.VERIFIED.value, now
                row.last_seen_at = now
        return saved

    @staticmethod
    def _move_memories(s: Session, source: str, target: str) -> list[dict[str, Any]]:
        prefix = _memory_prefix(source)
        saved: list[dict[str, Any]] = []
        mine = and_(
            MemoryItemRow.namespace.startswith(prefix, autoescape=True),
            func.substr(MemoryItemRow.namespace, 1, len(prefix)) == prefix,  # case-sensitive on SQLite too
        )
        for item in s.scalars(select(MemoryItemRow).where(mine)):
            moved_to = _memory_prefix(target) + item.namespace[len(prefix) :]
            clash = s.scalar(
                select(MemoryItemRow.id).where(MemoryItemRow.namespace == moved_to, MemoryItemRow.key == item.key)
            )
            if clash is None:  # the target's own item of that key wins; the source's stays where it was
                saved.append({"id": item.id, "namespace": item.namespace})
                item.namespace = moved_to
        return saved

    @staticmethod
    def _undone(s: Session, event_id: int) -> bool:
        merge = s.get(IdentityEventRow, event_id)
        assert merge is not None
        undos = s.scalars(
            select(IdentityEventRow.detail).where(
                IdentityEventRow.kind == IdentityEventKind.UNMERGE.value,
                IdentityEventRow.customer_id == merge.other_customer_id,
                IdentityEventRow.other_customer_id == merge.customer_id,
            )
        )
        return any(detail.get("merge_event_id") == event_id for detail in undos)

    def _merge_event(self, s: Session, event_id: int) -> MergeRecord:
        row = s.get(IdentityEventRow, event_id)
        if row is None or row.kind != IdentityEventKind.MERGE.value:
            raise NotFoundError(f"no merge {event_id}")
        return self._record(row)

    @staticmethod
    def _record(row: IdentityEventRow) -> MergeRecord:
        assert row.other_customer_id is not None
        return MergeRecord(
            row.id, CustomerId(row.other_customer_id), CustomerId(row.customer_id), dict(row.detail), row.created_at
        )

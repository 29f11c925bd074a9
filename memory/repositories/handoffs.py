"""Handoffs: cases handed to human agents, with their packet."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from core.errors import NotFoundError
from core.types import CustomerId, EpisodeId, Handoff, HandoffId, HandoffStatus
from memory.db import Database
from memory.ids import new_id
from memory.schema import HandoffRow, utcnow

_OPEN = (HandoffStatus.QUEUED.value, HandoffStatus.CLAIMED.value)


class SqlHandoffRepository:
    """`HandoffRepository` over the domain store."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self,
        customer_id: CustomerId,
        *,
        packet: dict[str, Any],
        packet_version: str,
        priority: str,
        episode_id: EpisodeId | None = None,
        sla_due_at: datetime | None = None,
    ) -> Handoff:
        row = HandoffRow(
            id=new_id("ho"),
            customer_id=customer_id,
            episode_id=episode_id,
            status=HandoffStatus.QUEUED.value,
            priority=priority,
            packet=packet,
            packet_version=packet_version,
            created_at=utcnow(),
            sla_due_at=sla_due_at,
        )
        with self._db.session() as s:
            s.add(row)
            s.flush()
            return Handoff.model_validate(row)

    def get(self, handoff_id: HandoffId) -> Handoff | None:
        with self._db.session() as s:
            row = s.get(HandoffRow, handoff_id)
            return Handoff.model_validate(row) if row else None

    def list(self, status: HandoffStatus | None = None, limit: int = 100) -> list[Handoff]:
        with self._db.session() as s:
            query = select(HandoffRow).order_by(HandoffRow.created_at, HandoffRow.id).limit(limit)
            if status is not None:
                query = query.where(HandoffRow.status == status.value)
            return [Handoff.model_validate(r) for r in s.scalars(query)]

    def open_for_customer(self, customer_id: CustomerId) -> Handoff | None:
        """The customer's queued or claimed handoff, if any: while it exists a human owns the case."""
        with self._db.session() as s:
            row = s.scalar(
                select(HandoffRow)
                .where(HandoffRow.customer_id == customer_id, HandoffRow.status.in_(_OPEN))
                .order_by(HandoffRow.created_at.desc())
                .limit(1)
            )
            return Handoff.model_validate(row) if row else None

    def set_status(self, handoff_id: HandoffId, status: HandoffStatus, *, agent: str | None = None) -> Handoff:
        with self._db.session() as s:
            row = s.get(HandoffRow, handoff_id, with_for_update=True)
            if row is None:
                raise NotFoundError(f"handoff {handoff_id} not found")
            row.status = status.value
            if status is HandoffStatus.CLAIMED:
                row.assigned_agent, row.claimed_at = agent, utcnow()
            elif status in (HandoffStatus.RESOLVED, HandoffStatus.RELEASED):
                row.resolved_at = utcnow()
            s.flush()
            return Handoff.model_validate(row)

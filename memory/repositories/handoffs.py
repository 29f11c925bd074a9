"""Handoffs: cases handed to human agents, with their packet, and the log of each case's life.

The human-agent loop: `queued` (waiting for an agent) → `claimed` (an agent owns it) → `released` (back to the AI,
with the agent's note) or `resolved` (closed). A case queued longer than the queue timeout becomes `timed_out`:
the customer has been told, and the case stays open for any agent to claim. Every transition is recorded as a
`HandoffEventRow` in the same transaction as the change, and each transition is a conditional update, so two
agents claiming at once never both win (on SQLite as on Postgres).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.orm import Session

from threadline.core.errors import ConflictError, InvalidInputError, NotFoundError
from threadline.core.types import (
    CustomerId,
    EpisodeId,
    Handoff,
    HandoffEvent,
    HandoffEventKind,
    HandoffId,
    HandoffStatus,
)
from threadline.memory.db import Database
from threadline.memory.ids import new_id
from threadline.memory.schema import HandoffEventRow, HandoffRow, table, utcnow

OPEN_STATUSES = (HandoffStatus.QUEUED, HandoffStatus.CLAIMED, HandoffStatus.TIMED_OUT)
"""A case in one of these is owned by people: the AI answers nothing."""
_OPEN = tuple(s.value for s in OPEN_STATUSES)
_HANDOFFS = table(HandoffRow)
_OPEN_FOR_CUSTOMER = (
    select(_HANDOFFS)
    .where(_HANDOFFS.c.customer_id == bindparam("customer_id"), _HANDOFFS.c.status.in_(_OPEN))
    .order_by(_HANDOFFS.c.created_at.desc())
    .limit(1)
)
_CLAIMABLE = (HandoffStatus.QUEUED.value, HandoffStatus.TIMED_OUT.value)
SYSTEM = "system"


def _event(s: Session, handoff_id: str, kind: HandoffEventKind, actor: str, payload: dict[str, Any]) -> None:
    s.add(HandoffEventRow(handoff_id=handoff_id, kind=kind.value, actor=actor, payload=payload, created_at=utcnow()))


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
            _event(s, row.id, HandoffEventKind.CREATED, "ai", {"priority": priority, "channel": packet.get("channel")})
            return Handoff.model_validate(row)

    def get(self, handoff_id: HandoffId) -> Handoff | None:
        with self._db.session() as s:
            row = s.get(HandoffRow, handoff_id)
            return Handoff.model_validate(row) if row else None

    def list(
        self,
        status: HandoffStatus | Sequence[HandoffStatus] | None = None,
        limit: int = 100,
        *,
        priority: str | None = None,
        channel: str | None = None,
    ) -> builtins.list[Handoff]:
        """Handoffs, oldest first; `channel` filters on the packet's channel (the customer's at escalation)."""
        statuses = [status] if isinstance(status, HandoffStatus) else list(status or [])
        with self._db.session() as s:
            query = select(HandoffRow).order_by(HandoffRow.created_at, HandoffRow.id)
            if statuses:
                query = query.where(HandoffRow.status.in_([st.value for st in statuses]))
            if priority is not None:
                query = query.where(HandoffRow.priority == priority)
            if channel is None:
                query = query.limit(limit)
            rows = [Handoff.model_validate(r) for r in s.scalars(query)]
        if channel is not None:  # a JSON field: filtered here, the same way on every backend
            rows = [h for h in rows if h.packet.get("channel") == channel][:limit]
        return rows

    def open_for_customer(self, customer_id: CustomerId) -> Handoff | None:
        """The customer's open handoff (queued, claimed or timed out), if any: while it exists people own the
        case."""
        row = self._db.first(_OPEN_FOR_CUSTOMER, {"customer_id": customer_id})
        return Handoff.model_validate(row) if row else None

    def set_status(self, handoff_id: HandoffId, status: HandoffStatus, *, agent: str | None = None) -> Handoff:
        """Force a status (administrative); the loop's own transitions are `claim`, `release`, `resolve`."""
        with self._db.session() as s:
            row = s.get(HandoffRow, handoff_id, with_for_update=True)
            if row is None:
                raise NotFoundError(f"handoff {handoff_id} not found")
            row.status = status.value
            if status is HandoffStatus.CLAIMED:
                row.assigned_agent, row.claimed_at = agent, utcnow()
            elif status in (HandoffStatus.RESOLVED, HandoffStatus.RELEASED):
                row.resolved_at = utcnow()
            known = {k.value for k in HandoffEventKind}
            kind = HandoffEventKind(status.value) if status.value in known else HandoffEventKind.CREATED
            _event(s, handoff_id, kind, agent or SYSTEM, {"forced": True})
            s.flush()
            return Handoff.model_validate(row)

    # --- the human-agent loop ------------------------------------------------------------------------------------

    def _transition(
        self,
        s: Session,
        handoff_id: HandoffId,
        agent: str,
        allowed: tuple[str, ...],
        values: dict[str, Any],
        verb: str,
    ) -> HandoffRow:
        """Apply `values` if the case is in one of `allowed` and not claimed by someone other than `agent`;
        otherwise raise the error that explains why not."""
        changed = s.execute(
            update(HandoffRow)
            .where(
                HandoffRow.id == handoff_id,
                HandoffRow.status.in_(allowed),
                or_(HandoffRow.status != HandoffStatus.CLAIMED.value, HandoffRow.assigned_agent == agent),
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        row = s.get(HandoffRow, handoff_id, populate_existing=True)
        if row is None:
            raise NotFoundError(f"handoff {handoff_id} not found")
        if changed.rowcount == 0:  # type: ignore[attr-defined]
            if row.status == HandoffStatus.CLAIMED.value and row.assigned_agent != agent:
                raise ConflictError(f"handoff {handoff_id} is claimed by {row.assigned_agent}")
            raise ConflictError(f"handoff {handoff_id} is {row.status}; it cannot be {verb}")
        return row

    def claim(self, handoff_id: HandoffId, agent: str) -> Handoff:
        """`agent` takes the case (queued or timed out). Claiming one's own case again changes nothing; a case
        another agent holds is a `ConflictError`."""
        with self._db.session() as s:
            current = s.get(HandoffRow, handoff_id)
            if (
                current is not None
                and current.status == HandoffStatus.CLAIMED.value
                and current.assigned_agent == agent
            ):
                return Handoff.model_validate(current)
            values = {"status": HandoffStatus.CLAIMED.value, "assigned_agent": agent, "claimed_at": utcnow()}
            row = self._transition(s, handoff_id, agent, _CLAIMABLE, values, "claimed")
            _event(s, handoff_id, HandoffEventKind.CLAIMED, agent, {})
            return Handoff.model_validate(row)

    def release(self, handoff_id: HandoffId, agent: str, note: str) -> Handoff:
        """The case goes back to the AI, with the agent's note."""
        with self._db.session() as s:
            values = {"status": HandoffStatus.RELEASED.value, "resolved_at": utcnow()}
            row = self._transition(s, handoff_id, agent, _OPEN, values, "released")
            _event(s, handoff_id, HandoffEventKind.RELEASED, agent, {"note": note})
            return Handoff.model_validate(row)

    def resolve(self, handoff_id: HandoffId, agent: str) -> Handoff:
        """The case is closed."""
        with self._db.session() as s:
            values = {"status": HandoffStatus.RESOLVED.value, "resolved_at": utcnow()}
            row = self._transition(s, handoff_id, agent, _OPEN, values, "resolved")
            _event(s, handoff_id, HandoffEventKind.RESOLVED, agent, {})
            return Handoff.model_validate(row)

    def rate(
        self,
        handoff_id: HandoffId,
        agent: str,
        usefulness: int,
        missing: Sequence[str] = (),
        wrong: Sequence[str] = (),
    ) -> Handoff:
        """The agent's rating of the packet: usefulness 1 to 5, and which of its fields were missing or wrong."""
        if not 1 <= usefulness <= 5:
            raise InvalidInputError("usefulness is from 1 to 5")
        with self._db.session() as s:
            row = s.get(HandoffRow, handoff_id, with_for_update=True)
            if row is None:
                raise NotFoundError(f"handoff {handoff_id} not found")
            row.rating = usefulness
            payload = {"usefulness": usefulness, "missing": list(missing), "wrong": list(wrong)}
            _event(s, handoff_id, HandoffEventKind.RATED, agent, payload)
            s.flush()
            return Handoff.model_validate(row)

    def record(
        self, handoff_id: HandoffId, kind: HandoffEventKind, actor: str, payload: dict[str, Any] | None = None
    ) -> HandoffEvent:
        """Log a step that changes no status (a customer message, an agent reply)."""
        with self._db.session() as s:
            if s.get(HandoffRow, handoff_id) is None:
                raise NotFoundError(f"handoff {handoff_id} not found")
            row = HandoffEventRow(
                handoff_id=handoff_id, kind=kind.value, actor=actor, payload=payload or {}, created_at=utcnow()
            )
            s.add(row)
            s.flush()
            return HandoffEvent.model_validate(row)

    def time_out(self, handoff_id: HandoffId, now: datetime, minutes: float) -> Handoff | None:
        """The case, now `timed_out`, if it was still queued `minutes` after it was created; else None (so the
        customer is told once, whoever notices first)."""
        cutoff = now - timedelta(minutes=minutes)
        with self._db.session() as s:
            changed = s.execute(
                update(HandoffRow)
                .where(
                    HandoffRow.id == handoff_id,
                    HandoffRow.status == HandoffStatus.QUEUED.value,
                    HandoffRow.created_at <= cutoff,
                )
                .values(status=HandoffStatus.TIMED_OUT.value)
                .execution_options(synchronize_session=False)
            )
            if changed.rowcount == 0:  # type: ignore[attr-defined]
                return None
            _event(s, handoff_id, HandoffEventKind.TIMED_OUT, SYSTEM, {"after_minutes": minutes})
            row = s.get(HandoffRow, handoff_id, populate_existing=True)
            assert row is not None
            return Handoff.model_validate(row)

    def time_out_overdue(self, now: datetime, minutes: float) -> builtins.list[Handoff]:
        """Every case queued longer than `minutes`, moved to `timed_out` (each exactly once)."""
        cutoff = now - timedelta(minutes=minutes)
        with self._db.session() as s:
            ids = s.scalars(
                select(HandoffRow.id).where(
                    HandoffRow.status == HandoffStatus.QUEUED.value, HandoffRow.created_at <= cutoff
                )
            ).all()
        return [h for h in (self.time_out(HandoffId(i), now, minutes) for i in ids) if h is not None]

    def events(self, handoff_id: HandoffId) -> builtins.list[HandoffEvent]:
        """The case's life, oldest first."""
        with self._db.session() as s:
            rows = s.scalars(
                select(HandoffEventRow).where(HandoffEventRow.handoff_id == handoff_id).order_by(HandoffEventRow.id)
            )
            return [HandoffEvent.model_validate(r) for r in rows]

    def events_since(self, event_id: int, limit: int = 100) -> builtins.list[HandoffEvent]:
        """Every case's events after `event_id`, oldest first: what a console polls or streams."""
        with self._db.session() as s:
            rows = s.scalars(
                select(HandoffEventRow).where(HandoffEventRow.id > event_id).order_by(HandoffEventRow.id).limit(limit)
            )
            return [HandoffEvent.model_validate(r) for r in rows]

    def last_event_id(self) -> int:
        """The newest event's id (0 when there is none): where a live stream starts."""
        with self._db.session() as s:
            latest = s.scalar(select(HandoffEventRow.id).order_by(HandoffEventRow.id.desc()).limit(1))
            return int(latest or 0)

"""The outbox: every outbound provider message with its delivery state, claimed by dispatchers.

A claim is one `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING`: on Postgres, dispatchers in
several workers skip each other's rows instead of waiting on them; on SQLite the statement runs under the database's
single write lock, so two dispatchers can never take the same row either. Every later write is fenced by the claim
(`claimed_by` and state `sending`), so a dispatcher whose claim lapsed and was taken over writes nothing.

A write that reads the row first (to extend its history) locks it before reading: `FOR UPDATE` on Postgres; on SQLite,
whose transactions begin at their first write, a no-op update of the row first, so the read happens under the
database's write lock and two status reports (or a dispatcher and a report) never read the same state.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, func, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from threadline.core.delivery import (
    PROBLEM_STATES,
    Delivery,
    DeliveryFailureRate,
    DeliveryState,
    NewDelivery,
    SendReceipt,
    advances,
)
from threadline.core.types import CustomerId
from threadline.memory.db import Database
from threadline.memory.schema import OutboxRow, table, utcnow

_OUTBOX = table(OutboxRow)
_INSERT = insert(_OUTBOX).returning(*_OUTBOX.c)
_DUE = (
    select(_OUTBOX.c.id)
    .where(
        or_(
            (_OUTBOX.c.state == DeliveryState.QUEUED.value) & (_OUTBOX.c.next_attempt_at <= bindparam("now")),
            (_OUTBOX.c.state == DeliveryState.SENDING.value) & (_OUTBOX.c.claimed_until < bindparam("now")),
        )
    )
    .order_by(_OUTBOX.c.next_attempt_at, _OUTBOX.c.id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
_CLAIM = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id.in_(_DUE.scalar_subquery()))
    .values(
        state=DeliveryState.SENDING.value,
        claimed_by=bindparam("worker"),
        claimed_until=bindparam("until"),
        attempts=_OUTBOX.c.attempts + 1,
        updated_at=bindparam("now"),
    )
    .returning(*_OUTBOX.c)
)
_HELD = (
    select(_OUTBOX)
    .where(
        _OUTBOX.c.id == bindparam("id"),
        _OUTBOX.c.claimed_by == bindparam("worker"),
        _OUTBOX.c.state == DeliveryState.SENDING.value,
    )
    .with_for_update()
)
_TOUCH = update(_OUTBOX).where(_OUTBOX.c.id == bindparam("row")).values(id=_OUTBOX.c.id)
_TOUCH_BY_PROVIDER_ID = (
    update(_OUTBOX)
    .where(_OUTBOX.c.provider == bindparam("sender"), _OUTBOX.c.provider_message_id == bindparam("pid"))
    .values(id=_OUTBOX.c.id)
)
_BY_PROVIDER_ID = (
    select(_OUTBOX)
    .where(_OUTBOX.c.provider == bindparam("provider"), _OUTBOX.c.provider_message_id == bindparam("pid"))
    .order_by(_OUTBOX.c.id)
    .limit(1)
    .with_for_update()
)
MAX_HISTORY = 50
"""History entries kept per delivery (the first and the latest): a chatty provider cannot grow a row forever."""


def _entry(state: DeliveryState | str, at: datetime, source: str, detail: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"state": str(state), "at": at.isoformat(), "source": source}
    if detail:
        entry["detail"] = detail[:500]
    return entry


def _appended(history: list[dict[str, Any]] | None, entry: dict[str, Any]) -> list[dict[str, Any]]:
    kept = [*(history or []), entry]
    return kept if len(kept) <= MAX_HISTORY else [kept[0], *kept[-(MAX_HISTORY - 1) :]]


class SqlOutbox:
    """`Outbox` over the domain store."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def enqueue(self, delivery: NewDelivery, *, now: datetime | None = None) -> tuple[Delivery, bool]:
        at = now or utcnow()
        row = {
            **delivery.model_dump(),
            "channel": delivery.channel.value,
            "purpose": delivery.purpose.value,
            "state": DeliveryState.QUEUED.value,
            "attempts": 0,
            "next_attempt_at": at,
            "history": [_entry(DeliveryState.QUEUED, at, "outbox")],
            "created_at": at,
            "updated_at": at,
        }
        try:
            with self._db.transaction() as conn:
                created = conn.execute(_INSERT, row).one()
        except IntegrityError:
            existing = self._db.first(select(_OUTBOX).where(_OUTBOX.c.idempotency_key == delivery.idempotency_key))
            if existing is None:
                raise
            return Delivery.model_validate(existing), False
        return Delivery.model_validate(created), True

    def claim(self, worker: str, *, now: datetime, lease: timedelta, limit: int = 20) -> list[Delivery]:
        with self._db.transaction() as conn:
            rows = conn.execute(_CLAIM, {"worker": worker, "until": now + lease, "now": now, "limit": limit}).all()
        return sorted((Delivery.model_validate(r) for r in rows), key=lambda d: (d.next_attempt_at, d.id))

    def _finish(self, delivery_id: int, worker: str, values: dict[str, Any], entry: dict[str, Any]) -> Delivery | None:
        with self._db.transaction() as conn:
            if self._db.backend == "sqlite":
                conn.execute(_TOUCH, {"row": delivery_id})  # the write lock first: see the module's docstring
            held = conn.execute(_HELD, {"id": delivery_id, "worker": worker}).first()
            if held is None:  # the claim lapsed and another dispatcher took it over: its outcome stands
                return None
            fence = (_OUTBOX.c.claimed_by == worker, _OUTBOX.c.state == DeliveryState.SENDING.value)
            return self._update(conn, delivery_id, {**values, "history": _appended(held.history, entry)}, *fence)

    @staticmethod
    def _update(conn: Connection, delivery_id: int, values: dict[str, Any], *fence: Any) -> Delivery | None:
        statement = update(_OUTBOX).where(_OUTBOX.c.id == delivery_id, *fence).values(**values).returning(*_OUTBOX.c)
        row = conn.execute(statement).first()
        return Delivery.model_validate(row) if row is not None else None

    def mark_sent(self, delivery_id: int, worker: str, receipt: SendReceipt, *, now: datetime) -> Delivery | None:
        state = DeliveryState.DELIVERED if receipt.delivered else DeliveryState.SENT
        values: dict[str, Any] = {
            "state": state.value,
            "provider_message_id": receipt.provider_message_id,
            "claimed_until": None,
            "sent_at": now,
            "updated_at": now,
            "last_error": None,
        }
        if receipt.delivered:
            values["delivered_at"] = now
        return self._finish(delivery_id, worker, values, _entry(state, now, "dispatcher"))

    def mark_retry(self, delivery_id: int, worker: str, error: str, *, at: datetime, now: datetime) -> Delivery | None:
        values = {
            "state": DeliveryState.QUEUED.value,
            "next_attempt_at": at,
            "claimed_until": None,
            "last_error": error[:2000],
            "updated_at": now,
        }
        return self._finish(delivery_id, worker, values, _entry("retry", now, "dispatcher", error))

    def mark_failed(
        self, delivery_id: int, worker: str, error: str, *, state: DeliveryState, now: datetime
    ) -> Delivery | None:
        if state not in PROBLEM_STATES:
            raise ValueError(f"a final failure is failed or dead, not {state}")
        values = {"state": state.value, "claimed_until": None, "last_error": error[:2000], "updated_at": now}
        return self._finish(delivery_id, worker, values, _entry(state, now, "dispatcher", error))

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
        with self._db.transaction() as conn:
            if self._db.backend == "sqlite":
                conn.execute(_TOUCH_BY_PROVIDER_ID, {"sender": provider, "pid": provider_message_id})
            row = conn.execute(_BY_PROVIDER_ID, {"provider": provider, "pid": provider_message_id}).first()
            if row is None:
                return None
            current = DeliveryState(row.state)
            label = "read" if read else reported.value
            values: dict[str, Any] = {"history": _appended(row.history, _entry(label, at, provider, detail))}
            if advances(current, reported):
                values |= {"state": reported.value, "updated_at": utcnow()}
                if reported is DeliveryState.FAILED:
                    values["last_error"] = (detail or "the provider reported it undelivered")[:2000]
            if reported is DeliveryState.DELIVERED and row.delivered_at is None:
                values["delivered_at"] = at
            if read and row.read_at is None:
                values["read_at"] = at
            updated = self._update(conn, row.id, values)
            return (current, updated) if updated is not None else None

    def get(self, delivery_id: int) -> Delivery | None:
        row = self._db.first(select(_OUTBOX).where(_OUTBOX.c.id == delivery_id))
        return Delivery.model_validate(row) if row else None

    def for_messages(self, message_ids: Collection[int]) -> dict[int, list[Delivery]]:
        if not message_ids:
            return {}
        query = (
            select(_OUTBOX)
            .where(_OUTBOX.c.message_id.in_(list(message_ids)))
            .order_by(_OUTBOX.c.message_id, _OUTBOX.c.part, _OUTBOX.c.id)
        )
        found: dict[int, list[Delivery]] = {}
        for row in self._db.all(query):
            found.setdefault(row.message_id, []).append(Delivery.model_validate(row))
        return found

    def for_customer(self, customer_id: CustomerId, limit: int = 100) -> list[Delivery]:
        query = select(_OUTBOX).where(_OUTBOX.c.customer_id == customer_id).order_by(_OUTBOX.c.id.desc()).limit(limit)
        return [Delivery.model_validate(r) for r in reversed(self._db.all(query))]

    def problems(self, limit: int = 100) -> list[Delivery]:
        query = (
            select(_OUTBOX)
            .where(_OUTBOX.c.state.in_([s.value for s in PROBLEM_STATES]))
            .order_by(_OUTBOX.c.updated_at.desc(), _OUTBOX.c.id.desc())
            .limit(limit)
        )
        return [Delivery.model_validate(r) for r in self._db.all(query)]

    def failure_rates(self, since: datetime | None = None, until: datetime | None = None) -> list[DeliveryFailureRate]:
        failed = func.sum(case((_OUTBOX.c.state == DeliveryState.FAILED.value, 1), else_=0))
        dead = func.sum(case((_OUTBOX.c.state == DeliveryState.DEAD.value, 1), else_=0))
        query = select(_OUTBOX.c.channel, func.count().label("total"), failed.label("failed"), dead.label("dead"))
        if since is not None:
            query = query.where(_OUTBOX.c.created_at >= since)
        if until is not None:
            query = query.where(_OUTBOX.c.created_at < until)
        rows = self._db.all(query.group_by(_OUTBOX.c.channel).order_by(_OUTBOX.c.channel))
        return [
            DeliveryFailureRate(channel=r.channel, total=int(r.total), failed=int(r.failed or 0), dead=int(r.dead or 0))
            for r in rows
        ]

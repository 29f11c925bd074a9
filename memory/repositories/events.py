"""The append-only analytics event log."""

from __future__ import annotations

import builtins
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from threadline.core.types import AnalyticsEvent, CustomerId, NewEvent
from threadline.memory.db import Database
from threadline.memory.schema import AnalyticsEventRow, table, utcnow

_EVENTS = table(AnalyticsEventRow)
_INSERT = insert(_EVENTS).returning(_EVENTS.c.id)


class SqlEventLog:
    """`EventLog` over the domain store."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def append(
        self,
        type: str,
        *,
        customer_id: CustomerId | None = None,
        channel: str | None = None,
        payload: dict[str, Any] | None = None,
        occurred_at: datetime | None = None,
    ) -> AnalyticsEvent:
        row = {
            "type": type,
            "customer_id": customer_id,
            "channel": channel,
            "payload": payload or {},
            "occurred_at": occurred_at or utcnow(),
        }
        with self._db.transaction() as conn:
            event_id = conn.execute(_INSERT, row).scalar_one()
        return AnalyticsEvent.model_validate({"id": event_id, **row})

    def append_many(self, events: Sequence[NewEvent]) -> builtins.list[AnalyticsEvent]:
        """Append a batch in one transaction: every event or none."""
        rows = [
            {
                "type": e.type,
                "customer_id": e.customer_id,
                "channel": e.channel,
                "payload": e.payload,
                "occurred_at": e.occurred_at or utcnow(),
            }
            for e in events
        ]
        with self._db.transaction() as conn:
            ids = [conn.execute(_INSERT, row).scalar_one() for row in rows]
        return [AnalyticsEvent.model_validate({"id": i, **row}) for i, row in zip(ids, rows, strict=True)]

    def between(
        self, since: datetime | None = None, until: datetime | None = None, types: Collection[str] | None = None
    ) -> list[AnalyticsEvent]:
        """Events with `since <= occurred_at < until` (either bound optional), of `types` if given, in log order."""
        with self._db.session() as s:
            query = select(AnalyticsEventRow).order_by(AnalyticsEventRow.occurred_at, AnalyticsEventRow.id)
            if since is not None:
                query = query.where(AnalyticsEventRow.occurred_at >= since)
            if until is not None:
                query = query.where(AnalyticsEventRow.occurred_at < until)
            if types is not None:
                query = query.where(AnalyticsEventRow.type.in_(sorted(types)))
            return [AnalyticsEvent.model_validate(r) for r in s.scalars(query)]

    def list(self, type: str | None = None, customer_id: CustomerId | None = None) -> list[AnalyticsEvent]:
        with self._db.session() as s:
            query = select(AnalyticsEventRow).order_by(AnalyticsEventRow.occurred_at, AnalyticsEventRow.id)
            if type is not None:
                query = query.where(AnalyticsEventRow.type == type)
            if customer_id is not None:
                query = query.where(AnalyticsEventRow.customer_id == customer_id)
            return [AnalyticsEvent.model_validate(r) for r in s.scalars(query)]

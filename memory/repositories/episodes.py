"""Episodes: a customer's conversation on one topic, across channels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, select, update

from threadline.core.errors import NotFoundError
from threadline.core.types import Channel, CustomerId, Episode, EpisodeId, EpisodeStatus
from threadline.memory.db import Database
from threadline.memory.ids import new_id
from threadline.memory.schema import EpisodeRow, table, utcnow

_EPISODES = table(EpisodeRow)
_CURRENT = (
    select(_EPISODES)
    .where(_EPISODES.c.customer_id == bindparam("customer_id"), _EPISODES.c.status != EpisodeStatus.RESOLVED.value)
    .order_by(_EPISODES.c.updated_at.desc(), _EPISODES.c.id)
    .limit(1)
)


_FOR_UPDATE = select(_EPISODES).where(_EPISODES.c.id == bindparam("episode")).with_for_update()
_UPDATE = update(_EPISODES).where(_EPISODES.c.id == bindparam("episode"))
"""Sets the columns named in the parameters (one compiled statement per set of columns changed)."""


class SqlEpisodeRepository:
    """`EpisodeRepository` over the domain store."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def open(self, customer_id: CustomerId, channel: Channel, topic: str | None = None) -> Episode:
        now = utcnow()
        row = EpisodeRow(
            id=new_id("ep"),
            customer_id=customer_id,
            status=EpisodeStatus.OPEN.value,
            topic=topic,
            channels=[channel.value],
            open_items=[],
            citations=[],
            notices=[],
            started_at=now,
            updated_at=now,
        )
        with self._db.session() as s:
            s.add(row)
            s.flush()
            return Episode.model_validate(row)

    def get(self, episode_id: EpisodeId) -> Episode | None:
        with self._db.session() as s:
            row = s.get(EpisodeRow, episode_id)
            return Episode.model_validate(row) if row else None

    def current(self, customer_id: CustomerId) -> Episode | None:
        """The customer's most recent open or escalated episode."""
        row = self._db.first(_CURRENT, {"customer_id": customer_id})
        return Episode.model_validate(row) if row else None

    def update(
        self,
        episode_id: EpisodeId,
        *,
        status: EpisodeStatus | None = None,
        topic: str | None = None,
        summary: str | None = None,
        outcome: str | None = None,
        channel: Channel | None = None,
        open_items: Sequence[str] | None = None,
        citations: Sequence[str] = (),
        notices: Sequence[str] = (),
    ) -> Episode:
        """Change the given fields; citations and notices are added to those already recorded."""
        with self._db.transaction() as conn:
            found = conn.execute(_FOR_UPDATE, {"episode": episode_id}).mappings()
            row = found.one_or_none()
            if row is None:
                raise NotFoundError(f"episode {episode_id} not found")
            changes: dict[str, Any] = {"updated_at": utcnow()}
            if status is not None:
                changes["status"] = status.value
            if topic is not None:
                changes["topic"] = topic
            if summary is not None:
                changes["summary"] = summary
            if outcome is not None:
                changes["outcome"] = outcome
            if channel is not None and channel.value not in row["channels"]:
                changes["channels"] = [*row["channels"], channel.value]
            if open_items is not None:
                changes["open_items"] = list(open_items)
            if citations:
                changes["citations"] = list(dict.fromkeys([*row["citations"], *citations]))
            if notices:
                changes["notices"] = list(dict.fromkeys([*row["notices"], *notices]))
            conn.execute(_UPDATE, {**changes, "episode": episode_id})
            return Episode.model_validate({**row, **changes})

    def recent(self, customer_id: CustomerId, limit: int = 10) -> list[Episode]:
        """The customer's episodes, most recently active first."""
        with self._db.session() as s:
            rows = s.scalars(
                select(EpisodeRow)
                .where(EpisodeRow.customer_id == customer_id)
                .order_by(EpisodeRow.updated_at.desc(), EpisodeRow.id)
                .limit(limit)
            )
            return [Episode.model_validate(r) for r in rows]

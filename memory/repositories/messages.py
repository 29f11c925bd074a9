"""The append-only message log; the provider message id is unique per channel for idempotency."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from core.errors import ConflictError
from core.types import Channel, CustomerId, Direction, EpisodeId, LoggedMessage
from memory.db import Database
from memory.schema import MessageRow, utcnow


class SqlMessageLog:
    """`MessageLog` over the domain store."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def append(
        self,
        customer_id: CustomerId,
        channel: Channel,
        direction: Direction,
        text: str,
        *,
        provider_message_id: str | None = None,
        sender: str | None = None,
        episode_id: EpisodeId | None = None,
        metadata: dict[str, Any] | None = None,
        created_at: datetime | None = None,
        reply_to_id: int | None = None,
    ) -> LoggedMessage:
        row = MessageRow(
            reply_to_id=reply_to_id,
            customer_id=customer_id,
            episode_id=episode_id,
            channel=channel.value,
            direction=direction.value,
            sender=sender,
            text=text,
            provider_message_id=provider_message_id,
            meta=metadata or {},
            created_at=created_at or utcnow(),
        )
        try:
            with self._db.session() as s:
                s.add(row)
                s.flush()
                return LoggedMessage.model_validate(row)
        except IntegrityError as exc:
            if provider_message_id is not None and self.find_by_provider_id(channel, provider_message_id):
                raise ConflictError(f"message {provider_message_id!r} on {channel.value} was already accepted") from exc
            raise

    def find_by_provider_id(self, channel: Channel, provider_message_id: str) -> LoggedMessage | None:
        with self._db.session() as s:
            row = s.scalar(
                select(MessageRow).where(
                    MessageRow.channel == channel.value, MessageRow.provider_message_id == provider_message_id
                )
            )
            return LoggedMessage.model_validate(row) if row else None

    def reply_to(self, message_id: int) -> LoggedMessage | None:
        """The first outbound message that answered `message_id`, if any."""
        with self._db.session() as s:
            row = s.scalar(
                select(MessageRow).where(MessageRow.reply_to_id == message_id).order_by(MessageRow.id).limit(1)
            )
            return LoggedMessage.model_validate(row) if row else None

    def for_customer(self, customer_id: CustomerId, limit: int = 50) -> list[LoggedMessage]:
        """The customer's latest `limit` messages, oldest first."""
        with self._db.session() as s:
            rows = list(
                s.scalars(
                    select(MessageRow)
                    .where(MessageRow.customer_id == customer_id)
                    .order_by(MessageRow.id.desc())
                    .limit(limit)
                )
            )
            return [LoggedMessage.model_validate(r) for r in reversed(rows)]

    def count(self, customer_id: CustomerId | None = None) -> int:
        with self._db.session() as s:
            query = select(func.count()).select_from(MessageRow)
            if customer_id is not None:
                query = query.where(MessageRow.customer_id == customer_id)
            return int(s.scalar(query) or 0)

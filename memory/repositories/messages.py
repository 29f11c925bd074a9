"""The append-only message log; the provider message id is unique per channel for idempotency."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from threadline.core.errors import ConflictError
from threadline.core.types import Channel, CustomerId, Direction, EpisodeId, LoggedMessage
from threadline.memory.db import Database
from threadline.memory.schema import MessageRow, table, utcnow

_LOG_LOCK_CLASS = 0x746C  # the two-key advisory lock space of the message log (turn locks use the one-key space)
LOG_ORDER_LOCK = text("SELECT pg_advisory_xact_lock(:class, hashtext(:customer))")
_MESSAGES = table(MessageRow)
_INSERT = insert(_MESSAGES).returning(_MESSAGES.c.id)
_PENDING = (
    select(_MESSAGES)
    .where(
        _MESSAGES.c.thread_key == bindparam("thread_key"),
        _MESSAGES.c.handled.is_(None),
        _MESSAGES.c.direction == Direction.INBOUND.value,
        _MESSAGES.c.id <= bindparam("through"),
    )
    .order_by(_MESSAGES.c.id)
    .limit(bindparam("limit"))
)
_NO_BOUND = 2**62
_CLOSE = (
    update(_MESSAGES)
    .where(_MESSAGES.c.id.in_(bindparam("ids", expanding=True)), _MESSAGES.c.handled.is_(None))
    .values(handled=bindparam("outcome"), answer_id=bindparam("answer"))
)


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
        thread_key: str | None = None,
    ) -> LoggedMessage:
        row = {
            "thread_key": thread_key,
            "reply_to_id": reply_to_id,
            "customer_id": customer_id,
            "episode_id": episode_id,
            "channel": channel.value,
            "direction": direction.value,
            "sender": sender,
            "text": text,
            "provider_message_id": provider_message_id,
            "metadata": metadata or {},
            "created_at": created_at or utcnow(),
        }
        if direction is Direction.INBOUND:
            row["accepted_at"] = utcnow()
        try:
            with self._db.transaction() as conn:
                if self._db.backend == "postgresql":
                    # A customer's messages commit in id order: a turn reads the pending ones by id, so a message
                    # whose id was drawn first but committed second would otherwise be skipped and answered
                    # after a later one. (SQLite has one writer at a time, so its ids already commit in order.)
                    conn.execute(LOG_ORDER_LOCK, {"class": _LOG_LOCK_CLASS, "customer": customer_id})
                message_id = conn.execute(_INSERT, row).scalar_one()
        except IntegrityError as exc:
            if provider_message_id is not None and self.find_by_provider_id(channel, provider_message_id):
                raise ConflictError(f"message {provider_message_id!r} on {channel.value} was already accepted") from exc
            raise
        return LoggedMessage.model_validate({"id": message_id, **row})

    def find_by_provider_id(self, channel: Channel, provider_message_id: str) -> LoggedMessage | None:
        with self._db.session() as s:
            row = s.scalar(
                select(MessageRow).where(
                    MessageRow.channel == channel.value, MessageRow.provider_message_id == provider_message_id
                )
            )
            return LoggedMessage.model_validate(row) if row else None

    def get(self, message_id: int) -> LoggedMessage | None:
        with self._db.session() as s:
            row = s.get(MessageRow, message_id)
            return LoggedMessage.model_validate(row) if row else None

    def pending(self, thread_key: str, limit: int = 50, *, through: int | None = None) -> list[LoggedMessage]:
        """Inbound messages of a thread that no turn has taken yet, in arrival order (with `through`, only those
        logged up to that message)."""
        bound = _NO_BOUND if through is None else through
        rows = self._db.all(_PENDING, {"thread_key": thread_key, "limit": limit, "through": bound})
        return [LoggedMessage.model_validate(r) for r in rows]

    def stale(self, before: datetime, limit: int = 20) -> list[LoggedMessage]:
        """Inbound messages accepted (by this server's clock) before `before` that no turn has answered (their turn
        died), oldest first."""
        query = (
            select(_MESSAGES)
            .where(
                _MESSAGES.c.handled.is_(None),
                _MESSAGES.c.accepted_at < before,
                _MESSAGES.c.direction == Direction.INBOUND.value,
            )
            .order_by(_MESSAGES.c.accepted_at, _MESSAGES.c.id)
            .limit(limit)
        )
        return [LoggedMessage.model_validate(r) for r in self._db.all(query)]

    def close_turn(
        self,
        inbound_ids: list[int],
        *,
        customer_id: CustomerId,
        channel: Channel,
        reply: str | None,
        metadata: dict[str, Any] | None = None,
    ) -> LoggedMessage | None:
        """Record a turn's outcome in one transaction: its reply (answering the last message taken) and every
        message it took marked handled, so a message is answered exactly once however many arrived. A message
        already answered (a second turn ran because the first one's lock was lost) fails the whole transaction
        with `ConflictError`: no second reply is written."""
        answer = None
        with self._db.transaction() as conn:
            if reply is not None:
                row = {
                    "customer_id": customer_id,
                    "channel": channel.value,
                    "direction": Direction.OUTBOUND.value,
                    "text": reply,
                    "reply_to_id": inbound_ids[-1] if inbound_ids else None,
                    "metadata": {**(metadata or {}), "answers": inbound_ids},
                    "created_at": utcnow(),
                }
                answer = LoggedMessage.model_validate({"id": conn.execute(_INSERT, row).scalar_one(), **row})
            outcome = {"outcome": "answered" if answer else "silent", "answer": answer.id if answer else None}
            marked = conn.execute(_CLOSE, {"ids": inbound_ids, **outcome}).rowcount
            if marked != len(set(inbound_ids)):  # the fence: another turn answered them (its lock was lost meanwhile)
                raise ConflictError("these messages were already answered by another turn")
        return answer

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

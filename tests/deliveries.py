"""A claimed outbox delivery as a sender receives it, for the senders' tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from threadline.core.delivery import Delivery, DeliveryState
from threadline.core.types import CustomerId


def claimed(**fields: Any) -> Delivery:
    """A delivery in `sending`, as a dispatcher hands it to a sender; `fields` set channel, provider, recipient, body,
    payload and the rest."""
    now = fields.pop("now", None) or datetime.now(UTC)
    values: dict[str, Any] = {
        "id": 41,
        "idempotency_key": "msg:41:0",
        "message_id": 41,
        "customer_id": CustomerId("cus_1"),
        "state": DeliveryState.SENDING,
        "attempts": 1,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
        **fields,
    }
    return Delivery(**values)

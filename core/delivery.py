"""Delivery: the outbox's vocabulary. Every message to a customer that does not ride in the response of the request
that brought theirs (an agent's reply, a queue-timeout notice, an order-action notice, a reply that missed its
webhook's budget) is a `Delivery` row; a dispatcher hands it to the channel's `Sender`.

States, in the order a delivery moves through them:

- `queued`: waiting for its next attempt (`next_attempt_at`); after a transient failure it is queued again;
- `sending`: a dispatcher claimed it and is calling the provider (until `claimed_until`: a dispatcher that died
  mid-call leaves it to be claimed again and re-sent with the same idempotency key);
- `sent`: the provider accepted it (`provider_message_id`);
- `delivered`: the provider reported it on the customer's device or in their mailbox (a `read` report too);
- `failed`: the provider refused it for good (a bad number, a closed window) or reported it undelivered;
- `dead`: every attempt failed transiently (`THREADLINE_OUTBOX_MAX_ATTEMPTS`).

`failed` and `dead` are the ones a person must act on: the case is raised in the agents' queue.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from threadline.core.types import Channel, CustomerId


class DeliveryState(StrEnum):
    """Where one outbound provider message stands."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    DEAD = "dead"


PROBLEM_STATES = frozenset({DeliveryState.FAILED, DeliveryState.DEAD})
"""States a person must act on."""

_PROGRESS = {
    DeliveryState.QUEUED: 0,
    DeliveryState.SENDING: 1,
    DeliveryState.SENT: 2,
    DeliveryState.DELIVERED: 3,
    DeliveryState.FAILED: 3,
    DeliveryState.DEAD: 3,
}


def advances(current: DeliveryState, reported: DeliveryState) -> bool:
    """Whether a provider's status report moves a delivery forward. Reports arrive unordered: a `sent` after
    `delivered` changes nothing, and neither does a `failed` after `delivered` (the customer has it)."""
    if current in (DeliveryState.DELIVERED, DeliveryState.DEAD):
        return False
    return _PROGRESS[reported] > _PROGRESS[current] or (
        current is DeliveryState.FAILED and reported is DeliveryState.DELIVERED
    )


class Purpose(StrEnum):
    """Why a message goes out; WhatsApp needs an approved template per purpose outside its 24-hour window."""

    REPLY = "reply"
    """The AI's answer to the customer's message, sent later than the request that brought it."""
    AGENT_REPLY = "agent_reply"
    QUEUE_TIMEOUT = "queue_timeout"


class NewDelivery(BaseModel):
    """A delivery to queue: what goes where, and why."""

    model_config = ConfigDict(from_attributes=True, frozen=True)

    idempotency_key: str = Field(min_length=1, max_length=200)
    """Unique: the same key never queues a second message (a redelivered webhook, a retried agent request)."""
    message_id: int | None
    """The logged outbound message this carries (a long reply may take several deliveries, one per part)."""
    part: int = 0
    customer_id: CustomerId
    channel: Channel
    provider: str
    """The sender that delivers it: `twilio`, `smtp`, `messenger`, `whatsapp`."""
    purpose: Purpose = Purpose.REPLY
    recipient: str
    """The provider's address of the customer: a phone number, an email address, a page-scoped id, a WhatsApp
    id or business-scoped user id."""
    body: str
    """The text of this part, rendered for the channel."""
    payload: dict[str, Any] = Field(default_factory=dict)
    """What the provider needs besides: the business number, subject and threading headers, the page, the
    template, the time of the customer's last message (the windows)."""


class Delivery(NewDelivery):
    """One outbound provider message in the outbox, and where it stands."""

    id: int
    state: DeliveryState
    attempts: int = 0
    next_attempt_at: datetime
    claimed_by: str | None = None
    claimed_until: datetime | None = None
    provider_message_id: str | None = None
    last_error: str | None = None
    history: list[dict[str, Any]] = Field(default_factory=list)
    """Every state change: `{state, at, source, detail}` (source: dispatcher or the provider's report)."""
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    read_at: datetime | None = None


class SendReceipt(BaseModel):
    """What the provider answered to an accepted message."""

    model_config = ConfigDict(frozen=True)

    provider_message_id: str
    delivered: bool = False
    """The provider reports delivery in its answer itself (none of ours does: SMTP's acceptance is only `sent`)."""


class SendError(Exception):
    """A provider call that did not deliver; `transient` ones are retried with backoff."""

    transient = True

    def __init__(self, message: str, *, status: int | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after_s = retry_after_s


class TransientSendError(SendError):
    """The provider or the network failed this time (5xx, 429, a timeout, a refused connection): try again."""

    transient = True


class PermanentSendError(SendError):
    """The provider refused the message for good (a bad address, an expired window, bad credentials)."""

    transient = False


class Sender(Protocol):
    """Delivers one outbound message through one provider. Called from a dispatcher thread; a sender keeps no
    per-message state, so the same delivery sent twice (after a crash) goes out with the same idempotency key
    where the provider takes one."""

    provider: str

    def send(self, delivery: Delivery) -> SendReceipt:
        """Hand the message to the provider; raises `TransientSendError` or `PermanentSendError`."""
        ...


def backoff_s(attempt: int, *, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Seconds before retry number `attempt` (1 = the first retry): exponential with jitter (between half and all
    of the doubled wait), so the retries of many deliveries that failed together spread out."""
    ceiling = min(max_s, base_s * (2 ** max(0, attempt - 1)))
    return (rng or random).uniform(ceiling / 2, ceiling)


def retry_at(now: datetime, attempt: int, *, base_s: float, max_s: float, retry_after_s: float | None) -> datetime:
    """When retry number `attempt` may run: the backoff, or the provider's Retry-After when that is longer."""
    wait = backoff_s(attempt, base_s=base_s, max_s=max_s)
    if retry_after_s is not None:
        wait = max(wait, min(retry_after_s, max_s))
    return now + timedelta(seconds=wait)


class DeliveryFailureRate(BaseModel):
    """Outbound provider messages of one channel in a period, and how many failed or died."""

    channel: str
    total: int
    failed: int
    dead: int

    @property
    def rate(self) -> float:
        """(failed + dead) / total; 0 when nothing was sent."""
        return (self.failed + self.dead) / self.total if self.total else 0.0

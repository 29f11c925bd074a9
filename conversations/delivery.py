"""Delivery of outbound messages that no HTTP response carries: `Deliveries` queues them in the outbox, addressed from
the customer's latest message on the channel; `Dispatcher` sends what is due through each provider's sender.

What goes through the outbox: an agent's reply, the queue-timeout notice, and a turn's reply that its request no
longer waits for (a provider webhook past its reply budget, a message answered by the pending sweep). An asynchronous
API request's reply is read from the API, not sent. Web chat and the in-store channel have no provider: their pages
read the message log.

A delivery's idempotency key is the logged message and its part (`msg:<id>:<part>`), so queueing the same message
again (a redelivered webhook, a retried request) never adds a row. The dispatcher retries transient failures with
backoff and jitter, marks a delivery `dead` after `max_attempts`, and raises the case for a person on `failed` and
`dead`: the customer's open case gets a `delivery_failed` event, and a customer without one gets a new case.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from threadline.channels import LIMITS
from threadline.channels import email as email_channel
from threadline.channels._common import split_to_fit
from threadline.channels.social import split_text
from threadline.channels.twilio import split_sms
from threadline.core.delivery import (
    PROBLEM_STATES,
    Delivery,
    DeliveryState,
    NewDelivery,
    Purpose,
    Sender,
    SendError,
    retry_at,
)
from threadline.core.handoff import PACKET_VERSION, HandoffPacket, PacketCustomer, Stall, StallPoint
from threadline.core.ports import CustomerRepository, HandoffRepository, MessageLog, Outbox
from threadline.core.types import (
    Channel,
    CustomerId,
    Direction,
    Handoff,
    HandoffEventKind,
    HandoffId,
    LoggedMessage,
    TurnOutcome,
)

log = logging.getLogger("threadline.delivery")

PROVIDER_FOR_CHANNEL = {
    Channel.SMS: "twilio",
    Channel.VOICE: "twilio",  # a voice call's follow-up is a text message to the caller
    Channel.EMAIL: "smtp",
    Channel.SOCIAL: "messenger",
    Channel.WHATSAPP: "whatsapp",
}
"""The sender of each channel that has one (web chat and in-store read the message log)."""
RECENT_MESSAGES = 100
"""How far back the customer's latest message on a channel is looked for, to address a delivery."""

Clock = Callable[[], datetime]


def latest_inbound(recent: Sequence[LoggedMessage], channel: Channel | None = None) -> LoggedMessage | None:
    """The customer's latest message in `recent` (oldest first), on `channel` when one is given."""
    return next(
        (m for m in reversed(recent) if m.direction is Direction.INBOUND and channel in (None, m.channel)), None
    )


def current_channel(handoff: Handoff, recent: Sequence[LoggedMessage]) -> Channel:
    """The channel a message to the case's customer goes on: the one they wrote on last in `recent` (the packet's if
    they never wrote)."""
    if (latest := latest_inbound(recent)) is not None:
        return latest.channel
    try:
        return Channel(str(handoff.packet.get("channel") or Channel.WEB.value))
    except ValueError:
        return Channel.WEB


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Deliveries:
    """Queues outbound logged messages for their channel's provider."""

    def __init__(
        self,
        outbox: Outbox,
        messages: MessageLog,
        *,
        providers: Mapping[str, Any],
        templates: Mapping[Purpose, Mapping[str, str]] | None = None,
        wake: Callable[[], None] | None = None,
        on_problem: Callable[[Delivery], None] | None = None,
    ) -> None:
        self._on_problem = on_problem
        self._outbox = outbox
        self._messages = messages
        self._providers = frozenset(providers)
        self._templates = dict(templates or {})
        self._wake = wake

    def provider_for(self, channel: Channel) -> str | None:
        """The configured provider that delivers on `channel`, or None (web, in-store, or no sender configured)."""
        provider = PROVIDER_FOR_CHANNEL.get(channel)
        return provider if provider in self._providers else None

    def queue(self, logged: LoggedMessage, purpose: Purpose = Purpose.REPLY) -> list[Delivery]:
        """Queue `logged` (an outbound message) for delivery on its channel, one row per provider message; the rows
        already queued for it when it was queued before. [] when the channel has no configured sender or the
        customer never wrote on it (there is no address to send to)."""
        if logged.direction is not Direction.OUTBOUND or not logged.text.strip():
            return []
        provider = self.provider_for(logged.channel)
        if provider is None:
            return []
        latest = self._latest_inbound(logged.customer_id, logged.channel)
        if latest is None or latest.sender is None:
            log.warning("message %s not queued: the customer never wrote on %s", logged.id, logged.channel.value)
            return []
        parts, payload = self._address(logged, latest, purpose)
        queued = []
        for index, part in enumerate(parts):
            new = NewDelivery(
                idempotency_key=f"msg:{logged.id}:{index}",
                message_id=logged.id,
                part=index,
                customer_id=logged.customer_id,
                channel=logged.channel,
                provider=provider,
                purpose=purpose,
                recipient=latest.sender,
                body=part,
                payload=payload,
            )
            queued.append(self._outbox.enqueue(new)[0])
        if queued and self._wake is not None:
            self._wake()
        return queued

    def queue_reply(self, outcome: TurnOutcome) -> list[Delivery]:
        """Queue a turn's reply (when it had one) that no response carries; [] when there is nothing to send."""
        reply = self._messages.get(outcome.reply_id) if outcome.reply_id is not None else None
        return self.queue(reply, Purpose.REPLY) if reply is not None else []

    def status(
        self,
        provider: str,
        provider_message_id: str,
        reported: DeliveryState,
        *,
        at: datetime,
        detail: str | None = None,
        read: bool = False,
    ) -> Delivery | None:
        """A provider's status report; a delivery it turns `failed` raises the case for a person. None for a message
        this outbox did not send (another system's, or a report that outran our own record of the send)."""
        applied = self._outbox.apply_status(provider, provider_message_id, reported, at=at, detail=detail, read=read)
        if applied is None:
            log.info("a %s status report for an unknown message %s was ignored", provider, provider_message_id)
            return None
        before, updated = applied
        if before is not DeliveryState.FAILED and updated.state is DeliveryState.FAILED and self._on_problem:
            try:
                self._on_problem(updated)
            except Exception:  # the state is recorded and the console shows it; the provider need not retry
                log.exception("delivery %s: raising the case failed", updated.id)
        return updated

    def queued_for(self, message_id: int) -> list[Delivery]:
        """The deliveries already carrying a logged message."""
        return self._outbox.for_messages([message_id]).get(message_id, [])

    def template(self, purpose: Purpose) -> Mapping[str, str] | None:
        """The WhatsApp template configured for `purpose` (`{name, language}`), if any."""
        return self._templates.get(purpose)

    def _latest_inbound(self, customer_id: CustomerId, channel: Channel) -> LoggedMessage | None:
        return latest_inbound(self._messages.for_customer(customer_id, limit=RECENT_MESSAGES), channel)

    def _address(
        self, logged: LoggedMessage, latest: LoggedMessage, purpose: Purpose
    ) -> tuple[list[str], dict[str, Any]]:
        """The message's parts as the provider takes them, and what it needs besides the recipient."""
        text, meta = logged.text, latest.metadata
        last_inbound_at = latest.created_at.astimezone(UTC).isoformat()
        if logged.channel is Channel.SMS:  # from the number the customer texted
            payload = {"from": meta.get("to")} if meta.get("to") else {}
            return split_sms(text), payload
        if logged.channel is Channel.VOICE:  # a text after a call: from our texting number (a voice line may not text)
            return split_sms(text), {}
        if logged.channel is Channel.EMAIL:
            references = [
                *meta.get("references", []),
                *([latest.provider_message_id] if latest.provider_message_id else []),
            ]
            payload = {
                "subject": email_channel.reply_subject(str(meta.get("subject") or "")),
                "in_reply_to": latest.provider_message_id,
                "references": list(dict.fromkeys(references))[-email_channel.MAX_REFERENCES :],
            }
            return [text.strip()], payload
        if logged.channel is Channel.SOCIAL:
            payload = {
                "last_inbound_at": last_inbound_at,
                "platform": meta.get("platform"),
                "page_id": meta.get("page_id"),
            }
            return split_text(text), payload
        limit = LIMITS[Channel.WHATSAPP]
        parts = split_to_fit(
            text, lambda part: len(part) <= (limit.max_reply_chars or 4096), max_parts=limit.max_reply_messages
        )
        payload = {"last_inbound_at": last_inbound_at, "phone_number_id": meta.get("phone_number_id")}
        template = self._templates.get(purpose)
        if template is not None:
            payload["template"] = dict(template)
        return parts, payload


class CaseRaiser:
    """Puts a failed or dead delivery in front of a person: an event on the customer's open case, or a new case."""

    def __init__(self, handoffs: HandoffRepository, customers: CustomerRepository) -> None:
        self._handoffs = handoffs
        self._customers = customers
        self._opening = threading.Lock()

    def __call__(self, delivery: Delivery) -> None:
        detail = {
            "delivery_id": delivery.id,
            "message_id": delivery.message_id,
            "channel": delivery.channel.value,
            "state": delivery.state.value,
            "error": delivery.last_error,
        }
        # Two failed parts of one message, sent side by side, open one case. Not under the customer's turn lock: a
        # dispatcher never waits for a turn (a long one would hold every other customer's messages back).
        with self._opening:
            handoff = self._handoffs.open_for_customer(delivery.customer_id)
            if handoff is None:
                handoff = self._handoffs.create(
                    delivery.customer_id,
                    packet=self._packet(delivery).model_dump(mode="json"),
                    packet_version=PACKET_VERSION,
                    priority="high",
                )
            self._handoffs.record(HandoffId(handoff.id), HandoffEventKind.DELIVERY_FAILED, "outbox", detail)

    def _packet(self, delivery: Delivery) -> HandoffPacket:
        customer = self._customers.get(delivery.customer_id)
        channel = delivery.channel.value
        what = "could not be delivered" if delivery.state is DeliveryState.FAILED else "was not delivered after retries"
        return HandoffPacket(
            customer=PacketCustomer(
                id=delivery.customer_id,
                name=customer.display_name if customer and not customer.provisional else None,
                verification_level="unknown",
                provisional=bool(customer and customer.provisional),
            ),
            channel=channel,
            channels_in_episode=[channel],
            goal=f"Our message to the customer on {channel} {what}.\nThey have not received: {delivery.body[:300]}",
            stall=Stall(type=StallPoint.DELIVERY_FAILED, evidence=[delivery.last_error or delivery.state.value]),
            next_steps=[
                f"Check the customer's {channel} address ({delivery.recipient}), or reach them on another channel.",
            ],
            priority="high",
            transcript_ref=f"customer:{delivery.customer_id}",
        )


def worker_id() -> str:
    """This dispatcher's name in claims: host, process and a random suffix (a restarted process is another)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Dispatcher:
    """Sends due deliveries: claims a batch, sends its rows concurrently, records each outcome. One per process,
    in a daemon thread; `wake()` starts a round at once (a new delivery was queued in this process)."""

    def __init__(
        self,
        outbox: Outbox,
        senders: Mapping[str, Sender],
        *,
        on_problem: Callable[[Delivery], None] | None = None,
        worker: str | None = None,
        poll_s: float = 1.0,
        lease_s: float = 180.0,
        max_attempts: int = 5,
        backoff_s: float = 2.0,
        backoff_max_s: float = 300.0,
        batch: int = 8,
        clock: Clock = _utcnow,
    ) -> None:
        self._outbox = outbox
        self._senders = dict(senders)
        self._on_problem = on_problem
        self.worker = worker or worker_id()
        self._poll_s, self._lease = poll_s, timedelta(seconds=lease_s)
        self._max_attempts = max_attempts
        self._backoff_s, self._backoff_max_s = backoff_s, backoff_max_s
        self._batch = batch
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=batch, thread_name_prefix="outbox-send")
        self._stop = threading.Event()
        self._woken = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox-dispatcher", daemon=True)

    def start(self) -> Dispatcher:
        """Start dispatching; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after the round in progress."""
        self._stop.set()
        self._woken.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self._pool.shutdown(wait=True)

    def wake(self) -> None:
        """Start a round now instead of at the next poll."""
        self._woken.set()

    def run_once(self) -> int:
        """Claim what is due and send it; returns how many deliveries were attempted."""
        claimed = self._outbox.claim(self.worker, now=self._clock(), lease=self._lease, limit=self._batch)
        if claimed:
            list(self._pool.map(self._send, claimed))
        return len(claimed)

    def drain(self, rounds: int = 100) -> int:
        """Rounds until nothing is due (for tests and scripts); returns how many deliveries were attempted."""
        total = 0
        for _ in range(rounds):
            done = self.run_once()
            if not done:
                break
            total += done
        return total

    def _send(self, delivery: Delivery) -> None:
        sender = self._senders.get(delivery.provider)
        try:
            if sender is None:
                raise _NoSenderError(f"no sender is configured for {delivery.provider}")
            receipt = sender.send(delivery)
        except SendError as error:
            self._failed(delivery, error)
            return
        except Exception as error:  # a sender bug or an unmapped client error: retried like a transient one
            log.exception("delivery %s: the %s sender failed unexpectedly", delivery.id, delivery.provider)
            self._failed(delivery, SendError(f"{type(error).__name__}: {error}"))
            return
        if self._outbox.mark_sent(delivery.id, self.worker, receipt, now=self._clock()) is None:
            log.warning("delivery %s was sent, but its claim had lapsed and another dispatcher took it", delivery.id)

    def _failed(self, delivery: Delivery, error: SendError) -> None:
        now = self._clock()
        reason = f"{error.status}: {error.message}" if error.status else error.message
        if error.transient and delivery.attempts < self._max_attempts:
            at = retry_at(
                now,
                delivery.attempts,
                base_s=self._backoff_s,
                max_s=self._backoff_max_s,
                retry_after_s=error.retry_after_s,
            )
            self._outbox.mark_retry(delivery.id, self.worker, reason, at=at, now=now)
            log.info("delivery %s failed (attempt %d), retrying at %s: %s", delivery.id, delivery.attempts, at, reason)
            return
        state = DeliveryState.DEAD if error.transient else DeliveryState.FAILED
        finished = self._outbox.mark_failed(delivery.id, self.worker, reason, state=state, now=now)
        log.warning("delivery %s is %s after %d attempt(s): %s", delivery.id, state.value, delivery.attempts, reason)
        if finished is not None and finished.state in PROBLEM_STATES and self._on_problem is not None:
            try:
                self._on_problem(finished)
            except Exception:  # the delivery's state is recorded; the console still shows it
                log.exception("delivery %s: raising the case failed", delivery.id)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.run_once()
            except Exception:  # a database blip: the next round retries
                log.exception("outbox round failed; retrying")
                busy = 0
            if not busy:
                self._woken.wait(self._poll_s)
                self._woken.clear()


class _NoSenderError(SendError):
    transient = False

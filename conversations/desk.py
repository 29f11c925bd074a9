"""`HandoffDesk`: the human side of a handed-off case — claim, agent replies, release, resolve, rate, and the queue
timeout.

Everything here runs under the same per-customer lock as customer turns, so an agent's message and a customer's turn
never interleave on the thread. An agent's reply or a timeout notice is logged on the customer's current channel and
queued in the outbox, from which the channel's provider delivers it (`conversations.delivery`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from langchain_core.messages import AIMessage, SystemMessage

from threadline.channels.email import greeting_name
from threadline.conversations.delivery import Deliveries, current_channel, latest_inbound
from threadline.conversations.threads import Threads
from threadline.core.delivery import Purpose
from threadline.core.errors import ConflictError, InvalidInputError, NotFoundError
from threadline.core.order_actions import ActionRecord, OrderAction
from threadline.core.ports import EpisodeRepository, EventLog, HandoffRepository, MessageLog, OrderSystem
from threadline.core.types import (
    Channel,
    Direction,
    EpisodeStatus,
    EventType,
    Handoff,
    HandoffEventKind,
    HandoffId,
    HandoffStatus,
    LoggedMessage,
    TurnOutcome,
)
from threadline.graphs.render import DEFAULT_SIGNATURE, render
from threadline.memory.turn_locks import TurnLocks

MAX_TEXT_CHARS = 4000
"""The longest message a customer or an agent may send."""
QUEUE_TIMEOUT_TEXT = (
    "Sorry for the wait - our team is busier than usual. We'll reply here as soon as someone is free; "
    "you can also add any details here in the meantime and they'll see them."
)
"""What a customer whose case waited past the queue timeout is told (once): never silence. Plain ASCII, so an SMS
carries it whole in two segments."""


class HandoffDesk:
    """What agents do to a case, and what happens to customer messages while people own it."""

    def __init__(
        self,
        *,
        handoffs: HandoffRepository,
        messages: MessageLog,
        episodes: EpisodeRepository,
        events: EventLog,
        threads: Threads,
        locks: TurnLocks,
        queue_timeout_minutes: float = 30.0,
        signature: str = DEFAULT_SIGNATURE,
        orders: OrderSystem | None = None,
        deliveries: Deliveries | None = None,
    ) -> None:
        self._orders = orders
        self._deliveries = deliveries
        self._handoffs = handoffs
        self._messages = messages
        self._episodes = episodes
        self._events = events
        self._threads = threads
        self._locks = locks
        self._queue_timeout_minutes = queue_timeout_minutes
        self._signature = signature

    def while_handed_off(
        self,
        outcome: TurnOutcome,
        taken: list[LoggedMessage],
        current: LoggedMessage,
        channel: Channel,
        *,
        desk_turn: bool,
    ) -> TurnOutcome:
        """A turn the AI did not run in because people own the case (`desk_turn`; the customer may have had the
        desk's short note): its messages go to the agent (as `customer_message` events), and a case queued past the
        timeout tells the customer so, once, instead. The caller holds the customer's turn lock."""
        if outcome.owner == "ai" or outcome.handoff_id is None or not desk_turn:
            return outcome
        handoff_id = HandoffId(outcome.handoff_id)
        for m in taken:
            payload = {"message_id": m.id, "channel": m.channel.value, "text": m.text}
            self._handoffs.record(handoff_id, HandoffEventKind.CUSTOMER_MESSAGE, "customer", payload)
        timed_out = self._handoffs.time_out(handoff_id, datetime.now(UTC), self._queue_timeout_minutes)
        if timed_out is None:
            return outcome
        notice = self._tell_timed_out(timed_out, channel, reply_to=current.id)
        return outcome.model_copy(update={"reply": notice.text, "reply_id": notice.id})

    def time_out_overdue(self, now: datetime | None = None) -> list[Handoff]:
        """Cases queued past the timeout become `timed_out`, and each customer is told on their current channel
        (logged for delivery). Called when agents list the queue, so a quiet customer is not left in silence."""
        expired = self._handoffs.time_out_overdue(now or datetime.now(UTC), self._queue_timeout_minutes)
        for handoff in expired:
            with self._locks.hold(handoff.customer_id):
                self._tell_timed_out(handoff, self._current_channel(handoff))
        return expired

    def claim(self, handoff_id: HandoffId, agent: str) -> Handoff:
        """`agent` takes the case: from now on the customer talks to them."""
        handoff = self._handoffs.claim(handoff_id, agent)
        waited = (handoff.claimed_at or handoff.created_at) - handoff.created_at
        self._events.append(
            EventType.HANDOFF_CLAIMED,
            customer_id=handoff.customer_id,
            payload={"handoff_id": handoff.id, "agent": agent, "waited_s": waited.total_seconds()},
        )
        return handoff

    def agent_reply(self, handoff_id: HandoffId, agent: str, text: str, key: str | None = None) -> LoggedMessage:
        """The agent's message to the customer, on the customer's current channel and rendered for it; it joins
        the customer's thread. Only the agent who claimed the case may reply. With `key`, a retried request (a
        double click, a client's retry) returns the message the first one logged and sends nothing more."""
        text = text.strip()
        if not text:
            raise InvalidInputError("the reply text is empty")
        if len(text) > MAX_TEXT_CHARS:
            raise InvalidInputError(f"the reply is longer than {MAX_TEXT_CHARS} characters")
        request = f"agent:{handoff_id}:{key}" if key else None
        if request and (earlier := self._sent_before(request)) is not None:
            return earlier  # a retry, on whichever channel the first went out, even once the case has moved on
        handoff = self._handoff(handoff_id)
        if handoff.status is not HandoffStatus.CLAIMED:
            raise ConflictError(f"handoff {handoff_id} is {handoff.status.value}; claim it before replying")
        if handoff.assigned_agent != agent:
            raise ConflictError(f"handoff {handoff_id} is claimed by {handoff.assigned_agent}")
        with self._locks.hold(handoff.customer_id):
            channel = self._current_channel(handoff)
            if request and (earlier := self._sent_before(request)) is not None:
                return earlier  # a concurrent request with the same key logged it first
            marker = {"agent": agent}
            logged = self._deliver(handoff, text, channel, marker, purpose=Purpose.AGENT_REPLY, request=request)
            payload = {"message_id": logged.id, "channel": channel.value, "text": logged.text}
            self._handoffs.record(handoff_id, HandoffEventKind.AGENT_REPLY, agent, payload)
        return logged

    def agent_action(self, handoff_id: HandoffId, agent: str, action: OrderAction, key: str) -> ActionRecord:
        """An order action by the agent who owns the case: the same policy and audit as the customer's, without
        the customer's yes (the agent is the person in the loop). `key` makes a retried request run it once."""
        if self._orders is None:
            raise ConflictError("this desk has no order system to act on")
        handoff = self._handoff(handoff_id)
        if handoff.status is not HandoffStatus.CLAIMED or handoff.assigned_agent != agent:
            raise ConflictError(f"handoff {handoff_id} is not claimed by {agent}; claim it before acting on orders")
        record = self._orders.apply(
            action,
            customer_id=handoff.customer_id,
            idempotency_key=f"agent:{handoff_id}:{key}",
            actor=f"agent:{agent}",
            channel="console",
        )
        detail = {"action_id": record.id, "kind": record.kind, "order_id": record.order_id, "outcome": record.outcome}
        self._handoffs.record(handoff_id, HandoffEventKind.ORDER_ACTION, agent, detail)
        return record

    def release(self, handoff_id: HandoffId, agent: str, note: str) -> Handoff:
        """The case goes back to the AI; the agent's note joins the thread (as a system note the customer never
        sees) so the AI's next turn knows what the agent did."""
        handoff = self._handoff(handoff_id)
        with self._locks.hold(handoff.customer_id):
            released = self._handoffs.release(handoff_id, agent, note)
            said = f"Note from agent {agent} (the case is back with you): {note.strip() or 'no note'}"
            marked = SystemMessage(content=said, additional_kwargs={"threadline": {"agent": agent, "released": True}})
            self._threads.append(handoff.customer_id, [marked])
        self._events.append(
            EventType.HANDOFF_RELEASED,
            customer_id=handoff.customer_id,
            payload={"handoff_id": handoff.id, "agent": agent},
        )
        return released

    def resolve(self, handoff_id: HandoffId, agent: str) -> Handoff:
        """The case is closed, and with it the customer's episode."""
        handoff = self._handoff(handoff_id)
        resolved = self._handoffs.resolve(handoff_id, agent)
        episode = self._episodes.current(handoff.customer_id) if handoff.episode_id is None else None
        episode_id = handoff.episode_id or (episode.id if episode else None)
        if episode_id is not None:
            self._episodes.update(episode_id, status=EpisodeStatus.RESOLVED, outcome=f"resolved by {agent}")
        self._events.append(
            EventType.HANDOFF_RESOLVED,
            customer_id=handoff.customer_id,
            payload={"handoff_id": handoff.id, "agent": agent},
        )
        return resolved

    def rate(self, handoff_id: HandoffId, agent: str, usefulness: int, missing: list[str], wrong: list[str]) -> Handoff:
        """The agent's verdict on the packet, for escalation-quality analytics."""
        rated = self._handoffs.rate(handoff_id, agent, usefulness, missing, wrong)
        payload = {"handoff_id": rated.id, "agent": agent, "usefulness": usefulness, "missing": missing, "wrong": wrong}
        self._events.append(EventType.HANDOFF_RATED, customer_id=rated.customer_id, payload=payload)
        return rated

    def _tell_timed_out(self, handoff: Handoff, channel: Channel, *, reply_to: int | None = None) -> LoggedMessage:
        self._events.append(
            EventType.HANDOFF_TIMED_OUT,
            customer_id=handoff.customer_id,
            channel=channel.value,
            payload={"handoff_id": handoff.id, "after_minutes": self._queue_timeout_minutes},
        )
        marker = {"queue_timeout": handoff.id}
        if reply_to is not None:  # the notice answers the customer's message, in that request's response
            return self._deliver(handoff, QUEUE_TIMEOUT_TEXT, channel, marker, reply_to=reply_to)
        return self._deliver(handoff, QUEUE_TIMEOUT_TEXT, channel, marker, purpose=Purpose.QUEUE_TIMEOUT)

    def _sent_before(self, request: str) -> LoggedMessage | None:
        """The agent's message logged under this request key, on any channel."""
        found = (self._messages.find_by_provider_id(channel, request) for channel in Channel)
        return next((message for message in found if message is not None), None)

    def _greeting_name(self, handoff: Handoff, channel: Channel) -> str | None:
        """The first name an email to the customer greets: from their last email's From, else the packet's name."""
        if channel is not Channel.EMAIL:
            return None
        latest = latest_inbound(self._messages.for_customer(handoff.customer_id), Channel.EMAIL)
        named = greeting_name(latest.metadata.get("sender_name")) if latest else None
        return named or greeting_name((handoff.packet.get("customer") or {}).get("name"))

    def _current_channel(self, handoff: Handoff) -> Channel:
        """The channel the customer wrote on last (the packet's channel if they never wrote)."""
        return current_channel(handoff, self._messages.for_customer(handoff.customer_id))

    def _deliver(
        self,
        handoff: Handoff,
        text: str,
        channel: Channel,
        marker: dict[str, Any],
        *,
        reply_to: int | None = None,
        purpose: Purpose | None = None,
        request: str | None = None,
    ) -> LoggedMessage:
        """Log a message to the customer on `channel` (rendered for it) and add it to their thread, so the AI
        sees it once the case comes back; with a `purpose`, queue it for the channel's provider too (a message
        that answers a request, `reply_to`, rides in that request's response instead). The caller holds the
        customer's turn lock."""
        rendered = render(text, channel, signature=self._signature, name=self._greeting_name(handoff, channel))
        logged = self._messages.append(
            handoff.customer_id,
            channel,
            Direction.OUTBOUND,
            rendered,
            episode_id=handoff.episode_id,
            metadata={"handoff_id": handoff.id, **marker},
            reply_to_id=reply_to,
            provider_message_id=request,
        )
        self._threads.append(
            handoff.customer_id, [AIMessage(content=rendered, additional_kwargs={"threadline": marker})]
        )
        if purpose is not None and self._deliveries is not None:
            self._deliveries.queue(logged, purpose)
        return logged

    def _handoff(self, handoff_id: HandoffId) -> Handoff:
        handoff = self._handoffs.get(handoff_id)
        if handoff is None:
            raise NotFoundError(f"handoff {handoff_id} not found")
        return handoff

"""`TurnService`: accept a customer message once, resolve who sent it, respect ownership, run the graph, log the
reply.

`threadline chat`, `POST /v1/messages`, the channel webhooks and the evaluation driver all call `handle`; nothing
else runs turns. Turns hold the customer's turn lock, as does the agents' desk, so a customer's turn and an agent's
message never interleave on the thread.

Delivery of messages to the customer is the message log: every outbound message is logged on the customer's current
channel, and channel adapters deliver from there. A reply to a webhook rides in its response.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from langchain_core.messages import HumanMessage
from langgraph.graph.state import CompiledStateGraph

from threadline.conversations.desk import MAX_TEXT_CHARS, HandoffDesk
from threadline.conversations.merging import CustomerMerging
from threadline.conversations.streaming import TURN_DURABILITY, EventSink, stream_turn
from threadline.conversations.threads import Threads, thread_config, thread_key
from threadline.core import faults
from threadline.core.context import TurnContext, TurnServices
from threadline.core.errors import ConflictError, InvalidInputError, StoreUnavailableError
from threadline.core.ports import EventLog, HandoffRepository, MessageLog
from threadline.core.tool_names import CHANGE_SPEAKER
from threadline.core.types import (
    CustomerId,
    Direction,
    EventType,
    InboundMessage,
    LoggedMessage,
    TurnOutcome,
    VerificationLevel,
)
from threadline.memory.identity import IdentityResolver, Resolution
from threadline.memory.turn_locks import TurnLocks

log = logging.getLogger("threadline.conversation")
FENCED_RETRIES = 2
"""How many times a turn whose reply was fenced off (another turn answered part of what it took) runs again for
the messages still unanswered."""
PENDING_BATCH = 50
"""Unanswered messages of a thread one turn folds together when the caller's message is among the oldest."""
MAX_PENDING_TAKEN = 500
"""Bound on what one turn takes when more than a batch arrived before the caller's message."""


class TurnService:
    """Runs customer turns, one at a time per customer."""

    def __init__(
        self,
        *,
        graph: CompiledStateGraph[Any, Any, Any, Any],
        services: TurnServices,
        identity: IdentityResolver,
        threads: Threads,
        desk: HandoffDesk,
        merging: CustomerMerging,
        locks: TurnLocks,
        burst_window_ms: int = 0,
    ) -> None:
        self._graph = graph
        self.services = services
        """The ports a turn may use (its runtime context's services)."""
        self._messages: MessageLog = services.messages
        self._events: EventLog = services.events
        self._handoffs: HandoffRepository = services.handoffs
        self._identity = identity
        self._threads = threads
        self._desk = desk
        self._merging = merging
        self._locks = locks
        self._burst_s = burst_window_ms / 1000

    def handle(
        self,
        message: InboundMessage,
        on_event: EventSink | None = None,
        on_accepted: Callable[[LoggedMessage], None] | None = None,
    ) -> TurnOutcome:
        """Accept and answer one inbound message; a redelivery returns the original outcome. `on_accepted` hears the
        logged message as soon as it is accepted (before the turn), for callers that answer before the turn ends."""
        text = self._checked_text(message)
        who = self._identity.resolve(message.channel, message.sender, vouched=message.vouched)
        if message.alias:
            self._identity.link_alias(who, message.channel, message.alias)
        if message.vouched and message.previous_sender:
            self._merging.sign_in(message.channel, message.previous_sender, who.customer.id)
        thread = thread_key(who)
        inbound, redelivered = self._accept(message, who, text, thread)
        if on_accepted is not None:
            on_accepted(inbound)
        faults.reached("after_accept")
        if inbound.handled is not None:
            return self._replay(inbound, duplicate=redelivered)
        if self._burst_s:  # let the rest of a burst arrive: it is folded into this turn
            time.sleep(self._burst_s)
        return self._turn(message, who, inbound, thread, redelivered=redelivered, on_event=on_event)

    def answer_stale(self, logged: LoggedMessage) -> TurnOutcome | None:
        """Answer a message accepted earlier whose turn died (the worker was killed, the database blipped) and
        that nobody redelivered; None when a turn answered it meanwhile. The sender's identity is resolved anew,
        without the proof the original request may have carried (a signed session): the answer errs on the
        side of disclosing less."""
        if logged.sender is None or logged.handled is not None:
            return None
        message = InboundMessage(
            channel=logged.channel, sender=logged.sender, text=logged.text, received_at=logged.created_at
        )
        who = self._identity.resolve(message.channel, message.sender)
        outcome = self._turn(message, who, logged, logged.thread_key or thread_key(who), redelivered=False)
        return None if outcome.folded or outcome.duplicate else outcome

    def _turn(
        self,
        message: InboundMessage,
        who: Resolution,
        inbound: LoggedMessage,
        thread: str,
        *,
        redelivered: bool,
        on_event: EventSink | None = None,
    ) -> TurnOutcome:
        """Under the customer's turn lock: take every pending message of the thread, run the graph, log the
        reply; then join the customer the sender proved to be. When the lock was lost mid-turn and another turn
        answered some of the messages taken, this turn's reply is dropped and the rest are answered afresh."""
        with self._locks.hold(who.customer.id):
            for _ in range(FENCED_RETRIES + 1):
                taken = self._take_pending(inbound, thread, redelivered=redelivered)
                if isinstance(taken, TurnOutcome):  # another turn answered this message meanwhile
                    return taken
                current = next(m for m in taken if m.id == inbound.id)
                context = self._context(message, who)
                ran = self._run(taken, current, context, thread, on_event)
                if ran is not None:
                    break
            else:  # still fenced off: the turns that hold the lock now answer it, or the pending sweep does
                raise StoreUnavailableError("the customer's conversation is busy; retry shortly")
            outcome, state = ran
            outcome = self._desk.while_handed_off(
                outcome, taken, current, message.channel, desk_turn=bool(state.get("desk_turn"))
            )
        if not self._part_ways(message, who, state, thread, first=taken[0]):
            self._join_proven_customer(message, who, outcome, state, thread)
        faults.reached("before_reply")  # the reply is logged (the outbox), not yet sent
        return outcome

    @staticmethod
    def _checked_text(message: InboundMessage) -> str:
        text = message.text.strip()
        if not text:
            raise InvalidInputError("the message text is empty")
        if len(text) > MAX_TEXT_CHARS:
            raise InvalidInputError(f"the message is longer than {MAX_TEXT_CHARS} characters")
        return text

    def _accept(self, message: InboundMessage, who: Resolution, text: str, thread: str) -> tuple[LoggedMessage, bool]:
        """Log the message once (the provider id is unique per channel, in the same transaction); returns it
        and whether this delivery was a redelivery."""
        seen = self._seen(message)
        if seen is None:
            try:
                accepted = self._messages.append(
                    who.customer.id,
                    message.channel,
                    Direction.INBOUND,
                    text,
                    provider_message_id=message.provider_message_id,
                    sender=who.handle,
                    metadata=message.metadata,
                    created_at=message.received_at,
                    thread_key=thread,
                )
                self._events.append(
                    EventType.MESSAGE_RECEIVED,
                    customer_id=who.customer.id,
                    channel=message.channel.value,
                    payload={"message_id": accepted.id},
                    occurred_at=accepted.created_at,
                )
                return accepted, False
            except ConflictError:  # accepted concurrently by another delivery
                seen = self._seen(message)
                assert seen is not None
        if seen.sender != who.handle:
            raise ConflictError("that message id was already used by another sender")
        return seen, True

    def _take_pending(
        self, inbound: LoggedMessage, thread: str, *, redelivered: bool
    ) -> list[LoggedMessage] | TurnOutcome:
        """Everything accepted on this thread and not yet answered, this message included, in arrival order (an
        earlier attempt that died mid-turn left its message unanswered: it is answered now); or the outcome of
        the turn that took this message meanwhile. The caller holds the customer's turn lock."""
        taken = self._messages.pending(thread, PENDING_BATCH)
        if any(m.id == inbound.id for m in taken):
            return taken
        # More than a batch is waiting: this turn answers everything that arrived before this message too, so
        # turns keep arrival order (a later message is never answered before an earlier one).
        taken = self._messages.pending(thread, MAX_PENDING_TAKEN, through=inbound.id)
        if any(m.id == inbound.id for m in taken):
            return taken
        if len(taken) == MAX_PENDING_TAKEN:  # the earlier ones are being answered by their own requests
            raise StoreUnavailableError("the customer's conversation is busy; retry shortly")
        # Answered meanwhile, or logged on another thread (the sender was merged).
        current = self._messages.get(inbound.id)
        assert current is not None
        if current.handled is not None:  # a turn that ran meanwhile took this message too
            return self._replay(current, duplicate=redelivered)
        return [current]

    def _context(self, message: InboundMessage, who: Resolution) -> TurnContext:
        return TurnContext(
            customer_id=who.customer.id,
            verification=who.level,
            channel=message.channel,
            handle_type=who.handle_type,
            handle=who.handle,
            services=self.services,
            now=message.received_at or datetime.now(UTC),
            known={who.customer.id: who.customer},
        )

    def _run(
        self,
        taken: list[LoggedMessage],
        current: LoggedMessage,
        context: TurnContext,
        thread: str,
        on_event: EventSink | None,
    ) -> tuple[TurnOutcome, dict[str, Any]] | None:
        """Run the graph on the taken messages, then mark them answered with the reply (one transaction); None
        when another turn answered one of them meanwhile (this turn's lock was lost): nothing is written."""
        config = thread_config(thread, channel=context.channel.value)
        graph_input = {"messages": [HumanMessage(content=m.text, id=f"msg-{m.id}") for m in taken]}
        started = time.time()
        if on_event is None:
            state = self._graph.invoke(graph_input, config, context=context, durability=TURN_DURABILITY)
        else:
            state = stream_turn(self._graph, graph_input, config, context, on_event)
        self._threads.trim(thread)  # the turn's one checkpoint is written: older ones are never read again
        acting_for = CustomerId((state.get("identity") or {}).get("customer_id") or context.customer_id)
        outcome = TurnOutcome(
            customer_id=acting_for,
            reply=state.get("reply"),
            tools=state.get("turn_tools", []) if state.get("reply") is not None else [],
            owner=state.get("owner", "ai"),
            handoff_id=state.get("handoff_id"),
        )
        turn = {"request": current.id, "started": started, "finished": time.time(), "pid": os.getpid()}
        try:
            answer = self._messages.close_turn(
                [m.id for m in taken],
                customer_id=acting_for,
                channel=context.channel,
                reply=outcome.reply,
                metadata={"outcome": outcome.model_dump(mode="json", exclude={"message_id", "reply_id"}), "turn": turn},
            )
        except ConflictError:  # the lock was lost mid-turn and another turn answered first: its reply stands
            log.warning("a turn finished after another turn had answered its messages; its reply was dropped")
            return None
        ids = {"message_id": current.id, "reply_id": answer.id if answer is not None else None}
        return outcome.model_copy(update=ids), state

    def _part_ways(
        self, message: InboundMessage, who: Resolution, state: dict[str, Any], thread: str, *, first: LoggedMessage
    ) -> bool:
        """Another person said this turn that they are not the customer the thread belongs to (a shared phone): what
        they said moves out of that customer's thread into the one their next message joins (their own customer's
        once verified, else the handle's). Each thread is written under its own customer's lock, one at a time.
        Whether the turn's messages moved."""
        if CHANGE_SPEAKER not in {t["name"] for t in state.get("turn_tools", [])}:
            return False
        after = self._identity.resolve(message.channel, message.sender, vouched=message.vouched)
        target = thread_key(after)
        if target == thread:
            return False
        with self._locks.hold(who.customer.id):
            moved = self._threads.split_off(thread, f"msg-{first.id}")
        with self._locks.hold(after.customer.id):
            self._threads.add(target, moved)
        return True

    def _join_proven_customer(
        self, message: InboundMessage, who: Resolution, outcome: TurnOutcome, state: dict[str, Any], thread: str
    ) -> None:
        """A sender who verified as another customer this turn: a provisional sender is merged into them; a known
        one's conversation moves from the handle's thread to the customer's, and the handle's thread starts
        afresh (the next person to claim the handle, on a shared phone, never inherits it). Outside the sender's
        lock, and one lock at a time, so two customers verifying as each other can never deadlock."""
        proven = VerificationLevel((state.get("identity") or {}).get("level", who.level.value))
        if outcome.customer_id == thread or not proven.at_least(VerificationLevel.VERIFIED):
            return  # nobody proved anything this turn: a claim's conversation stays in the handle's thread
        if not who.customer.provisional:
            with self._locks.hold(outcome.customer_id):
                self._threads.carry_over(state, outcome.customer_id)
            with self._locks.hold(who.customer.id):
                self._threads.clear(thread)
            return
        try:
            self._merging.merge(
                who.customer.id,
                outcome.customer_id,
                actor=f"verification:{message.channel.value}",
                reason="verified in conversation",
                verified_handle=(who.handle_type, who.handle),
            )
        except ConflictError as error:  # merged meanwhile by a concurrent turn: the reply still stands
            log.warning("provisional customer not joined after verification: %s", error.message)

    def _seen(self, message: InboundMessage) -> LoggedMessage | None:
        if message.provider_message_id is None:
            return None
        return self._messages.find_by_provider_id(message.channel, message.provider_message_id)

    def _replay(self, inbound: LoggedMessage, *, duplicate: bool) -> TurnOutcome:
        """The outcome of a message a turn already took: the reply for the message whose request ran that
        turn; for a message folded into another's turn, no reply of its own (it was answered once)."""
        reply = self._messages.get(inbound.answer_id) if inbound.answer_id else None
        if reply is not None and "outcome" in reply.metadata:
            outcome = TurnOutcome.model_validate({**reply.metadata["outcome"], "duplicate": duplicate})
            if reply.metadata.get("turn", {}).get("request") == inbound.id:
                # Another delivery of this very message ran its turn (a redelivery may reach the lock
                # first): exactly one delivery reports the turn as its own.
                return outcome.model_copy(update={"duplicate": True, "message_id": inbound.id, "reply_id": reply.id})
            return outcome.model_copy(update={"reply": None, "tools": [], "folded": True, "message_id": inbound.id})
        handoff = self._handoffs.open_for_customer(inbound.customer_id)
        return TurnOutcome(
            customer_id=inbound.customer_id,
            reply=None,
            owner=handoff.owner if handoff else "ai",
            handoff_id=handoff.id if handoff else None,
            duplicate=duplicate,
            message_id=inbound.id,
        )

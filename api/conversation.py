"""The turn service: accept a message once, resolve who sent it, respect ownership, run the graph, log the reply.

`threadline chat` and `POST /v1/messages` both call `Conversations.handle`; nothing else runs turns. The human side of
a handed-off case (agent replies, release, resolve, the queue timeout) also goes through `Conversations`, under the
same per-customer lock, so an agent's message and a customer's turn never interleave on the thread.

Delivery of messages to the customer is the message log: every outbound message (an AI reply, an agent's reply, the
queue-timeout notice) is logged on the customer's current channel, and channel adapters deliver from there. Replies
to a webhook ride in its response; messages sent later (agent replies, timeout notices) are not pushed to Twilio,
Meta or SMTP by this process: they wait in the log (the outbox) for a sender.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

from langchain_core.messages import AnyMessage, HumanMessage, RemoveMessage
from langgraph.graph.message import REMOVE_ALL_MESSAGES
from langgraph.graph.state import CompiledStateGraph

from threadline.agents.summarizer import extend_summary
from threadline.api.handoff_desk import MAX_TEXT_CHARS, HandoffDesk
from threadline.api.streaming import TURN_DURABILITY, EventSink, stream_turn
from threadline.api.threads import thread_config, thread_key
from threadline.core import faults
from threadline.core.context import TurnContext, TurnServices
from threadline.core.errors import ConflictError, InvalidInputError
from threadline.core.types import (
    CustomerId,
    Direction,
    EventType,
    HandleType,
    InboundMessage,
    LoggedMessage,
    TurnOutcome,
)
from threadline.memory.checkpoint_trim import trim_thread
from threadline.memory.identity import IdentityResolver, Resolution, classify_handle
from threadline.memory.knowledge_index import KnowledgeIndex
from threadline.memory.merges import CustomerMerges, MergeRecord
from threadline.memory.stores import Stores
from threadline.memory.turn_locks import TurnLocks

log = logging.getLogger("threadline.conversation")


class Conversations(HandoffDesk):
    """Runs customer turns, one at a time per customer."""

    def __init__(
        self,
        stores: Stores,
        index: KnowledgeIndex,
        graph: CompiledStateGraph[Any, Any, Any, Any],
        verification_ttl: timedelta = timedelta(hours=24),
        *,
        lease_s: float = 120.0,
        burst_window_ms: int = 0,
        queue_timeout_minutes: float = 30.0,
        checkpoint_history: int = 0,
    ) -> None:
        self._stores, self._graph = stores, graph
        self._checkpoint_history = checkpoint_history
        self._identity = IdentityResolver(stores.customers, stores.orders, verification_ttl)
        self._merges = CustomerMerges(stores.db)
        self._services = TurnServices(
            customers=stores.customers,
            orders=stores.orders,
            messages=stores.messages,
            episodes=stores.episodes,
            handoffs=stores.handoffs,
            events=stores.events,
            knowledge=index,
            identity=self._identity,
            articles=stores.knowledge,
        )
        self._locks = TurnLocks(stores.db, lease_s=lease_s)
        self._burst_s = burst_window_ms / 1000
        self._queue_timeout_minutes = queue_timeout_minutes

    def handle(self, message: InboundMessage, on_event: EventSink | None = None) -> TurnOutcome:
        """Accept and answer one inbound message; a redelivery returns the original outcome."""
        text = message.text.strip()
        if not text:
            raise InvalidInputError("the message text is empty")
        if len(text) > MAX_TEXT_CHARS:
            raise InvalidInputError(f"the message is longer than {MAX_TEXT_CHARS} characters")
        who = self._identity.resolve(message.channel, message.sender, vouched=message.vouched)
        if message.vouched and message.previous_sender:
            self._sign_in(message, who)
        thread = thread_key(who)
        inbound, redelivered = self._accept(message, who, text, thread)
        faults.reached("after_accept")
        if inbound.handled is not None:
            return self._replay(inbound, duplicate=redelivered)
        if self._burst_s:  # let the rest of a burst arrive: it is folded into this turn
            time.sleep(self._burst_s)
        with self._locks.hold(who.customer.id):
            # Everything accepted on this thread and not yet answered, this message included, in arrival order
            # (an earlier attempt that died mid-turn left its message unanswered: it is answered now).
            taken = self._stores.messages.pending(thread)
            current = next((m for m in taken if m.id == inbound.id), None)
            if current is None:  # answered meanwhile, or logged on another thread (the sender was merged)
                current = self._stores.messages.get(inbound.id)
                assert current is not None
                if current.handled is not None:  # a turn that ran meanwhile took this message too
                    return self._replay(current, duplicate=redelivered)
                taken = [current]
            context = TurnContext(
                customer_id=who.customer.id,
                verification=who.level,
                channel=message.channel,
                handle_type=who.handle_type,
                handle=who.handle,
                services=self._services,
                now=message.received_at or datetime.now(UTC),
                known={who.customer.id: who.customer},
            )
            outcome, state = self._run(taken, current, context, thread, on_event)
            outcome = self._while_handed_off(outcome, taken, current, message.channel)
        # Outside the sender's lock, so two customers verifying as each other can never deadlock.
        if outcome.customer_id != thread:
            if who.customer.provisional:  # the provisional customer joins the one they proved to be
                try:
                    self.merge(
                        who.customer.id,
                        outcome.customer_id,
                        actor=f"verification:{message.channel.value}",
                        reason="verified in conversation",
                        verified_handle=(who.handle_type, who.handle),
                    )
                except ConflictError as error:  # merged meanwhile by a concurrent turn: the reply still stands
                    log.warning("provisional customer not joined after verification: %s", error.message)
            else:
                with self._locks.hold(outcome.customer_id):
                    self._carry_over(state, outcome.customer_id)
        faults.reached("before_reply")  # the reply is logged (the outbox), not yet sent
        return outcome

    def _sign_in(self, message: InboundMessage, who: Resolution) -> None:
        """A signed-in web customer: the conversation they had as an anonymous visitor joins theirs."""
        assert message.previous_sender is not None
        handle_type, handle = classify_handle(message.channel, message.previous_sender)
        before = self._stores.customers.find_by_handle(handle_type, handle)
        visitor = self._stores.customers.get(before.customer_id) if before else None
        if visitor is not None and visitor.provisional and visitor.id != who.customer.id and not visitor.merged_into:
            self.merge(visitor.id, who.customer.id, actor=f"sign-in:{message.channel.value}", reason="signed in")

    def merge(
        self,
        source: CustomerId,
        target: CustomerId,
        *,
        actor: str,
        reason: str,
        verified_handle: tuple[HandleType, str] | None = None,
    ) -> MergeRecord:
        """Merge `source` into `target` (audited, undoable): their rows move, and the source's conversation
        joins the target's thread. The audit row remembers the target thread's checkpoint before the join."""
        with ExitStack() as held:
            for customer_id in sorted({source, target}):  # one order everywhere: no deadlock
                held.enter_context(self._locks.hold(customer_id))
            before = self._graph.get_state(thread_config(target))
            moved_in = self._graph.get_state(thread_config(source)).values
            thread = {
                "before_checkpoint": before.config["configurable"].get("checkpoint_id") if before.values else None,
                "message_ids": [m.id for m in moved_in.get("messages", [])],
                "summary_lines": str(moved_in.get("summary") or "").splitlines(),
            }
            record = self._merges.merge(
                source, target, actor=actor, reason=reason, verified_handle=verified_handle, extra={"thread": thread}
            )
            if moved_in.get("messages"):
                self._carry_over(moved_in, target)
            return record

    def unmerge(self, event_id: int, *, actor: str) -> MergeRecord:
        """Undo a merge exactly: rows go back, and the target's thread loses what the merge brought in."""
        record = self._merges.get(event_id)
        with ExitStack() as held:
            for customer_id in sorted({record.source, record.target}):
                held.enter_context(self._locks.hold(customer_id))
            self._merges.unmerge(event_id, actor=actor)
            self._restore_thread(record.target, record.detail.get("thread") or {})
        return record

    def _restore_thread(self, target: CustomerId, joined: dict[str, Any]) -> None:
        """The target thread as it was before the join, plus whatever it gained since that did not come from
        the source."""
        config = thread_config(target)
        current = self._graph.get_state(config).values
        if not current:
            return
        before: dict[str, Any] = {}
        if joined.get("before_checkpoint"):
            at = {"configurable": {"thread_id": target, "checkpoint_id": joined["before_checkpoint"]}}
            before = dict(self._graph.get_state(at).values)  # type: ignore[arg-type]
        earlier: list[AnyMessage] = list(before.get("messages", []))
        seen = {m.id for m in earlier} | set(joined.get("message_ids", []))
        kept = [*earlier, *(m for m in current.get("messages", []) if m.id not in seen)]
        before_lines = str(before.get("summary") or "").splitlines()
        skip = set(before_lines) | set(joined.get("summary_lines", []))
        later = [line for line in str(current.get("summary") or "").splitlines() if line not in skip]
        values = {
            "messages": [RemoveMessage(id=REMOVE_ALL_MESSAGES), *kept],
            "summary": "\n".join([*before_lines, *later]),
            "focus_order_id": current.get("focus_order_id") if later else before.get("focus_order_id"),
        }
        self._graph.update_state(config, values, as_node="remember")

    def _accept(self, message: InboundMessage, who: Resolution, text: str, thread: str) -> tuple[LoggedMessage, bool]:
        """Log the message once (the provider id is unique per channel, in the same transaction); returns it
        and whether this delivery was a redelivery."""
        seen = self._seen(message)
        if seen is None:
            try:
                accepted = self._stores.messages.append(
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
                self._stores.events.append(
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

    def _run(
        self,
        taken: list[LoggedMessage],
        current: LoggedMessage,
        context: TurnContext,
        thread: str,
        on_event: EventSink | None,
    ) -> tuple[TurnOutcome, dict[str, Any]]:
        config = thread_config(thread, channel=context.channel.value)
        humans = [HumanMessage(content=m.text, id=f"msg-{m.id}") for m in taken]
        started = time.time()
        if on_event is None:
            state = self._graph.invoke({"messages": humans}, config, context=context, durability=TURN_DURABILITY)
        else:
            state = stream_turn(self._graph, {"messages": humans}, config, context, on_event)
        if self._checkpoint_history:  # the turn's one checkpoint is written: older ones are never read again
            trim_thread(self._stores.db.engine, thread, self._checkpoint_history)
        acting_for = CustomerId((state.get("identity") or {}).get("customer_id") or context.customer_id)
        outcome = TurnOutcome(
            customer_id=acting_for,
            reply=state.get("reply"),
            tools=state.get("turn_tools", []) if state.get("reply") is not None else [],
            owner=state.get("owner", "ai"),
            handoff_id=state.get("handoff_id"),
        )
        turn = {"request": current.id, "started": started, "finished": time.time(), "pid": os.getpid()}
        self._stores.messages.close_turn(
            [m.id for m in taken],
            customer_id=acting_for,
            channel=context.channel,
            reply=outcome.reply,
            metadata={"outcome": outcome.model_dump(mode="json"), "turn": turn},
        )
        return outcome, state

    def _carry_over(self, state: dict[str, Any], customer_id: CustomerId) -> None:
        """A sender who just verified: their recent conversation joins the customer's own thread, whose
        summary keeps its lines (the source's lines are added, bounded)."""
        config = thread_config(customer_id)
        target = self._graph.get_state(config).values
        summary = str(target.get("summary") or "")
        for line in str(state.get("summary") or "").splitlines():
            summary = extend_summary(summary, line)
        values = {
            "messages": state.get("messages", []),
            "summary": summary,
            "focus_order_id": state.get("focus_order_id") or target.get("focus_order_id"),
        }
        self._graph.update_state(config, values, as_node="remember")

    def _seen(self, message: InboundMessage) -> LoggedMessage | None:
        if message.provider_message_id is None:
            return None
        return self._stores.messages.find_by_provider_id(message.channel, message.provider_message_id)

    def _replay(self, inbound: LoggedMessage, *, duplicate: bool) -> TurnOutcome:
        """The outcome of a message a turn already took: the reply for the message whose request ran that
        turn; for a message folded into another's turn, no reply of its own (it was answered once)."""
        reply = self._stores.messages.get(inbound.answer_id) if inbound.answer_id else None
        if reply is not None and "outcome" in reply.metadata:
            outcome = TurnOutcome.model_validate({**reply.metadata["outcome"], "duplicate": duplicate})
            if reply.metadata.get("turn", {}).get("request") == inbound.id:
                # Another delivery of this very message ran its turn (a redelivery may reach the lock
                # first): exactly one delivery reports the turn as its own.
                return outcome.model_copy(update={"duplicate": True})
            return outcome.model_copy(update={"reply": None, "tools": [], "folded": True})
        handoff = self._stores.handoffs.open_for_customer(inbound.customer_id)
        return TurnOutcome(
            customer_id=inbound.customer_id,
            reply=None,
            owner=handoff.owner if handoff else "ai",
            handoff_id=handoff.id if handoff else None,
            duplicate=duplicate,
        )

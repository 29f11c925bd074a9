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

import hashlib
import logging
import os
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, RemoveMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph.message import REMOVE_ALL_MESSAGES
from langgraph.graph.state import CompiledStateGraph

from agents.summarizer import extend_summary
from api.streaming import EventSink, stream_turn
from core.context import TurnContext, TurnServices
from core.errors import ConflictError, InvalidInputError, NotFoundError
from core.types import (
    Channel,
    CustomerId,
    Direction,
    EpisodeStatus,
    HandleType,
    Handoff,
    HandoffId,
    HandoffStatus,
    InboundMessage,
    LoggedMessage,
    TurnOutcome,
    VerificationLevel,
)
from graphs.render import render
from memory.identity import IdentityResolver, Resolution, classify_handle
from memory.knowledge_index import KnowledgeIndex
from memory.merges import CustomerMerges, MergeRecord
from memory.repositories.handoffs import HandoffEventKind
from memory.stores import Stores
from memory.turn_locks import TurnLocks

MAX_TEXT_CHARS = 4000
QUEUE_TIMEOUT_TEXT = (
    "Sorry for the wait - our team is busier than usual. We'll reply here as soon as someone is free; "
    "you can also add any details here in the meantime and they'll see them."
)
"""What a customer whose case waited past the queue timeout is told (once): never silence. Plain ASCII, so an SMS
carries it whole in two segments."""
log = logging.getLogger("threadline.conversation")


def thread_key(who: Resolution) -> str:
    """The thread a message joins: the customer's own once the sender is verified (or the customer is
    provisional, reachable only through this handle); otherwise a per-handle thread, so someone who merely
    claims a known customer's email or phone never sees, nor adds to, that customer's conversation."""
    if who.customer.provisional or who.level.at_least(VerificationLevel.VERIFIED):
        return who.customer.id
    return f"{who.customer.id}~{who.handle_type.value}:{who.handle}"


def thread_config(customer_id: str, **metadata: Any) -> RunnableConfig:
    """The graph config of a customer's one thread, with trace metadata that never holds the raw id."""
    hashed = hashlib.sha256(customer_id.encode()).hexdigest()[:16]
    return {"configurable": {"thread_id": customer_id}, "metadata": {"customer_hash": hashed, **metadata}}


class Conversations:
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
    ) -> None:
        self._stores, self._graph = stores, graph
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
        if inbound.handled is not None:
            return self._replay(inbound, duplicate=redelivered)
        if self._burst_s:  # let the rest of a burst arrive: it is folded into this turn
            time.sleep(self._burst_s)
        with self._locks.hold(who.customer.id):
            current = self._stores.messages.get(inbound.id)
            assert current is not None
            if current.handled is not None:  # a turn that ran meanwhile took this message too
                return self._replay(current, duplicate=redelivered)
            # Everything accepted on this thread and not yet answered, this message included, in arrival order
            # (an earlier attempt that died mid-turn left its message unanswered: it is answered now).
            taken = self._stores.messages.pending(thread) if current.thread_key == thread else []
            taken = taken if any(m.id == current.id for m in taken) else [current]
            context = TurnContext(
                customer_id=who.customer.id,
                verification=who.level,
                channel=message.channel,
                handle_type=who.handle_type,
                handle=who.handle,
                services=self._services,
                now=message.received_at or datetime.now(UTC),
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
        return outcome

    # --- the human side of a handed-off case ---------------------------------------------------------------------

    def _while_handed_off(
        self, outcome: TurnOutcome, taken: list[LoggedMessage], current: LoggedMessage, channel: Channel
    ) -> TurnOutcome:
        """A turn the AI stayed silent in because people own the case: its messages go to the agent (as
        `customer_message` events), and a case queued past the timeout tells the customer so, once."""
        if outcome.owner == "ai" or outcome.handoff_id is None or outcome.reply is not None:
            return outcome
        handoff_id = HandoffId(outcome.handoff_id)
        for m in taken:
            payload = {"message_id": m.id, "channel": m.channel.value, "text": m.text}
            self._stores.handoffs.record(handoff_id, HandoffEventKind.CUSTOMER_MESSAGE, "customer", payload)
        timed_out = self._stores.handoffs.time_out(handoff_id, datetime.now(UTC), self._queue_timeout_minutes)
        if timed_out is None:
            return outcome
        notice = self._tell_timed_out(timed_out, channel, reply_to=current.id)
        return outcome.model_copy(update={"reply": notice.text})

    def time_out_overdue(self, now: datetime | None = None) -> list[Handoff]:
        """Cases queued past the timeout become `timed_out`, and each customer is told on their current channel
        (logged for delivery). Called when agents list the queue, so a quiet customer is not left in silence."""
        expired = self._stores.handoffs.time_out_overdue(now or datetime.now(UTC), self._queue_timeout_minutes)
        for handoff in expired:
            with self._locks.hold(handoff.customer_id):
                self._tell_timed_out(handoff, self._current_channel(handoff))
        return expired

    def _tell_timed_out(self, handoff: Handoff, channel: Channel, *, reply_to: int | None = None) -> LoggedMessage:
        self._stores.events.append(
            "handoff_timed_out",
            customer_id=handoff.customer_id,
            channel=channel.value,
            payload={"handoff_id": handoff.id, "after_minutes": self._queue_timeout_minutes},
        )
        return self._deliver(handoff, QUEUE_TIMEOUT_TEXT, channel, {"queue_timeout": handoff.id}, reply_to=reply_to)

    def _current_channel(self, handoff: Handoff) -> Channel:
        """The channel the customer wrote on last (the packet's channel if they never wrote)."""
        latest = [
            m for m in self._stores.messages.for_customer(handoff.customer_id) if m.direction is Direction.INBOUND
        ]
        if latest:
            return latest[-1].channel
        return Channel(str(handoff.packet.get("channel") or Channel.WEB.value))

    def _deliver(
        self,
        handoff: Handoff,
        text: str,
        channel: Channel,
        marker: dict[str, Any],
        *,
        reply_to: int | None = None,
    ) -> LoggedMessage:
        """Log a message to the customer on `channel` (rendered for it) and add it to their thread, so the AI
        sees it once the case comes back. The caller holds the customer's turn lock."""
        rendered = render(text, channel)
        logged = self._stores.messages.append(
            handoff.customer_id,
            channel,
            Direction.OUTBOUND,
            rendered,
            episode_id=handoff.episode_id,
            metadata={"handoff_id": handoff.id, **marker},
            reply_to_id=reply_to,
        )
        said = AIMessage(content=rendered, additional_kwargs={"threadline": marker})
        self._graph.update_state(thread_config(handoff.customer_id), {"messages": [said]}, as_node="remember")
        return logged

    def _handoff(self, handoff_id: HandoffId) -> Handoff:
        handoff = self._stores.handoffs.get(handoff_id)
        if handoff is None:
            raise NotFoundError(f"handoff {handoff_id} not found")
        return handoff

    def claim(self, handoff_id: HandoffId, agent: str) -> Handoff:
        """`agent` takes the case: from now on the customer talks to them."""
        handoff = self._stores.handoffs.claim(handoff_id, agent)
        waited = (handoff.claimed_at or handoff.created_at) - handoff.created_at
        self._stores.events.append(
            "handoff_claimed",
            customer_id=handoff.customer_id,
            payload={"handoff_id": handoff.id, "agent": agent, "waited_s": waited.total_seconds()},
        )
        return handoff

    def agent_reply(self, handoff_id: HandoffId, agent: str, text: str) -> LoggedMessage:
        """The agent's message to the customer, on the customer's current channel and rendered for it; it joins
        the customer's thread. Only the agent who claimed the case may reply."""
        text = text.strip()
        if not text:
            raise InvalidInputError("the reply text is empty")
        if len(text) > MAX_TEXT_CHARS:
            raise InvalidInputError(f"the reply is longer than {MAX_TEXT_CHARS} characters")
        handoff = self._handoff(handoff_id)
        if handoff.status is not HandoffStatus.CLAIMED:
            raise ConflictError(f"handoff {handoff_id} is {handoff.status.value}; claim it before replying")
        if handoff.assigned_agent != agent:
            raise ConflictError(f"handoff {handoff_id} is claimed by {handoff.assigned_agent}")
        with self._locks.hold(handoff.customer_id):
            channel = self._current_channel(handoff)
            logged = self._deliver(handoff, text, channel, {"agent": agent})
            payload = {"message_id": logged.id, "channel": channel.value, "text": logged.text}
            self._stores.handoffs.record(handoff_id, HandoffEventKind.AGENT_REPLY, agent, payload)
        return logged

    def release(self, handoff_id: HandoffId, agent: str, note: str) -> Handoff:
        """The case goes back to the AI; the agent's note joins the thread (as a system note the customer never
        sees) so the AI's next turn knows what the agent did."""
        handoff = self._handoff(handoff_id)
        with self._locks.hold(handoff.customer_id):
            released = self._stores.handoffs.release(handoff_id, agent, note)
            said = f"Note from agent {agent} (the case is back with you): {note.strip() or 'no note'}"
            marked = SystemMessage(content=said, additional_kwargs={"threadline": {"agent": agent, "released": True}})
            self._graph.update_state(thread_config(handoff.customer_id), {"messages": [marked]}, as_node="remember")
        self._stores.events.append(
            "handoff_released", customer_id=handoff.customer_id, payload={"handoff_id": handoff.id, "agent": agent}
        )
        return released

    def resolve(self, handoff_id: HandoffId, agent: str) -> Handoff:
        """The case is closed, and with it the customer's episode."""
        handoff = self._handoff(handoff_id)
        resolved = self._stores.handoffs.resolve(handoff_id, agent)
        episode = self._stores.episodes.current(handoff.customer_id) if handoff.episode_id is None else None
        episode_id = handoff.episode_id or (episode.id if episode else None)
        if episode_id is not None:
            self._stores.episodes.update(episode_id, status=EpisodeStatus.RESOLVED, outcome=f"resolved by {agent}")
        self._stores.events.append(
            "handoff_resolved", customer_id=handoff.customer_id, payload={"handoff_id": handoff.id, "agent": agent}
        )
        return resolved

    def rate(self, handoff_id: HandoffId, agent: str, usefulness: int, missing: list[str], wrong: list[str]) -> Handoff:
        """The agent's verdict on the packet, for escalation-quality analytics."""
        rated = self._stores.handoffs.rate(handoff_id, agent, usefulness, missing, wrong)
        payload = {"handoff_id": rated.id, "agent": agent, "usefulness": usefulness, "missing": missing, "wrong": wrong}
        self._stores.events.append("handoff_rated", customer_id=rated.customer_id, payload=payload)
        return rated

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
            state = self._graph.invoke({"messages": humans}, config, context=context, durability="sync")
        else:
            state = stream_turn(self._graph, {"messages": humans}, config, context, on_event)
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

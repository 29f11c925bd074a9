"""`Threads`: the one owner of checkpointed conversation threads outside the graph.

The support graph reads and writes a customer's thread during a turn; everything else that touches a thread (an
agent's message, a verified sender's conversation joining the customer's, a merge and its undo, trimming old
checkpoints, reading a thread for a test or an evaluation) goes through this class, so the state's shape and the
thread-id format have one place to change.
"""

from __future__ import annotations

import hashlib
from typing import Any

from langchain_core.messages import AnyMessage, RemoveMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph.message import REMOVE_ALL_MESSAGES
from langgraph.graph.state import CompiledStateGraph
from sqlalchemy import Engine

from threadline.agents.summarizer import extend_summary
from threadline.core.threads import customer_thread, handle_thread
from threadline.core.types import CustomerId, VerificationLevel
from threadline.memory.checkpoint_trim import trim_thread
from threadline.memory.identity import Resolution

WRITER = "respond"
"""Writes from outside a turn are recorded as the graph's last node, so the next turn starts from them."""


def thread_key(who: Resolution) -> str:
    """The thread a message joins: the customer's own once the sender is verified (or the customer is
    provisional, reachable only through this handle); otherwise a per-handle thread."""
    if who.customer.provisional or who.level.at_least(VerificationLevel.VERIFIED):
        return customer_thread(who.customer.id)
    return handle_thread(who.customer.id, who.handle_type, who.handle)


def thread_config(thread_id: str, **metadata: Any) -> RunnableConfig:
    """The graph config of a thread, with trace metadata that never holds the raw customer id."""
    hashed = hashlib.sha256(thread_id.encode()).hexdigest()[:16]
    return {"configurable": {"thread_id": thread_id}, "metadata": {"customer_hash": hashed, **metadata}}


class Threads:
    """Reads and writes conversation threads through the graph's checkpointer."""

    def __init__(self, graph: CompiledStateGraph[Any, Any, Any, Any], engine: Engine, *, history: int = 0) -> None:
        self._graph = graph
        self._engine = engine
        self._history = history

    def values(self, thread_id: str) -> dict[str, Any]:
        """The thread's latest state (empty for a thread that never ran)."""
        return dict(self._graph.get_state(thread_config(thread_id)).values)

    def checkpoint_id(self, thread_id: str) -> str | None:
        """The id of the thread's latest checkpoint, None for a thread that never ran."""
        snapshot = self._graph.get_state(thread_config(thread_id))
        if not snapshot.values:
            return None
        return str(snapshot.config["configurable"].get("checkpoint_id"))

    def values_at(self, thread_id: str, checkpoint_id: str) -> dict[str, Any]:
        """The thread's state as of one of its checkpoints."""
        at: RunnableConfig = {"configurable": {"thread_id": thread_id, "checkpoint_id": checkpoint_id}}
        return dict(self._graph.get_state(at).values)

    def append(self, customer_id: CustomerId, messages: list[AnyMessage]) -> None:
        """Add messages said outside a turn (an agent's reply, an agent's note) to the customer's thread."""
        self._write(customer_thread(customer_id), {"messages": messages})

    def split_off(self, thread_id: str, first_id: str) -> list[AnyMessage]:
        """Remove the messages from the one with id `first_id` on (a turn another person had on a shared handle)
        and return them; nothing when that message is not in the thread."""
        messages: list[AnyMessage] = self.values(thread_id).get("messages", [])
        start = next((i for i, m in enumerate(messages) if m.id == first_id), None)
        if start is None:
            return []
        moved = messages[start:]
        self._write(thread_id, {"messages": [RemoveMessage(id=m.id) for m in moved if m.id]})
        return moved

    def clear(self, thread_id: str) -> None:
        """Empty a thread whose conversation moved on (a handle's thread, once its sender verified)."""
        values = {"messages": [RemoveMessage(id=REMOVE_ALL_MESSAGES)], "summary": "", "focus_order_id": None}
        self._write(thread_id, {**values, "proposal": None})

    def add(self, thread_id: str, messages: list[AnyMessage]) -> None:
        """Add messages to a thread (what `split_off` took from another)."""
        if messages:
            self._write(thread_id, {"messages": messages})

    def carry_over(self, state: dict[str, Any], customer_id: CustomerId) -> None:
        """A conversation joins the customer's own thread: its messages are added, the customer's summary keeps
        its lines (the joining lines are added, bounded), and the order in focus and an order action proposed
        for this customer (waiting for their yes) carry over."""
        target = self.values(customer_thread(customer_id))
        summary = str(target.get("summary") or "")
        for line in str(state.get("summary") or "").splitlines():
            summary = extend_summary(summary, line)
        values = {
            "messages": state.get("messages", []),
            "summary": summary,
            "focus_order_id": state.get("focus_order_id") or target.get("focus_order_id"),
        }
        proposal = state.get("proposal")
        if proposal and proposal.get("customer_id") == customer_id:  # proposed right after verifying: still open
            values["proposal"] = proposal
        self._write(customer_thread(customer_id), values)

    def prepare_join(self, source: CustomerId, target: CustomerId) -> tuple[dict[str, Any], dict[str, Any]]:
        """Before the source customer's thread joins the target's: what an undo needs (the target's checkpoint
        before the join, the message ids and summary lines that come in), and the source's state to carry over."""
        moved_in = self.values(customer_thread(source))
        joined = {
            "before_checkpoint": self.checkpoint_id(customer_thread(target)),
            "message_ids": [m.id for m in moved_in.get("messages", [])],
            "summary_lines": str(moved_in.get("summary") or "").splitlines(),
        }
        return joined, moved_in

    def unjoin(self, target: CustomerId, joined: dict[str, Any]) -> None:
        """Undo a join (see `prepare_join`): the target thread as it was before, plus whatever it gained since
        that did not come from the source."""
        thread = customer_thread(target)
        current = self.values(thread)
        if not current:
            return
        before = self.values_at(thread, joined["before_checkpoint"]) if joined.get("before_checkpoint") else {}
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
        self._write(thread, values)

    def trim(self, thread_id: str) -> None:
        """After a turn: keep the configured number of latest checkpoints (older ones are never read again)."""
        if self._history:
            trim_thread(self._engine, thread_id, self._history)

    def _write(self, thread_id: str, values: dict[str, Any]) -> None:
        self._graph.update_state(thread_config(thread_id), values, as_node=WRITER)

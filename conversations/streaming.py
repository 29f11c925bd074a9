"""A turn as events: progress while tools run ("Looking up your order…"), the model's text as it is produced,
then the rendered reply. `POST /v1/messages?stream=true` sends them as server-sent events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Durability

from threadline.core.context import TurnContext
from threadline.core.tool_names import (
    CHANGE_SPEAKER,
    ESCALATE_TO_HUMAN,
    LOOKUP_ORDER,
    RECALL_CONTEXT,
    SEARCH_KNOWLEDGE,
    VERIFY_CUSTOMER,
)

TURN_DURABILITY: Durability = "exit"
"""One checkpoint per turn, written when the turn ends, instead of one per step. A turn is replayable from
the message log: its messages stay pending until the reply's transaction marks them answered, so a turn cut
short by a crash runs again from the previous checkpoint. The one step with a side effect outside the thread,
opening a handoff, is idempotent (a customer has at most one open case), so a re-run cannot repeat it."""

EventSink = Callable[[dict[str, Any]], None]

PROGRESS: dict[str, str] = {
    LOOKUP_ORDER: "Looking up your order…",
    SEARCH_KNOWLEDGE: "Checking our store information…",
    RECALL_CONTEXT: "Looking at our earlier conversations…",
    VERIFY_CUSTOMER: "Checking your details…",
    CHANGE_SPEAKER: "Starting afresh for you…",
    ESCALATE_TO_HUMAN: "Passing you to a member of our team…",
}


def stream_turn(
    graph: CompiledStateGraph[Any, Any, Any, Any],
    graph_input: dict[str, Any],
    config: RunnableConfig,
    context: TurnContext,
    emit: EventSink,
) -> dict[str, Any]:
    """Run one turn, emitting `progress` and `delta` events; returns the final state, as `invoke` would."""
    state: dict[str, Any] = {}
    chunk: Any
    for mode, chunk in graph.stream(
        graph_input,
        config,
        context=context,
        durability=TURN_DURABILITY,
        stream_mode=["updates", "messages", "values"],
    ):
        if mode == "values":
            state = chunk
        elif mode == "updates":
            for node, update in chunk.items():
                if node != "agent" or not update:
                    continue
                for message in update.get("messages", []):
                    if isinstance(message, AIMessage):
                        for call in message.tool_calls:
                            text = PROGRESS.get(call["name"], "Working on it…")
                            emit({"event": "progress", "tool": call["name"], "text": text})
        elif mode == "messages":
            message, metadata = chunk
            streamed = isinstance(message, AIMessageChunk) and not message.tool_call_chunks
            if streamed and metadata.get("langgraph_node") == "agent" and message.text:
                emit({"event": "delta", "text": message.text})
    return state

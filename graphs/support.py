"""`build_support_graph()`: one explicit StateGraph for every channel's turns."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore

from threadline.agents.concerns import ConcernDetector
from threadline.core.context import TurnContext
from threadline.core.hours import BusinessHours
from threadline.graphs.nodes import (
    QUEUE_ACK_INTERVAL,
    load_context,
    make_acknowledge,
    make_agent,
    make_guard,
    make_handoff,
    make_remember,
    make_respond,
)
from threadline.graphs.policy import Thresholds
from threadline.graphs.render import DEFAULT_SIGNATURE
from threadline.graphs.state import SupportInput, SupportState
from threadline.graphs.tool_node import InlineToolNode
from threadline.tools import SUPPORT_TOOLS
from threadline.tools.results import ToolError

MAX_STEPS = 6
WINDOW = 16


def _after_load(state: SupportState) -> Literal["agent", "acknowledge"]:
    owner = state.get("owner", "ai")
    return "agent" if owner == "ai" else "acknowledge"


def _after_guard(state: SupportState) -> Literal["handoff", "tools", "agent", "respond"]:
    if state.get("escalation"):
        return "handoff"
    last = state["messages"][-1]
    if isinstance(last, AIMessage) and last.tool_calls:
        return "tools" if state.get("steps", 0) <= MAX_STEPS else "respond"
    if isinstance(last, ToolMessage):
        return "agent"
    return "respond"


def build_support_graph(
    model: BaseChatModel,
    *,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    store: BaseStore | None = None,
    window: int = WINDOW,
    thresholds: Thresholds | None = None,
    signature: str = DEFAULT_SIGNATURE,
    hours: BusinessHours | None = None,
    queue_ack_interval: timedelta = QUEUE_ACK_INTERVAL,
    concerns: ConcernDetector | None = None,
) -> CompiledStateGraph[SupportState, TurnContext, SupportInput, SupportState]:
    """The support graph: load_context → agent ⇄ tools (guarded) → handoff? → respond (which also remembers the
    turn). The guard runs inside the agent's step and as its own step after tools (whose updates it reads). With a
    `store`, episodes and preferences are kept in long-term memory and `recall_context` searches them;
    `thresholds` tune the escalation policy (defaults otherwise); `hours` are the team's opening hours (the wait a
    customer is told; always open when None); a customer waiting for a person hears at most once per
    `queue_ack_interval` that their message reached the team; with `concerns`, sensitive topics are also recognised
    by meaning, beside the policy's rules."""
    limits = thresholds or Thresholds()
    bound = model.bind_tools(SUPPORT_TOOLS)
    graph = StateGraph(SupportState, context_schema=TurnContext, input_schema=SupportInput)
    graph.add_node("load_context", load_context)
    guard = make_guard(limits, concerns)
    graph.add_node("agent", make_agent(bound, guard))  # type: ignore[arg-type]
    graph.add_node("tools", InlineToolNode(SUPPORT_TOOLS, handle_tool_errors=_tool_error))
    graph.add_node("guard", guard)
    graph.add_node("handoff", make_handoff(limits, hours))
    graph.add_node("acknowledge", make_acknowledge(hours, signature, queue_ack_interval))
    graph.add_node("respond", make_respond(signature, make_remember(window)))
    graph.add_edge(START, "load_context")
    graph.add_conditional_edges("load_context", _after_load)
    graph.add_conditional_edges("agent", _after_guard)
    graph.add_edge("tools", "guard")
    graph.add_conditional_edges("guard", _after_guard)
    graph.add_edge("handoff", "respond")
    graph.add_edge("respond", END)
    graph.add_edge("acknowledge", END)
    return graph.compile(checkpointer=checkpointer, store=store, name="support")


def _tool_error(error: Exception) -> str:
    """What the model sees when a tool fails: a readable message, never a stack trace."""
    from threadline.core.errors import RecoverableError

    if isinstance(error, RecoverableError):
        return ToolError(code=error.code, message=error.message).content()
    return ToolError(code="tool_failed", message="The tool failed; please try again later.").content()

"""`InlineToolNode` behaves as the prebuilt `ToolNode` (results, errors, `Command`s, injected runtime, several calls
in one step), and runs a step's single call on the calling thread instead of a new thread pool."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, ToolRuntime
from langgraph.types import Command

from threadline.graphs.tool_node import InlineToolNode

called_on: list[int] = []


@dataclass
class Context:
    customer: str


@tool
def echo(text: str) -> str:
    """Echo the text."""
    called_on.append(threading.get_ident())
    return text.upper()


@tool
def whose(runtime: ToolRuntime[Context, Any]) -> str:
    """The customer of the run's context and the call id, through the injected runtime."""
    called_on.append(threading.get_ident())
    return f"{runtime.context.customer}:{runtime.tool_call_id}:{len(runtime.state['messages'])}"


@tool
def remember(note: str, runtime: ToolRuntime[Context, Any]) -> Command[Any]:
    """Answer with a state update."""
    called_on.append(threading.get_ident())
    return Command(update={"messages": [ToolMessage(f"noted {note}", tool_call_id=runtime.tool_call_id)]})


@tool
def broken(order_id: str) -> str:
    """Always fails."""
    raise RuntimeError(f"lookup of {order_id} failed")


TOOLS = [echo, whose, remember, broken]


def _run(node_type: type[ToolNode], calls: list[dict[str, Any]]) -> list[Any]:
    graph = StateGraph(MessagesState, context_schema=Context)
    graph.add_node("tools", node_type(TOOLS, handle_tool_errors=lambda e: f"error: {e}"))
    graph.add_edge(START, "tools")
    graph.add_edge("tools", END)
    state = graph.compile().invoke(
        {"messages": [AIMessage(content="", tool_calls=calls)]}, context=Context(customer="cus_1")
    )
    return [
        (type(m).__name__, m.content, getattr(m, "tool_call_id", None), getattr(m, "status", None))
        for m in state["messages"]
    ]


CASES = {
    "plain": [{"name": "echo", "args": {"text": "hi"}, "id": "c1"}],
    "injected runtime": [{"name": "whose", "args": {}, "id": "c2"}],
    "command": [{"name": "remember", "args": {"note": "blue"}, "id": "c3"}],
    "tool error": [{"name": "broken", "args": {"order_id": "#W1"}, "id": "c4"}],
    "invalid arguments": [{"name": "echo", "args": {"wrong": 1}, "id": "c5"}],
    "unknown tool": [{"name": "nope", "args": {}, "id": "c6"}],
    "two calls": [
        {"name": "echo", "args": {"text": "a"}, "id": "c7"},
        {"name": "whose", "args": {}, "id": "c8"},
    ],
}


@pytest.mark.parametrize("calls", CASES.values(), ids=CASES.keys())
def test_the_same_messages_as_the_prebuilt_node(calls: list[dict[str, Any]]) -> None:
    assert _run(InlineToolNode, calls) == _run(ToolNode, calls)


def test_a_single_call_runs_on_the_calling_thread_and_several_calls_in_the_pool() -> None:
    here = threading.get_ident()
    called_on.clear()
    _run(InlineToolNode, CASES["plain"])
    assert called_on == [here]
    called_on.clear()
    _run(ToolNode, CASES["plain"])
    assert called_on != [here]  # what the prebuilt node does: a pool thread
    called_on.clear()
    _run(InlineToolNode, CASES["two calls"])
    assert len(called_on) == 2 and here not in called_on

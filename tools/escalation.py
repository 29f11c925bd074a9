"""`escalate_to_human`: ask the graph to hand the case to a person; the handoff itself is built in code."""

from __future__ import annotations

from typing import Any

from langchain_core.tools import tool
from langgraph.types import Command

from threadline.core.tool_names import ESCALATE_TO_HUMAN
from threadline.tools.results import EscalationQueued, Urgency
from threadline.tools.runtime import SupportRuntime, tool_result


@tool(ESCALATE_TO_HUMAN)
def escalate_to_human(reason: str, runtime: SupportRuntime, urgency: Urgency = "normal") -> Command[Any]:
    """Hand the conversation to a human agent. Use when the customer asks for a person, or when the request
    cannot be handled with the other tools. `reason` says in a sentence why."""
    queued = EscalationQueued(reason=reason[:500], urgency=urgency, source="model")
    return tool_result(runtime, ESCALATE_TO_HUMAN, queued, escalation=queued.model_dump(exclude={"status"}))

"""What every tool shares: reading the turn's identity and packaging a structured result."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import ToolMessage
from langgraph.prebuilt import ToolRuntime
from langgraph.types import Command

from core.context import TurnContext
from core.types import CustomerId, VerificationLevel

# Unparameterized on purpose: tool schemas are built with pydantic, which must not walk into the context.
SupportRuntime = ToolRuntime[Any, Any]


def turn_context(runtime: SupportRuntime) -> TurnContext:
    """The turn's runtime context, typed."""
    context = runtime.context
    assert isinstance(context, TurnContext), "tools run only inside the support graph"
    return context


@dataclass(frozen=True)
class Identity:
    """Whom the turn acts for: set from the runtime context at turn start, raised only by verification."""

    customer_id: CustomerId
    level: VerificationLevel


def current_identity(runtime: SupportRuntime) -> Identity:
    """The identity in graph state (written only by code), falling back to the runtime context."""
    state_identity = (runtime.state or {}).get("identity") or {}
    if state_identity.get("customer_id"):
        return Identity(CustomerId(state_identity["customer_id"]), VerificationLevel(state_identity["level"]))
    context = turn_context(runtime)
    return Identity(context.customer_id, context.verification)


def tool_result(runtime: SupportRuntime, name: str, payload: dict[str, Any], **updates: Any) -> Command[Any]:
    """A tool's structured result as a ToolMessage (JSON content, the dict as artifact) plus state updates."""
    message = ToolMessage(
        content=json.dumps(payload, default=str, ensure_ascii=False),
        artifact=payload,
        name=name,
        tool_call_id=runtime.tool_call_id or "",
        status="error" if payload.get("status") == "error" else "success",
    )
    return Command(update={"messages": [message], **updates})

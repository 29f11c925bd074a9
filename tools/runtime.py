"""What every tool shares: reading the turn's identity and packaging a structured result."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from langchain_core.messages import ToolMessage
from langgraph.prebuilt import ToolRuntime
from langgraph.types import Command

from threadline.core import faults
from threadline.core.context import TurnContext
from threadline.core.tool_names import ToolName
from threadline.core.types import CustomerId, VerificationLevel
from threadline.tools.results import ToolError, ToolResult

# Unparameterized on purpose: tool schemas are built with pydantic, which must not walk into the context.
SupportRuntime = ToolRuntime[Any, Any]


def turn_context(runtime: SupportRuntime) -> TurnContext:
    """The turn's runtime context, typed."""
    context = runtime.context
    assert isinstance(context, TurnContext), "tools run only inside the support graph"
    return context


class Identity(NamedTuple):
    """Whom the turn acts for: set from the runtime context at turn start, raised only by verification."""

    customer_id: CustomerId
    level: VerificationLevel


def identity_from(state: Mapping[str, Any] | None, context: TurnContext) -> Identity:
    """The identity in graph state (written only by code: load_context, then verification), else the context's."""
    state_identity = (state or {}).get("identity") or {}
    if state_identity.get("customer_id"):
        return Identity(CustomerId(state_identity["customer_id"]), VerificationLevel(state_identity["level"]))
    return Identity(context.customer_id, context.verification)


def current_identity(runtime: SupportRuntime) -> Identity:
    """The identity a tool acts for."""
    return identity_from(runtime.state, turn_context(runtime))


def tool_result(runtime: SupportRuntime, name: ToolName, result: ToolResult, **updates: Any) -> Command[Any]:
    """A tool's typed result as a ToolMessage (its JSON as content, its plain dict as artifact) plus state updates."""
    faults.reached("during_tool")
    message = ToolMessage(
        content=result.content(),
        artifact=result.payload(),
        name=name,
        tool_call_id=runtime.tool_call_id or "",
        status="error" if isinstance(result, ToolError) else "success",
    )
    return Command(update={"messages": [message], **updates})

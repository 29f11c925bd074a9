"""Deterministic summaries of a turn, from what the customer said and what the tools returned."""

from __future__ import annotations

from datetime import datetime

from langchain_core.messages import AnyMessage, HumanMessage, ToolMessage

from threadline.core.tool_names import (
    CHANGE_SPEAKER,
    ESCALATE_TO_HUMAN,
    LOOKUP_ORDER,
    SEARCH_KNOWLEDGE,
    VERIFY_CUSTOMER,
)
from threadline.tools.results import (
    KnowledgeResult,
    OrderNotFound,
    OrdersFound,
    ToolResult,
    VerificationPassed,
    read_result,
)

SUMMARY_MAX_LINES = 12


def _outcome(name: str, result: ToolResult | None) -> str | None:
    if name == LOOKUP_ORDER:
        if isinstance(result, OrdersFound) and result.order is not None:
            order = result.order
            tracking = [t for s in order.shipments for t in s.tracking_ids]
            extra = f"; tracking {', '.join(tracking)}" if tracking else ""
            return f"asked about order {order.order_id} (status {order.status}{extra})"
        if isinstance(result, OrdersFound):
            return f"asked for their order history ({len(result.orders or [])} orders)"
        if isinstance(result, OrderNotFound):
            return f"asked about order {result.order_id}, which was not found on their account"
        return "asked about an order and was asked to verify their identity"
    if name == CHANGE_SPEAKER:
        return "said they are not the customer verified earlier (a shared phone or inbox)"
    if name == VERIFY_CUSTOMER:
        return "verified their identity" if isinstance(result, VerificationPassed) else "could not be verified"
    if name == SEARCH_KNOWLEDGE:
        query = result.query if isinstance(result, KnowledgeResult) else ""
        if isinstance(result, KnowledgeResult) and result.status == "ok":
            top = result.passages[0]
            return f'asked "{query[:80]}" (answered from {top.title}, version {top.version})'
        return f'asked "{query[:80]}", which the knowledge base could not answer'
    if name == ESCALATE_TO_HUMAN:
        return "was handed to a human agent"
    return None


def turn_gist(messages: list[AnyMessage]) -> str:
    """One line saying what the customer wanted in this turn and what came of it."""
    outcomes = [
        text for m in messages if isinstance(m, ToolMessage) and m.name and (text := _outcome(m.name, read_result(m)))
    ]
    if outcomes:
        return "; then ".join(dict.fromkeys(outcomes))
    said = next((m.text for m in reversed(messages) if isinstance(m, HumanMessage)), "")
    return f'said "{said.strip()[:100]}"'


def summary_line(moment: datetime, channel: str, gist: str) -> str:
    """A dated, channel-tagged summary line."""
    return f"{moment.date().isoformat()} by {channel}: {gist}"


def extend_summary(summary: str | None, line: str, max_lines: int = SUMMARY_MAX_LINES) -> str:
    """Append a line and keep only the most recent `max_lines`, so the summary stays bounded."""
    lines = [*(summary or "").splitlines(), line]
    return "\n".join(lines[-max_lines:])

"""Deterministic summaries of a turn, from what the customer said and what the tools returned."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from langchain_core.messages import AnyMessage, HumanMessage, ToolMessage

SUMMARY_MAX_LINES = 12


def tool_payload(message: ToolMessage) -> dict[str, Any]:
    """A tool message's structured result (the artifact, else its JSON content)."""
    if isinstance(message.artifact, dict):
        return message.artifact
    try:
        data = json.loads(message.content if isinstance(message.content, str) else "")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _outcome(name: str, payload: dict[str, Any]) -> str | None:
    status = payload.get("status")
    if name == "lookup_order":
        if status == "ok" and "order" in payload:
            order = payload["order"]
            tracking = [t for s in order["shipments"] for t in s["tracking_ids"]]
            extra = f"; tracking {', '.join(tracking)}" if tracking else ""
            return f"asked about order {order['order_id']} (status {order['status']}{extra})"
        if status == "ok":
            return f"asked for their order history ({len(payload.get('orders', []))} orders)"
        if status == "not_found":
            return f"asked about order {payload.get('order_id')}, which was not found on their account"
        return "asked about an order and was asked to verify their identity"
    if name == "verify_customer":
        return "verified their identity" if status == "ok" else "could not be verified"
    if name == "search_knowledge":
        if status == "ok":
            top = payload["passages"][0]
            return f'asked "{payload.get("query", "")[:80]}" (answered from {top["title"]}, version {top["version"]})'
        return f'asked "{payload.get("query", "")[:80]}", which the knowledge base could not answer'
    if name == "escalate_to_human":
        return "was handed to a human agent"
    return None


def turn_gist(messages: list[AnyMessage]) -> str:
    """One line saying what the customer wanted in this turn and what came of it."""
    outcomes = [
        text for m in messages if isinstance(m, ToolMessage) and m.name and (text := _outcome(m.name, tool_payload(m)))
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

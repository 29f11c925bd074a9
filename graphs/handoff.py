"""Builds the handoff packet from graph state, deterministically: what the agent needs instead of a transcript."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage

from agents.summarizer import tool_payload
from core.handoff import HandoffPacket, PacketCustomer, Priority, Stall, StallPoint, ToolTrail
from core.types import ChannelIdentity, Customer, Episode

SLA = {
    "urgent": timedelta(minutes=5),
    "high": timedelta(minutes=15),
    "normal": timedelta(hours=1),
    "low": timedelta(hours=4),
}
PRIORITY_FOR_STALL: dict[StallPoint, Priority] = {
    StallPoint.SENSITIVE_TOPIC: "high",
    StallPoint.HIGH_VALUE_COMPLAINT: "high",
    StallPoint.NEGATIVE_SENTIMENT: "high",
    StallPoint.TOOL_ERROR: "high",
}


def tool_trail(messages: list[AnyMessage]) -> list[ToolTrail]:
    """Every tool call in the window with its arguments and the status that came back."""
    results = {m.tool_call_id: m for m in messages if isinstance(m, ToolMessage)}
    trail = []
    for message in messages:
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                result = results.get(call["id"] or "")
                payload = tool_payload(result) if result else {}
                outcome = str(payload.get("status", "no result")) if result else "not run"
                trail.append(ToolTrail(name=call["name"], args=dict(call["args"]), outcome=outcome))
    return trail


def _facts(messages: list[AnyMessage], customer: Customer, level: str) -> dict[str, str]:
    facts = {"verification_level": level}
    if not customer.provisional:
        facts["customer_name"] = customer.display_name
    for message in messages:
        if isinstance(message, ToolMessage) and message.name == "lookup_order":
            order = tool_payload(message).get("order")
            if order:
                facts[f"order {order['order_id']} status"] = order["status"]
    return facts


def build_packet(
    *,
    messages: list[AnyMessage],
    customer: Customer,
    identities: list[ChannelIdentity],
    level: str,
    channel: str,
    episode: Episode | None,
    stall: StallPoint,
    evidence: list[str],
    urgency: str | None,
    intent: str | None,
    now: datetime,
) -> HandoffPacket:
    """The packet for a case handed over at `stall`."""
    asked = [m.text.strip() for m in messages if isinstance(m, HumanMessage) and m.text.strip()]
    priority: Priority = urgency if urgency in SLA else PRIORITY_FOR_STALL.get(stall, "normal")  # type: ignore[assignment]
    cited = sorted(set(cited_articles(messages)))
    verified = level in ("verified", "strong")
    return HandoffPacket(
        customer=PacketCustomer(
            id=customer.id,
            name=None if customer.provisional else customer.display_name,
            verification_level=level,
            identities=[f"{i.handle_type.value}:{i.handle_value}" for i in identities],
            provisional=customer.provisional,
        ),
        channel=channel,
        channels_in_episode=episode.channels if episode else [channel],
        intent=intent,
        goal=("The customer wrote: " + " / ".join(asked[-2:]))[:400] if asked else "No message yet.",
        tools_called=tool_trail(messages),
        stall=Stall(type=stall, evidence=evidence[-3:]),
        facts=_facts(messages, customer, level),
        open_questions=[] if verified else ["Identity not verified: verify before sharing order details."],
        next_steps=["Reply to the customer on their current channel.", "Resolve or release the case when done."],
        priority=priority,
        sla_due_at=now + SLA[priority],
        articles_cited=cited,
        transcript_ref=f"customer:{customer.id}/messages",
    )


def cited_articles(messages: list[AnyMessage]) -> list[str]:
    """`article-id@vN` of the passage each knowledge answer was built on (the best one returned)."""
    return [
        f"{p['article_id']}@v{p['version']}"
        for m in messages
        if isinstance(m, ToolMessage) and m.name == "search_knowledge"
        for p in tool_payload(m).get("passages", [])[:1]
    ]


def last_intent(messages: list[AnyMessage]) -> str | None:
    """The intent the model recorded for the turn, when it records one."""
    for message in reversed(messages):
        if isinstance(message, AIMessage):
            meta: dict[str, Any] = message.additional_kwargs.get("threadline") or {}
            if meta.get("intent"):
                return str(meta["intent"])
    return None

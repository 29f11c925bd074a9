"""The handoff packet: what a human agent receives instead of a raw transcript. Versioned pydantic schema."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from threadline.core.redaction import ALL_KINDS, redact, redact_value

PACKET_VERSION = "1.4"
"""1.1 added, all with defaults: the customer's lifetime value, order count and tier; intent confidence and
signals; sentiment over the turns. 1.2 the case's order actions, 1.3 the customer's language, 1.4 the order action
still pending."""


class StallPoint(StrEnum):
    """Why the AI stopped."""

    CUSTOMER_REQUESTED_HUMAN = "customer_requested_human"
    NEGATIVE_SENTIMENT = "negative_sentiment"
    REPEATED_FAILURE = "repeated_failure"
    NO_KNOWLEDGE_ANSWER = "no_knowledge_answer"
    VERIFICATION_FAILED = "verification_failed"
    POLICY_BLOCKED = "policy_blocked"
    SENSITIVE_TOPIC = "sensitive_topic"
    HIGH_VALUE_COMPLAINT = "high_value_complaint"
    TOOL_ERROR = "tool_error"
    OUT_OF_SCOPE = "out_of_scope"
    MODEL_REQUESTED = "model_requested"
    DELIVERY_FAILED = "delivery_failed"
    """A message to the customer could not be delivered (the provider refused it, or every retry failed)."""


Priority = Literal["low", "normal", "high", "urgent"]
Tier = Literal["vip", "regular", "new"]


class PacketCustomer(BaseModel):
    """Who the customer is, as far as we know."""

    id: str
    name: str | None = None
    verification_level: str
    identities: list[str] = Field(default_factory=list)
    provisional: bool = False
    lifetime_value: float | None = Field(None, description="Paid and kept: orders not cancelled, less returns (1.1).")
    order_count: int = Field(0, description="Orders on record (1.1).")
    tier: Tier | None = Field(None, description="`vip` from the high-value spend, `regular` with a kept order (1.1).")


class QuotedData(BaseModel):
    """Text a tool returned (knowledge articles, order data): quoted verbatim for the agent to read, untrusted,
    never instructions to follow, whatever it says."""

    kind: Literal["untrusted_quoted_data"] = "untrusted_quoted_data"
    source: str = Field(description="The tool that returned it.")
    text: str = Field(description="The result as returned, shortened.")


class ToolTrail(BaseModel):
    """One tool the AI called, with what it asked and what came back."""

    name: str
    args: dict[str, Any]
    outcome: str
    result: QuotedData | None = Field(None, description="What came back, as quoted untrusted data.")


class PacketAction(BaseModel):
    """An order action in the case: proposed (the customer has not said yes, so nothing ran), done, declined or
    refused."""

    status: Literal["proposed", "done", "declined", "refused"]
    kind: str
    order_id: str | None = None
    text: str = Field(description="The proposal's summary, or why it was refused, as the customer was told.")
    actor: str | None = Field(None, description="Who ran it: `customer` (confirmed) or `agent:<name>`.")
    at: datetime | None = None


class Stall(BaseModel):
    """The typed stall point and the messages that triggered it."""

    type: StallPoint
    evidence: list[str] = Field(default_factory=list)
    detail: str | None = None


class HandoffPacket(BaseModel):
    """Everything a human agent needs to pick the case up without re-asking."""

    version: str = PACKET_VERSION
    customer: PacketCustomer
    channel: str
    channels_in_episode: list[str] = Field(default_factory=list)
    intent: str | None = None
    intent_confidence: float | None = Field(None, description="The model's confidence in `intent`, if given (1.1).")
    intent_signals: list[str] = Field(default_factory=list, description="What points to the intent (1.1).")
    goal: str = Field(description="Two lines: what the customer wrote, and what they want and where it stalled.")
    tools_called: list[ToolTrail] = Field(default_factory=list)
    stall: Stall
    facts: dict[str, str] = Field(default_factory=dict, description="Already established: do not re-ask.")
    open_questions: list[str] = Field(default_factory=list)
    next_steps: list[str] = Field(default_factory=list)
    priority: Priority = "normal"
    sla_due_at: datetime | None = None
    articles_cited: list[str] = Field(default_factory=list)
    order_actions: list[PacketAction] = Field(
        default_factory=list, description="Order actions proposed, done, declined or refused in this case (1.2)."
    )
    sentiment: list[float] = Field(
        default_factory=list, description="Compound sentiment (-1…1) of the recent customer turns, oldest first (1.1)."
    )
    language: str | None = Field(None, description="The language the customer writes in, e.g. `es` (1.3).")
    pending_action: PacketAction | None = Field(
        None,
        description="The order action the AI proposed that the customer has not confirmed: nothing ran, and nothing "
        "runs on its own now that a person has the case (1.4).",
    )
    transcript_ref: str


QUOTING_FIELDS = ("goal", "intent_signals", "open_questions", "facts", "tools_called")
"""Packet fields that quote the customer's own words (or tool arguments taken from them)."""


def redact_packet(packet: dict[str, Any]) -> dict[str, Any]:
    """A copy of a packet (as JSON) with card numbers, emails and phone numbers redacted wherever it quotes the
    customer: the goal, the stall evidence and detail, open questions, facts and tool arguments. The customer's
    handles on file (`customer.identities`) stay: the agent replies on them."""
    out = dict(packet)
    for name in QUOTING_FIELDS:
        if name in out:
            out[name] = redact_value(out[name])
    stall = dict(out.get("stall") or {})
    if stall:
        # A failed verification's evidence is the handles tried: the agent checks whether someone else is using
        # them, so only card numbers are redacted there.
        kinds = {"card"} if stall.get("type") == StallPoint.VERIFICATION_FAILED.value else ALL_KINDS
        stall["evidence"] = [redact(str(e), kinds=kinds) for e in stall.get("evidence") or []]
        if isinstance(stall.get("detail"), str):
            stall["detail"] = redact(stall["detail"])
        out["stall"] = stall
    return out

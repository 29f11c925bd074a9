"""The handoff packet: what a human agent receives instead of a raw transcript. Versioned pydantic schema."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

PACKET_VERSION = "1.1"
"""1.1 added, all with defaults: the customer's lifetime value, order count and tier; intent confidence and
signals; sentiment over the turns."""


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


Priority = Literal["low", "normal", "high", "urgent"]
Tier = Literal["vip", "regular", "new"]


class PacketCustomer(BaseModel):
    """Who the customer is, as far as we know."""

    id: str
    name: str | None = None
    verification_level: str
    identities: list[str] = Field(default_factory=list)
    provisional: bool = False
    lifetime_value: float | None = Field(None, description="Sum of the customer's order totals (1.1).")
    order_count: int = Field(0, description="Orders on record (1.1).")
    tier: Tier | None = Field(None, description="`vip` from the high-value spend, `regular` with orders (1.1).")


class ToolTrail(BaseModel):
    """One tool the AI called, with what it asked and what came back."""

    name: str
    args: dict[str, Any]
    outcome: str


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
    sentiment: list[float] = Field(
        default_factory=list, description="Compound sentiment (-1…1) of the recent customer turns, oldest first (1.1)."
    )
    transcript_ref: str

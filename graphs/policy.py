"""The escalation policy, evaluated in code after every step: the model cannot talk its way past it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from langchain_core.messages import AnyMessage, HumanMessage, ToolMessage

from core.handoff import StallPoint

_HUMAN = re.compile(
    r"\b(human|real person|a person|someone real|an? (?:agent|representative|rep)|representative|"
    r"customer service rep\w*|(?:speak|talk|chat) (?:to|with) (?:someone|somebody|a manager|your manager|"
    r"a supervisor|your supervisor|the manager|a real)|supervisor|live agent|operator)\b",
    re.I,
)
_SENSITIVE = re.compile(
    r"\b(fraud\w*|chargeback\w*|lawyer|attorney|lawsuit|legal action|injur\w*|hurt me|harass\w*|"
    r"stolen card|identity theft)\b|\b(?:sue|suing)\s+(?:you|your|the|this|them|for)\b|\b(?:will|going to|gonna) sue\b",
    re.I,
)


@dataclass(frozen=True)
class Escalation:
    """Why the case should leave the AI now."""

    stall: StallPoint
    evidence: list[str]
    urgency: str | None = None


@dataclass(frozen=True)
class Thresholds:
    """Limits that trigger escalation."""

    not_understood_turns: int = 2
    verification_failures: int = 3


def turn_messages(messages: list[AnyMessage]) -> list[AnyMessage]:
    """The current turn: the trailing run of customer messages and everything after it."""
    last_human = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=-1)
    if last_human < 0:
        return []
    start = last_human
    while start > 0 and isinstance(messages[start - 1], HumanMessage):
        start -= 1
    return messages[start:]


def _turn_texts(messages: list[AnyMessage]) -> list[str]:
    return [str(m.text) for m in turn_messages(messages) if isinstance(m, HumanMessage)]


def evaluate(
    messages: list[AnyMessage],
    *,
    requested: dict[str, str] | None,
    not_understood: int,
    verification_failures: int,
    thresholds: Thresholds = Thresholds(),
) -> Escalation | None:
    """The escalation this step calls for, if any."""
    texts = _turn_texts(messages)
    asked = [t for t in texts if _HUMAN.search(t)]
    if requested is not None:
        stall = StallPoint.CUSTOMER_REQUESTED_HUMAN if asked else StallPoint.MODEL_REQUESTED
        return Escalation(stall, asked or [requested.get("reason", "")], requested.get("urgency"))
    if asked:
        return Escalation(StallPoint.CUSTOMER_REQUESTED_HUMAN, asked)
    sensitive = [t for t in texts if _SENSITIVE.search(t)]
    if sensitive:
        return Escalation(StallPoint.SENSITIVE_TOPIC, sensitive, "high")
    if verification_failures >= thresholds.verification_failures:
        return Escalation(StallPoint.VERIFICATION_FAILED, texts)
    if not_understood >= thresholds.not_understood_turns:
        return Escalation(StallPoint.REPEATED_FAILURE, texts)
    if messages and isinstance(messages[-1], ToolMessage) and messages[-1].status == "error":
        return Escalation(StallPoint.TOOL_ERROR, [str(messages[-1].content)[:300]])
    return None

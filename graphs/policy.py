"""The escalation policy, evaluated in code after every step: the model cannot talk its way past it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from langchain_core.messages import AnyMessage, HumanMessage, ToolMessage

from core.handoff import StallPoint

_HUMAN = re.compile(
    r"\b(human|real person|a person|someone real|an? (?:agent|representative|rep)|customer service rep\w*|"
    r"speak (?:to|with) (?:someone|somebody|a manager|your manager|a supervisor)|live agent|operator)\b",
    re.I,
)
_SENSITIVE = re.compile(
    r"\b(fraud\w*|chargeback\w*|lawyer|attorney|sue|suing|lawsuit|legal action|injur\w*|hurt me|"
    r"harass\w*|stolen card|identity theft)\b",
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


def _turn_texts(messages: list[AnyMessage]) -> list[str]:
    last = max((i for i, m in enumerate(messages) if not isinstance(m, HumanMessage)), default=-1)
    start = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage) and i <= last), default=0)
    texts = [str(m.text) for m in messages[start:] if isinstance(m, HumanMessage)]
    return texts or [str(m.text) for m in messages if isinstance(m, HumanMessage)][-1:]


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

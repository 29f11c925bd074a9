"""What the offline model's flows share: the `Decision` a step returns, the canned replies, and the wording
and slots more than one flow reads."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from threadline.agents.intents import (
    Intent,
)
from threadline.agents.slots import Slots
from threadline.core.tool_names import (
    ToolName,
)


@dataclass(frozen=True)
class Decision:
    """Either one tool call or a reply, with flags the graph's guard reads."""

    text: str = ""
    tool: ToolName | None = None
    args: dict[str, Any] = field(default_factory=dict)
    understood: bool = True
    intent: str | None = None
    confidence: float | None = None
    ask: int = 0
    """Which question of a message holding several this step works on (0: the message as a whole)."""


CANNED = {
    Intent.GREETING: "Hi! How can I help you today? I can check orders, returns and exchanges, and store policies.",
    Intent.THANKS: "You're welcome! Is there anything else I can help you with?",
    Intent.GOODBYE: "Thanks for contacting us. Have a great day!",
    Intent.SMALLTALK: "I'm the store's virtual assistant. I can help with your orders, returns and exchanges, and "
    "questions about our policies.",
    Intent.OUT_OF_SCOPE: "Sorry, that's not something I can help with. I can help with your orders, returns and "
    "exchanges, and questions about our store's policies.",
    # A yes to nothing the assistant can act on: say so rather than sound as if something was done.
    Intent.AFFIRM: "Okay! What would you like me to do next? I can check an order, start a return or exchange, or "
    "answer a question about the store.",
    Intent.DENY: "No problem. Is there anything else I can help you with?",
}


NOT_UNDERSTOOD = "Sorry, I didn't quite understand. Could you tell me a bit more about what you need?"


KNOWLEDGE_INTENTS = {
    Intent.KNOWLEDGE_QUESTION,
    Intent.RETURN_OR_EXCHANGE,
    Intent.REFUND,
    Intent.CANCEL_ORDER,
    Intent.COMPLAINT,
}


OWN_ORDER = re.compile(
    r"\b(?:i|we|my (?:wife|husband|partner|son|daughter|mom|dad))\s+(?:bought|ordered|got|purchased|received)"
    r"|\bmy (?:order|package|delivery)\b|\bwhere(?:'s|s| is| are|'re)? (?:my|our)\b",
    re.I,
)


def verify_args(slots: Slots, focus: str | None) -> dict[str, Any] | None:
    if slots.emails:
        args: dict[str, Any] = {"email": slots.emails[0]}
        order = slots.order_ids[0] if slots.order_ids else focus
        return {**args, "order_id": order} if order and slots.order_ids else args
    if slots.first_name and slots.last_name and slots.zip_codes:
        return {"first_name": slots.first_name, "last_name": slots.last_name, "zip": slots.zip_codes[0]}
    return None


ELLIPTIC = re.compile(
    r"^\W*(?:and|also|what if|what about|how about|if|but|so|ok so|okay so|then|plus|even)\b|\b(?:then|tho|though)\W*$",
    re.I,
)


SENTENCE = re.compile(r"(?<=[.!?])\s+")

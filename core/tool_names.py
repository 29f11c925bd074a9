"""The support tools' names, spelled once: tools register under them, and agents, graphs, evals and analytics
compare against them. In core so that every layer (evals included, which may not import tools) can use them."""

from __future__ import annotations

from typing import Final, Literal

ToolName = Literal[
    "lookup_order", "search_knowledge", "recall_context", "verify_customer", "change_speaker", "escalate_to_human"
]

LOOKUP_ORDER: Final = "lookup_order"
SEARCH_KNOWLEDGE: Final = "search_knowledge"
RECALL_CONTEXT: Final = "recall_context"
VERIFY_CUSTOMER: Final = "verify_customer"
CHANGE_SPEAKER: Final = "change_speaker"
ESCALATE_TO_HUMAN: Final = "escalate_to_human"

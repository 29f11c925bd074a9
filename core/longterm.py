"""Where long-term memories live in LangGraph's Store: one namespace per customer and kind."""

from __future__ import annotations

EPISODES = "episodes"
PREFERENCES = "preferences"


def customer_namespace(customer_id: str, *kind: str) -> tuple[str, ...]:
    """The namespace of one customer's memories (of a kind: `episodes`, `preferences`)."""
    return ("customers", str(customer_id), *kind)

"""`recall_context`: the customer's earlier conversations on any channel, and what we know of them."""

from __future__ import annotations

import re
from typing import Any

from langchain_core.tools import tool
from langgraph.types import Command

from core.disclosure import Disclosure, may_see
from core.types import Episode
from tools.runtime import SupportRuntime, current_identity, tool_result, turn_context

_WORD = re.compile(r"[a-z0-9#]+")


def _overlap(query: str, episode: Episode) -> int:
    words = set(_WORD.findall(query.lower()))
    text = " ".join(filter(None, [episode.topic, episode.summary, episode.outcome])).lower()
    return len(words & set(_WORD.findall(text)))


@tool
def recall_context(query: str, runtime: SupportRuntime) -> Command[Any]:
    """Recall the customer's earlier conversations across channels (when, on which channel, what they wanted,
    the outcome, open items) and profile facts, each with a citation. Use when the customer refers to a
    previous contact or when earlier context would help."""
    who = current_identity(runtime)
    services = turn_context(runtime).services
    if not may_see(who.level, Disclosure.PRIOR_CONVERSATIONS):
        refusal = {"status": "verification_required", "message": "Earlier conversations are shared after verification."}
        return tool_result(runtime, "recall_context", refusal)
    episodes = services.episodes.recent(who.customer_id, limit=20)
    ranked = sorted(episodes, key=lambda e: (-_overlap(query, e), -e.updated_at.timestamp()))[:5]
    found = [
        {
            "citation": f"episode:{e.id}",
            "date": e.started_at.date().isoformat(),
            "last_active": e.updated_at.isoformat(timespec="minutes"),
            "channels": e.channels,
            "topic": e.topic,
            "summary": e.summary,
            "outcome": e.outcome,
            "open_items": e.open_items,
            "status": e.status.value,
        }
        for e in ranked
    ]
    customer = services.customers.get(who.customer_id)
    profile: dict[str, Any] = {}
    if customer is not None and not customer.provisional:
        profile = {"citation": f"customer:{customer.id}", "name": customer.display_name}
        profile["orders_on_file"] = len(services.orders.orders_for_customer(customer.id, limit=100))
    payload: dict[str, Any] = {"status": "ok" if found else "nothing_found", "episodes": found, "profile": profile}
    return tool_result(runtime, "recall_context", payload)

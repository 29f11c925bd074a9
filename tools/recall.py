"""`recall_context`: the customer's earlier conversations on any channel, and what we know of them.

Long-term memory lives in LangGraph's Store (one namespace per customer) and is searched semantically; what
comes back depends on the verification level: the topics of earlier conversations (questions asked, products
looked at) from `claimed`, whole episodes (orders, outcomes), preferences and the profile from `verified`.
"""

from __future__ import annotations

import re
from typing import Any

from langchain_core.tools import tool
from langgraph.store.base import BaseStore
from langgraph.types import Command

from threadline.core.disclosure import Disclosure, may_see
from threadline.core.longterm import EPISODES, PREFERENCES, customer_namespace
from threadline.core.tool_names import RECALL_CONTEXT
from threadline.core.types import CustomerId, Episode
from threadline.tools.results import RecalledProfile, RecallResult, VerificationRequired
from threadline.tools.runtime import SupportRuntime, current_identity, tool_result, turn_context

_WORD = re.compile(r"[a-z0-9#]+")
RECENCY_WEIGHT = 0.25
"""How much being the latest episode counts against semantic relevance: "any update on what I asked?" means
the last conversation unless another one matches much better."""
SHOWN = 3


def _overlap(query: str, episode: Episode) -> int:
    words = set(_WORD.findall(query.lower()))
    text = " ".join(filter(None, [episode.topic, episode.summary, episode.outcome])).lower()
    return len(words & set(_WORD.findall(text)))


def _from_store(store: BaseStore, customer_id: CustomerId, query: str) -> list[dict[str, Any]]:
    """Episode records, most relevant first: semantic score plus a bonus for recency."""
    found = store.search(customer_namespace(customer_id, EPISODES), query=query, limit=20)
    by_recency = sorted(found, key=lambda item: item.value.get("last_active", ""), reverse=True)
    rank = {id(item): i for i, item in enumerate(by_recency)}
    ranked = sorted(found, key=lambda item: -((item.score or 0.0) + RECENCY_WEIGHT / (1 + rank[id(item)])))
    return [{**item.value, "citation": f"episode:{item.key}"} for item in ranked[:SHOWN]]


def _from_episodes(episodes: list[Episode], query: str) -> list[dict[str, Any]]:
    """Without a Store: the episode rows, ranked by shared words, then recency."""
    ranked = sorted(episodes, key=lambda e: (-_overlap(query, e), -e.updated_at.timestamp()))[:SHOWN]
    return [
        {
            "citation": f"episode:{e.id}",
            "started_at": e.started_at.isoformat(timespec="minutes"),
            "last_active": e.updated_at.isoformat(timespec="minutes"),
            "channels": e.channels,
            "topics": [],
            "products": [],
            "summary": e.summary,
            "outcome": e.outcome,
            "open_items": e.open_items,
            "status": e.status.value,
        }
        for e in ranked
    ]


def _topics_only(record: dict[str, Any]) -> dict[str, Any]:
    """What a `claimed` caller may hear of an episode: its public topics, no orders, outcomes or summary."""
    return {
        "citation": record["citation"],
        "last_active": record.get("last_active"),
        "channels": record.get("channels", []),
        "topics": record.get("topics", []),
        "products": record.get("products", []),
        "open_items": [item for item in record.get("open_items", []) if item.startswith("unanswered question")],
    }


@tool(RECALL_CONTEXT)
def recall_context(query: str, runtime: SupportRuntime) -> Command[Any]:
    """Recall the customer's earlier conversations across channels (when, on which channel, what they asked
    and what came of it, open items) and their stated preferences, each with a citation. Use when the customer
    refers to a previous contact ("any update?", "what I asked before") or when earlier context would help."""
    who = current_identity(runtime)
    services = turn_context(runtime).services
    if not may_see(who.level, Disclosure.PRIOR_TOPICS):
        refusal = VerificationRequired(message="Earlier conversations are shared after verification.")
        return tool_result(runtime, RECALL_CONTEXT, refusal)
    query = query[:300]
    store = runtime.store
    if store is not None:
        records = _from_store(store, who.customer_id, query)
    else:
        records = _from_episodes(services.episodes.recent(who.customer_id, limit=20), query)
    full = may_see(who.level, Disclosure.PRIOR_CONVERSATIONS)
    episodes = [{k: v for k, v in r.items() if k != "text"} if full else _topics_only(r) for r in records]
    profile: RecalledProfile | None = None
    preferences: list[str] | None = None
    if full:
        customer = services.customers.get(who.customer_id)
        if customer is not None and not customer.provisional:
            profile = RecalledProfile(
                citation=f"customer:{customer.id}",
                name=customer.display_name,
                orders_on_file=len(services.orders.orders_for_customer(customer.id, limit=100)),
            )
        if store is not None:
            stated = store.search(customer_namespace(who.customer_id, PREFERENCES), limit=10)
            preferences = [item.value["text"] for item in stated]
    result = RecallResult(
        status="ok" if records else "nothing_found",
        disclosure="full" if full else "topics_only",
        episodes=episodes,
        profile=profile,
        preferences=preferences,
    )
    return tool_result(runtime, RECALL_CONTEXT, result)

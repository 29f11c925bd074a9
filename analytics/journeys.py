"""Journeys: each customer's ordered, cross-channel path of touchpoints (site visits, carts, store visits),
conversations, escalations and purchases; and the most common paths before a purchase and before an escalation.

A path is the touchpoints since the customer's previous purchase (at most `PATH_STEPS`, the most recent), with
repeats in a row collapsed: `visit (google) → AI chat (web) → purchase online`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

from threadline.analytics.conversations import Conversation
from threadline.core.hours import aware
from threadline.core.types import AnalyticsEvent, EventType

PATH_STEPS = 5
"""Touchpoints a path keeps before its purchase or escalation."""
PURCHASES = frozenset({EventType.PURCHASE_ONLINE, EventType.PURCHASE_IN_STORE})
TOUCHPOINTS = frozenset({EventType.PAGE_VIEW, EventType.ADD_TO_CART, EventType.STORE_VISIT, *PURCHASES})
ESCALATION = "escalation"


@dataclass(frozen=True)
class Step:
    """One touchpoint of a journey."""

    at: datetime
    kind: str
    """visit, cart, store_visit, conversation, escalation, purchase_online, purchase_in_store"""
    label: str
    channel: str | None
    detail: dict[str, Any]


def _source(payload: dict[str, Any]) -> str:
    """Where a visit came from: its UTM source, else the referrer's host, else direct."""
    if payload.get("utm_source"):
        return str(payload["utm_source"]).lower()
    host = urlparse(str(payload.get("referrer") or "")).hostname
    return host.removeprefix("www.") if host else "direct"


def _commerce_step(event: AnalyticsEvent) -> Step:
    at, payload = aware(event.occurred_at), event.payload
    if event.type == EventType.PAGE_VIEW:
        return Step(at, "visit", f"visit ({_source(payload)})", event.channel, payload)
    if event.type == EventType.ADD_TO_CART:
        return Step(at, "cart", "add to cart", event.channel, payload)
    if event.type == EventType.STORE_VISIT:
        return Step(at, "store_visit", "store visit", event.channel, payload)
    label = "purchase online" if event.type == EventType.PURCHASE_ONLINE else "purchase in store"
    return Step(at, str(event.type), label, event.channel, payload)


def journeys(events: Iterable[AnalyticsEvent], found: list[Conversation]) -> dict[str, list[Step]]:
    """Each customer's steps in time order."""
    steps: dict[str, list[Step]] = {}
    for event in events:
        if event.type in TOUCHPOINTS and event.customer_id:
            steps.setdefault(event.customer_id, []).append(_commerce_step(event))
    for c in found:
        who = "AI chat" if c.ai_involved else "chat with a person"
        detail = {"intent": c.intent, "handoffs": c.handoff_ids}
        steps.setdefault(c.customer_id, []).append(
            Step(c.started_at, "conversation", f"{who} ({c.channel})", c.channel, detail)
        )
        for e in c.of(EventType.HANDOFF_CREATED):
            detail = {"stall": e.payload.get("stall"), "handoff_id": e.payload.get("handoff_id")}
            steps[c.customer_id].append(Step(aware(e.occurred_at), ESCALATION, ESCALATION, c.channel, detail))
    order = {"conversation": 0, ESCALATION: 1}
    for path in steps.values():
        path.sort(key=lambda s: (s.at, order.get(s.kind, 2)))
    return steps


def _collapse(labels: list[str]) -> list[str]:
    return [label for i, label in enumerate(labels) if i == 0 or labels[i - 1] != label]


def paths_before(steps: dict[str, list[Step]], ends: frozenset[str]) -> Counter[tuple[str, ...]]:
    """How often each path led to a step whose kind is in `ends` (the path ends with that step)."""
    counted: Counter[tuple[str, ...]] = Counter()
    for path in steps.values():
        since: list[str] = []
        for step in path:
            since.append(step.label)
            if step.kind in ends:
                counted[tuple(_collapse(since)[-PATH_STEPS:])] += 1
            if step.kind in PURCHASES or step.kind in ends:
                since = []
    return counted


def top_paths(counted: Counter[tuple[str, ...]], limit: int) -> list[dict[str, Any]]:
    return [{"path": list(path), "count": n} for path, n in counted.most_common(limit)]

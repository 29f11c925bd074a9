"""Attribution: purchases (online and in store) preceded by an AI conversation of the same customer within the
attribution window, credited by channel and by intent.

- last touch: the purchase's whole credit (1, and its amount) goes to the last AI conversation before it;
- linear: the credit is shared equally among every AI conversation in the window.
A purchase with no AI conversation in the window is not attributed. Amounts are the events' `amount`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from threadline.analytics.conversations import Conversation
from threadline.analytics.journeys import PURCHASES
from threadline.core.hours import aware
from threadline.core.types import AnalyticsEvent, EventType

UNKNOWN_INTENT = "unknown"


def _amount(event: AnalyticsEvent) -> float:
    try:
        return float(event.payload.get("amount") or 0)
    except (TypeError, ValueError):
        return 0.0


def _credit(table: dict[str, dict[str, dict[str, float]]], key: str, model: str, share: float, amount: float) -> None:
    row = table.setdefault(
        key, {"last_touch": {"purchases": 0.0, "revenue": 0.0}, "linear": {"purchases": 0.0, "revenue": 0.0}}
    )
    row[model]["purchases"] += share
    row[model]["revenue"] += share * amount


def _rounded(table: dict[str, dict[str, dict[str, float]]]) -> dict[str, Any]:
    return {
        key: {model: {k: round(v, 4) for k, v in figures.items()} for model, figures in models.items()}
        for key, models in sorted(table.items())
    }


def attribution(
    purchases: list[AnalyticsEvent],
    ai_conversations: list[Conversation],
    window: timedelta,
    touch_filter: Callable[[Conversation], bool] | None = None,
) -> dict[str, Any]:
    """Attribution of `purchases` to the AI conversations (those passing `touch_filter`) that preceded them."""
    by_customer: dict[str, list[Conversation]] = {}
    for c in sorted(ai_conversations, key=lambda c: c.started_at):
        if c.ai_involved and (touch_filter is None or touch_filter(c)):
            by_customer.setdefault(c.customer_id, []).append(c)
    channels: dict[str, dict[str, dict[str, float]]] = {}
    intents: dict[str, dict[str, dict[str, float]]] = {}
    kinds = {str(k): {"purchases": 0, "revenue": 0.0, "attributed": 0, "attributed_revenue": 0.0} for k in PURCHASES}
    for purchase in purchases:
        at, amount, kind = aware(purchase.occurred_at), _amount(purchase), kinds[str(purchase.type)]
        kind["purchases"] += 1
        kind["revenue"] += amount
        touches = [c for c in by_customer.get(purchase.customer_id or "", []) if at - window <= c.started_at <= at]
        if not touches:
            continue
        kind["attributed"] += 1
        kind["attributed_revenue"] += amount
        last = touches[-1]
        _credit(channels, last.channel, "last_touch", 1.0, amount)
        _credit(intents, last.intent or UNKNOWN_INTENT, "last_touch", 1.0, amount)
        for c in touches:
            _credit(channels, c.channel, "linear", 1 / len(touches), amount)
            _credit(intents, c.intent or UNKNOWN_INTENT, "linear", 1 / len(touches), amount)
    total = sum(int(k["purchases"]) for k in kinds.values())
    attributed = sum(int(k["attributed"]) for k in kinds.values())
    revenue = sum(float(k["revenue"]) for k in kinds.values())
    attributed_revenue = sum(float(k["attributed_revenue"]) for k in kinds.values())
    return {
        "window_days": window.total_seconds() / 86400,
        "purchases": total,
        "revenue": round(revenue, 2),
        "attributed_purchases": attributed,
        "attributed_revenue": round(attributed_revenue, 2),
        "attributed_share": round(attributed / total, 4) if total else None,
        "by_kind": {
            ("online" if k == EventType.PURCHASE_ONLINE else "in_store"): {
                key: round(value, 2) if isinstance(value, float) else value for key, value in v.items()
            }
            for k, v in sorted(kinds.items())
        },
        "by_channel": _rounded(channels),
        "by_intent": _rounded(intents),
    }

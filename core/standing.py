"""A customer's standing with the store, from their orders: lifetime value, order count and tier. One rule for every
place that shows or uses it (the handoff packet, the customer page and console, the high-value complaint check).

Lifetime value is what the customer has paid for and keeps: the item prices of every order except a cancelled one
(refunded in full), less the items of a requested return (refunded to the customer as they come back). A pending
or processed order counts: it is paid for. An exchange keeps its value (its price difference is settled on the
order's payments, and its items stay the customer's).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from threadline.core.handoff import Tier
from threadline.core.types import Order, OrderStatus

LIFETIME_ORDERS = 1000
"""Orders read to compute a customer's lifetime value."""
CENTS = Decimal("0.01")


def kept_value(order: Order) -> Decimal:
    """What the customer paid for and keeps of one order (see the module's rule)."""
    if order.status is OrderStatus.CANCELLED:
        return Decimal("0")
    returning = Counter((order.request or {}).get("return_items") or [])
    if order.status is not OrderStatus.RETURN_REQUESTED:
        returning.clear()
    kept = Decimal("0")
    for item in order.items:
        if returning[item.item_id] > 0:
            returning[item.item_id] -= 1
        else:
            kept += item.price
    return kept


def lifetime_value(orders: Iterable[Order]) -> Decimal:
    """The customer's lifetime value in cents: the sum of what they keep of each order."""
    return sum((kept_value(o) for o in orders), Decimal("0")).quantize(CENTS)


@dataclass(frozen=True)
class Standing:
    """The customer's value to the store, from their orders."""

    lifetime_value: float
    order_count: int
    tier: Tier


def standing(orders: Sequence[Order], high_value_spend: float) -> Standing:
    """Lifetime value, orders on record and tier: `vip` from `high_value_spend`, `regular` with any order that
    counts, `new` with none (a customer whose only order was cancelled has bought nothing yet)."""
    value = lifetime_value(orders)
    counted = any(o.status is not OrderStatus.CANCELLED for o in orders)
    tier: Tier = "vip" if counted and value >= Decimal(str(high_value_spend)) else "regular" if counted else "new"
    return Standing(float(value), len(orders), tier)

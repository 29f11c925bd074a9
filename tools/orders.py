"""`lookup_order`: an order's status, items, shipments and payments, or the customer's order history."""

from __future__ import annotations

import re
from typing import Any

from langchain_core.tools import tool
from langgraph.types import Command

from threadline.core.disclosure import Disclosure, may_see
from threadline.core.tool_names import LOOKUP_ORDER
from threadline.core.types import Order, OrderId
from threadline.tools.results import (
    OrderItemLine,
    OrderLine,
    OrderNotFound,
    OrdersFound,
    OrderSummary,
    ShipmentLine,
    VerificationRequired,
)
from threadline.tools.runtime import SupportRuntime, current_identity, tool_result, turn_context

_ORDER_ID = re.compile(r"#?\s*[wW]?\s*(\d{7})")
NOT_FOUND_MESSAGE = "No order with that number was found on this customer's account."
OWN_ORDERS_SEARCHED = 1000
"""The most orders of one customer a lookup by number searches."""


def normalize_order_id(raw: str) -> str | None:
    """`#W2611340` from `w2611340`, `#W 2611340` or `2611340`; None when it is not an order number."""
    match = _ORDER_ID.fullmatch(raw.strip())
    return f"#W{match.group(1)}" if match else None


def summarize_order(order: Order, *, full: bool) -> OrderSummary:
    """What the customer may be told about their order; address and payment methods only when `full`."""
    paid = sum((p.amount for p in order.payments if p.transaction_type == "payment"), start=order.total * 0)
    refunded = sum((p.amount for p in order.payments if p.transaction_type == "refund"), start=order.total * 0)
    return OrderSummary(
        order_id=order.id,
        status=order.status.value,
        items=[
            OrderItemLine(name=i.name, options=i.options, price=str(i.price), item_id=i.item_id) for i in order.items
        ],
        shipments=[
            ShipmentLine(tracking_ids=f.tracking_ids, items=[i.name for i in order.items if i.item_id in f.item_ids])
            for f in order.fulfillments
        ],
        total=str(order.total),
        paid=str(paid),
        refunded=str(refunded),
        shipping_address=order.address if full else None,
        payment_methods=sorted({p.payment_method_id for p in order.payments}) if full else None,
    )


@tool(LOOKUP_ORDER)
def lookup_order(runtime: SupportRuntime, order_id: str | None = None) -> Command[Any]:
    """Look up one of the customer's orders by its number (like #W1234567): status, items, shipments with
    tracking numbers, and payments. Without an order number, list the customer's orders, most recent first.
    Only the verified customer's own orders can be seen."""
    who = current_identity(runtime)
    services = turn_context(runtime).services
    wanted = normalize_order_id(order_id) if order_id else None
    focus = {"focus_order_id": wanted} if wanted else {}
    if not may_see(who.level, Disclosure.OWN_ORDER_STATUS):
        refusal = VerificationRequired(
            message="The customer must verify their identity before order details can be shared.",
            accepted=["email on file", "full name and zip code", "order number and the email on that order"],
        )
        return tool_result(runtime, LOOKUP_ORDER, refusal, **focus)
    full = may_see(who.level, Disclosure.ADDRESS)
    if order_id is not None:
        # The number is looked up only among the customer's own orders: another customer's order and a missing
        # one take the same path (same queries, same time), so not even timing tells them apart.
        own = services.orders.orders_for_customer(who.customer_id, limit=OWN_ORDERS_SEARCHED) if wanted else []
        order = services.orders.get_order(OrderId(wanted)) if wanted and any(o.id == wanted for o in own) else None
        if order is None or order.customer_id != who.customer_id:  # "not yours" reads exactly as "not found"
            missing = OrderNotFound(order_id=wanted or order_id, message=NOT_FOUND_MESSAGE)
            return tool_result(runtime, LOOKUP_ORDER, missing)
        return tool_result(runtime, LOOKUP_ORDER, OrdersFound(order=summarize_order(order, full=full)), **focus)
    orders = services.orders.orders_for_customer(who.customer_id, limit=10)
    history = [
        OrderLine(order_id=o.id, status=o.status.value, items=[i.name for i in o.items], total=str(o.total))
        for o in orders
    ]
    return tool_result(runtime, LOOKUP_ORDER, OrdersFound(orders=history))

"""Order changes in the offline model: a request to cancel, return, exchange or change an order, the questions it
asks (which items? which option? why cancel?), and the proposal it makes once it knows."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage

from threadline.agents import replies
from threadline.agents.decision import OWN_ORDER, Decision
from threadline.agents.offline_actions import (
    cancel_reason,
    parse_address,
    pay_with,
    pick_alternative,
    pick_items,
    refund_to,
    wanted_action,
)
from threadline.agents.slots import Slots, extract_slots
from threadline.agents.transcript import last_ai_text, last_order
from threadline.core.catalog_search import named_types
from threadline.core.tool_names import (
    CANCEL_ORDER,
    CHANGE_DEFAULT_ADDRESS,
    CHANGE_ORDER_ADDRESS,
    CHANGE_ORDER_ITEMS,
    CHANGE_ORDER_PAYMENT,
    EXCHANGE_ITEMS,
    LOOKUP_ORDER,
    ORDER_OPTIONS,
    RETURN_ITEMS,
    ToolName,
)
from threadline.tools.results import (
    OrderOptions,
    OrdersFound,
)


def orders_by_product(request: str, history: list[Any]) -> list[Any]:
    """The customer's own orders holding a product the request names ("the grill I ordered"), newest first."""
    names = sorted({item for order in history for item in order.items})
    wanted = set(named_types(request, names))
    return [order for order in history if wanted & set(order.items)] if wanted else []


def action_step(messages: list[AnyMessage], text: str, slots: Slots, focus: str | None) -> Decision | None:
    """A request to cancel, return or exchange, or the answer to a question asked about one."""
    asked = last_ai_text(messages[:-1])
    if focus and asked.startswith(replies.ASK_CANCEL_REASON_START) and (reason := cancel_reason(text)):
        return Decision(tool=CANCEL_ORDER, args={"order_id": focus, "reason": reason}, intent="cancel_order")
    if focus and asked.startswith(replies.ASK_WHICH_ITEMS_START):
        order = last_order(messages)
        chosen = pick_items(text, order["items"]) if order else None
        if chosen and "exchange" in asked:
            return Decision(tool=ORDER_OPTIONS, args={"order_id": focus}, intent="return_or_exchange")
        if chosen:
            args = {"order_id": focus, "item_ids": chosen, "refund_to": refund_to(text)}
            return Decision(tool=RETURN_ITEMS, args=args, intent="return_or_exchange")
    kind = wanted_action(text, slots, focus)
    order_id = slots.order_ids[0] if slots.order_ids else focus
    if order_id is None and OWN_ORDER.search(text):
        by_product = wanted_action(text, slots, "the order they name by its product")
        if by_product in ("return", "exchange", "cancel"):  # "the thermostat I got": find it among their orders
            return Decision(tool=LOOKUP_ORDER, args={}, intent="return_or_exchange")
    if kind == "default_address":
        address = parse_address(text) or {}
        return Decision(tool=CHANGE_DEFAULT_ADDRESS, args=address, intent="change_address")
    if kind is None or order_id is None:
        return None
    if kind == "address":
        address = parse_address(text) or {}
        return Decision(tool=CHANGE_ORDER_ADDRESS, args={"order_id": order_id, **address}, intent="change_address")
    if kind == "payment":
        args = {"order_id": order_id, "pay_with": pay_with(text) or ""}
        return Decision(tool=CHANGE_ORDER_PAYMENT, args=args, intent="change_payment")
    if kind == "cancel":  # without a reason the tool checks the order first, then asks for one
        args = {"order_id": order_id, "reason": cancel_reason(text) or ""}
        return Decision(tool=CANCEL_ORDER, args=args, intent="cancel_order")
    return Decision(tool=LOOKUP_ORDER, args={"order_id": order_id}, intent="return_or_exchange")


def request_text(messages: list[AnyMessage], question: str) -> str:
    """The text that asked for the order change this turn works on: this turn's, or (right after verifying) the
    request that was waiting for it, or the request an item question was about."""
    if wanted_action(question, extract_slots(question), "focus"):
        return question
    for i in range(len(messages) - 1, 0, -1):
        message = messages[i]
        said = message.text if isinstance(message, AIMessage) and not message.tool_calls else ""
        if said == replies.ASK_VERIFICATION or said.startswith(
            (replies.ASK_WHICH_ITEMS_START, replies.ASK_CANCEL_REASON_START)
        ):
            earlier = next((m for m in reversed(messages[:i]) if isinstance(m, HumanMessage)), None)
            if earlier is not None and wanted_action(earlier.text, extract_slots(earlier.text), "focus"):
                return f"{earlier.text} {question}"
            return question
    return question


def after_lookup_for_action(messages: list[AnyMessage], question: str, found: OrdersFound) -> Decision | None:
    """After a lookup made for a return or an exchange: the items, then the proposal (or the options first)."""
    request = request_text(messages, question)
    order = found.order
    kind = wanted_action(request, extract_slots(request), order.order_id if order else None)
    if order is not None and kind == "cancel" and request != question:  # found by its product after verifying
        cancel = {"order_id": order.order_id, "reason": cancel_reason(request) or ""}
        return Decision(tool=CANCEL_ORDER, args=cancel, intent="cancel_order")
    if order is None or kind not in ("return", "exchange"):
        return None
    items = [i.payload() for i in order.items]
    chosen = pick_items(request, items)
    verb = "return" if kind == "return" else "exchange"
    if not chosen:
        return Decision(text=replies.ask_which_items(order.order_id, [i.name for i in order.items], verb))
    if kind == "exchange":
        return Decision(tool=ORDER_OPTIONS, args={"order_id": order.order_id})
    args = {"order_id": order.order_id, "item_ids": chosen, "refund_to": refund_to(request)}
    return Decision(tool=RETURN_ITEMS, args=args)


def after_options(messages: list[AnyMessage], question: str, options: OrderOptions) -> Decision:
    """An exchange: the items the customer named together with an option they asked for ("swap the boots for a
    size 8"); an item named for another reason ("and when does the bottle refund come") is left as it is, and the
    summary read back before the yes lists exactly what changes. Otherwise the question which item, or which
    option."""
    request = request_text(messages, question)
    items = [i.payload() for i in options.items]
    named = [i for i in items if i["item_id"] in (pick_items(request, items) or [])]
    swaps = [(item, new) for item in named if (new := pick_alternative(request, item)) is not None]
    if not swaps and named:
        item = named[0]
        shown = [
            ", ".join(f"{k} {v}" for k, v in a["options"].items() if item["options"].get(k) != v)
            for a in item.get("alternatives", [])
        ]
        return Decision(text=replies.ask_which_option(item["name"], shown))
    if not swaps:
        return Decision(text=replies.ask_which_items(options.order_id, [i["name"] for i in items], "exchange"))
    args = {
        "order_id": options.order_id,
        "item_ids": [item["item_id"] for item, _ in swaps],
        "new_item_ids": [new for _, new in swaps],
        "pay_with": refund_to(request),
    }
    # Not shipped yet: the items of a pending order are changed in place rather than exchanged after delivery.
    tool: ToolName = CHANGE_ORDER_ITEMS if options.order_status == "pending" else EXCHANGE_ITEMS
    return Decision(tool=tool, args=args)

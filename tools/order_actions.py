"""The order-action tools: each one *proposes* an action, never runs it.

A tool checks who is asking (a verified customer; a signed-in one for anything that changes where goods go), that
the order is theirs, and the store policy (`core/order_actions.plan`, on the records as they are now), then keeps
the proposal in the conversation's state and returns its summary in the customer's words. The action runs only
when the customer's own next message says yes (`graphs/confirm.py`): a model, offline, hosted or compromised,
has no way to run it, nor to say yes for the customer.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from langchain_core.tools import tool
from langgraph.types import Command

from threadline.core.order_actions import (
    ActionRefusedError,
    Address,
    CancelOrder,
    ChangeDefaultAddress,
    ExchangeItems,
    ModifyAddress,
    ModifyItems,
    ModifyPayment,
    ReturnItems,
    plan,
)
from threadline.core.tool_names import (
    CANCEL_ORDER,
    CHANGE_DEFAULT_ADDRESS,
    CHANGE_ORDER_ADDRESS,
    CHANGE_ORDER_ITEMS,
    CHANGE_ORDER_PAYMENT,
    EXCHANGE_ITEMS,
    ORDER_OPTIONS,
    RETURN_ITEMS,
    ToolName,
)
from threadline.core.types import Order, OrderId, Variant, VerificationLevel
from threadline.tools.orders import normalize_order_id
from threadline.tools.results import (
    ActionProposed,
    ActionRefused,
    ItemChoice,
    ItemOptions,
    OrderNotFound,
    OrderOptions,
    PaymentChoice,
    VerificationRequired,
)
from threadline.tools.runtime import SupportRuntime, current_identity, tool_result, turn_context

NOT_YOURS = "I couldn't find that order on your account."
SIGN_IN_FOR_ADDRESS = (
    "For your security I can only change a delivery address when you're signed in on our website (or a member "
    "of our team can do it with you)."
)
REASON_WORDS = {"no longer needed": "it's no longer needed", "ordered by mistake": "it was ordered by mistake"}
MethodChoice = str
"""`original` (the method the order was paid with), `gift_card`, `paypal`, `credit_card`, or a payment method id."""


def money(amount: Decimal) -> str:
    """An amount as a customer reads it: $1,463.70."""
    return f"${amount:,.2f}"


def describe_method(method: dict[str, Any]) -> str:
    """A payment method as a customer names it: "your Visa ending 1234", "your PayPal", "your gift card"."""
    source = method.get("source")
    if source == "credit_card":
        return f"your {str(method.get('brand', 'card')).title()} ending {method.get('last_four', '')}".strip()
    if source == "paypal":
        return "your PayPal account"
    if source == "gift_card":
        return "your gift card"
    return "your payment method"


def _verification_required() -> VerificationRequired:
    return VerificationRequired(
        message="The customer must verify their identity before an order can be changed.",
        accepted=["email on file", "full name and zip code", "order number and the email on that order"],
    )


def _own_order(runtime: SupportRuntime, order_id: str) -> Order | None:
    """The order, when it is the acting customer's (another customer's order reads as missing)."""
    wanted = normalize_order_id(order_id)
    order = turn_context(runtime).services.orders.get_order(OrderId(wanted)) if wanted else None
    return order if order is not None and order.customer_id == current_identity(runtime).customer_id else None


def _method_id(choice: MethodChoice, order: Order, methods: dict[str, dict[str, Any]]) -> str:
    """The payment method id a customer's choice names; refused when it names none or several."""
    choice = (choice or "original").strip().lower().replace(" ", "_")
    if choice == "original":
        if not order.payments:
            raise ActionRefusedError("I can't find how this order was paid.", "Error: payment method not found")
        return order.payments[0].payment_method_id
    if choice in methods:
        return choice
    matching = [key for key, m in methods.items() if m.get("source") == choice]
    if len(matching) == 1:
        return matching[0]
    if not matching:
        raise ActionRefusedError(
            "I don't see that kind of payment method on your account.", "Error: payment method not found"
        )
    raise ActionRefusedError(
        "You have more than one of those on your account; which one should I use?", "Error: ambiguous payment method"
    )


def _variants(runtime: SupportRuntime, order: Order) -> dict[str, Variant]:
    orders = turn_context(runtime).services.orders
    variants: dict[str, Variant] = {}
    for product_id in {i.product_id for i in order.items}:
        product = orders.get_product(product_id)
        variants.update({v.item_id: v for v in product.variants} if product else {})
    return variants


def _item_names(order: Order, item_ids: list[str]) -> str:
    names = []
    for item_id in item_ids:
        item = next((i for i in order.items if i.item_id == item_id), None)
        if item is not None:
            names.append(f"{item.name} ({', '.join(item.options.values())})")
    return ", ".join(names) or "those items"


def _propose(runtime: SupportRuntime, name: ToolName, build: Any, *, strong: bool = False) -> Command[Any]:
    """Check and keep a proposal: `build(order, methods)` returns the action and its summary (or raises a
    refusal)."""
    who = current_identity(runtime)
    if not who.level.at_least(VerificationLevel.VERIFIED):
        return tool_result(runtime, name, _verification_required())
    if strong and not who.level.at_least(VerificationLevel.STRONG):
        return tool_result(runtime, name, ActionRefused(message=SIGN_IN_FOR_ADDRESS))
    try:
        action, summary, next_steps, done = build(
            turn_context(runtime).services.orders.payment_methods(who.customer_id)
        )
    except ActionRefusedError as refused:
        return tool_result(runtime, name, ActionRefused(message=refused.message))
    context = turn_context(runtime)
    proposal = {
        "id": f"proposal-{uuid.uuid4().hex}",
        "tool": name,
        "action": action.model_dump(mode="json"),
        "summary": summary,
        "next_steps": next_steps,
        "done": done,
        "strong": strong,
        "customer_id": who.customer_id,
        "proposed_at": context.now.astimezone(UTC).isoformat(),
        "proposed_wall": datetime.now(UTC).isoformat(),  # the server clock: a yes accepted before it came too early
    }
    focus = {"focus_order_id": action.order_id} if getattr(action, "order_id", None) else {}
    return tool_result(runtime, name, ActionProposed(summary=summary), proposal=proposal, **focus)


def _checked(runtime: SupportRuntime, order_id: str) -> Order:
    order = _own_order(runtime, order_id)
    if order is None:
        raise ActionRefusedError(NOT_YOURS, "Error: order not found")
    return order


@tool(ORDER_OPTIONS)
def order_options(runtime: SupportRuntime, order_id: str) -> Command[Any]:
    """What the customer may change on one of their orders: each item with the other in-stock options of the same
    product (item ids, options, prices), and their payment methods (the one the order was paid with marked
    original). Use it before proposing an exchange or an item change. Verified customers only."""
    who = current_identity(runtime)
    if not who.level.at_least(VerificationLevel.VERIFIED):
        return tool_result(runtime, ORDER_OPTIONS, _verification_required())
    order = _own_order(runtime, order_id)
    if order is None:
        return tool_result(runtime, ORDER_OPTIONS, OrderNotFound(order_id=order_id, message=NOT_YOURS))
    variants = _variants(runtime, order)
    items = [
        ItemOptions(
            item_id=item.item_id,
            name=item.name,
            options=item.options,
            price=str(item.price),
            alternatives=[
                ItemChoice(item_id=v.item_id, options=v.options, price=str(v.price))
                for v in variants.values()
                if v.product_id == item.product_id and v.available and v.item_id != item.item_id
            ],
        )
        for item in order.items
    ]
    original = order.payments[0].payment_method_id if order.payments else None
    methods = turn_context(runtime).services.orders.payment_methods(who.customer_id)
    choices = [
        PaymentChoice(
            payment_method_id=key,
            kind=str(m.get("source")),
            description=describe_method(m),
            balance=str(m["balance"]) if m.get("source") == "gift_card" else None,
            original=key == original,
        )
        for key, m in methods.items()
    ]
    result = OrderOptions(order_id=order.id, order_status=order.status.value, items=items, payment_methods=choices)
    return tool_result(runtime, ORDER_OPTIONS, result, focus_order_id=order.id)


@tool(CANCEL_ORDER)
def cancel_order(runtime: SupportRuntime, order_id: str, reason: str) -> Command[Any]:
    """Propose cancelling one of the customer's pending orders. The reason must be the customer's own: "no longer
    needed" or "ordered by mistake". Nothing happens until the customer's next message says yes."""

    def build(methods: dict[str, dict[str, Any]]) -> tuple[CancelOrder, str, str, str]:
        order = _checked(runtime, order_id)
        action = CancelOrder(order_id=order.id, reason=reason)
        change = plan(action, order, methods, {})
        paid = [p for p in order.payments if p.transaction_type == "payment"]
        first = paid[0].payment_method_id if paid else ""
        where = describe_method(methods.get(first, {})) if paid else "your payment method"
        timing = "straight away" if "gift_card" in first else "within 5-7 business days"
        items = ", ".join(i.name for i in order.items)
        refunded = money(change.refunded or Decimal("0"))
        why = REASON_WORDS.get(reason, reason)
        summary = f"cancel order {order.id} ({items}) as {why}; the {refunded} you paid goes back to {where} {timing}"
        steps = f"The {refunded} you paid goes back to {where} {timing}."
        return action, summary, steps, f"Order {order.id} is cancelled."

    return _propose(runtime, CANCEL_ORDER, build)


@tool(RETURN_ITEMS)
def return_items(
    runtime: SupportRuntime, order_id: str, item_ids: list[str] | None = None, refund_to: MethodChoice = "original"
) -> Command[Any]:
    """Propose returning items of one of the customer's delivered orders: `item_ids` from lookup_order (all items
    when left out); the refund goes to the original payment method, or to a gift card (`refund_to`:
    "original" or "gift_card"). Nothing happens until the customer's next message says yes."""

    def build(methods: dict[str, dict[str, Any]]) -> tuple[ReturnItems, str, str, str]:
        order = _checked(runtime, order_id)
        chosen = item_ids or [i.item_id for i in order.items]
        action = ReturnItems(
            order_id=order.id, item_ids=chosen, payment_method_id=_method_id(refund_to, order, methods)
        )
        plan(action, order, methods, {})
        amount = _returned_amount(order, chosen)
        where = describe_method(methods[action.payment_method_id])
        summary = (
            f"return {_item_names(order, chosen)} from order {order.id}; the refund of {money(amount)} goes to {where} "
            "once the items are back with us, and you'll get an email with instructions for sending them"
        )
        steps = (
            f"You'll get an email with instructions for sending the items back; the {money(amount)} refund goes "
            f"to {where} once they arrive."
        )
        return action, summary, steps, f"Your return of {_item_names(order, chosen)} from order {order.id} is set up."

    return _propose(runtime, RETURN_ITEMS, build)


def _returned_amount(order: Order, item_ids: list[str]) -> Decimal:
    """The price of the items returned, each counted as often as it is named (an order may hold one item twice)."""
    left = [(i.item_id, i.price) for i in order.items]
    amount = Decimal("0")
    for item_id in item_ids:
        at = next((n for n, (held, _) in enumerate(left) if held == item_id), None)
        if at is not None:
            amount += left.pop(at)[1]
    return amount


def _swap_summary(order: Order, item_ids: list[str], new_item_ids: list[str], variants: dict[str, Variant]) -> str:
    parts = []
    for item_id, new_item_id in zip(item_ids, new_item_ids, strict=False):
        item = next((i for i in order.items if i.item_id == item_id), None)
        new = variants.get(new_item_id)
        if item is not None and new is not None:
            changed = ", ".join(f"{k} {v}" for k, v in new.options.items() if item.options.get(k) != v)
            parts.append(f"your {item.name} for the one with {changed or 'the same options'}")
    return " and ".join(parts)


def _difference_words(difference: Decimal, where: str) -> str:
    if difference > 0:
        return f"the {money(difference)} difference is charged to {where}"
    if difference < 0:
        return f"the {money(-difference)} difference is refunded to {where}"
    return "there is no price difference"


@tool(EXCHANGE_ITEMS)
def exchange_items(
    runtime: SupportRuntime,
    order_id: str,
    item_ids: list[str],
    new_item_ids: list[str],
    pay_with: MethodChoice = "original",
) -> Command[Any]:
    """Propose exchanging items of one of the customer's delivered orders for other in-stock options of the same
    products (new item ids from order_options, in the same order as `item_ids`); the price difference is paid or
    refunded with `pay_with` ("original", "gift_card", ...). Collect every item first: an order is exchanged
    once. Nothing happens until the customer's next message says yes."""

    def build(methods: dict[str, dict[str, Any]]) -> tuple[ExchangeItems, str, str, str]:
        order = _checked(runtime, order_id)
        variants = _variants(runtime, order)
        method = _method_id(pay_with, order, methods)
        action = ExchangeItems(
            order_id=order.id, item_ids=item_ids, new_item_ids=new_item_ids, payment_method_id=method
        )
        change = plan(action, order, methods, variants)
        difference = change.price_difference or Decimal("0")
        summary = (
            f"exchange {_swap_summary(order, item_ids, new_item_ids, variants)} on order {order.id}; "
            f"{_difference_words(difference, describe_method(methods[method]))}; you'll get an email with "
            "instructions for sending the old items back, and there's no need to place a new order"
        )
        steps = "You'll get an email with instructions for sending the old items back; no need to place a new order."
        return action, summary, steps, f"Your exchange on order {order.id} is set up."

    return _propose(runtime, EXCHANGE_ITEMS, build)


@tool(CHANGE_ORDER_ITEMS)
def change_order_items(
    runtime: SupportRuntime,
    order_id: str,
    item_ids: list[str],
    new_item_ids: list[str],
    pay_with: MethodChoice = "original",
) -> Command[Any]:
    """Propose changing items of one of the customer's pending orders to other in-stock options of the same
    products (new item ids from order_options); the price difference is paid or refunded with `pay_with`. This can
    be done once per order, and afterwards the order can no longer be cancelled or changed: collect every item
    first. Nothing happens until the customer's next message says yes."""

    def build(methods: dict[str, dict[str, Any]]) -> tuple[ModifyItems, str, str, str]:
        order = _checked(runtime, order_id)
        variants = _variants(runtime, order)
        method = _method_id(pay_with, order, methods)
        action = ModifyItems(order_id=order.id, item_ids=item_ids, new_item_ids=new_item_ids, payment_method_id=method)
        change = plan(action, order, methods, variants)
        difference = change.price_difference or Decimal("0")
        summary = (
            f"change {_swap_summary(order, item_ids, new_item_ids, variants)} on order {order.id}; "
            f"{_difference_words(difference, describe_method(methods[method]))}; after this the order can't be "
            "cancelled or changed again"
        )
        return action, summary, "It will ship with the new items.", f"Order {order.id} now has the new items."

    return _propose(runtime, CHANGE_ORDER_ITEMS, build)


@tool(CHANGE_ORDER_PAYMENT)
def change_order_payment(runtime: SupportRuntime, order_id: str, pay_with: MethodChoice) -> Command[Any]:
    """Propose paying one of the customer's pending orders with another of their payment methods (`pay_with`:
    "gift_card", "paypal", "credit_card" or a payment method id); the original payment is refunded. Nothing
    happens until the customer's next message says yes."""

    def build(methods: dict[str, dict[str, Any]]) -> tuple[ModifyPayment, str, str, str]:
        order = _checked(runtime, order_id)
        action = ModifyPayment(order_id=order.id, payment_method_id=_method_id(pay_with, order, methods))
        plan(action, order, methods, {})
        original = order.payments[0]
        old = describe_method(methods.get(original.payment_method_id, {}))
        new = describe_method(methods[action.payment_method_id])
        summary = f"pay order {order.id} ({money(original.amount)}) with {new} instead; {old} is refunded"
        timing = "straight away" if "gift_card" in original.payment_method_id else "within 5-7 business days"
        steps = f"The {money(original.amount)} goes back to {old} {timing}."
        return action, summary, steps, f"Order {order.id} is now paid with {new}."

    return _propose(runtime, CHANGE_ORDER_PAYMENT, build)


@tool(CHANGE_ORDER_ADDRESS)
def change_order_address(
    runtime: SupportRuntime,
    order_id: str,
    address1: str,
    city: str,
    state: str,
    country: str,
    zip: str,
    address2: str = "",
) -> Command[Any]:
    """Propose shipping one of the customer's pending orders to another address. Only for a signed-in customer.
    Nothing happens until the customer's next message says yes."""
    address = Address(address1=address1, address2=address2, city=city, state=state, country=country, zip=zip)

    def build(methods: dict[str, dict[str, Any]]) -> tuple[ModifyAddress, str, str, str]:
        order = _checked(runtime, order_id)
        action = ModifyAddress(order_id=order.id, address=address)
        plan(action, order, methods, {})
        summary = f"ship order {order.id} to {address.one_line()}"
        return action, summary, "", f"Order {order.id} will now ship to {address.one_line()}."

    return _propose(runtime, CHANGE_ORDER_ADDRESS, build, strong=True)


@tool(CHANGE_DEFAULT_ADDRESS)
def change_default_address(
    runtime: SupportRuntime, address1: str, city: str, state: str, country: str, zip: str, address2: str = ""
) -> Command[Any]:
    """Propose changing the default address on the customer's profile (orders already placed keep theirs). Only
    for a signed-in customer. Nothing happens until the customer's next message says yes."""
    address = Address(address1=address1, address2=address2, city=city, state=state, country=country, zip=zip)

    def build(_: dict[str, dict[str, Any]]) -> tuple[ChangeDefaultAddress, str, str, str]:
        summary = f"make {address.one_line()} the default address on your profile"
        done = "Your default address is updated; new orders will ship there."
        return ChangeDefaultAddress(address=address), summary, "", done

    return _propose(runtime, CHANGE_DEFAULT_ADDRESS, build, strong=True)


ORDER_ACTION_TOOLS = [
    order_options,
    cancel_order,
    return_items,
    exchange_items,
    change_order_items,
    change_order_payment,
    change_order_address,
    change_default_address,
]

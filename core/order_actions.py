"""Order actions and the store policy that governs them, as pure functions over the records they change.

An action (cancel, modify address, payment or items, return, exchange, change the default address) is planned
against the order, the customer's payment methods and the catalogue as they are now: `plan` either refuses it,
saying why in words a customer understands (and in the reference order system's own words, `reference`), or
returns the records as they will be after it. Any order system runs the same plan inside its own transaction
(`memory/repositories/orders.py` for the embedded one), so the policy lives here once, in code, never in a
prompt. The rules and their messages follow the store policy (`demo/data/tau_retail/wiki.md`) and the reference
order system it was written for; `tests/test_order_actions.py` replays that system's recorded actions and its
4,000 labelled probes against this module.

Who may ask for an action (the verification level, whether the customer said yes) is the conversation's
business (`tools/order_actions.py`); what an action does to the records is this module's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from threadline.core.errors import ConflictError
from threadline.core.types import Order, OrderItem, OrderStatus, Payment, Variant

CANCEL_REASONS = ("no longer needed", "ordered by mistake")
"""The reasons the store accepts for cancelling an order."""
CENTS = Decimal("0.01")


class Address(BaseModel):
    """A postal address as the order system stores it."""

    model_config = ConfigDict(frozen=True)

    address1: str = Field(min_length=1, max_length=200)
    address2: str = Field(default="", max_length=200)
    city: str = Field(min_length=1, max_length=100)
    state: str = Field(min_length=1, max_length=100)
    country: str = Field(min_length=1, max_length=100)
    zip: str = Field(min_length=1, max_length=20)

    def one_line(self) -> str:
        """The address as a customer reads it back."""
        street = ", ".join(p for p in (self.address1, self.address2) if p)
        return f"{street}, {self.city}, {self.state} {self.zip}, {self.country}"


class _Action(BaseModel):
    model_config = ConfigDict(frozen=True)


class CancelOrder(_Action):
    """Cancel a pending order; every payment is refunded to where it came from."""

    kind: Literal["cancel"] = "cancel"
    order_id: str
    reason: str


class ModifyAddress(_Action):
    """Ship a pending order to another address."""

    kind: Literal["modify_address"] = "modify_address"
    order_id: str
    address: Address


class ModifyPayment(_Action):
    """Pay a pending order with another of the customer's payment methods."""

    kind: Literal["modify_payment"] = "modify_payment"
    order_id: str
    payment_method_id: str


class ModifyItems(_Action):
    """Swap items of a pending order for other variants of the same products (once per order)."""

    kind: Literal["modify_items"] = "modify_items"
    order_id: str
    item_ids: list[str] = Field(min_length=1)
    new_item_ids: list[str] = Field(min_length=1)
    payment_method_id: str


class ReturnItems(_Action):
    """Return items of a delivered order, refunded to the original payment method or a gift card."""

    kind: Literal["return"] = "return"
    order_id: str
    item_ids: list[str] = Field(min_length=1)
    payment_method_id: str


class ExchangeItems(_Action):
    """Exchange items of a delivered order for other variants of the same products."""

    kind: Literal["exchange"] = "exchange"
    order_id: str
    item_ids: list[str] = Field(min_length=1)
    new_item_ids: list[str] = Field(min_length=1)
    payment_method_id: str


class ChangeDefaultAddress(_Action):
    """Change the address on the customer's profile (orders already placed keep theirs)."""

    kind: Literal["change_default_address"] = "change_default_address"
    address: Address


OrderAction = Annotated[
    CancelOrder | ModifyAddress | ModifyPayment | ModifyItems | ReturnItems | ExchangeItems | ChangeDefaultAddress,
    Field(discriminator="kind"),
]
ActionKind = Literal[
    "cancel", "modify_address", "modify_payment", "modify_items", "return", "exchange", "change_default_address"
]


class ActionRefusedError(ConflictError):
    """The policy does not allow the action on the records as they are: `message` says why to the customer,
    `reference` in the reference order system's words."""

    code = "action_refused"

    def __init__(self, message: str, reference: str) -> None:
        super().__init__(message)
        self.reference = reference


@dataclass(frozen=True)
class Change:
    """The records an action changes, as they will be after it (None: unchanged)."""

    order: Order | None
    payment_methods: dict[str, dict[str, Any]] | None = None
    address: Address | None = None
    price_difference: Decimal | None = None
    """What the customer pays (positive) or gets back (negative) for modified or exchanged items."""
    refunded: Decimal | None = None
    """What a cancellation refunds."""


def plan(
    action: CancelOrder | ModifyAddress | ModifyPayment | ModifyItems | ReturnItems | ExchangeItems,
    order: Order | None,
    payment_methods: Mapping[str, Mapping[str, Any]],
    variants: Mapping[str, Variant],
) -> Change:
    """The records after `action` on `order` (already known to be the customer's), or `ActionRefusedError`.
    `payment_methods` are the customer's (by id); `variants` the catalogue's (by item id)."""
    if order is None:
        raise ActionRefusedError("I couldn't find that order on your account.", "Error: order not found")
    methods = {key: dict(value) for key, value in payment_methods.items()}
    if isinstance(action, CancelOrder):
        return _cancel(action, order, methods)
    if isinstance(action, ModifyAddress):
        _must_be(order, OrderStatus.PENDING, "modified")
        return Change(order.model_copy(update={"address": action.address.model_dump()}))
    if isinstance(action, ModifyPayment):
        return _modify_payment(action, order, methods)
    if isinstance(action, ModifyItems):
        return _modify_items(action, order, methods, variants)
    if isinstance(action, ReturnItems):
        return _return(action, order, methods)
    return _exchange(action, order, methods, variants)


def _refuse(message: str, reference: str) -> ActionRefusedError:
    return ActionRefusedError(message, reference)


_STATUS_WORDS = {
    OrderStatus.PENDING: "pending (not yet processed)",
    OrderStatus.DELIVERED: "delivered",
}
_IS = {
    OrderStatus.PENDING: "is still pending",
    OrderStatus.PROCESSED: "is already being processed",
    OrderStatus.DELIVERED: "has been delivered",
    OrderStatus.CANCELLED: "is already cancelled",
    OrderStatus.RETURN_REQUESTED: "already has a return requested",
    OrderStatus.EXCHANGE_REQUESTED: "already has an exchange requested",
}
_DONE_TO = {"cancelled": "cancel", "modified": "modify", "returned": "return", "exchanged": "exchange"}


def status_refusal(order_id: str, status: OrderStatus, done: str) -> str:
    """Why an order in `status` cannot be `done` (cancelled, modified, returned, exchanged), in a customer's words."""
    if status is OrderStatus.PENDING_ITEMS_MODIFIED:
        return f"Order {order_id} has already had its items changed, so it can't be {done} any more."
    now = _IS.get(status, f"is {status.value}")
    needed = _STATUS_WORDS[OrderStatus.PENDING if done in ("cancelled", "modified") else OrderStatus.DELIVERED]
    return f"Order {order_id} {now}, so I can't {_DONE_TO[done]} it: only {needed} orders can be {done}."


def _must_be(order: Order, status: OrderStatus, done: str) -> None:
    """Refuse unless the order is in `status` (exactly: an order whose items were modified is no longer pending)."""
    if order.status is status:
        return
    reference_state = "pending" if status is OrderStatus.PENDING else "delivered"
    raise _refuse(status_refusal(order.id, order.status, done), f"Error: non-{reference_state} order cannot be {done}")


def _method(methods: Mapping[str, Mapping[str, Any]], payment_method_id: str) -> Mapping[str, Any]:
    method = methods.get(payment_method_id)
    if method is None:
        raise _refuse("That payment method isn't on your account.", "Error: payment method not found")
    return method


def _is_gift_card(method: Mapping[str, Any]) -> bool:
    return method.get("source") == "gift_card"


def _balance(method: Mapping[str, Any]) -> Decimal:
    return Decimal(str(method.get("balance", 0)))


def _credit(methods: dict[str, dict[str, Any]], payment_method_id: str, amount: Decimal) -> None:
    """Add `amount` (negative: take it) to a gift card's balance, kept to the cent."""
    method = methods[payment_method_id]
    method["balance"] = float((_balance(method) + amount).quantize(CENTS))


def cancel_reason_question(order_id: str) -> str:
    """What a cancellation without one of the store's reasons is answered with."""
    return (
        f"I can cancel order {order_id} for you. So I can note it: is it no longer needed, or was it ordered by "
        "mistake?"
    )


def _net_refunds(order: Order) -> list[Payment]:
    """What cancelling gives back: each payment method's net payment (what it paid minus what it already got back),
    in the order the methods first paid. For an order paid once this is the reference's refund of every payment;
    after a payment change it does not refund the earlier method, already refunded, a second time."""
    net: dict[str, Decimal] = {}
    for p in order.payments:
        sign = Decimal(1) if p.transaction_type == "payment" else Decimal(-1)
        net[p.payment_method_id] = net.get(p.payment_method_id, Decimal(0)) + sign * p.amount
    return [
        Payment(transaction_type="refund", amount=amount, payment_method_id=method)
        for method, amount in net.items()
        if amount > 0
    ]


def _cancel(action: CancelOrder, order: Order, methods: dict[str, dict[str, Any]]) -> Change:
    _must_be(order, OrderStatus.PENDING, "cancelled")
    if action.reason not in CANCEL_REASONS:
        raise _refuse(cancel_reason_question(order.id), "Error: invalid reason")
    refunds = _net_refunds(order)
    touched = False
    for refund in refunds:
        if refund.payment_method_id in methods and "gift_card" in refund.payment_method_id:
            _credit(methods, refund.payment_method_id, refund.amount)
            touched = True
    after = order.model_copy(
        update={
            "status": OrderStatus.CANCELLED,
            "cancel_reason": action.reason,
            "payments": [*order.payments, *refunds],
        }
    )
    refunded = sum((r.amount for r in refunds), Decimal("0"))
    return Change(after, methods if touched else None, refunded=refunded)


def _modify_payment(action: ModifyPayment, order: Order, methods: dict[str, dict[str, Any]]) -> Change:
    _must_be(order, OrderStatus.PENDING, "modified")
    method = _method(methods, action.payment_method_id)
    if len(order.payments) != 1 or order.payments[0].transaction_type != "payment":
        raise _refuse(
            f"The payment on order {order.id} has already been changed, so I can't change it again here.",
            "Error: there should be exactly one payment for a pending order",
        )
    original = order.payments[0]
    if original.payment_method_id == action.payment_method_id:
        raise _refuse(
            f"Order {order.id} is already paid with that method; which other one would you like to use?",
            "Error: the new payment method should be different from the current one",
        )
    if _is_gift_card(method) and _balance(method) < original.amount:
        raise _refuse(
            f"That gift card's balance doesn't cover the ${original.amount} order total.",
            "Error: insufficient gift card balance to pay for the order",
        )
    paid = Payment(transaction_type="payment", amount=original.amount, payment_method_id=action.payment_method_id)
    refund = Payment(transaction_type="refund", amount=original.amount, payment_method_id=original.payment_method_id)
    touched = False
    if _is_gift_card(method):
        _credit(methods, action.payment_method_id, -original.amount)
        touched = True
    if "gift_card" in original.payment_method_id and original.payment_method_id in methods:
        _credit(methods, original.payment_method_id, original.amount)
        touched = True
    after = order.model_copy(update={"payments": [*order.payments, paid, refund]})
    return Change(after, methods if touched else None)


def _check_items(order: Order, item_ids: list[str], *, missing: str | None = None) -> None:
    """Refuse unless the order holds every item named (as many times as it is named)."""
    held: list[str] = [item.item_id for item in order.items]
    for item_id in item_ids:
        if item_ids.count(item_id) > held.count(item_id):
            reference = missing or f"Error: {item_id} not found"
            raise _refuse(f"Order {order.id} doesn't include item {item_id}.", reference)


def _swaps(
    order: Order, item_ids: list[str], new_item_ids: list[str], variants: Mapping[str, Variant]
) -> tuple[list[tuple[int, Variant]], Decimal]:
    """Each item's position in the order with its replacement, and the price difference; refused when the counts
    differ or a replacement is not an available variant of the same product."""
    if len(item_ids) != len(new_item_ids):
        raise _refuse(
            "Each item to change needs exactly one replacement.",
            "Error: the number of items to be exchanged should match",
        )
    taken: set[int] = set()
    swaps: list[tuple[int, Variant]] = []
    difference = Decimal("0")
    for item_id, new_item_id in zip(item_ids, new_item_ids, strict=True):
        position = next(i for i, item in enumerate(order.items) if item.item_id == item_id and i not in taken)
        taken.add(position)
        item = order.items[position]
        variant = variants.get(new_item_id)
        if variant is None or variant.product_id != item.product_id or not variant.available:
            raise _refuse(
                f"The {item.name} option you picked ({new_item_id}) isn't available as a swap for this item; "
                "it has to be an in-stock option of the same product.",
                f"Error: new item {new_item_id} not found or available",
            )
        difference += variant.price - item.price
        swaps.append((position, variant))
    return swaps, difference.quantize(CENTS)


def _modify_items(
    action: ModifyItems, order: Order, methods: dict[str, dict[str, Any]], variants: Mapping[str, Variant]
) -> Change:
    _must_be(order, OrderStatus.PENDING, "modified")
    _check_items(order, action.item_ids)
    swaps, difference = _swaps(order, action.item_ids, action.new_item_ids, variants)
    method = _method(methods, action.payment_method_id)
    if _is_gift_card(method) and _balance(method) < difference:
        raise _refuse(
            f"That gift card's balance doesn't cover the ${difference} difference.",
            "Error: insufficient gift card balance to pay for the new item",
        )
    kind = "payment" if difference > 0 else "refund"
    settle = Payment(transaction_type=kind, amount=abs(difference), payment_method_id=action.payment_method_id)
    touched = False
    if _is_gift_card(method):
        _credit(methods, action.payment_method_id, -difference)
        touched = True
    items = list(order.items)
    for position, variant in swaps:
        items[position] = OrderItem(
            item_id=variant.item_id,
            product_id=variant.product_id,
            name=items[position].name,
            price=variant.price,
            options=variant.options,
        )
    after = order.model_copy(
        update={"items": items, "payments": [*order.payments, settle], "status": OrderStatus.PENDING_ITEMS_MODIFIED}
    )
    return Change(after, methods if touched else None, price_difference=difference)


def _return(action: ReturnItems, order: Order, methods: dict[str, dict[str, Any]]) -> Change:
    _must_be(order, OrderStatus.DELIVERED, "returned")
    _method(methods, action.payment_method_id)
    original = order.payments[0].payment_method_id if order.payments else None
    if "gift_card" not in action.payment_method_id and action.payment_method_id != original:
        raise _refuse(
            "A refund for a return goes back to the original payment method, or to one of your gift cards.",
            "Error: payment method should be either the original payment method or a gift card",
        )
    _check_items(order, action.item_ids, missing="Error: some item not found")
    request = {"return_items": sorted(action.item_ids), "return_payment_method_id": action.payment_method_id}
    return Change(order.model_copy(update={"status": OrderStatus.RETURN_REQUESTED, "request": request}))


def _exchange(
    action: ExchangeItems, order: Order, methods: dict[str, dict[str, Any]], variants: Mapping[str, Variant]
) -> Change:
    _must_be(order, OrderStatus.DELIVERED, "exchanged")
    _check_items(order, action.item_ids)
    _, difference = _swaps(order, action.item_ids, action.new_item_ids, variants)
    method = _method(methods, action.payment_method_id)
    if _is_gift_card(method) and _balance(method) < difference:
        raise _refuse(
            f"That gift card's balance doesn't cover the ${difference} difference.",
            "Error: insufficient gift card balance to pay for the price difference",
        )
    request = {
        "exchange_items": sorted(action.item_ids),
        "exchange_new_items": sorted(action.new_item_ids),
        "exchange_payment_method_id": action.payment_method_id,
        "exchange_price_difference": float(difference),
    }
    after = order.model_copy(update={"status": OrderStatus.EXCHANGE_REQUESTED, "request": request})
    return Change(after, price_difference=difference)


class ActionRecord(BaseModel):
    """One order action as the audit keeps it: executed (`done`) or refused, by whom, on which message."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: int
    idempotency_key: str
    kind: ActionKind
    order_id: str | None = None
    customer_id: str
    actor: str
    channel: str | None = None
    confirming_message_id: int | None = None
    outcome: Literal["done", "refused"]
    action: dict[str, Any]
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
    created_at: Any = None

    @property
    def refusal(self) -> str | None:
        """Why the action was refused, in the customer's words (None when it was done)."""
        return str(self.detail.get("message")) if self.outcome == "refused" else None

"""Each tool's result as a typed model: the tools build them, every consumer reads them back with `read_result`.

The artifact stays the plain `payload()` dict, so checkpoints keep plain JSON. Optional fields, and defaults on
fields every tool sets, let results recorded by hand or by older code still be read."""

from __future__ import annotations

import json
from typing import Annotated, Any, Final, Literal

from langchain_core.messages import ToolMessage
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from threadline.core.tool_names import (
    ACTION_TOOLS,
    CHANGE_SPEAKER,
    CONFIRM_ORDER_ACTION,
    ESCALATE_TO_HUMAN,
    FIND_PRODUCTS,
    LOOKUP_ORDER,
    ORDER_OPTIONS,
    RECALL_CONTEXT,
    SEARCH_KNOWLEDGE,
    VERIFY_CUSTOMER,
)
from threadline.core.types import ArticleKind

Urgency = Literal["low", "normal", "high", "urgent"]


class Shape(BaseModel):
    """A tool result, or a part of one; fields left as None are left out of its JSON."""

    model_config = ConfigDict(frozen=True)

    def payload(self) -> dict[str, Any]:
        """The result as a plain JSON object, without the optional fields left as None."""
        return self.model_dump(mode="json", exclude_none=True)

    def content(self) -> str:
        """The result as the JSON text the model reads."""
        return json.dumps(self.payload(), ensure_ascii=False)


class VerificationRequired(Shape):
    """`lookup_order` or `recall_context` refused: the customer must verify first."""

    status: Literal["verification_required"] = "verification_required"
    message: str
    accepted: list[str] | None = None
    """The ways to verify, when the refusal lists them."""


class OrderItemLine(Shape):
    """An item of an order, as the customer may hear it (the item id is what the order actions take)."""

    name: str
    options: dict[str, str]
    price: str
    item_id: str | None = None


class ShipmentLine(Shape):
    """A shipment of an order: its tracking numbers and the names of the items it carries."""

    tracking_ids: list[str]
    items: list[str]


class OrderSummary(Shape):
    """What the customer may be told about one order; the address and payment methods only when fully verified."""

    order_id: str
    status: str
    items: list[OrderItemLine]
    shipments: list[ShipmentLine]
    total: str
    paid: str
    refunded: str
    shipping_address: dict[str, Any] | None = None
    payment_methods: list[str] | None = None


class OrderLine(Shape):
    """One order in the customer's order history."""

    order_id: str
    status: str
    items: list[str]
    total: str


class OrdersFound(Shape):
    """`lookup_order` answered: one order (`order`), or the customer's recent orders (`orders`)."""

    status: Literal["ok"] = "ok"
    order: OrderSummary | None = None
    orders: list[OrderLine] | None = None


class OrderNotFound(Shape):
    """`lookup_order`: no such order on the customer's account (another customer's order reads the same)."""

    status: Literal["not_found"] = "not_found"
    order_id: str
    message: str | None = None


class KnowledgePassage(Shape):
    """A passage of a knowledge article, with what it is cited by."""

    article_id: str
    title: str
    version: int
    kind: ArticleKind | None = None
    text: str
    score: float | None = None


class KnowledgeResult(Shape):
    """`search_knowledge`: the best passages for the query, best first; `no_answer` when none is good enough."""

    status: Literal["ok", "no_answer"]
    query: str = ""
    passages: list[KnowledgePassage]


class ProductChoice(Shape):
    """One variant a shopper could buy, as they would hear it: no item or product ids."""

    name: str
    options: dict[str, str]
    price: str
    in_stock: bool
    matches_all: bool
    """Whether it has everything the shopper asked for (options and price range)."""
    missing: list[str] | None = None
    """What it lacks of what they asked for, in their words."""


class ProductsFound(Shape):
    """`find_products`: the catalogue's best matches (`ok`), or `not_carried` (we sell no such product; `closest`
    names what comes nearest)."""

    status: Literal["ok", "not_carried"]
    query: str
    asked_for: list[str]
    """The criteria read from the query (option values and price range), in the shopper's words."""
    products: list[str]
    """The product types searched."""
    choices: list[ProductChoice] = Field(default_factory=list)
    in_stock_count: int = 0
    """How many variants of these products fit everything asked for and are in stock."""
    in_stock_options: dict[str, list[str]] | None = None
    """The option values those in-stock variants come in (to describe a long list briefly)."""
    price_from: str | None = None
    price_to: str | None = None
    wanted: str | None = None
    """What the shopper asked for that we do not sell, in their words (`not_carried`)."""
    closest: list[str] | None = None


class RecalledProfile(Shape):
    """The customer's profile as `recall_context` shows it at full disclosure."""

    citation: str
    name: str
    orders_on_file: int


class RecallResult(Shape):
    """`recall_context`: earlier episodes (whole, or only their public topics), and at full disclosure the profile
    and stated preferences. Episodes stay plain records: they are the long-term store's values, as stored."""

    status: Literal["ok", "nothing_found"]
    disclosure: Literal["full", "topics_only"]
    episodes: list[dict[str, Any]]
    profile: RecalledProfile | None = None
    preferences: list[str] | None = None


class VerificationPassed(Shape):
    """`verify_customer` verified the customer (`already_verified` when they were before the call)."""

    status: Literal["ok"] = "ok"
    already_verified: bool | None = None
    name: str | None = None


class VerificationFailed(Shape):
    """`verify_customer` could not verify the details; one message whatever did not match."""

    status: Literal["failed"] = "failed"
    message: str
    attempts: int | None = None


class SpeakerChanged(Shape):
    """`change_speaker`: the person writing is not the customer verified earlier in the conversation; nothing of
    that customer's may be shared, and they may verify as themselves."""

    status: Literal["ok"] = "ok"
    message: str = (
        "From here on, the person writing is not the customer verified earlier in this conversation: share and "
        "refer to nothing of that customer's. To help with their own account, ask them to verify (the email on "
        "their account, or their full name and zip code)."
    )


class SpeakerSignedIn(Shape):
    """`change_speaker` on a signed-in web session: the session proves the account; the other person signs in."""

    status: Literal["signed_in"] = "signed_in"
    message: str = "This chat is signed in to the customer's account; the other person should sign in as themselves."


class ItemChoice(Shape):
    """One option a customer may pick for an item: an available variant of the same product."""

    item_id: str
    options: dict[str, str]
    price: str


class ItemOptions(Shape):
    """An item of the order with the other variants of its product that are in stock now."""

    item_id: str
    name: str
    options: dict[str, str]
    price: str
    alternatives: list[ItemChoice]


class PaymentChoice(Shape):
    """One of the customer's payment methods, as the customer may hear it (the id is what `pay_with` takes)."""

    payment_method_id: str
    kind: str
    description: str
    balance: str | None = None
    original: bool = False
    """Whether the order was paid with it."""


class OrderOptions(Shape):
    """`order_options`: what the customer may change on an order: its items with their alternatives, and their
    payment methods."""

    status: Literal["ok"] = "ok"
    order_id: str
    order_status: str
    items: list[ItemOptions]
    payment_methods: list[PaymentChoice]


class ActionProposed(Shape):
    """An order-action tool: the action is proposed, not done; the customer's next message must say yes."""

    status: Literal["proposed"] = "proposed"
    summary: str
    message: str = (
        "Nothing has been done yet. Tell the customer exactly this summary and ask them to reply yes to go ahead "
        "or no to leave it; it happens only if their next message says yes."
    )


class ActionRefused(Shape):
    """An order-action tool: the store policy does not allow it; `message` says why, in the customer's words."""

    status: Literal["refused"] = "refused"
    message: str


class ActionDone(Shape):
    """`confirm_order_action`: the customer said yes and the action ran (exactly once); `next_steps` says what
    happens now (refund timing, return instructions)."""

    status: Literal["done"] = "done"
    summary: str
    next_steps: str


class ActionDeclined(Shape):
    """`confirm_order_action`: the customer said no, or moved on; nothing was done."""

    status: Literal["declined"] = "declined"
    summary: str


class EscalationQueued(Shape):
    """`escalate_to_human` asked for a handoff; the graph builds it."""

    status: Literal["queued"] = "queued"
    reason: str
    urgency: Urgency
    source: str


class ToolError(Shape):
    """Any tool failed: a code and a readable message for the model, never a stack trace."""

    status: Literal["error"] = "error"
    code: str
    message: str


class ToolSkipped(Shape):
    """Any tool's call that the graph closed without running (a handoff pre-empted it)."""

    status: Literal["skipped"] = "skipped"


ToolResult = (
    OrdersFound
    | OrderNotFound
    | VerificationRequired
    | KnowledgeResult
    | ProductsFound
    | RecallResult
    | VerificationPassed
    | VerificationFailed
    | SpeakerChanged
    | SpeakerSignedIn
    | OrderOptions
    | ActionProposed
    | ActionRefused
    | ActionDone
    | ActionDeclined
    | EscalationQueued
    | ToolError
    | ToolSkipped
)

_ANY_TOOL = ToolError | ToolSkipped
"""What a call of any tool may come back as."""
_BY_STATUS = Field(discriminator="status")
_READERS: Final[dict[str, TypeAdapter[Any]]] = {
    LOOKUP_ORDER: TypeAdapter(Annotated[OrdersFound | OrderNotFound | VerificationRequired | _ANY_TOOL, _BY_STATUS]),
    SEARCH_KNOWLEDGE: TypeAdapter(Annotated[KnowledgeResult | _ANY_TOOL, _BY_STATUS]),
    FIND_PRODUCTS: TypeAdapter(Annotated[ProductsFound | _ANY_TOOL, _BY_STATUS]),
    RECALL_CONTEXT: TypeAdapter(Annotated[RecallResult | VerificationRequired | _ANY_TOOL, _BY_STATUS]),
    VERIFY_CUSTOMER: TypeAdapter(Annotated[VerificationPassed | VerificationFailed | _ANY_TOOL, _BY_STATUS]),
    CHANGE_SPEAKER: TypeAdapter(Annotated[SpeakerChanged | SpeakerSignedIn | _ANY_TOOL, _BY_STATUS]),
    ORDER_OPTIONS: TypeAdapter(Annotated[OrderOptions | VerificationRequired | OrderNotFound | _ANY_TOOL, _BY_STATUS]),
    CONFIRM_ORDER_ACTION: TypeAdapter(Annotated[ActionDone | ActionDeclined | ActionRefused | _ANY_TOOL, _BY_STATUS]),
    **{
        name: TypeAdapter(Annotated[ActionProposed | ActionRefused | VerificationRequired | _ANY_TOOL, _BY_STATUS])
        for name in ACTION_TOOLS
    },
    ESCALATE_TO_HUMAN: TypeAdapter(Annotated[EscalationQueued | _ANY_TOOL, _BY_STATUS]),
}
_OTHER_TOOL: Final[TypeAdapter[Any]] = TypeAdapter(Annotated[_ANY_TOOL, _BY_STATUS])


def read_result(message: ToolMessage) -> ToolResult | None:
    """A tool message's result, typed by the tool's name and the result's status: read from the artifact when it
    is a dict, else from the JSON content; None when it is not a result of that tool."""
    data = message.artifact if isinstance(message.artifact, dict) else _json_object(message.content)
    try:
        result: ToolResult = _READERS.get(message.name or "", _OTHER_TOOL).validate_python(data)
    except ValidationError:
        return None
    return result


def result_status(message: ToolMessage) -> str | None:
    """The status a tool message reports (`ok`, `not_found`, `error`, …); None when it is not a tool result."""
    result = read_result(message)
    return result.status if result is not None else None


def _json_object(content: object) -> object:
    try:
        return json.loads(content) if isinstance(content, str) else None
    except ValueError:
        return None

"""The support tools' names, spelled once: tools register under them, and agents, graphs, evals and analytics
compare against them. In core so that every layer (evals included, which may not import tools) can use them."""

from __future__ import annotations

from typing import Final, Literal

ToolName = Literal[
    "lookup_order",
    "search_knowledge",
    "find_products",
    "recall_context",
    "verify_customer",
    "change_speaker",
    "escalate_to_human",
    "order_options",
    "cancel_order",
    "return_items",
    "exchange_items",
    "change_order_items",
    "change_order_payment",
    "change_order_address",
    "change_default_address",
    "confirm_order_action",
]

LOOKUP_ORDER: Final = "lookup_order"
SEARCH_KNOWLEDGE: Final = "search_knowledge"
FIND_PRODUCTS: Final = "find_products"
RECALL_CONTEXT: Final = "recall_context"
VERIFY_CUSTOMER: Final = "verify_customer"
CHANGE_SPEAKER: Final = "change_speaker"
ORDER_OPTIONS: Final = "order_options"
CANCEL_ORDER: Final = "cancel_order"
RETURN_ITEMS: Final = "return_items"
EXCHANGE_ITEMS: Final = "exchange_items"
CHANGE_ORDER_ITEMS: Final = "change_order_items"
CHANGE_ORDER_PAYMENT: Final = "change_order_payment"
CHANGE_ORDER_ADDRESS: Final = "change_order_address"
CHANGE_DEFAULT_ADDRESS: Final = "change_default_address"
ACTION_KIND_OF_TOOL: Final = {
    CANCEL_ORDER: "cancel",
    RETURN_ITEMS: "return",
    EXCHANGE_ITEMS: "exchange",
    CHANGE_ORDER_ITEMS: "modify_items",
    CHANGE_ORDER_PAYMENT: "modify_payment",
    CHANGE_ORDER_ADDRESS: "modify_address",
    CHANGE_DEFAULT_ADDRESS: "change_default_address",
}
"""The tools that propose an order action (nothing happens until the customer's next message says yes), with the
`kind` of the action each proposes (`core.order_actions`)."""
ACTION_TOOLS: Final = frozenset(ACTION_KIND_OF_TOOL)
CONFIRM_ORDER_ACTION: Final = "confirm_order_action"
"""Not a tool the model can call: the graph records under this name the action it ran (or dropped) when the
customer's own next message answered a proposal."""
ESCALATE_TO_HUMAN: Final = "escalate_to_human"

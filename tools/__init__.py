"""The tools the model may call; identity comes from the runtime context and graph state, never from arguments."""

from __future__ import annotations

from langchain_core.tools import BaseTool

from threadline.tools.escalation import escalate_to_human
from threadline.tools.knowledge import search_knowledge
from threadline.tools.order_actions import ORDER_ACTION_TOOLS
from threadline.tools.orders import lookup_order
from threadline.tools.products import find_products
from threadline.tools.recall import recall_context
from threadline.tools.verification import change_speaker, verify_customer

SUPPORT_TOOLS: list[BaseTool] = [
    recall_context,
    search_knowledge,
    find_products,
    lookup_order,
    verify_customer,
    change_speaker,
    *ORDER_ACTION_TOOLS,
    escalate_to_human,
]

__all__ = [
    "SUPPORT_TOOLS",
    "change_speaker",
    "escalate_to_human",
    "find_products",
    "lookup_order",
    "recall_context",
    "search_knowledge",
    "verify_customer",
]

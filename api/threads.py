"""Which conversation thread a message joins, and the graph config of a thread."""

from __future__ import annotations

import hashlib
from typing import Any

from langchain_core.runnables import RunnableConfig

from threadline.core.types import VerificationLevel
from threadline.memory.identity import Resolution


def thread_key(who: Resolution) -> str:
    """The thread a message joins: the customer's own once the sender is verified (or the customer is
    provisional, reachable only through this handle); otherwise a per-handle thread, so someone who merely
    claims a known customer's email or phone never sees, nor adds to, that customer's conversation."""
    if who.customer.provisional or who.level.at_least(VerificationLevel.VERIFIED):
        return who.customer.id
    return f"{who.customer.id}~{who.handle_type.value}:{who.handle}"


def thread_config(customer_id: str, **metadata: Any) -> RunnableConfig:
    """The graph config of a customer's one thread, with trace metadata that never holds the raw id."""
    hashed = hashlib.sha256(customer_id.encode()).hexdigest()[:16]
    return {"configurable": {"thread_id": customer_id}, "metadata": {"customer_hash": hashed, **metadata}}

"""The format of conversation-thread ids: one thread per customer, plus one per unverified handle.

A customer's own thread id is their customer id. Someone who merely claims a known customer's email or phone talks
in a thread of their own, `<customer id>~<handle type>:<handle>`, so they never see, nor add to, that customer's
conversation. Everything that builds, parses or matches thread ids goes through this module.
"""

from __future__ import annotations

from threadline.core.types import CustomerId, HandleType

HANDLE_THREAD_SEPARATOR = "~"
"""Between the customer id and the handle in a per-handle thread id; never part of a customer id."""


def customer_thread(customer_id: CustomerId) -> str:
    """The customer's own thread."""
    return customer_id


def handle_thread(customer_id: CustomerId, handle_type: HandleType, handle: str) -> str:
    """The thread of an unverified sender who claims `customer_id`'s handle."""
    return f"{customer_id}{HANDLE_THREAD_SEPARATOR}{handle_type.value}:{handle}"


def handle_thread_prefix(customer_id: CustomerId) -> str:
    """What every per-handle thread of `customer_id` starts with."""
    return f"{customer_id}{HANDLE_THREAD_SEPARATOR}"

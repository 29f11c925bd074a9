"""`verify_customer`: check identity facts the customer gave against the records; raise the level in code."""

from __future__ import annotations

from typing import Any

from langchain_core.tools import tool
from langgraph.types import Command

from threadline.core.tool_names import VERIFY_CUSTOMER
from threadline.core.types import VerificationLevel
from threadline.tools.orders import normalize_order_id
from threadline.tools.results import VerificationFailed, VerificationPassed
from threadline.tools.runtime import SupportRuntime, current_identity, tool_result, turn_context

FAILED_MESSAGE = "Those details could not be verified."


@tool(VERIFY_CUSTOMER)
def verify_customer(
    runtime: SupportRuntime,
    email: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    zip: str | None = None,
    order_id: str | None = None,
) -> Command[Any]:
    """Verify the customer's identity from details they gave: the email on their account, or their first
    name, last name and zip code, or an order number with the email on that order."""
    context = turn_context(runtime)
    who = current_identity(runtime)
    failures = int((runtime.state or {}).get("verification_failures", 0))
    if who.level.at_least(VerificationLevel.VERIFIED):
        return tool_result(runtime, VERIFY_CUSTOMER, VerificationPassed(already_verified=True))
    customer = context.services.identity.verify(
        email=email,
        first_name=first_name,
        last_name=last_name,
        zip=zip,
        order_id=normalize_order_id(order_id) if order_id else None,
    )
    if customer is None:  # one message whatever failed, so no factor is confirmed or denied
        failed = VerificationFailed(message=FAILED_MESSAGE, attempts=failures + 1)
        return tool_result(runtime, VERIFY_CUSTOMER, failed, verification_failures=failures + 1)
    level = VerificationLevel.VERIFIED
    context.services.identity.link_verified(
        customer.id, context.handle_type, context.handle, level, actor=f"conversation:{context.channel.value}"
    )
    identity = {"customer_id": customer.id, "level": level.value}
    passed = VerificationPassed(name=customer.first_name or customer.display_name)
    return tool_result(runtime, VERIFY_CUSTOMER, passed, identity=identity, verification_failures=0)

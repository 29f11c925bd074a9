"""`verify_customer`: check identity facts the customer gave against the records; raise the level in code."""

from __future__ import annotations

from typing import Any

from langchain_core.tools import tool
from langgraph.types import Command

from threadline.core.tool_names import CHANGE_SPEAKER, VERIFY_CUSTOMER
from threadline.core.types import VerificationLevel
from threadline.tools.orders import normalize_order_id
from threadline.tools.results import SpeakerChanged, SpeakerSignedIn, VerificationFailed, VerificationPassed
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


OTHER_PERSON_BRIEF = (
    "Verification level: anonymous\n"
    "The person writing is not the customer this conversation was verified as: share nothing of that customer's."
)


@tool(CHANGE_SPEAKER)
def change_speaker(runtime: SupportRuntime) -> Command[Any]:
    """Call when the person writing says they are not the customer this conversation is verified as: a shared
    phone or inbox ("it's not me, it's my husband", "this is his wife"). Nothing of that customer's is shared
    after it, and the person can then verify as themselves with verify_customer."""
    context = turn_context(runtime)
    if context.verification.at_least(VerificationLevel.STRONG):  # a signed-in session proves its account
        return tool_result(runtime, CHANGE_SPEAKER, SpeakerSignedIn())
    context.services.identity.another_person(
        context.handle_type, context.handle, actor=f"conversation:{context.channel.value}"
    )
    identity = {"customer_id": context.customer_id, "level": VerificationLevel.ANONYMOUS.value}
    return tool_result(
        runtime,
        CHANGE_SPEAKER,
        SpeakerChanged(),
        identity=identity,
        brief=OTHER_PERSON_BRIEF,
        focus_order_id=None,
        verification_failures=0,
    )

"""The disclosure matrix: what each verification level may see. Tools enforce it; prompts never do."""

from __future__ import annotations

from enum import StrEnum

from threadline.core.types import VerificationLevel


class Disclosure(StrEnum):
    """Kinds of information a reply may contain."""

    KNOWLEDGE = "knowledge"
    PRIOR_TOPICS = "prior_topics"
    """What earlier conversations were about (questions asked, products looked at), never orders or outcomes."""
    OWN_ORDER_STATUS = "own_order_status"
    PRIOR_CONVERSATIONS = "prior_conversations"
    ADDRESS = "address"
    PAYMENT_DETAILS = "payment_details"


REQUIRED_LEVEL: dict[Disclosure, VerificationLevel] = {
    Disclosure.KNOWLEDGE: VerificationLevel.ANONYMOUS,
    Disclosure.PRIOR_TOPICS: VerificationLevel.CLAIMED,
    Disclosure.OWN_ORDER_STATUS: VerificationLevel.VERIFIED,
    Disclosure.PRIOR_CONVERSATIONS: VerificationLevel.VERIFIED,
    Disclosure.ADDRESS: VerificationLevel.STRONG,
    Disclosure.PAYMENT_DETAILS: VerificationLevel.STRONG,
}


def may_see(level: VerificationLevel, what: Disclosure) -> bool:
    """Whether a customer verified at `level` may be shown `what`."""
    return level.at_least(REQUIRED_LEVEL[what])

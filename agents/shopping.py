"""Questions about what the store sells, read from their words, and refinements of the last product search."""

from __future__ import annotations

import re

from langchain_core.messages import AnyMessage

from threadline.agents.decision import OWN_ORDER, Decision
from threadline.agents.intents import (
    Intent,
)
from threadline.agents.slots import Slots
from threadline.agents.transcript import catalog, previous_product_query
from threadline.core.catalog_search import named_types
from threadline.core.tool_names import (
    FIND_PRODUCTS,
)

_SHOPPING = re.compile(
    r"\b(?:do (?:you|u|ya) (?:guys )?(?:have|sell|carry|stock|got|do)|(?:have|got) (?:you )?any|looking for|"
    r"look(?:ing)? to buy|shopping for|want(?:ed)? to (?:buy|get)|wanna (?:buy|get)|i need (?:a|an|some) |"
    r"recommend|in stock|"
    r"how much (?:is|are|does|do)|price of|prices? for|what (?:colou?rs|sizes)|comes? in|available in|"
    r"(?:is|are) (?:the|your) .{2,40} (?:waterproof|available|in stock))",
    re.I,
)


_REFINE = re.compile(
    r"\b(?:what about|how about|one with|ones with|any (?:with|in)|in (?:a )?different|cheaper|less expensive|"
    r"under \$?\d|below \$?\d|instead|something|bigger|smaller|other colou?rs?|another colou?r|in (?:red|blue|"
    r"black|white|green|grey|gray|pink|purple|yellow|silver|brown|navy|beige|gold))\b",
    re.I,
)


_ONE_OF_THOSE = re.compile(
    r"\b(?:the|a|an|that|this|those|these|one|ones|it|them|any(?:thing)?|same)\b[^.?!]{0,30}\b(?:one|ones|in|with|size|"
    r"colou?r|cheaper|available|stock|version)\b|\b(?:cheaper|bigger|smaller|lighter|longer|shorter)\b",
    re.I,
)


NOT_SHOPPING = frozenset(
    {Intent.HUMAN_REQUEST, Intent.VERIFICATION, Intent.SPEAKER_CHANGE, Intent.RECALL, Intent.ORDER_HISTORY}
)


SERVICE_WORDS = re.compile(
    r"\b(?:return|exchange|refund|cancel|order(?:ed|s)?|track(?:ing)?|deliver(?:y|ed)?|shipp(?:ed|ing)|package|"
    r"account|password|warranty|policy|polic(?:ies)|discount\w*|coupon\w*|promo\w*|price match\w*|sale|program\w*|"
    r"membership|rewards?|points|loyalty|subscription|app|gift ?cards?|gift wrap\w*|student|military|store hours|"
    r"broke|broken|burn(?:ed|t)?|hurt|injur\w*|person|human|agent)\b",
    re.I,
)


def shopping_step(messages: list[AnyMessage], text: str, intent: Intent, slots: Slots) -> Decision | None:
    """A question about what we sell goes to the product finder; a follow-up to its last answer ("what about one
    with adjustable arms?") carries the earlier criteria. The classifier learnt service requests, not shopping
    ("do you have a red speaker" sits near "exchange"), so a shopping question is read from its words."""
    if slots.order_ids or OWN_ORDER.search(text) or intent in NOT_SHOPPING or SERVICE_WORDS.search(text):
        return None
    previous = previous_product_query(messages)
    named = named_types(text, catalog(messages))
    if previous is not None and not named and (_REFINE.search(text) or _ONE_OF_THOSE.search(text)):
        query = f"{previous} | {text}" if previous else text  # after "we don't carry that", a fresh search
        return Decision(tool=FIND_PRODUCTS, args={"query": query[:300]}, intent="product_question")
    if previous is not None and named:
        return Decision(tool=FIND_PRODUCTS, args={"query": text[:300]}, intent="product_question")
    asked = intent in (Intent.KNOWLEDGE_QUESTION, Intent.UNKNOWN, Intent.OUT_OF_SCOPE, Intent.RETURN_OR_EXCHANGE)
    if _SHOPPING.search(text) or (named and asked):
        return Decision(tool=FIND_PRODUCTS, args={"query": text[:300]}, intent="product_question")
    return None

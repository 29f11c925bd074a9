"""The offline model's first move in a turn, from what the customer just said: verify, act on an order, hand
over, search the catalogue or the help center, look an order up, or answer in a line."""

from __future__ import annotations

import re

from langchain_core.messages import AnyMessage

from threadline.agents import replies
from threadline.agents.decision import (
    CANNED,
    ELLIPTIC,
    KNOWLEDGE_INTENTS,
    NOT_UNDERSTOOD,
    SENTENCE,
    Decision,
    verify_args,
)
from threadline.agents.intents import (
    BOT_QUESTION,
    Classification,
    Intent,
    explicit_answer,
)
from threadline.agents.order_flow import action_step, orders_by_product
from threadline.agents.shopping import shopping_step
from threadline.agents.slots import Slots, extract_slots
from threadline.agents.transcript import (
    awaiting_verification,
    focus_order,
    last_ai_text,
    previous_knowledge_query,
    previous_result,
)
from threadline.core.tool_names import (
    CHANGE_SPEAKER,
    ESCALATE_TO_HUMAN,
    LOOKUP_ORDER,
    RECALL_CONTEXT,
    SEARCH_KNOWLEDGE,
    VERIFY_CUSTOMER,
)
from threadline.tools.results import OrdersFound

_OFFERED_PERSON = re.compile(
    r"\b(?:connect|pass|transfer|put|hand)\w*\b[^.?!]{0,40}\b(?:team member|member of our team|our team|a person|"
    r"someone)\b|\ba team member (?:can|will) help\b",
    re.I,
)
"""An offer of a person in the assistant's last reply: a plain yes to it hands the case over."""


_HELLO = re.compile(r"^\W*(?:h+e+l+o+|h+i+|he+y+|hiya|yo+|good (?:morning|afternoon|evening))\W*$", re.I)


_UNSURE = re.compile(r"\b(?:maybe|not sure|let me think|i'?ll think|hmm+|dunno|don'?t know)\b", re.I)


_WHERE_IS_MINE = re.compile(
    r"\bwhere(?:'s|s| is| are|'re)? (?:my|our)\b|\bmy [\w -]{0,30}\b(?:order|package|parcel|delivery|shipment)\b"
    r"(?! number)",
    re.I,
)


def first_step(messages: list[AnyMessage], text: str, classification: Classification) -> Decision:
    """The turn's first move, from what the customer just said."""
    intent, slots = classification.intent, extract_slots(text)
    focus = slots.order_ids[0] if slots.order_ids else focus_order(messages[:-1])
    verify = verify_args(slots, focus)
    if verify and (intent is Intent.VERIFICATION or awaiting_verification(messages)):
        return Decision(tool=VERIFY_CUSTOMER, args=verify, intent=Intent.VERIFICATION.value)
    if intent is Intent.SPEAKER_CHANGE:
        return Decision(tool=CHANGE_SPEAKER, intent=intent.value)
    acting = action_step(messages, text, slots, focus)
    if acting is not None:
        return acting
    if explicit_answer(text) == "yes" and offered_person(last_ai_text(messages[:-1])):
        args = {"reason": "The customer accepted the offer of a person.", "urgency": "normal"}
        return Decision(tool=ESCALATE_TO_HUMAN, args=args, intent=Intent.HUMAN_REQUEST.value)
    if _HELLO.match(text):
        return Decision(text=CANNED[Intent.GREETING], intent=Intent.GREETING.value)
    if intent is Intent.AFFIRM and _UNSURE.search(text):
        return Decision(text=replies.TAKE_YOUR_TIME, intent=Intent.AFFIRM.value)
    if BOT_QUESTION.search(text):
        return Decision(text=replies.AI_DISCLOSURE, intent=Intent.SMALLTALK.value)
    listed = _listed_order(messages, text, slots)
    if listed is not None:
        return listed
    shopping = shopping_step(messages, text, intent, slots)
    if shopping is not None:
        return shopping
    if _WHERE_IS_MINE.search(text) and intent not in (Intent.HUMAN_REQUEST, Intent.RECALL, Intent.CANCEL_ORDER):
        return Decision(tool=LOOKUP_ORDER, args={"order_id": focus} if focus else {}, intent=Intent.ORDER_STATUS.value)
    follow_up = _knowledge_follow_up(messages, text, intent, slots)
    if follow_up is not None:
        return follow_up
    if intent is Intent.OUT_OF_SCOPE and _STORE_MATTERS.search(text):  # "do yall take apple pay or klarna"
        return Decision(tool=SEARCH_KNOWLEDGE, args={"query": text[:300]}, intent=Intent.KNOWLEDGE_QUESTION.value)
    if intent in CANNED:
        return Decision(text=CANNED[intent], intent=intent.value)
    if intent is Intent.HUMAN_REQUEST:
        args = {"reason": "The customer asked to speak with a person.", "urgency": "normal"}
        return Decision(tool=ESCALATE_TO_HUMAN, args=args, intent=intent.value)
    if intent is Intent.ORDER_STATUS or (intent is Intent.UNKNOWN and slots.order_ids):
        return Decision(tool=LOOKUP_ORDER, args={"order_id": focus} if focus else {}, intent=intent.value)
    if intent is Intent.ORDER_HISTORY:
        return Decision(tool=LOOKUP_ORDER, args={}, intent=intent.value)
    if intent is Intent.RECALL:
        return Decision(tool=RECALL_CONTEXT, args={"query": text[:300]}, intent=intent.value)
    if intent is Intent.VERIFICATION:
        return Decision(text=replies.ASK_VERIFICATION, intent=intent.value)
    if intent in KNOWLEDGE_INTENTS or (intent is Intent.UNKNOWN and len(text.split()) >= 4):
        return Decision(tool=SEARCH_KNOWLEDGE, args={"query": text[:300]}, intent=intent.value)
    return Decision(text=NOT_UNDERSTOOD, understood=False, intent=Intent.UNKNOWN.value)


def _knowledge_follow_up(messages: list[AnyMessage], text: str, intent: Intent, slots: Slots) -> Decision | None:
    """A short follow-up to a knowledge answer ("and is it free?", "what if it already shipped tho") is searched
    with the subject (the article's title) of the answer it follows."""
    previous = previous_knowledge_query(messages)
    if previous is None or slots.order_ids or intent in (Intent.THANKS, Intent.GOODBYE, Intent.HUMAN_REQUEST):
        return None
    if not (ELLIPTIC.search(text) or len(text.split()) <= 5) or intent in (Intent.AFFIRM, Intent.DENY):
        return None
    joined = f"{text} {previous}"  # "and is it free? delivery"
    return Decision(tool=SEARCH_KNOWLEDGE, args={"query": joined[:300]}, intent=intent.value)


def offered_person(said: str) -> bool:
    """Whether the assistant's last reply offered a person: asked ("Would you like me to connect you with a member
    of our team?") or said a team member can take this request ("a team member can help with price drops").
    Saying it always can ("whenever you like", after "are you a bot?") is not an offer to say yes to."""
    return any(
        _OFFERED_PERSON.search(s) and (s.endswith("?") or "whenever" not in s) for s in SENTENCE.split(said.strip())
    )


_STORE_MATTERS = re.compile(
    r"\b(?:apple ?pay|google ?pay|klarna|afterpay|paypal|pay (?:with|by|in installments)|payment methods?|"
    r"(?:take|accept) (?:cards?|cash|checks?|amex|visa)|gift ?cards?|warrant\w*|guarantee|ship\w*|deliver\w*|"
    r"return\w*|refund\w*|exchange\w*|discount\w*|coupon\w*|promo codes?|"
    r"(?:stopped|not|isn'?t|won'?t|doesn'?t|does not) (?:working|turning on|turn on|charging|charge|work)|"
    r"defective|faulty)\b",
    re.I,
)
"""Words of a store matter: the classifier can take a payment or faulty-product question for a request from
another field (its out-of-scope examples include banking); the help center is asked instead."""


def _listed_order(messages: list[AnyMessage], text: str, slots: Slots) -> Decision | None:
    """Right after the assistant listed the customer's orders, a product named ("the speaker one") picks the order
    holding it, not a catalogue search."""
    shown = previous_result(messages)
    if slots.order_ids or not isinstance(shown, OrdersFound) or not shown.orders:
        return None
    named = orders_by_product(text, shown.orders)
    if len(named) != 1 or not named[0].order_id:
        return None
    return Decision(tool=LOOKUP_ORDER, args={"order_id": named[0].order_id}, intent=Intent.ORDER_STATUS.value)

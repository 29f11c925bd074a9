"""The offline model's decisions: classify the turn, pick the tool call an LLM would make, or answer.

It reads only the conversation (system, human, AI and tool messages), exactly what an LLM would see.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage, ToolMessage

from threadline.agents import language, replies
from threadline.agents.asks import split_asks
from threadline.agents.intents import (
    BOT_QUESTION,
    Classification,
    Intent,
    IntentClassifier,
    explicit_answer,
)
from threadline.agents.offline_actions import (
    cancel_reason,
    parse_address,
    pay_with,
    pick_alternative,
    pick_items,
    refund_to,
    wanted_action,
)
from threadline.agents.prompts import PRODUCTS_LINE
from threadline.agents.slots import Slots, extract_slots
from threadline.agents.typos import spelled
from threadline.core.catalog_search import named_types
from threadline.core.tool_names import (
    ACTION_TOOLS,
    CANCEL_ORDER,
    CHANGE_DEFAULT_ADDRESS,
    CHANGE_ORDER_ADDRESS,
    CHANGE_ORDER_ITEMS,
    CHANGE_ORDER_PAYMENT,
    CHANGE_SPEAKER,
    CONFIRM_ORDER_ACTION,
    ESCALATE_TO_HUMAN,
    EXCHANGE_ITEMS,
    FIND_PRODUCTS,
    LOOKUP_ORDER,
    ORDER_OPTIONS,
    RECALL_CONTEXT,
    RETURN_ITEMS,
    SEARCH_KNOWLEDGE,
    VERIFY_CUSTOMER,
    ToolName,
)
from threadline.tools.results import (
    ActionDeclined,
    ActionDone,
    ActionProposed,
    ActionRefused,
    KnowledgeResult,
    OrderNotFound,
    OrderOptions,
    OrdersFound,
    ProductsFound,
    RecallResult,
    SpeakerChanged,
    ToolResult,
    VerificationPassed,
    VerificationRequired,
    read_result,
)

_FOCUS_LINE = re.compile(r"^Order in focus: (#W\d{7})$", re.M)
_PRODUCTS_LINE = re.compile(rf"^{re.escape(PRODUCTS_LINE)}(.+)\.$", re.M)
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
_OFFERED_PERSON = re.compile(
    r"\b(?:connect|pass|transfer|put|hand)\w*\b[^.?!]{0,40}\b(?:team member|member of our team|our team|a person|"
    r"someone)\b|\ba team member (?:can|will) help\b",
    re.I,
)
"""An offer of a person in the assistant's last reply: a plain yes to it hands the case over."""
_ONE_OF_THOSE = re.compile(
    r"\b(?:the|a|an|that|this|those|these|one|ones|it|them|any(?:thing)?|same)\b[^.?!]{0,30}\b(?:one|ones|in|with|size|"
    r"colou?r|cheaper|available|stock|version)\b|\b(?:cheaper|bigger|smaller|lighter|longer|shorter)\b",
    re.I,
)
_OWN_ORDER = re.compile(
    r"\b(?:i|we|my (?:wife|husband|partner|son|daughter|mom|dad))\s+(?:bought|ordered|got|purchased|received)"
    r"|\bmy (?:order|package|delivery)\b|\bwhere(?:'s|s| is| are|'re)? (?:my|our)\b",
    re.I,
)
_CHANNEL_LINE = re.compile(r"^Channel: (\w+)", re.M)

CANNED = {
    Intent.GREETING: "Hi! How can I help you today? I can check orders, returns and exchanges, and store policies.",
    Intent.THANKS: "You're welcome! Is there anything else I can help you with?",
    Intent.GOODBYE: "Thanks for contacting us. Have a great day!",
    Intent.SMALLTALK: "I'm the store's virtual assistant. I can help with your orders, returns and exchanges, and "
    "questions about our policies.",
    Intent.OUT_OF_SCOPE: "Sorry, that's not something I can help with. I can help with your orders, returns and "
    "exchanges, and questions about our store's policies.",
    Intent.AFFIRM: "Great. Is there anything else I can help you with?",
    Intent.DENY: "No problem. Is there anything else I can help you with?",
}
NOT_UNDERSTOOD = "Sorry, I didn't quite understand. Could you tell me a bit more about what you need?"
KNOWLEDGE_INTENTS = {
    Intent.KNOWLEDGE_QUESTION,
    Intent.RETURN_OR_EXCHANGE,
    Intent.REFUND,
    Intent.CANCEL_ORDER,
    Intent.COMPLAINT,
}


@dataclass(frozen=True)
class Decision:
    """Either one tool call or a reply, with flags the graph's guard reads."""

    text: str = ""
    tool: ToolName | None = None
    args: dict[str, Any] = field(default_factory=dict)
    understood: bool = True
    intent: str | None = None
    confidence: float | None = None
    ask: int = 0
    """Which question of a message holding several this step works on (0: the message as a whole)."""


def _turn(messages: list[AnyMessage]) -> tuple[int, list[AnyMessage]]:
    last_human = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=-1)
    return last_human, messages[last_human + 1 :]


def _mentioned_order(message: AnyMessage) -> str | None:
    if isinstance(message, HumanMessage):
        found = extract_slots(message.text).order_ids
        return found[-1] if found else None
    if isinstance(message, AIMessage):
        ids = [call["args"].get("order_id") for call in message.tool_calls if call["name"] == LOOKUP_ORDER]
        return next((str(i) for i in reversed(ids) if i), None)
    if isinstance(message, ToolMessage):
        result = read_result(message)
        if isinstance(result, OrdersFound) and result.order is not None:
            return result.order.order_id or None
        if isinstance(result, OrderNotFound):
            return result.order_id or None
        return None
    focus = _FOCUS_LINE.search(message.text)  # the system prompt's "Order in focus" line, nothing else in it
    return focus.group(1) if focus else None


def focus_order(messages: list[AnyMessage]) -> str | None:
    """The order the conversation is about: the latest order number anyone mentioned since the person writing last
    changed (another person's orders are never theirs)."""
    changed = False
    for message in reversed(messages):
        if isinstance(message, ToolMessage) and message.name == CHANGE_SPEAKER:
            changed = True  # only the message that said so is still theirs
        elif changed and not isinstance(message, HumanMessage):
            continue
        if found := _mentioned_order(message):
            return found
        if changed and isinstance(message, HumanMessage):
            return None
    return None


def awaiting_verification(messages: list[AnyMessage]) -> bool:
    """Whether the last identity-related tool result asked for verification and none succeeded since."""
    for message in reversed(messages):
        if isinstance(message, ToolMessage):
            result = read_result(message)
            if message.name == VERIFY_CUSTOMER:
                return not isinstance(result, VerificationPassed)
            if isinstance(result, VerificationRequired | SpeakerChanged):
                return True
    return False


def _current_channel(messages: list[AnyMessage]) -> str | None:
    system = next((m for m in messages if isinstance(m, SystemMessage)), None)
    match = _CHANNEL_LINE.search(system.text) if system else None
    return match.group(1) if match else None


def _verify_args(slots: Slots, focus: str | None) -> dict[str, Any] | None:
    if slots.emails:
        args: dict[str, Any] = {"email": slots.emails[0]}
        order = slots.order_ids[0] if slots.order_ids else focus
        return {**args, "order_id": order} if order and slots.order_ids else args
    if slots.first_name and slots.last_name and slots.zip_codes:
        return {"first_name": slots.first_name, "last_name": slots.last_name, "zip": slots.zip_codes[0]}
    return None


def first_step(messages: list[AnyMessage], text: str, classification: Classification) -> Decision:
    """The turn's first move, from what the customer just said."""
    intent, slots = classification.intent, extract_slots(text)
    focus = slots.order_ids[0] if slots.order_ids else focus_order(messages[:-1])
    verify = _verify_args(slots, focus)
    if verify and (intent is Intent.VERIFICATION or awaiting_verification(messages)):
        return Decision(tool=VERIFY_CUSTOMER, args=verify, intent=Intent.VERIFICATION.value)
    if intent is Intent.SPEAKER_CHANGE:
        return Decision(tool=CHANGE_SPEAKER, intent=intent.value)
    acting = _action_step(messages, text, slots, focus)
    if acting is not None:
        return acting
    if explicit_answer(text) == "yes" and _offered_person(_last_ai_text(messages[:-1])):
        args = {"reason": "The customer accepted the offer of a person.", "urgency": "normal"}
        return Decision(tool=ESCALATE_TO_HUMAN, args=args, intent=Intent.HUMAN_REQUEST.value)
    if _HELLO.match(text):
        return Decision(text=CANNED[Intent.GREETING], intent=Intent.GREETING.value)
    if intent is Intent.AFFIRM and _UNSURE.search(text):
        return Decision(text=replies.TAKE_YOUR_TIME, intent=Intent.AFFIRM.value)
    if BOT_QUESTION.search(text):
        return Decision(text=replies.AI_DISCLOSURE, intent=Intent.SMALLTALK.value)
    shopping = _shopping_step(messages, text, intent, slots)
    if shopping is not None:
        return shopping
    if _WHERE_IS_MINE.search(text) and intent not in (Intent.HUMAN_REQUEST, Intent.RECALL, Intent.CANCEL_ORDER):
        return Decision(tool=LOOKUP_ORDER, args={"order_id": focus} if focus else {}, intent=Intent.ORDER_STATUS.value)
    follow_up = _knowledge_follow_up(messages, text, intent, slots)
    if follow_up is not None:
        return follow_up
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


def _catalog(messages: list[AnyMessage]) -> list[str]:
    system = next((m for m in messages if isinstance(m, SystemMessage)), None)
    match = _PRODUCTS_LINE.search(system.text) if system else None
    return [name.strip() for name in match.group(1).split(",")] if match else []


def _previous_result(messages: list[AnyMessage]) -> ToolResult | None:
    """The result of the last tool the assistant called before the customer's current message, if any."""
    last_human, _ = _turn(messages)
    tool = next((m for m in reversed(messages[:last_human]) if isinstance(m, ToolMessage)), None)
    return read_result(tool) if tool is not None else None


def _previous_product_query(messages: list[AnyMessage]) -> str | None:
    """The product search the assistant answered last turn, when that was the last thing it did ("" when it found
    we do not carry it)."""
    result = _previous_result(messages)
    if isinstance(result, ProductsFound):
        return result.query if result.status == "ok" else ""
    return None


NOT_SHOPPING = frozenset(
    {Intent.HUMAN_REQUEST, Intent.VERIFICATION, Intent.SPEAKER_CHANGE, Intent.RECALL, Intent.ORDER_HISTORY}
)
_SERVICE_WORDS = re.compile(
    r"\b(?:return|exchange|refund|cancel|order(?:ed|s)?|track(?:ing)?|deliver(?:y|ed)?|shipp(?:ed|ing)|package|"
    r"account|password|warranty|policy|polic(?:ies)|discount\w*|coupon\w*|promo\w*|price match\w*|sale|program\w*|"
    r"membership|rewards?|points|loyalty|subscription|app|gift ?cards?|gift wrap\w*|student|military|store hours|"
    r"broke|broken|burn(?:ed|t)?|hurt|injur\w*|person|human|agent)\b",
    re.I,
)


_HELLO = re.compile(r"^\W*(?:h+e+l+o+|h+i+|he+y+|hiya|yo+|good (?:morning|afternoon|evening))\W*$", re.I)
_UNSURE = re.compile(r"\b(?:maybe|not sure|let me think|i'?ll think|hmm+|dunno|don'?t know)\b", re.I)
_WHERE_IS_MINE = re.compile(
    r"\bwhere(?:'s|s| is| are|'re)? (?:my|our)\b|\bmy [\w -]{0,30}\b(?:order|package|parcel|delivery|shipment)\b"
    r"(?! number)",
    re.I,
)
_ELLIPTIC = re.compile(
    r"^\W*(?:and|also|what if|what about|how about|if|but|so|ok so|okay so|then|plus|even)\b|\b(?:then|tho|though)\W*$",
    re.I,
)


def _previous_knowledge_query(messages: list[AnyMessage]) -> str | None:
    """The subject of the question the assistant answered from the knowledge base last turn, when that was the last
    thing it did."""
    result = _previous_result(messages)
    if isinstance(result, KnowledgeResult) and result.status == "ok":
        return _subject(result.query, result.passages[0].title if result.passages else "")
    return None


def _plain(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def _previous_knowledge_title(messages: list[AnyMessage]) -> str | None:
    """The title of the article the assistant answered from in the previous turn, if it did."""
    result = _previous_result(messages)
    return result.passages[0].title if isinstance(result, KnowledgeResult) and result.passages else None


def _subject(question: str, title: str) -> str:
    """What an answered question was about, in a word or two: its words that the answering article's title uses
    ("how long does delivery take", "Shipping and delivery" → "delivery"), else the title's last word."""
    words = [w for w in re.findall(r"[a-z]+", title.lower()) if w not in ("and", "or", "the", "a", "an", "your")]
    said = set(re.findall(r"[a-z]+", question.lower()))
    shared = [w for w in words if w in said or w.rstrip("s") in said]
    return " ".join(shared) or (words[-1] if words else question)


def _knowledge_follow_up(messages: list[AnyMessage], text: str, intent: Intent, slots: Slots) -> Decision | None:
    """A short follow-up to a knowledge answer ("and is it free?", "what if it already shipped tho") is searched
    with the subject (the article's title) of the answer it follows."""
    previous = _previous_knowledge_query(messages)
    if previous is None or slots.order_ids or intent in (Intent.THANKS, Intent.GOODBYE, Intent.HUMAN_REQUEST):
        return None
    if not (_ELLIPTIC.search(text) or len(text.split()) <= 5) or intent in (Intent.AFFIRM, Intent.DENY):
        return None
    joined = f"{text} {previous}"  # "and is it free? delivery"
    return Decision(tool=SEARCH_KNOWLEDGE, args={"query": joined[:300]}, intent=intent.value)


def _shopping_step(messages: list[AnyMessage], text: str, intent: Intent, slots: Slots) -> Decision | None:
    """A question about what we sell goes to the product finder; a follow-up to its last answer ("what about one
    with adjustable arms?") carries the earlier criteria. The classifier learnt service requests, not shopping
    ("do you have a red speaker" sits near "exchange"), so a shopping question is read from its words."""
    if slots.order_ids or _OWN_ORDER.search(text) or intent in NOT_SHOPPING or _SERVICE_WORDS.search(text):
        return None
    previous = _previous_product_query(messages)
    named = named_types(text, _catalog(messages))
    if previous is not None and not named and (_REFINE.search(text) or _ONE_OF_THOSE.search(text)):
        query = f"{previous} | {text}" if previous else text  # after "we don't carry that", a fresh search
        return Decision(tool=FIND_PRODUCTS, args={"query": query[:300]}, intent="product_question")
    if previous is not None and named:
        return Decision(tool=FIND_PRODUCTS, args={"query": text[:300]}, intent="product_question")
    asked = intent in (Intent.KNOWLEDGE_QUESTION, Intent.UNKNOWN, Intent.OUT_OF_SCOPE, Intent.RETURN_OR_EXCHANGE)
    if _SHOPPING.search(text) or (named and asked):
        return Decision(tool=FIND_PRODUCTS, args={"query": text[:300]}, intent="product_question")
    return None


_RETRIED_AFTER_VERIFYING: dict[str, ToolName] = {LOOKUP_ORDER: LOOKUP_ORDER, RECALL_CONTEXT: RECALL_CONTEXT}


def _orders_by_product(request: str, history: list[Any]) -> list[Any]:
    """The customer's own orders holding a product the request names ("the grill I ordered"), newest first."""
    names = sorted({item for order in history for item in order.items})
    wanted = set(named_types(request, names))
    return [order for order in history if wanted & set(order.items)] if wanted else []


def _offered_person(said: str) -> bool:
    """Whether the assistant's last reply offered a person: asked ("Would you like me to connect you with a member
    of our team?") or said a team member can take this request ("a team member can help with price drops").
    Saying it always can ("whenever you like", after "are you a bot?") is not an offer to say yes to."""
    return any(
        _OFFERED_PERSON.search(s) and (s.endswith("?") or "whenever" not in s) for s in _SENTENCE.split(said.strip())
    )


def _call_waiting_for_verification(messages: list[AnyMessage]) -> tuple[ToolName, dict[str, Any]] | None:
    """The latest tool call that was refused for want of verification, when no other request came after it (the
    customer's messages since only verified them)."""
    calls = {c["id"]: c for m in messages if isinstance(m, AIMessage) for c in m.tool_calls}
    for message in reversed(messages[:-1]):
        if not isinstance(message, ToolMessage):
            continue
        if message.name == VERIFY_CUSTOMER:
            continue
        result = read_result(message)
        if isinstance(result, VerificationRequired):
            call = calls.get(message.tool_call_id)
            if call is not None and call["name"] in _RETRIED_AFTER_VERIFYING:
                return _RETRIED_AFTER_VERIFYING[call["name"]], dict(call["args"])
        return None
    return None


def _last_ai_text(messages: list[AnyMessage]) -> str:
    reply = next((m for m in reversed(messages) if isinstance(m, AIMessage) and not m.tool_calls), None)
    return reply.text if reply else ""


def _last_order(messages: list[AnyMessage]) -> dict[str, Any] | None:
    """The latest single order a lookup showed in this conversation (its items carry their ids)."""
    for message in reversed(messages):
        if isinstance(message, ToolMessage) and message.name == CHANGE_SPEAKER:
            return None
        result = read_result(message) if isinstance(message, ToolMessage) else None
        if isinstance(result, OrdersFound) and result.order is not None:
            return result.order.payload()
    return None


def _action_step(messages: list[AnyMessage], text: str, slots: Slots, focus: str | None) -> Decision | None:
    """A request to cancel, return or exchange, or the answer to a question asked about one."""
    asked = _last_ai_text(messages[:-1])
    if focus and asked.startswith(replies.ASK_CANCEL_REASON_START) and (reason := cancel_reason(text)):
        return Decision(tool=CANCEL_ORDER, args={"order_id": focus, "reason": reason}, intent="cancel_order")
    if focus and asked.startswith(replies.ASK_WHICH_ITEMS_START):
        order = _last_order(messages)
        chosen = pick_items(text, order["items"]) if order else None
        if chosen and "exchange" in asked:
            return Decision(tool=ORDER_OPTIONS, args={"order_id": focus}, intent="return_or_exchange")
        if chosen:
            args = {"order_id": focus, "item_ids": chosen, "refund_to": refund_to(text)}
            return Decision(tool=RETURN_ITEMS, args=args, intent="return_or_exchange")
    kind = wanted_action(text, slots, focus)
    order_id = slots.order_ids[0] if slots.order_ids else focus
    if order_id is None and _OWN_ORDER.search(text):
        by_product = wanted_action(text, slots, "the order they name by its product")
        if by_product in ("return", "exchange", "cancel"):  # "the thermostat I got": find it among their orders
            return Decision(tool=LOOKUP_ORDER, args={}, intent="return_or_exchange")
    if kind == "default_address":
        address = parse_address(text) or {}
        return Decision(tool=CHANGE_DEFAULT_ADDRESS, args=address, intent="change_address")
    if kind is None or order_id is None:
        return None
    if kind == "address":
        address = parse_address(text) or {}
        return Decision(tool=CHANGE_ORDER_ADDRESS, args={"order_id": order_id, **address}, intent="change_address")
    if kind == "payment":
        args = {"order_id": order_id, "pay_with": pay_with(text) or ""}
        return Decision(tool=CHANGE_ORDER_PAYMENT, args=args, intent="change_payment")
    if kind == "cancel":  # without a reason the tool checks the order first, then asks for one
        args = {"order_id": order_id, "reason": cancel_reason(text) or ""}
        return Decision(tool=CANCEL_ORDER, args=args, intent="cancel_order")
    return Decision(tool=LOOKUP_ORDER, args={"order_id": order_id}, intent="return_or_exchange")


def _request_text(messages: list[AnyMessage], question: str) -> str:
    """The text that asked for the order change this turn works on: this turn's, or (right after verifying) the
    request that was waiting for it, or the request an item question was about."""
    if wanted_action(question, extract_slots(question), "focus"):
        return question
    for i in range(len(messages) - 1, 0, -1):
        message = messages[i]
        said = message.text if isinstance(message, AIMessage) and not message.tool_calls else ""
        if said == replies.ASK_VERIFICATION or said.startswith(
            (replies.ASK_WHICH_ITEMS_START, replies.ASK_CANCEL_REASON_START)
        ):
            earlier = next((m for m in reversed(messages[:i]) if isinstance(m, HumanMessage)), None)
            if earlier is not None and wanted_action(earlier.text, extract_slots(earlier.text), "focus"):
                return f"{earlier.text} {question}"
            return question
    return question


def _after_lookup_for_action(messages: list[AnyMessage], question: str, found: OrdersFound) -> Decision | None:
    """After a lookup made for a return or an exchange: the items, then the proposal (or the options first)."""
    request = _request_text(messages, question)
    order = found.order
    kind = wanted_action(request, extract_slots(request), order.order_id if order else None)
    if order is not None and kind == "cancel" and request != question:  # found by its product after verifying
        cancel = {"order_id": order.order_id, "reason": cancel_reason(request) or ""}
        return Decision(tool=CANCEL_ORDER, args=cancel, intent="cancel_order")
    if order is None or kind not in ("return", "exchange"):
        return None
    items = [i.payload() for i in order.items]
    chosen = pick_items(request, items)
    verb = "return" if kind == "return" else "exchange"
    if not chosen:
        return Decision(text=replies.ask_which_items(order.order_id, [i.name for i in order.items], verb))
    if kind == "exchange":
        return Decision(tool=ORDER_OPTIONS, args={"order_id": order.order_id})
    args = {"order_id": order.order_id, "item_ids": chosen, "refund_to": refund_to(request)}
    return Decision(tool=RETURN_ITEMS, args=args)


def _after_options(messages: list[AnyMessage], question: str, options: OrderOptions) -> Decision:
    """An exchange: the items the customer named together with an option they asked for ("swap the boots for a
    size 8"); an item named for another reason ("and when does the bottle refund come") is left as it is, and the
    summary read back before the yes lists exactly what changes. Otherwise the question which item, or which
    option."""
    request = _request_text(messages, question)
    items = [i.payload() for i in options.items]
    named = [i for i in items if i["item_id"] in (pick_items(request, items) or [])]
    swaps = [(item, new) for item in named if (new := pick_alternative(request, item)) is not None]
    if not swaps and named:
        item = named[0]
        shown = [
            ", ".join(f"{k} {v}" for k, v in a["options"].items() if item["options"].get(k) != v)
            for a in item.get("alternatives", [])
        ]
        return Decision(text=replies.ask_which_option(item["name"], shown))
    if not swaps:
        return Decision(text=replies.ask_which_items(options.order_id, [i["name"] for i in items], "exchange"))
    args = {
        "order_id": options.order_id,
        "item_ids": [item["item_id"] for item, _ in swaps],
        "new_item_ids": [new for _, new in swaps],
        "pay_with": refund_to(request),
    }
    # Not shipped yet: the items of a pending order are changed in place rather than exchanged after delivery.
    tool: ToolName = CHANGE_ORDER_ITEMS if options.order_status == "pending" else EXCHANGE_ITEMS
    return Decision(tool=tool, args=args)


def open_topic(recalled: RecallResult) -> dict[str, Any] | None:
    """The question to pick up from a recall: the latest store question of the most relevant episode (one
    still unanswered first), when that episode was about questions rather than orders (or only its topics
    may be shown)."""
    if not recalled.episodes:
        return None
    first = recalled.episodes[0]
    topics = first.get("topics") or []
    if not topics or (first.get("orders") and recalled.disclosure == "full"):
        return None
    unanswered = [t for t in topics if not t.get("answered")]
    topic: dict[str, Any] = (unanswered or topics)[-1]
    return topic


def _recalled_topic(messages: list[AnyMessage]) -> dict[str, Any] | None:
    """The earlier question this turn is following up, when it began with a recall."""
    _, after = _turn(messages)
    recalls = [m for m in after if isinstance(m, ToolMessage) and m.name == RECALL_CONTEXT]
    recalled = read_result(recalls[0]) if recalls else None
    return open_topic(recalled) if isinstance(recalled, RecallResult) else None


def after_tool(messages: list[AnyMessage], question: str, message: ToolMessage) -> Decision:
    """The next move once a tool has answered: another call, or a reply grounded in the result."""
    result = read_result(message)
    if isinstance(result, VerificationRequired):
        return Decision(text=replies.ASK_VERIFICATION)
    if message.name in ACTION_TOOLS:
        if isinstance(result, ActionProposed):
            return Decision(text=replies.proposal_question(result.summary, _current_channel(messages)))
        refused = result.message if isinstance(result, ActionRefused) else "I couldn't set that up just now."
        return Decision(text=refused if refused.endswith("?") else f"{refused} Is there anything else I can help with?")
    if message.name == CONFIRM_ORDER_ACTION:
        if isinstance(result, ActionDone):
            return Decision(text=f"Done! {result.summary} {result.next_steps} Is there anything else I can help with?")
        if isinstance(result, ActionDeclined):
            return Decision(text=replies.DECLINED)
        refused = result.message if isinstance(result, ActionRefused) else "I couldn't do that just now."
        return Decision(text=refused)
    if message.name == ORDER_OPTIONS:
        if isinstance(result, OrderOptions):
            return _after_options(messages, question, result)
        return Decision(text="I couldn't find that order on your account. Could you check the number?")
    if message.name == LOOKUP_ORDER:
        if isinstance(result, OrdersFound) and (acting := _after_lookup_for_action(messages, question, result)):
            return acting
        if isinstance(result, OrderNotFound):
            return Decision(
                text=f"I couldn't find order {result.order_id} on your account. Could you check the number?"
            )
        if isinstance(result, OrdersFound) and result.order is not None:
            return Decision(text=replies.order_reply(result.order.payload()))
        history = result.orders or [] if isinstance(result, OrdersFound) else []
        if len(history) == 1 and history[0].order_id:  # their only order: its status and tracking, not a list
            return Decision(tool=LOOKUP_ORDER, args={"order_id": history[0].order_id})
        named = _orders_by_product(_request_text(messages, question), history)
        if len(named) == 1:  # "the thermostat I got": their own order that holds it
            return Decision(tool=LOOKUP_ORDER, args={"order_id": named[0].order_id})
        if len(named) > 1:
            return Decision(text=replies.which_order([o.payload() for o in named]))
        return Decision(text=replies.history_reply([o.payload() for o in history]))
    if message.name == VERIFY_CUSTOMER:
        if not isinstance(result, VerificationPassed):
            return Decision(text=replies.VERIFICATION_FAILED)
        focus = focus_order(messages)
        request = _request_text(messages, question)
        if focus and request != question and wanted_action(request, extract_slots(request), focus) == "cancel":
            resumed = _action_step(messages, request, extract_slots(request), focus)
            if resumed is not None:
                return resumed
        waiting = _call_waiting_for_verification(messages)
        if waiting is not None:  # the request that needed verification is answered now, without asking again
            return Decision(tool=waiting[0], args=waiting[1])
        if focus:
            return Decision(tool=LOOKUP_ORDER, args={"order_id": focus})
        return Decision(text=f"Thanks{', ' + result.name if result.name else ''}, you're verified. How can I help?")
    if message.name == CHANGE_SPEAKER:
        if not isinstance(result, SpeakerChanged):
            return Decision(text=replies.SPEAKER_SIGNED_IN)
        slots = extract_slots(question)
        verify = _verify_args(slots, None)
        if verify:
            return Decision(tool=VERIFY_CUSTOMER, args=verify)
        return Decision(text=replies.SPEAKER_CHANGED)
    if message.name == FIND_PRODUCTS:
        if isinstance(result, ProductsFound):
            return Decision(text=replies.products_reply(result.payload(), _current_channel(messages)))
        return Decision(text=replies.DONT_KNOW, understood=False)
    if message.name == SEARCH_KNOWLEDGE:
        found = result if isinstance(result, KnowledgeResult) else None
        passages = [p.payload() for p in found.passages] if found else []
        earlier = _recalled_topic(messages)
        if earlier is not None:  # picking up an earlier question: say so, then give today's answer
            return Decision(text=replies.followup_reply(earlier, passages, _current_channel(messages)))
        last_human, _ = _turn(messages)
        said_before = _last_ai_text(messages[:last_human])
        asked_before = next((m.text for m in reversed(messages[:last_human]) if isinstance(m, HumanMessage)), "")
        if _plain(asked_before) != _plain(question):  # the same question again gets the same answer (and a person)
            fresh = [p for p in passages if not (said_before and replies.passage_answer(p)[1] in said_before)]
            passages = fresh or passages  # a follow-up ("and is it free?") wants more than the answer just given
        subject = _previous_knowledge_title(messages)
        if subject and (_ELLIPTIC.search(question) or len(question.split()) <= 8):
            same = [p for p in passages if p["title"] == subject]
            passages = same + [p for p in passages if p["title"] != subject]  # the subject it follows first
        if found is None or found.status != "ok" or replies.knowledge_answer(question, passages) is None:
            return Decision(text=replies.DONT_KNOW, understood=False)
        return Decision(text=replies.knowledge_reply(question, passages, _current_channel(messages)))
    if message.name == RECALL_CONTEXT:
        recalled = result if isinstance(result, RecallResult) else None
        topic = open_topic(recalled) if recalled else None
        if topic is not None:
            return Decision(tool=SEARCH_KNOWLEDGE, args={"query": topic["question"]})
        return Decision(text=replies.recall_reply(recalled.episodes if recalled else [], _current_channel(messages)))
    if message.name == ESCALATE_TO_HUMAN:
        return Decision(text="I've passed your conversation to a member of our team. They'll reply to you here.")
    return Decision(text="Is there anything else I can help you with?")


def decide(messages: list[AnyMessage], classifier: IntentClassifier) -> Decision:
    """The next step of the turn the conversation is in. A message holding several questions is answered in turn:
    the message as a whole first, then each further question the store's information or catalogue answers."""
    last_human, after = _turn(messages)
    if last_human < 0:
        return Decision(text=CANNED[Intent.GREETING])
    question = spelled(messages[last_human].text)
    lang = language.customer_language([m.text for m in messages if isinstance(m, HumanMessage)])
    if lang != "en":
        return _decide_in(lang, messages, question, after)
    asks = split_asks(question)
    if len(asks) < 2:
        return _decide_one(messages, question, after, classifier)
    return _decide_asks(messages, last_human, asks, classifier)


def _decide_in(lang: str, messages: list[AnyMessage], question: str, after: list[AnyMessage]) -> Decision:
    """The core flows in Spanish and French (verification, order status, a person); anything else, and any other
    language, goes to a person, with the language in the packet."""
    name = language.NAMES.get(lang, lang)
    to_person = {
        "reason": f"The customer writes in {name}; a team member who reads {name} should answer.",
        "urgency": "normal",
    }
    results = [m for m in after if isinstance(m, ToolMessage)]
    if lang not in language.SUPPORTED:  # no replies held in that language: a person answers, whatever it was
        if results and results[-1].name == ESCALATE_TO_HUMAN:
            return Decision(text=replies.HANDOFF_DEFAULT)
        return Decision(tool=ESCALATE_TO_HUMAN, args=to_person, intent=Intent.UNKNOWN.value)
    if not results and language.NOT_ME.search(question):  # "no soy Ana, soy su esposo": nothing of hers is theirs
        return Decision(tool=CHANGE_SPEAKER, intent=Intent.SPEAKER_CHANGE.value)
    if not results:
        slots = extract_slots(question)
        focus = slots.order_ids[0] if slots.order_ids else focus_order(messages[:-1])
        verify = _verify_args(slots, focus)
        if verify and awaiting_verification(messages):
            return Decision(tool=VERIFY_CUSTOMER, args=verify, intent=Intent.VERIFICATION.value)
        if language.PERSON_WORDS.search(question):
            asked = {"reason": f"The customer asked for a person, in {name}.", "urgency": "normal"}
            return Decision(tool=ESCALATE_TO_HUMAN, args=asked, intent=Intent.HUMAN_REQUEST.value)
        if lang not in language.SUPPORTED:
            return Decision(tool=ESCALATE_TO_HUMAN, args=to_person, intent=Intent.UNKNOWN.value)
        if language.GREETING_WORDS.match(question):
            return Decision(text=language.text(lang, "greeting") or "", intent=Intent.GREETING.value)
        if language.THANKS_WORDS.match(question):
            return Decision(text=language.text(lang, "thanks") or "", intent=Intent.THANKS.value)
        if language.ORDER_WORDS.search(question) or slots.order_ids:
            args = {"order_id": focus} if focus else {}
            return Decision(tool=LOOKUP_ORDER, args=args, intent=Intent.ORDER_STATUS.value)
        return Decision(tool=ESCALATE_TO_HUMAN, args=to_person, intent=Intent.UNKNOWN.value)
    message = results[-1]
    result = read_result(message)
    if message.name == CHANGE_SPEAKER:
        if not isinstance(result, SpeakerChanged):
            return Decision(tool=ESCALATE_TO_HUMAN, args=to_person)
        return Decision(text=language.text(lang, "ask_verification") or replies.ASK_VERIFICATION)
    if isinstance(result, VerificationRequired):
        return Decision(text=language.text(lang, "ask_verification") or replies.ASK_VERIFICATION)
    if message.name == VERIFY_CUSTOMER:
        if not isinstance(result, VerificationPassed):
            return Decision(text=language.text(lang, "verification_failed") or replies.VERIFICATION_FAILED)
        waiting = _call_waiting_for_verification(messages)
        if waiting is not None:
            return Decision(tool=waiting[0], args=waiting[1])
        focus = focus_order(messages)
        return Decision(tool=LOOKUP_ORDER, args={"order_id": focus} if focus else {})
    if message.name == LOOKUP_ORDER:
        if isinstance(result, OrderNotFound):
            return Decision(text=language.text(lang, "not_found", order_id=result.order_id) or replies.HANDOFF_DEFAULT)
        if isinstance(result, OrdersFound) and result.order is not None:
            return Decision(text=language.order_reply(lang, result.order.payload()))
        history = result.orders or [] if isinstance(result, OrdersFound) else []
        if len(history) == 1 and history[0].order_id:
            return Decision(tool=LOOKUP_ORDER, args={"order_id": history[0].order_id})
        return Decision(text=language.history_reply(lang, [o.payload() for o in history]))
    if message.name == ESCALATE_TO_HUMAN:
        return Decision(text=language.text(lang, "handoff") or "")
    return Decision(tool=ESCALATE_TO_HUMAN, args=to_person)


def _decide_one(
    messages: list[AnyMessage],
    question: str,
    after: list[AnyMessage],
    classifier: IntentClassifier,
    query: str | None = None,
) -> Decision:
    results = [m for m in after if isinstance(m, ToolMessage)]
    if not results:
        classification = classifier.classify(question)
        decision = first_step(messages, question, classification)
        if query is not None and decision.tool == SEARCH_KNOWLEDGE:
            decision = replace(decision, args={"query": query[:300]})
        return replace(decision, confidence=round(float(classification.confidence), 3))
    return after_tool(messages, question, results[-1])


_ASK_FOLLOWS = frozenset(
    {LOOKUP_ORDER, SEARCH_KNOWLEDGE, FIND_PRODUCTS, RECALL_CONTEXT, VERIFY_CUSTOMER, ORDER_OPTIONS}
)
"""After these, the other questions of the message are answered too; after a hand-off, a speaker change or a
proposal waiting for a yes, they are not."""
_CLOSERS = re.compile(
    r"\s*(?:Is there anything else I can help (?:you )?with\?|Would you like anything else\?|Anything else I can help "
    r"(?:you )?with\?)\s*$"
)


_SENTENCE = re.compile(r"(?<=[.!?])\s+")
MAX_TURN_CALLS = 5
"""Tool calls a turn may make before further questions are left unanswered: the graph stops a turn after six
model steps (`graphs.support.MAX_STEPS`), and the last step must be the reply."""


def _ask_of(message: AnyMessage) -> int:
    meta = message.additional_kwargs.get("threadline") if isinstance(message, AIMessage) else None
    return int((meta or {}).get("ask", 0))


def _decide_asks(
    messages: list[AnyMessage], last_human: int, asks: list[str], classifier: IntentClassifier
) -> Decision:
    """Steps tagged `ask` = n + 1 work on `asks[n]`; untagged steps work on the message as a whole."""
    after = messages[last_human + 1 :]
    starts = {_ask_of(m): i for i, m in reversed(list(enumerate(after))) if isinstance(m, AIMessage) and _ask_of(m)}
    primary_end = min(starts.values(), default=len(after))
    question = spelled(messages[last_human].text)
    base = messages[: last_human + 1]
    primary = _decide_one(base + after[:primary_end], question, after[:primary_end], classifier, query=asks[0])
    if primary.tool == SEARCH_KNOWLEDGE and not after:  # the first question picks its own tool (a product search,
        primary = _further_question(messages[:last_human], asks[0], classifier, None) or primary  # say)
    if primary.tool and not starts:
        return primary
    tools = {m.name for m in after[:primary_end] if isinstance(m, ToolMessage)}
    proposed = any(isinstance(read_result(m), ActionProposed) for m in after if isinstance(m, ToolMessage))
    if not tools <= _ASK_FOLLOWS or proposed or primary.tool:
        return primary
    answers: dict[int, str] = {}
    for tag, start in sorted(starts.items()):
        ends = [s for s in starts.values() if s > start]
        segment = after[start : min(ends, default=len(after))]
        results = [m for m in segment if isinstance(m, ToolMessage)]
        if not results:
            return replace(_decide_one(base + segment, asks[tag - 1], segment, classifier), ask=tag)
        answer = after_tool(base + segment, asks[tag - 1], results[-1])
        if answer.tool:
            return replace(answer, ask=tag)
        answers[tag] = answer.text
    first = 1 if _first_intent(after[:primary_end]) == SEARCH_KNOWLEDGE else 0
    shopping = _first_intent(after[:primary_end]) == FIND_PRODUCTS
    calls = sum(len(m.tool_calls) for m in after if isinstance(m, AIMessage))
    for index in range(max(max(answers, default=0), first), len(asks)):
        if calls >= MAX_TURN_CALLS:
            break  # answer what is there rather than run out of steps and answer nothing
        if shopping and not _SERVICE_WORDS.search(asks[index]):
            continue  # "is there one in stock, and how much is it?" was the product search itself
        step = _further_question(messages[:last_human], asks[index], classifier, None)
        if step is not None:
            return replace(step, ask=index + 1)
    return _together(primary, [answers[a] for a in sorted(answers)], _current_channel(messages))


def _first_intent(after: list[AnyMessage]) -> str | None:
    call = next((c for m in after if isinstance(m, AIMessage) for c in m.tool_calls), None)
    return str(call["name"]) if call else None


def _further_question(
    earlier: list[AnyMessage], ask: str, classifier: IntentClassifier, handled: str | None
) -> Decision | None:
    """The search that answers one more question of the message, when the store's information or catalogue can:
    questions about the customer's own orders are left to the turn as a whole (it answered the first)."""
    slots = extract_slots(ask)
    if slots.order_ids or _OWN_ORDER.search(ask):
        return None
    classification = classifier.classify(ask)
    if classification.intent in (
        Intent.GREETING,
        Intent.THANKS,
        Intent.GOODBYE,
        Intent.HUMAN_REQUEST,
        Intent.SMALLTALK,
        Intent.AFFIRM,
        Intent.DENY,
    ):
        return None
    shopping = _shopping_step(earlier, ask, classification.intent, slots)
    if shopping is not None:
        return shopping
    return Decision(tool=SEARCH_KNOWLEDGE, args={"query": ask[:300]}, intent=classification.intent.value)


def _together(primary: Decision, answers: list[str], channel: str | None) -> Decision:
    """The turn's answer and the answers to the further questions, as one reply; a question back to the customer
    (verify first, which order?) comes last."""
    if not answers:
        return primary
    parts = [primary.text] if primary.understood and primary.text else []
    asking = bool(parts) and parts[0].rstrip().endswith("?") and primary.tool is None
    ordered = [*answers, *parts] if asking else [*parts, *answers]
    ordered = [_CLOSERS.sub("", p).strip() if i < len(ordered) - 1 else p for i, p in enumerate(ordered)]
    if channel == "sms":  # two segments for everything: the first sentence of every answer
        ordered = [_SENTENCE.split(replies.CITATION.sub("", p).strip())[0] for p in ordered]
    joiner = "\n\n" if channel in ("web", "email", None) else " "
    return replace(primary, text=joiner.join(p for p in ordered if p), understood=True)

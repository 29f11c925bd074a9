"""Reading the conversation as the offline model sees it (system, human, AI and tool messages): the current turn,
the order in focus, what the assistant did last, what waits for verification."""

from __future__ import annotations

import re
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage, ToolMessage

from threadline.agents.prompts import PRODUCTS_LINE
from threadline.agents.slots import extract_slots
from threadline.core.tool_names import (
    CHANGE_SPEAKER,
    LOOKUP_ORDER,
    RECALL_CONTEXT,
    VERIFY_CUSTOMER,
    ToolName,
)
from threadline.tools.results import (
    KnowledgeResult,
    OrderNotFound,
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


_CHANNEL_LINE = re.compile(r"^Channel: (\w+)", re.M)


def current_turn(messages: list[AnyMessage]) -> tuple[int, list[AnyMessage]]:
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


def current_channel(messages: list[AnyMessage]) -> str | None:
    system = next((m for m in messages if isinstance(m, SystemMessage)), None)
    match = _CHANNEL_LINE.search(system.text) if system else None
    return match.group(1) if match else None


def catalog(messages: list[AnyMessage]) -> list[str]:
    system = next((m for m in messages if isinstance(m, SystemMessage)), None)
    match = _PRODUCTS_LINE.search(system.text) if system else None
    return [name.strip() for name in match.group(1).split(",")] if match else []


def previous_result(messages: list[AnyMessage]) -> ToolResult | None:
    """The result of the last tool the assistant called before the customer's current message, if any."""
    last_human, _ = current_turn(messages)
    tool = next((m for m in reversed(messages[:last_human]) if isinstance(m, ToolMessage)), None)
    return read_result(tool) if tool is not None else None


def previous_product_query(messages: list[AnyMessage]) -> str | None:
    """The product search the assistant answered last turn, when that was the last thing it did ("" when it found
    we do not carry it)."""
    result = previous_result(messages)
    if isinstance(result, ProductsFound):
        return result.query if result.status == "ok" else ""
    return None


def previous_knowledge_query(messages: list[AnyMessage]) -> str | None:
    """The subject of the question the assistant answered from the knowledge base last turn, when that was the last
    thing it did."""
    result = previous_result(messages)
    if isinstance(result, KnowledgeResult) and result.status == "ok":
        return _subject(result.query, result.passages[0].title if result.passages else "")
    return None


def plain(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def previous_knowledge_title(messages: list[AnyMessage]) -> str | None:
    """The title of the article the assistant answered from in the previous turn, if it did."""
    result = previous_result(messages)
    return result.passages[0].title if isinstance(result, KnowledgeResult) and result.passages else None


def _subject(question: str, title: str) -> str:
    """What an answered question was about, in a word or two: its words that the answering article's title uses
    ("how long does delivery take", "Shipping and delivery" → "delivery"), else the title's last word."""
    words = [w for w in re.findall(r"[a-z]+", title.lower()) if w not in ("and", "or", "the", "a", "an", "your")]
    said = set(re.findall(r"[a-z]+", question.lower()))
    shared = [w for w in words if w in said or w.rstrip("s") in said]
    return " ".join(shared) or (words[-1] if words else question)


def last_ai_text(messages: list[AnyMessage]) -> str:
    reply = next((m for m in reversed(messages) if isinstance(m, AIMessage) and not m.tool_calls), None)
    return reply.text if reply else ""


def last_order(messages: list[AnyMessage]) -> dict[str, Any] | None:
    """The latest single order a lookup showed in this conversation (its items carry their ids)."""
    for message in reversed(messages):
        if isinstance(message, ToolMessage) and message.name == CHANGE_SPEAKER:
            return None
        result = read_result(message) if isinstance(message, ToolMessage) else None
        if isinstance(result, OrdersFound) and result.order is not None:
            return result.order.payload()
    return None


_RETRIED_AFTER_VERIFYING: dict[str, ToolName] = {LOOKUP_ORDER: LOOKUP_ORDER, RECALL_CONTEXT: RECALL_CONTEXT}


def call_waiting_for_verification(messages: list[AnyMessage]) -> tuple[ToolName, dict[str, Any]] | None:
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


def recalled_topic(messages: list[AnyMessage]) -> dict[str, Any] | None:
    """The earlier question this turn is following up, when it began with a recall."""
    _, after = current_turn(messages)
    recalls = [m for m in after if isinstance(m, ToolMessage) and m.name == RECALL_CONTEXT]
    recalled = read_result(recalls[0]) if recalls else None
    return open_topic(recalled) if isinstance(recalled, RecallResult) else None

"""The offline model in Spanish and French: the core flows (verification, order status, a person); anything else,
and any other language, goes to a person with the language in the packet."""

from __future__ import annotations

from langchain_core.messages import AnyMessage, ToolMessage

from threadline.agents import language, replies
from threadline.agents.decision import Decision, verify_args
from threadline.agents.intents import (
    Intent,
)
from threadline.agents.slots import extract_slots
from threadline.agents.transcript import awaiting_verification, call_waiting_for_verification, focus_order
from threadline.core.tool_names import (
    CHANGE_SPEAKER,
    ESCALATE_TO_HUMAN,
    LOOKUP_ORDER,
    VERIFY_CUSTOMER,
)
from threadline.tools.results import (
    OrderNotFound,
    OrdersFound,
    SpeakerChanged,
    VerificationPassed,
    VerificationRequired,
    read_result,
)


def decide_in(lang: str, messages: list[AnyMessage], question: str, after: list[AnyMessage]) -> Decision:
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
        verify = verify_args(slots, focus)
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
        waiting = call_waiting_for_verification(messages)
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

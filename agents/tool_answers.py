"""The offline model's move once a tool has answered: another call, or a reply grounded in the result."""

from __future__ import annotations

from langchain_core.messages import AnyMessage, HumanMessage, ToolMessage

from threadline.agents import replies
from threadline.agents.decision import (
    ELLIPTIC,
    Decision,
    verify_args,
)
from threadline.agents.offline_actions import (
    wanted_action,
)
from threadline.agents.order_flow import (
    action_step,
    after_lookup_for_action,
    after_options,
    orders_by_product,
    request_text,
)
from threadline.agents.slots import extract_slots
from threadline.agents.transcript import (
    call_waiting_for_verification,
    current_channel,
    current_turn,
    focus_order,
    last_ai_text,
    open_topic,
    plain,
    previous_knowledge_title,
    recalled_topic,
)
from threadline.core.tool_names import (
    ACTION_TOOLS,
    CHANGE_SPEAKER,
    CONFIRM_ORDER_ACTION,
    ESCALATE_TO_HUMAN,
    FIND_PRODUCTS,
    LOOKUP_ORDER,
    ORDER_OPTIONS,
    RECALL_CONTEXT,
    SEARCH_KNOWLEDGE,
    VERIFY_CUSTOMER,
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
    VerificationPassed,
    VerificationRequired,
    read_result,
)

VERIFIED = "verified"
"""The intent of the reply to a verification with nothing else to do: `offline_policy` answers the rest of the
message instead when there is one ("anya@example.com - where's my kettle?")."""


def after_tool(messages: list[AnyMessage], question: str, message: ToolMessage) -> Decision:
    """The next move once a tool has answered: another call, or a reply grounded in the result."""
    result = read_result(message)
    if isinstance(result, VerificationRequired):
        return Decision(text=replies.ASK_VERIFICATION)
    if message.name in ACTION_TOOLS:
        if isinstance(result, ActionProposed):
            return Decision(text=replies.proposal_question(result.summary, current_channel(messages)))
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
            return after_options(messages, question, result)
        return Decision(text="I couldn't find that order on your account. Could you check the number?")
    if message.name == LOOKUP_ORDER:
        if isinstance(result, OrdersFound) and (acting := after_lookup_for_action(messages, question, result)):
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
        named = orders_by_product(request_text(messages, question), history)
        if len(named) == 1:  # "the thermostat I got": their own order that holds it
            return Decision(tool=LOOKUP_ORDER, args={"order_id": named[0].order_id})
        if len(named) > 1:
            return Decision(text=replies.which_order([o.payload() for o in named]))
        return Decision(text=replies.history_reply([o.payload() for o in history]))
    if message.name == VERIFY_CUSTOMER:
        if not isinstance(result, VerificationPassed):
            return Decision(text=replies.VERIFICATION_FAILED)
        focus = focus_order(messages)
        request = request_text(messages, question)
        if focus and request != question and wanted_action(request, extract_slots(request), focus) == "cancel":
            resumed = action_step(messages, request, extract_slots(request), focus)
            if resumed is not None:
                return resumed
        waiting = call_waiting_for_verification(messages)
        if waiting is not None:  # the request that needed verification is answered now, without asking again
            return Decision(tool=waiting[0], args=waiting[1])
        if focus:
            return Decision(tool=LOOKUP_ORDER, args={"order_id": focus})
        verified = f"Thanks{', ' + result.name if result.name else ''}, you're verified. How can I help?"
        return Decision(text=verified, intent=VERIFIED)
    if message.name == CHANGE_SPEAKER:
        if not isinstance(result, SpeakerChanged):
            return Decision(text=replies.SPEAKER_SIGNED_IN)
        slots = extract_slots(question)
        verify = verify_args(slots, None)
        if verify:
            return Decision(tool=VERIFY_CUSTOMER, args=verify)
        return Decision(text=replies.SPEAKER_CHANGED)
    if message.name == FIND_PRODUCTS:
        if isinstance(result, ProductsFound):
            return Decision(text=replies.products_reply(result.payload(), current_channel(messages)))
        return Decision(text=replies.DONT_KNOW, understood=False)
    if message.name == SEARCH_KNOWLEDGE:
        found = result if isinstance(result, KnowledgeResult) else None
        passages = [p.payload() for p in found.passages] if found else []
        earlier = recalled_topic(messages)
        if earlier is not None:  # picking up an earlier question: say so, then give today's answer
            return Decision(text=replies.followup_reply(earlier, passages, current_channel(messages)))
        last_human, _ = current_turn(messages)
        said_before = last_ai_text(messages[:last_human])
        asked_before = next((m.text for m in reversed(messages[:last_human]) if isinstance(m, HumanMessage)), "")
        if plain(asked_before) != plain(question):  # the same question again gets the same answer (and a person)
            fresh = [p for p in passages if not (said_before and replies.passage_answer(p)[1] in said_before)]
            passages = fresh or passages  # a follow-up ("and is it free?") wants more than the answer just given
        subject = previous_knowledge_title(messages)
        if subject and (ELLIPTIC.search(question) or len(question.split()) <= 8):
            same = [p for p in passages if p["title"] == subject]
            passages = same + [p for p in passages if p["title"] != subject]  # the subject it follows first
        if found is None or found.status != "ok" or replies.knowledge_answer(question, passages) is None:
            return Decision(text=replies.DONT_KNOW, understood=False)
        return Decision(text=replies.knowledge_reply(question, passages, current_channel(messages)))
    if message.name == RECALL_CONTEXT:
        recalled = result if isinstance(result, RecallResult) else None
        topic = open_topic(recalled) if recalled else None
        if topic is not None:
            return Decision(tool=SEARCH_KNOWLEDGE, args={"query": topic["question"]})
        return Decision(text=replies.recall_reply(recalled.episodes if recalled else [], current_channel(messages)))
    if message.name == ESCALATE_TO_HUMAN:
        return Decision(text="I've passed your conversation to a member of our team. They'll reply to you here.")
    return Decision(text="Is there anything else I can help you with?")

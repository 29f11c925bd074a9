"""The offline model's decisions: classify the turn, pick the tool call an LLM would make, or answer.

It reads only the conversation (system, human, AI and tool messages), exactly what an LLM would see. `decide`
routes a step: another language to `offline_languages`, the turn's first move to `first_moves`, the move after a
tool result to `tool_answers`; a message holding several questions is answered in turn here.
"""

from __future__ import annotations

import re
from dataclasses import replace

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage

from threadline.agents import language, replies
from threadline.agents.asks import split_asks
from threadline.agents.decision import (
    CANNED,
    OWN_ORDER,
    SENTENCE,
    Decision,
)
from threadline.agents.first_moves import first_step
from threadline.agents.intents import (
    Intent,
    IntentClassifier,
)
from threadline.agents.offline_languages import decide_in
from threadline.agents.shopping import SERVICE_WORDS, shopping_step
from threadline.agents.slots import beyond_identity, extract_slots
from threadline.agents.tool_answers import VERIFIED, after_tool
from threadline.agents.transcript import (
    current_channel,
    current_turn,
)
from threadline.agents.typos import spelled
from threadline.core.tool_names import (
    FIND_PRODUCTS,
    LOOKUP_ORDER,
    ORDER_OPTIONS,
    RECALL_CONTEXT,
    SEARCH_KNOWLEDGE,
    VERIFY_CUSTOMER,
)
from threadline.tools.results import (
    ActionProposed,
    read_result,
)


def decide(messages: list[AnyMessage], classifier: IntentClassifier) -> Decision:
    """The next step of the turn the conversation is in. A message holding several questions is answered in turn:
    the message as a whole first, then each further question the store's information or catalogue answers."""
    last_human, after = current_turn(messages)
    if last_human < 0:
        return Decision(text=CANNED[Intent.GREETING])
    question = spelled(messages[last_human].text)
    lang = language.customer_language([m.text for m in messages if isinstance(m, HumanMessage)])
    if lang != "en":
        return decide_in(lang, messages, question, after)
    asks = split_asks(question)
    if len(asks) < 2:
        return _decide_one(messages, question, after, classifier)
    return _decide_asks(messages, last_human, asks, classifier)


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
    answer = after_tool(messages, question, results[-1])
    rest = beyond_identity(question) if answer.intent == VERIFIED and len(results) == 1 else ""
    if rest:  # verified with a question in the same message: answer it now
        classification = classifier.classify(rest)
        step = first_step(messages, rest, classification)
        if step.tool not in (None, VERIFY_CUSTOMER) and classification.intent is not Intent.VERIFICATION:
            return step
    return answer


_ASK_FOLLOWS = frozenset(
    {LOOKUP_ORDER, SEARCH_KNOWLEDGE, FIND_PRODUCTS, RECALL_CONTEXT, VERIFY_CUSTOMER, ORDER_OPTIONS}
)
"""After these, the other questions of the message are answered too; after a hand-off, a speaker change or a
proposal waiting for a yes, they are not."""


_CLOSERS = re.compile(
    r"\s*(?:Is there anything else I can help (?:you )?with\?|Would you like anything else\?|Anything else I can help "
    r"(?:you )?with\?)\s*$"
)


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
        if shopping and not SERVICE_WORDS.search(asks[index]):
            continue  # "is there one in stock, and how much is it?" was the product search itself
        step = _further_question(messages[:last_human], asks[index], classifier, None)
        if step is not None:
            return replace(step, ask=index + 1)
    return _together(primary, [answers[a] for a in sorted(answers)], current_channel(messages))


def _first_intent(after: list[AnyMessage]) -> str | None:
    call = next((c for m in after if isinstance(m, AIMessage) for c in m.tool_calls), None)
    return str(call["name"]) if call else None


def _further_question(
    earlier: list[AnyMessage], ask: str, classifier: IntentClassifier, handled: str | None
) -> Decision | None:
    """The search that answers one more question of the message, when the store's information or catalogue can:
    questions about the customer's own orders are left to the turn as a whole (it answered the first)."""
    slots = extract_slots(ask)
    if slots.order_ids or OWN_ORDER.search(ask):
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
    shopping = shopping_step(earlier, ask, classification.intent, slots)
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
        ordered = [SENTENCE.split(replies.CITATION.sub("", p).strip())[0] for p in ordered]
    joiner = "\n\n" if channel in ("web", "email", None) else " "
    return replace(primary, text=joiner.join(p for p in ordered if p), understood=True)

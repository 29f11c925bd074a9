"""The escalation policy, evaluated in code after every step: the model cannot talk its way past it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage

from threadline.agents.intents import BOT_QUESTION
from threadline.core.handoff import StallPoint
from threadline.core.order_actions import status_refusal
from threadline.core.settings import Settings
from threadline.core.tool_names import SEARCH_KNOWLEDGE
from threadline.core.types import OrderStatus
from threadline.tools.results import KnowledgeResult, read_result

_HUMAN = re.compile(
    r"\b(human|real person|a person|someone real|an? (?:agent|representative|rep)|representative|"
    r"customer service rep\w*|(?:speak|talk|chat) (?:to|with) (?:someone|somebody|a manager|your manager|"
    r"a supervisor|your supervisor|the manager|a real)|supervisor|live agent|operator|"
    r"(?:get|give|find) me (?:a|your|the|ur) manager|(?<!n't )(?<!nt )(?<!not )(?:want|need) (?:a|your|the|ur) "
    r"manager(?!'| approv))\b",
    re.I,
)
SENSITIVE_TOPICS: dict[str, tuple[re.Pattern[str], str]] = {
    "safety": (
        re.compile(
            r"\b(burn(?:ed|t|s)? (?:me|my|him|her|them|us|our|his|their|myself|himself|herself)\b|(?:got|get|was|were|"
            r"is|been) (?:hurt|cut|burned|burnt|injured|bruised|electrocuted|shocked)|injur(?:ed|y|ies|ing)|"
            r"hurt (?:me|him|her|them|us|myself|himself|herself)|(?:me|him|her|them|myself|himself|herself) hurt|"
            r"bleed(?:ing|s)?|blood (?:everywhere|all over)|cut (?:myself|himself|herself|themselves)|"
            r"cut (?:my|his|her|their|our) (?:hand|finger|thumb|foot|arm|leg|face|head|lip)\w*|"
            r"slic(?:ed|es|ing) (?:my|his|her|their|our) (?:hand|finger|thumb|foot|arm|leg|face)\w*|gash(?:ed|es)?|"
            r"stitches|(?:caught|catch(?:es|ing)?) (?:on )?fire|on fire|burst into flames|"
            r"smok(?:e|ed|ing) (?:came|coming|poured)|started smoking|(?:threw|throwing|shooting|shot|gave off) sparks|"
            r"sparked|electric(?:al)? shock|shocked (?:me|him|her)|exploded|explod(?:es|ing) |chok(?:ed|ing) on|"
            r"allergic reaction|(?:got|gave (?:me|him|her)|broke out in) a rash|hospital|emergency room|"
            r"poison(?:ed|ing)|"
            r"swallowed|fire hazard|safety hazard|sharp (?:edge|bit|piece|metal|point) (?:sticking|poking)|"
            r"(?:fell|tipped|toppled|collapsed) (?:on|onto|over on) "
            r"(?:me|my|him|her|them|us|our|the (?:kid|child|baby))|"
            r"(?:kid|child|son|daughter|baby|toddler)\w* (?:got |was |is )?(?:hurt|cut|burn\w*|bleeding|injured))\b",
            re.I,
        ),
        "urgent",
    ),
    "theft": (
        re.compile(
            r"\b(stolen|stole|porch pirate\w*|someone (?:took|stole|swiped|nicked)|theft|"
            r"(?:package|parcel|box|delivery) (?:was |got |has been )?(?:taken|swiped|nicked)|"
            r"(?:says|said|shows|showed|marked(?: as)?) delivered but (?:i |we )?"
            r"(?:never|didn'?t|did not|haven'?t|have not)\b)",
            re.I,
        ),
        "high",
    ),
    "fraud_or_legal": (
        re.compile(
            r"\b(fraud\w*|chargeback\w*|charge ?back|lawyer|attorney|lawsuit|legal action|small claims|"
            r"dispute (?:the |this |that |a |my )?(?:charge|payment|transaction)|"
            r"(?:call|calling|contact|contacting|tell|telling) my "
            r"(?:bank|credit card company|card company|card issuer)|"
            r"report (?:you|this|your company) to|"
            r"better business bureau|\bbbb\b|unauthori[sz]ed (?:charge|purchase|transaction|payment)|"
            r"stolen card|identity theft)\b|\b(?:sue|suing)\s+(?:you|your|the|this|them|for)\b|"
            r"\b(?:will|going to|gonna) sue\b",
            re.I,
        ),
        "high",
    ),
    "harassment": (
        re.compile(
            r"\b(harass\w*|threaten\w*|abusive|abused|stalk\w*|creep(?:y|ed)|inappropriate (?:message|comment|"
            r"behaviou?r|remark|text)s?|made me (?:feel )?(?:unsafe|uncomfortable|scared)|sexual\w*|kept (?:texting|"
            r"calling|messaging|showing up) (?:me )?(?:at (?:home|night|work)|after)|asking me out|"
            r"making me (?:really |so |very )?(?:uncomfortable|scared|unsafe)|(?:yelled|screamed|swore) at me|"
            r"slur\w*)\b",
            re.I,
        ),
        "high",
    ),
}
"""Topics a person must handle, recognised by what the customer describes (a burn, a package taken from the porch,
a charge disputed with the bank), each with its priority; the first that matches wins (safety first)."""
_SENSITIVE = re.compile("|".join(f"(?:{pattern.pattern})" for pattern, _ in SENSITIVE_TOPICS.values()), re.I)

_COMPLAINT = re.compile(
    r"\b(complain\w*|unacceptable|disappoint\w*|terrible|awful|worst|ridiculous|outrageous|furious|"
    r"not happy|unhappy|fed up|poor service|bad service|broken|damaged|defective)\b",
    re.I,
)
KEYWORDS = {"asked for a person": _HUMAN, "sensitive topic": _SENSITIVE, "complaint": _COMPLAINT}
"""Wording the policy recognises, by label (also reported as intent signals in the packet)."""
_NOT_WORD = re.compile(r"[^\w#@.]+")
SENTIMENT_HISTORY = 10
"""Per-turn sentiment scores kept in state (the latest last)."""


@dataclass(frozen=True)
class Escalation:
    """Why the case should leave the AI now."""

    stall: StallPoint
    evidence: list[str]
    urgency: str | None = None
    detail: str | None = None
    tell: str | None = None
    """What the customer is told before the hand-off notice (why the request goes to a person), if anything."""
    topic: str | None = None
    """The sensitive topic (`SENSITIVE_TOPICS`), when that is why: the hand-off notice fits it."""


@dataclass(frozen=True)
class Thresholds:
    """Limits that trigger escalation."""

    not_understood_turns: int = 2
    verification_failures: int = 3
    negative_sentiment: float = -0.5
    """A customer turn scoring below this (VADER compound) is negative."""
    negative_turns: int = 2
    """Negative turns in a row, or turns of steadily falling sentiment ending negative, that escalate."""
    failed_answers: int = 2
    """Unusable answers in a row (no knowledge answer, the same question again) that escalate."""
    out_of_scope_turns: int = 2
    """Out-of-scope requests in a row that escalate."""
    high_value_spend: float = 1000.0
    """Lifetime spend from which a complaint goes straight to a person."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        """The thresholds configured in settings (out-of-scope turns share the failed-answers limit)."""
        return cls(
            negative_sentiment=settings.escalation_sentiment,
            negative_turns=settings.escalation_negative_turns,
            failed_answers=settings.escalation_failed_answers,
            out_of_scope_turns=settings.escalation_failed_answers,
            high_value_spend=settings.high_value_spend,
        )


def turn_messages(messages: list[AnyMessage]) -> list[AnyMessage]:
    """The current turn: the trailing run of customer messages and everything after it."""
    last_human = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=-1)
    if last_human < 0:
        return []
    start = last_human
    while start > 0 and isinstance(messages[start - 1], HumanMessage):
        start -= 1
    return messages[start:]


def turn_texts(messages: list[AnyMessage]) -> list[str]:
    return [str(m.text) for m in turn_messages(messages) if isinstance(m, HumanMessage)]


_CONFIRMS = re.compile(
    r"\b(thanks?|thank (you|u)|thx|ty|cheers|(that|this|it) (helped|helps|works|worked)|perfect|great|awesome|"
    r"got it|brilliant|appreciate (it|that)|gracias|merci)\b",
    re.IGNORECASE,
)
_DOUBTS = re.compile(
    r"\?|\b(?:not|no(?! (?:worries|problem)\b)|\w+n'?t|but|still|useless|wrong|however|just (?:great|perfect)|"
    r"ridiculous|seriously|for nothing|third time|now i want)\b",
    re.IGNORECASE,
)


def customer_confirmed(messages: list[AnyMessage]) -> bool:
    """The customer's message this turn says the answer helped ("thanks, that's perfect"), with no new question
    and no doubt in it ("thanks but it still hasn't come" is not a confirmation)."""
    text = " ".join(turn_texts(messages))
    return bool(_CONFIRMS.search(text)) and not _DOUBTS.search(text.replace("’", "'"))


def customer_turns(messages: list[AnyMessage]) -> list[str]:
    """What the customer said in each turn of the window (consecutive messages joined), oldest first."""
    turns: list[str] = []
    previous_human = False
    for message in messages:
        if isinstance(message, HumanMessage):
            text = str(message.text).strip()
            if previous_human and turns:
                turns[-1] = f"{turns[-1]}\n{text}".strip()
            else:
                turns.append(text)
        previous_human = isinstance(message, HumanMessage)
    return turns


def normalise(text: str) -> str:
    """A question reduced for comparison: lower case, punctuation and extra spaces gone."""
    return " ".join(_NOT_WORD.sub(" ", text.lower()).split()).strip(" .")


def turn_intents(messages: list[AnyMessage]) -> list[str]:
    """Intents the model recorded during the current turn (models that report one)."""
    return [
        str(intent)
        for m in turn_messages(messages)
        if isinstance(m, AIMessage) and (intent := (m.additional_kwargs.get("threadline") or {}).get("intent"))
    ]


def complaint_texts(messages: list[AnyMessage]) -> list[str]:
    """The current turn's customer messages that complain (by keyword, or all of them when the model
    classified the turn as a complaint)."""
    texts = turn_texts(messages)
    if "complaint" in turn_intents(messages):
        return texts
    return [t for t in texts if _COMPLAINT.search(t)]


def knowledge_missed(messages: list[AnyMessage]) -> bool:
    """Whether the current turn searched the knowledge base and found nothing relevant enough for any question it
    searched (one question of several left unanswered is a gap, not a failed turn)."""
    searches = [m for m in turn_messages(messages) if isinstance(m, ToolMessage) and m.name == SEARCH_KNOWLEDGE]
    return bool(searches) and len(missed_questions(messages)) == len(searches)


def missed_questions(messages: list[AnyMessage]) -> list[str]:
    """What the current turn searched the knowledge base for and found no relevant answer to (knowledge gaps)."""
    missed = []
    for message in turn_messages(messages):
        found = read_result(message) if isinstance(message, ToolMessage) and message.name == SEARCH_KNOWLEDGE else None
        # Only a search that ran and found nothing relevant: a call skipped because a person took over, or one
        # that failed, says nothing about the help center.
        if isinstance(found, KnowledgeResult) and found.status != "ok":
            missed.append(found.query.strip() or " ".join(turn_texts(messages)).strip())
    return missed


def repeated_question(messages: list[AnyMessage]) -> bool:
    """Whether the customer just asked the same thing as in their previous turn (a real question, not "hi")
    and got the same answer again: asking again after the answer changed (a policy just updated) is not a
    failure."""
    turns = customer_turns(messages)
    if len(turns) < 2:
        return False
    current, previous = normalise(turns[-1]), normalise(turns[-2])
    if current != previous or len(current.split()) < 3:
        return False
    replies = [m.text for m in messages if isinstance(m, AIMessage) and not m.tool_calls and m.text.strip()]
    return len(replies) < 2 or replies[-1] == replies[-2]


@dataclass(frozen=True)
class TurnSignals:
    """What a finished turn says about how well the AI is doing."""

    unusable: bool
    """No usable answer: the knowledge base had nothing, or the customer had to ask again."""
    repeated: bool
    """The customer asked the same question as in their previous turn."""
    out_of_scope: bool
    """The model classified the request as outside what support handles."""


def turn_signals(messages: list[AnyMessage]) -> TurnSignals:
    """Signals of the turn whose final reply is the last message."""
    repeated = repeated_question(messages)
    return TurnSignals(
        unusable=knowledge_missed(messages) or repeated,
        repeated=repeated,
        out_of_scope="out_of_scope" in turn_intents(messages),
    )


def sentiment_escalation(sentiment: list[float], turns: list[str], thresholds: Thresholds) -> Escalation | None:
    """Negative sentiment: `negative_turns` customer turns in a row below the threshold, or sentiment falling
    turn after turn over `negative_turns + 1` turns and ending below the threshold."""
    n = thresholds.negative_turns
    recent = sentiment[-n:]
    negative = len(recent) == n and all(s < thresholds.negative_sentiment for s in recent)
    falling_run = sentiment[-(n + 1) :]
    falling = (
        len(falling_run) == n + 1
        and all(b < a for a, b in pairwise(falling_run))
        and falling_run[-1] < thresholds.negative_sentiment
    )
    if not (negative or falling):
        return None
    span = n + 1 if falling and not negative else n
    return Escalation(StallPoint.NEGATIVE_SENTIMENT, turns[-span:], "high")


_ORDER_ACTION = re.compile(
    r"\b(cancel|return|exchange|refund|change (?:the |my )?(?:shipping |delivery )?address)\b", re.I
)
ALLOWED_STATUSES = {
    "cancel": {"pending"},
    "change address": {"pending"},
    "return": {"delivered"},
    "exchange": {"delivered"},
    "refund": {"delivered"},
}
"""What the store policy allows per order status (the store's wiki: cancel or change pending orders, return
or exchange delivered ones); a request outside it needs a person to decide on an exception."""


_DONE = {
    "cancel": "cancelled",
    "change address": "modified",
    "return": "returned",
    "refund": "returned",
    "exchange": "exchanged",
}


def requested_actions(texts: list[str]) -> list[tuple[str, str]]:
    """(text, action) for each customer message asking to change an order."""
    found = []
    for text in texts:
        match = _ORDER_ACTION.search(text)
        if match:
            action = "change address" if match.group(1).lower().startswith("change") else match.group(1).lower()
            found.append((text, action))
    return found


def blocked_by_policy(texts: list[str], statuses: dict[str, str]) -> Escalation | None:
    """An order change the policy does not allow for that order's status (`statuses`: the customer's own
    orders mentioned in the turn, by id)."""
    for text, action in requested_actions(texts):
        for order_id, status in statuses.items():
            if order_id in text and status not in ALLOWED_STATUSES[action]:
                allowed = " or ".join(sorted(ALLOWED_STATUSES[action]))
                tell = status_refusal(order_id, OrderStatus(status), _DONE[action])
                detail = (
                    f"{action} requested for {order_id}, which is {status}; the policy allows it when {allowed}. "
                    f"The customer was told: {tell}"
                )
                return Escalation(StallPoint.POLICY_BLOCKED, [text], detail=detail, tell=tell)
    return None


def evaluate(
    messages: list[AnyMessage],
    *,
    requested: dict[str, str] | None,
    not_understood: int,
    verification_failures: int,
    thresholds: Thresholds = Thresholds(),
    sentiment: list[float] | None = None,
    failed_answers: int = 0,
    out_of_scope: int = 0,
    lifetime_spend: float | None = None,
    order_statuses: dict[str, str] | None = None,
    sensed: tuple[str, str] | None = None,
) -> Escalation | None:
    """The escalation this step calls for, if any, with the customer messages that triggered it as evidence.

    In order: a request (the model's `escalate_to_human`, or the customer asking for a person), a sensitive
    topic (by the rules, then `sensed`: a topic and the sentence meaning it, from `agents.concerns`), a complaint
    from a high-value customer, repeated verification failure, negative sentiment, repeated unusable answers (no
    knowledge answer, the same question again), turns not understood, repeated
    out-of-scope requests, and a tool error as the last step."""
    texts = turn_texts(messages)
    asked = [t for t in texts if _HUMAN.search(BOT_QUESTION.sub(" ", t))]
    if requested is not None:
        stall = StallPoint.CUSTOMER_REQUESTED_HUMAN if asked else StallPoint.MODEL_REQUESTED
        return Escalation(stall, asked or [requested.get("reason", "")], requested.get("urgency"))
    if asked:
        return Escalation(StallPoint.CUSTOMER_REQUESTED_HUMAN, asked)
    for topic, (pattern, urgency) in SENSITIVE_TOPICS.items():
        sensitive = [t for t in texts if pattern.search(t)]
        if sensitive:
            return Escalation(StallPoint.SENSITIVE_TOPIC, sensitive, urgency, detail=topic, topic=topic)
    if sensed is not None and sensed[0] in SENSITIVE_TOPICS:
        topic, urgency = sensed[0], SENSITIVE_TOPICS[sensed[0]][1]
        return Escalation(StallPoint.SENSITIVE_TOPIC, [sensed[1]], urgency, detail=topic, topic=topic)
    complaint = complaint_texts(messages)
    if complaint and lifetime_spend is not None and lifetime_spend >= thresholds.high_value_spend:
        return Escalation(StallPoint.HIGH_VALUE_COMPLAINT, complaint, "high")
    if verification_failures >= thresholds.verification_failures:
        return Escalation(StallPoint.VERIFICATION_FAILED, texts)
    blocked = blocked_by_policy(texts, order_statuses or {})
    if blocked is not None:
        return blocked
    turns = customer_turns(messages)
    negative = sentiment_escalation(sentiment or [], turns, thresholds)
    if negative is not None:
        return negative
    if failed_answers >= thresholds.failed_answers:
        stall = StallPoint.NO_KNOWLEDGE_ANSWER if knowledge_missed(messages) else StallPoint.REPEATED_FAILURE
        return Escalation(stall, turns[-failed_answers:])
    if not_understood >= thresholds.not_understood_turns:
        return Escalation(StallPoint.REPEATED_FAILURE, texts)
    if out_of_scope >= thresholds.out_of_scope_turns:
        return Escalation(StallPoint.OUT_OF_SCOPE, turns[-out_of_scope:])
    if messages and isinstance(messages[-1], ToolMessage) and messages[-1].status == "error":
        failed = messages[-1]
        return Escalation(StallPoint.TOOL_ERROR, [str(failed.content)[:300]], detail=f"{failed.name} failed")
    return None

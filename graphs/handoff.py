"""Builds the handoff packet from graph state, deterministically: what the agent needs instead of a transcript."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage

from threadline.agents.language import customer_language
from threadline.core.handoff import (
    HandoffPacket,
    PacketAction,
    PacketCustomer,
    Priority,
    QuotedData,
    Stall,
    StallPoint,
    ToolTrail,
)
from threadline.core.order_actions import ActionRecord
from threadline.core.standing import Standing
from threadline.core.tool_names import ACTION_KIND_OF_TOOL, CONFIRM_ORDER_ACTION, LOOKUP_ORDER
from threadline.core.types import ChannelIdentity, Customer, Episode
from threadline.graphs import policy
from threadline.tools.results import (
    ActionDeclined,
    ActionProposed,
    ActionRefused,
    KnowledgePassage,
    KnowledgeResult,
    OrderNotFound,
    OrdersFound,
    ToolError,
    VerificationPassed,
    read_result,
    result_status,
)

SLA = {
    "urgent": timedelta(minutes=5),
    "high": timedelta(minutes=15),
    "normal": timedelta(hours=1),
    "low": timedelta(hours=4),
}
PRIORITY_FOR_STALL: dict[StallPoint, Priority] = {
    StallPoint.SENSITIVE_TOPIC: "high",
    StallPoint.HIGH_VALUE_COMPLAINT: "high",
    StallPoint.NEGATIVE_SENTIMENT: "high",
    StallPoint.TOOL_ERROR: "high",
}
NEXT_STEPS: dict[StallPoint, list[str]] = {
    StallPoint.CUSTOMER_REQUESTED_HUMAN: ["Greet {name} and take over: they asked for a person."],
    StallPoint.MODEL_REQUESTED: ["Read the AI's reason in the evidence and take over the request."],
    StallPoint.NEGATIVE_SENTIMENT: [
        "Acknowledge the frustration before anything else.",
        "Resolve the underlying issue; consider a goodwill gesture.",
    ],
    StallPoint.REPEATED_FAILURE: ["Answer the question the AI could not; do not repeat its earlier replies."],
    StallPoint.NO_KNOWLEDGE_ANSWER: [
        "Answer the question the knowledge base could not.",
        "Flag the gap so an article is written for it.",
    ],
    StallPoint.VERIFICATION_FAILED: [
        "Verify the customer's identity through a secure channel before sharing any order details.",
        "Check whether the handle is being used by someone else.",
    ],
    StallPoint.POLICY_BLOCKED: ["Decide whether an exception to the policy is warranted."],
    StallPoint.SENSITIVE_TOPIC: [
        "Handle with care: follow the playbook for legal, fraud or safety matters.",
        "Involve a supervisor if legal action, fraud or injury is mentioned.",
    ],
    StallPoint.HIGH_VALUE_COMPLAINT: [
        "Prioritise: a high-value customer is complaining.",
        "Review their recent orders and offer a remedy.",
    ],
    StallPoint.TOOL_ERROR: [
        "Retry the failed lookup yourself (see the tool trail) or check the system's status.",
        "Tell the customer the lookup is being handled.",
    ],
    StallPoint.OUT_OF_SCOPE: ["Find out what the customer needs, or point them to the right place."],
}
CLOSING_STEP = "Reply on the customer's current channel, then resolve or release the case."
UNNAMED = "the customer (no name on file yet: ask for it only if you need it)"
"""Who a next step addresses when the customer's name is not known (a new contact)."""
PENDING_STEP = "Ask whether they still want this, not done yet: {text}. If so, run it from Order actions."
TRANSCRIPT_REF = "/v1/customers/{customer_id}/timeline"
QUOTE_CHARS = 600
"""How much of a tool's result the packet quotes."""


def tool_trail(messages: list[AnyMessage]) -> list[ToolTrail]:
    """Every tool call in the window with its arguments and the status that came back."""
    results = {m.tool_call_id: m for m in messages if isinstance(m, ToolMessage)}
    trail = []
    for message in messages:
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                result = results.get(call["id"] or "")
                outcome = "not run" if result is None else result_status(result) or "no result"
                quoted = QuotedData(source=call["name"], text=str(result.content)[:QUOTE_CHARS]) if result else None
                trail.append(ToolTrail(name=call["name"], args=dict(call["args"]), outcome=outcome, result=quoted))
    return trail


def _facts(messages: list[AnyMessage], customer: Customer, level: str) -> dict[str, str]:
    """What the AI already established from tool results: identity, orders looked up, questions answered."""
    facts = {"verification_level": level}
    if not customer.provisional:
        facts["customer_name"] = customer.display_name
    for message in messages:
        if not isinstance(message, ToolMessage):
            continue
        result = read_result(message)
        if isinstance(result, VerificationPassed):
            facts["identity"] = "verified in this conversation"
        elif isinstance(result, OrdersFound) and result.order is not None:
            facts[f"order {result.order.order_id} status"] = result.order.status
        elif isinstance(result, OrderNotFound):
            facts[f"order {result.order_id}"] = "not found on this account"
        elif isinstance(result, OrdersFound) and result.orders is not None:
            facts["order history"] = f"{len(result.orders)} order(s) shown to the customer"
        elif isinstance(result, KnowledgeResult):
            query = result.query[:120]
            if result.status == "ok" and result.passages:
                best = result.passages[0]
                facts[f'answered "{query}"'] = f"from {best.article_id}@v{best.version}"
            elif query:
                facts[f'asked "{query}"'] = "no answer in the knowledge base"
    return facts


def _open_questions(messages: list[AnyMessage], verified: bool, stall: StallPoint) -> list[str]:
    """What is still unresolved for the agent to settle."""
    questions = [] if verified else ["Identity not verified: verify before sharing order details."]
    for message in messages:
        if isinstance(message, ToolMessage):
            result = read_result(message)
            if isinstance(result, KnowledgeResult) and result.status != "ok" and result.query:
                questions.append(f"Unanswered: {result.query[:200]}")
            if isinstance(result, ToolError) or message.status == "error":
                questions.append(f"{message.name or 'A tool'} failed: its result is still needed.")
    if stall in (StallPoint.REPEATED_FAILURE, StallPoint.OUT_OF_SCOPE):
        turns = policy.customer_turns(messages)
        if turns:
            questions.append(f"What the customer needs with: {turns[-1][:200]}")
    return list(dict.fromkeys(questions))


def intent_signals(messages: list[AnyMessage]) -> list[str]:
    """What points to the intent: intents the model recorded, wording the policy recognises, orders mentioned."""
    signals = []
    for message in messages:
        if isinstance(message, AIMessage):
            intent = (message.additional_kwargs.get("threadline") or {}).get("intent")
            if intent:
                signals.append(f"model intent: {intent}")
            for call in message.tool_calls:
                order = call["args"].get("order_id")
                if call["name"] == LOOKUP_ORDER and order:
                    signals.append(f"order asked about: {order}")
    for text in policy.customer_turns(messages)[-3:]:
        for label, pattern in policy.KEYWORDS.items():
            if pattern.search(text):
                signals.append(f"wording: {label}")
    return list(dict.fromkeys(signals))


def _confidence(messages: list[AnyMessage]) -> float | None:
    for message in reversed(messages):
        if isinstance(message, AIMessage):
            confidence = (message.additional_kwargs.get("threadline") or {}).get("confidence")
            if confidence is not None:
                return float(confidence)
    return None


def _goal(asked: list[str], intent: str | None, stall: StallPoint, focus: str | None) -> str:
    """Two lines: what the customer wrote, and what they are after and where the AI stopped."""
    if not asked:
        return "No message yet."
    wrote = ("The customer wrote: " + " / ".join(asked[-2:]))[:300]
    about = f" about order {focus}" if focus else ""
    wants = f"They want help with {(intent or 'an unclear request').replace('_', ' ')}{about}; "
    return f"{wrote}\n{wants}the AI stopped: {stall.value.replace('_', ' ')}."


def build_packet(
    *,
    messages: list[AnyMessage],
    customer: Customer,
    identities: list[ChannelIdentity],
    level: str,
    channel: str,
    episode: Episode | None,
    stall: StallPoint,
    evidence: list[str],
    urgency: str | None,
    intent: str | None,
    now: datetime,
    standing: Standing | None = None,
    sentiment: Sequence[float] = (),
    detail: str | None = None,
    focus_order_id: str | None = None,
    order_actions: Sequence[PacketAction] = (),
) -> HandoffPacket:
    """The packet for a case handed over at `stall`; every field is computed here, in code."""
    asked = [m.text.strip() for m in messages if isinstance(m, HumanMessage) and m.text.strip()]
    priority: Priority = urgency if urgency in SLA else PRIORITY_FOR_STALL.get(stall, "normal")  # type: ignore[assignment]
    if standing is not None and standing.tier == "vip" and priority in ("low", "normal"):
        priority = "high"
    cited = sorted(set(cited_articles(messages)))
    verified = level in ("verified", "strong")
    channels = list(dict.fromkeys([*(episode.channels if episode else []), channel]))
    name = None if customer.provisional else customer.display_name.strip() or None
    pending = next((a for a in reversed(order_actions) if a.status == "proposed"), None)
    return HandoffPacket(
        customer=PacketCustomer(
            id=customer.id,
            name=name,
            verification_level=level,
            identities=[f"{i.handle_type.value}:{i.handle_value}" for i in identities],
            provisional=customer.provisional,
            lifetime_value=standing.lifetime_value if standing else None,
            order_count=standing.order_count if standing else 0,
            tier=standing.tier if standing else None,
        ),
        channel=channel,
        channels_in_episode=channels,
        intent=intent,
        intent_confidence=_confidence(messages),
        intent_signals=intent_signals(messages),
        goal=_goal(asked, intent, stall, focus_order_id),
        tools_called=tool_trail(messages),
        stall=Stall(type=stall, evidence=evidence[-3:], detail=detail),
        facts=_facts(messages, customer, level),
        open_questions=_open_questions(messages, verified, stall),
        next_steps=next_steps(stall, name, pending),
        priority=priority,
        sla_due_at=now + SLA[priority],
        articles_cited=cited,
        order_actions=list(order_actions),
        sentiment=[round(float(s), 3) for s in sentiment],
        language=customer_language(asked),
        pending_action=pending,
        transcript_ref=TRANSCRIPT_REF.format(customer_id=customer.id),
    )


def next_steps(stall: StallPoint, name: str | None, pending: PacketAction | None) -> list[str]:
    """What the agent should do for `stall`, addressing the customer by `name` when it is known; a proposed order
    action the customer never confirmed is asked about again."""
    steps = [step.format(name=name or UNNAMED) for step in NEXT_STEPS.get(stall, [])]
    if pending is not None:
        steps.append(PENDING_STEP.format(text=pending.text.strip().rstrip(".")))
    return [*steps, CLOSING_STEP]


def packet_actions(
    messages: list[AnyMessage], proposal: dict[str, Any] | None, audited: Sequence[ActionRecord]
) -> list[PacketAction]:
    """The case's order actions for the agent: those run or refused when run (the audit, oldest first), those
    refused or declined in the conversation, and the one proposed that the customer has not confirmed (still
    waiting for their yes, or left when they moved on)."""
    found = [
        PacketAction(
            status="done" if record.outcome == "done" else "refused",
            kind=record.kind,
            order_id=record.order_id,
            text=record.refusal or _status_change(record),
            actor=record.actor,
            at=record.created_at,
        )
        for record in reversed(audited)
    ]
    calls = {c["id"]: c for m in messages if isinstance(m, AIMessage) for c in m.tool_calls}
    for message in messages:
        if not isinstance(message, ToolMessage):
            continue
        result = read_result(message)
        call: dict[str, Any] = dict(calls.get(message.tool_call_id) or {})
        order_id = (call.get("args") or {}).get("order_id")
        if message.name in ACTION_KIND_OF_TOOL and isinstance(result, ActionRefused):
            kind = ACTION_KIND_OF_TOOL[message.name]
            found.append(PacketAction(status="refused", kind=kind, order_id=order_id, text=result.message))
        elif message.name == CONFIRM_ORDER_ACTION and isinstance(result, ActionDeclined):
            found.append(PacketAction(status="declined", kind="proposal", text=result.summary))
    if proposal:
        action = proposal.get("action") or {}
        kind, wanted = str(action.get("kind")), action.get("order_id")
        found.append(PacketAction(status="proposed", kind=kind, order_id=wanted, text=proposal["summary"]))
    elif (unconfirmed := _unconfirmed_proposal(messages, calls)) is not None:
        found.append(unconfirmed)
    return found


def _unconfirmed_proposal(messages: list[AnyMessage], calls: Mapping[str | None, Any]) -> PacketAction | None:
    """The last order action proposed in the window that no answer settled: the customer moved on without a yes
    or a no, so the proposal was dropped unrun (`graphs/confirm.py`), yet it is what they asked for."""
    pending = None
    for message in messages:
        if not isinstance(message, ToolMessage):
            continue
        if message.name == CONFIRM_ORDER_ACTION:
            pending = None  # ran, declined or expired: the conversation says so
        elif message.name in ACTION_KIND_OF_TOOL and isinstance(result := read_result(message), ActionProposed):
            order_id = ((calls.get(message.tool_call_id) or {}).get("args") or {}).get("order_id")
            kind = ACTION_KIND_OF_TOOL[message.name]
            pending = PacketAction(status="proposed", kind=kind, order_id=order_id, text=result.summary)
    return pending


def _status_change(record: ActionRecord) -> str:
    before, after = (record.before or {}).get("status"), (record.after or {}).get("status")
    return f"{record.kind.replace('_', ' ')}: {before} → {after}"


def cited_articles(messages: list[AnyMessage]) -> list[str]:
    """`article-id@vN` of the passage each knowledge answer was built on (the best one returned)."""
    return [f"{p.article_id}@v{p.version}" for m in messages if isinstance(m, ToolMessage) for p in _best_passage(m)]


def _best_passage(message: ToolMessage) -> list[KnowledgePassage]:
    """The best passage of a knowledge search's result; none for any other message."""
    result = read_result(message)
    return result.passages[:1] if isinstance(result, KnowledgeResult) else []


def last_intent(messages: list[AnyMessage]) -> str | None:
    """The intent the model recorded for the turn, when it records one."""
    for message in reversed(messages):
        if isinstance(message, AIMessage):
            meta: dict[str, Any] = message.additional_kwargs.get("threadline") or {}
            if meta.get("intent"):
                return str(meta["intent"])
    return None
